"""Cheetah and Xsuite equivalents of the suite's workloads.

Each peer gets the *same* lattice and particles as beamtrack, converted with
beamtrack's own converters (``bt.to_cheetah(line)``, ``bt.to_xsuite(line)``,
``Particles.to_cheetah()``, ``Particles.to_xsuite()``); conversion happens once,
outside the timing. :func:`agreement` checks that both codes computed the same thing
(the largest difference of ``x`` at the end), so a ratio never compares different work.

Method correspondence (``beamtrack.lattice.io.cheetah.METHOD_TO_CHEETAH``): beamtrack
``"linear"`` is Cheetah ``"linear"``, ``"bmad"`` is Cheetah ``"drift_kick_drift"``
(Bmad-X); the merged map is Cheetah's ``Segment.transfer_maps_merged``. Xsuite tracks
the ``"bmad"`` workloads (exact drifts, thick quadrupoles) on its CPU context (one
thread) or, with ``device="cuda"``, not at all (its GPU context is not set up here).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

import beamtrack as bt

from .timing import Contender

#: The species of every beam of the suite (named: float32 rest energies match no known
#: species to the precision the converters ask).
SPECIES = "electron"


def installed(name: str) -> bool:
    """Whether the peer package (``"cheetah"`` or ``"xtrack"``) is importable."""
    return importlib.util.find_spec(name) is not None


def versions() -> dict[str, str | None]:
    """Versions of the peer codes (None: not installed)."""
    out: dict[str, str | None] = {}
    for name in ("cheetah", "xtrack", "xobjects"):
        if not installed(name):
            out[name] = None
            continue
        module = __import__(name)
        out[name] = getattr(module, "__version__", "?")
    return out


def torch_dtype(dtype: str) -> Any:
    """The torch dtype named ``dtype`` (``"float64"`` or ``"float32"``)."""
    import torch

    return getattr(torch, dtype)


def cheetah_segment(line: bt.Beamline, dtype: str, device: str) -> tuple[Any, dict[str, Any]]:
    """The Cheetah segment of ``line`` (its method becomes Cheetah's tracking method) and
    its elements by name."""
    segment = bt.to_cheetah(line, dtype=torch_dtype(dtype)).to(device)
    return segment, {e.name: e for e in segment.elements}


def cheetah_gradient(line: bt.Beamline, beam: bt.Particles, values: dict[str, Any],
                     loss: Callable[[Any], Any]) -> Contender:
    """Cheetah: set the quadrupole strengths from fresh tensors that require grad, track,
    ``loss`` of the final ``x`` (shape ``(*batch, n)``), backward.

    ``values`` maps ``"name.k1"`` to a float or a NumPy array (batched strengths).
    """
    import torch

    dtype = beam.coords.dtype
    device = beam.coords.device
    segment, by_name = cheetah_segment(line, str(dtype).removeprefix("torch."), str(device))
    incoming = beam.to_cheetah(SPECIES)

    def call() -> None:
        for key, value in values.items():
            name, attribute = key.rsplit(".", 1)
            setattr(by_name[name], attribute,
                    torch.tensor(value, dtype=dtype, device=device, requires_grad=True))
        out = segment.track(incoming)
        loss(out.particles[..., 0]).backward()

    return Contender(call)


def cheetah_tracking(line: bt.Beamline, beam: bt.Particles, merged: bool) -> Contender:
    """Cheetah tracking of ``beam`` through ``line`` (torch, no gradient), or through the
    merged transfer map (``Segment.transfer_maps_merged``, built once outside the timing).
    """
    import torch

    dtype = str(beam.coords.dtype).removeprefix("torch.")
    segment, _ = cheetah_segment(line, dtype, str(beam.coords.device))
    incoming = beam.to_cheetah(SPECIES)
    if merged:
        segment = segment.transfer_maps_merged(incoming)

    def call() -> None:
        with torch.no_grad():
            out = segment.track(incoming)
        out.particles[..., :1, :1].cpu()

    return Contender(call)


def cheetah_final_x(line: bt.Beamline, beam: bt.Particles, merged: bool = False) -> np.ndarray:
    """Final ``x`` from Cheetah (for :func:`agreement`)."""
    dtype = str(beam.coords.dtype).removeprefix("torch.")
    segment, _ = cheetah_segment(line, dtype, str(beam.coords.device))
    incoming = beam.to_cheetah(SPECIES)
    if merged:
        segment = segment.transfer_maps_merged(incoming)
    return segment.track(incoming).particles[..., 0].detach().cpu().numpy()


def xsuite_tracking(line: bt.Beamline, beam: bt.Particles, p0c: float, mc2: float
                    ) -> tuple[Contender, Callable[[], np.ndarray]]:
    """Xsuite (CPU context, one thread) tracking of ``beam`` through ``line``.

    Xsuite tracks its particles in place, so every call gets a fresh copy, made outside
    the timing. Returns the contender and a function giving the final ``x``.
    """
    xline = bt.to_xsuite(line, p0c=p0c, mc2=mc2)
    xline.build_tracker()
    incoming = beam.to_xsuite(q0=-1.0)

    def track(particles: Any) -> None:
        xline.track(particles)

    def final_x() -> np.ndarray:
        particles = incoming.copy()
        xline.track(particles)
        order = np.argsort(particles.particle_id)
        return np.asarray(particles.x)[order]

    return Contender(track, prepare=incoming.copy), final_x


def agreement(reference: Any, other: np.ndarray) -> float:
    """Largest absolute difference between beamtrack's final ``x`` and a peer's [m]."""
    ref = np.asarray(bt.backends.backend_of(reference).to_numpy(reference))
    return float(np.max(np.abs(ref - np.asarray(other))))
