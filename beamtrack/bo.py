"""Physics-informed prior means for Bayesian optimisation (extra ``bo``: botorch, gpytorch).

A Gaussian process with a constant prior mean must learn the whole objective from
evaluations. With :class:`BeamlinePriorMean` its mean is the objective computed by the
beamline model, so the GP only learns where the real machine differs from the model
(Bmad-X and Cheetah papers: the optimiser reaches the target in fewer evaluations). The
calibration parameters (input offsets, output scale and offset) let the GP's
hyperparameter fit correct a model that is wrong in a simple way.

``import beamtrack`` does not import this module (nor torch, gpytorch or botorch).

Examples
--------
>>> import torch, beamtrack as bt
>>> from beamtrack.bo import BeamlinePriorMean
>>> line = bt.load(bt.EXAMPLE_LATTICE)
>>> beam = bt.ParameterBeam(torch.zeros(6, dtype=torch.float64),
...                         torch.diag(torch.tensor([5e-4, 5e-5, 5e-4, 5e-5, 1e-3, 1e-3],
...                                                 dtype=torch.float64) ** 2),
...                         p0c=1e9, mc2=bt.electron.mc2)
>>> mean = BeamlinePriorMean(line, ["qf1.k1", "qd1.k1"], beam=beam,
...                          objective=lambda b: -bt.statistics.rms_size(b)[..., 0] / 1e-3)
>>> mean(torch.tensor([[2.0, -2.0], [1.0, -1.0]], dtype=torch.float64)).shape
torch.Size([2])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gpytorch
import torch

from beamtrack.lattice.beamline import Beamline
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.parameter_beam import ParameterBeam
from beamtrack.tracking.particles import Particles

__all__ = ["BeamlinePriorMean"]


class BeamlinePriorMean(gpytorch.means.Mean):
    """A gpytorch prior mean whose value at ``X`` is the beamline's objective there.

    Parameters
    ----------
    line
        The beamline model.
    parameters
        ``"element.parameter"`` keys, one per input dimension (``d`` of them).
    objective
        ``objective(beam) -> tensor of shape (*batch)``: the quantity the optimiser
        maximises, computed from the tracked torch particles or moment beam (for
        example ``lambda p: -bt.statistics.rms_size(p)[..., 0]``).
    beam
        Incoming beam on torch: :class:`~beamtrack.tracking.particles.Particles` or a
        :class:`~beamtrack.tracking.parameter_beam.ParameterBeam` (first-order maps,
        fastest).
    bounds
        Optional ``(2, d)`` tensor of lower and upper parameter values: ``X`` is then in
        the unit cube (botorch's ``Normalize`` input transform) and mapped to
        ``low + X (high - low)``. Without it ``X`` holds the parameter values.
    method
        Tracking method for particles (the line's when ``None``).
    calibrate
        Add trainable calibration: ``objective(x + input_offset) * output_scale +
        output_offset`` (offsets start at 0, the scale at 1, in units of ``X``), fitted
        together with the GP's hyperparameters so that the GP can correct a wrong model.

    Notes
    -----
    ``X`` of shape ``(..., d)`` is flattened into one batch: every parameter becomes a
    tensor of shape ``(M,)`` and the line is tracked once for all ``M`` points
    (beamtrack's batch dimensions); the result has shape ``X.shape[:-1]`` and is
    differentiable in ``X`` (for the acquisition optimiser) and in the calibration.
    """

    def __init__(self, line: Beamline, parameters: Sequence[str],
                 objective: Callable[[Any], torch.Tensor],
                 beam: Particles | ParameterBeam, bounds: torch.Tensor | None = None,
                 method: str | None = None, calibrate: bool = False):
        super().__init__()
        if not isinstance(beam, (Particles, ParameterBeam)):
            raise ParameterError("BeamlinePriorMean: beam must be Particles or a ParameterBeam")
        tensor = beam.coords if isinstance(beam, Particles) else beam.mean
        if not isinstance(tensor, torch.Tensor):
            raise ParameterError("BeamlinePriorMean: the beam must live on torch "
                                 "(Particles.to_backend('torch'))")
        self.keys = tuple(parameters)
        known = line.parameters()
        missing = [k for k in self.keys if k not in known]
        if missing:
            raise ParameterError(f"Beamline {line.name!r} has no parameter(s) "
                                 f"{', '.join(missing)}")
        self.line, self.objective, self.beam, self.method = line, objective, beam, method
        d = len(self.keys)
        if bounds is not None:
            bounds = torch.as_tensor(bounds, dtype=tensor.dtype)
            if bounds.shape != (2, d):
                raise ParameterError(f"BeamlinePriorMean: bounds must have shape (2, {d}), "
                                     f"got {tuple(bounds.shape)}")
            self.register_buffer("bounds", bounds)
        else:
            self.bounds = None
        self.calibrate = bool(calibrate)
        if self.calibrate:
            self.register_parameter("input_offset",
                                    torch.nn.Parameter(torch.zeros(d, dtype=tensor.dtype)))
            self.register_parameter("output_scale",
                                    torch.nn.Parameter(torch.ones((), dtype=tensor.dtype)))
            self.register_parameter("output_offset",
                                    torch.nn.Parameter(torch.zeros((), dtype=tensor.dtype)))

    def values(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"element.parameter": tensor (M,)}`` for inputs ``x`` of shape ``(M, d)``."""
        if self.calibrate:
            x = x + self.input_offset
        if self.bounds is not None:
            x = self.bounds[0] + x * (self.bounds[1] - self.bounds[0])
        return {key: x[:, i] for i, key in enumerate(self.keys)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The prior mean at ``x`` of shape ``(..., d)``; returns ``x.shape[:-1]``."""
        if x.shape[-1] != len(self.keys):
            raise ParameterError(f"BeamlinePriorMean: inputs must have {len(self.keys)} "
                                 f"columns, got shape {tuple(x.shape)}")
        flat = x.reshape(-1, x.shape[-1])
        line = self.line.with_parameters(self.values(flat))
        if isinstance(self.beam, ParameterBeam):
            out = line.track(self.beam)
        else:
            out = line.track(self.beam, method=self.method)
        value = self.objective(out)
        if value.shape != (flat.shape[0],):
            value = torch.broadcast_to(value, (flat.shape[0],))
        if self.calibrate:
            value = value * self.output_scale + self.output_offset
        return value.reshape(x.shape[:-1])
