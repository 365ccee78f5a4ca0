"""A beamline as a ``torch.nn.Module`` with chosen parameters as ``nn.Parameter``s."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any


def beamline_module(line: Any, trainable: Iterable[str], method: str | None = None,
                    checkpoint: bool | None = None) -> Any:
    """Wrap ``line`` in an ``nn.Module`` whose parameters are the selected line parameters.

    Parameters
    ----------
    line
        A :class:`~beamtrack.lattice.beamline.Beamline`.
    trainable
        Keys or shell patterns of ``line.parameters()`` (``"q*.k1"``) to expose as
        ``torch.nn.Parameter`` (float64 tensors initialised from the line).
    method
        Tracking method used by ``forward``.
    checkpoint
        Gradient checkpointing used by ``forward``, as in ``Beamline.track`` (``None``:
        automatic above a size; :mod:`~beamtrack.backends.checkpointing`).

    Returns
    -------
    torch.nn.Module
        ``module(particles)`` tracks torch particles through the line with the current
        parameter values; ``module.line()`` gives the beamline with them;
        ``module.values()`` the ``{"element.parameter": tensor}`` mapping. Any torch
        optimiser and any network can be composed with it.
    """
    import torch

    patterns = list(trainable)
    available = line.parameters()
    keys = [k for k in available if any(fnmatch.fnmatchcase(k, p) for p in patterns)]
    if not keys:
        raise KeyError(f"no parameter of beamline {line.name!r} matches {patterns}")

    class BeamlineModule(torch.nn.Module):
        """Beamline with trainable parameters (see :func:`beamline_module`)."""

        def __init__(self) -> None:
            super().__init__()
            self.base = line
            self.keys = keys
            self.method = method
            self.checkpoint = checkpoint
            self.params = torch.nn.ParameterDict({
                _safe(k): torch.nn.Parameter(torch.as_tensor(available[k], dtype=torch.float64))
                for k in keys
            })

        def values(self) -> dict[str, Any]:
            return {k: self.params[_safe(k)] for k in self.keys}

        def line(self) -> Any:
            return self.base.with_parameters(self.values())

        def forward(self, particles: Any) -> Any:
            return self.line().track(particles, method=self.method,
                                     checkpoint=self.checkpoint)

    return BeamlineModule()


def _safe(key: str) -> str:
    """ParameterDict keys may not contain dots."""
    return key.replace(".", "__")
