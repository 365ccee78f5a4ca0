"""Cross-backend agreement: the same tracking on every installed backend vs NumPy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from beamtrack.backends import available, get
from beamtrack.lattice.beamline import Beamline
from beamtrack.tracking.particles import Particles

#: Default tolerance on the relative deviation in float64.
FLOAT64_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Deviation:
    """Deviation of one backend's tracking result from NumPy's.

    Attributes
    ----------
    backend
        Backend name.
    max_abs
        Largest absolute difference of any coordinate of any particle.
    max_rel
        Largest absolute difference divided by the largest magnitude of that
        coordinate over the bunch (a scale-aware relative deviation).
    alive_mismatch
        Number of particles whose survival differs from NumPy's.
    ok
        Whether ``max_rel <= tolerance`` and no survival differs.
    """

    backend: str
    max_abs: float
    max_rel: float
    alive_mismatch: int
    ok: bool


def crosscheck(
    beamline: Beamline,
    particles: Particles,
    backends: Sequence[str] | None = None,
    method: str | None = None,
    tolerance: float = FLOAT64_TOLERANCE,
) -> dict[str, Deviation]:
    """Track the same particles on several backends and compare with NumPy.

    Parameters
    ----------
    beamline
        Beamline with number (or NumPy array) parameters.
    particles
        Incoming particles, any backend (moved to each backend through the host).
    backends
        Backends to compare; every installed one except NumPy when ``None``.
    method
        Tracking method passed to :meth:`Beamline.track`.
    tolerance
        Largest acceptable relative deviation.

    Returns
    -------
    dict
        ``{backend: Deviation}``.
    """
    reference_in = particles.numpy()
    reference = beamline.track(reference_in, method=method)
    ref_coords = np.asarray(reference.coords)
    ref_alive = np.asarray(reference.alive)
    scale = np.max(np.abs(ref_coords), axis=-1, keepdims=True)
    scale = np.where(scale > 0, scale, 1.0)
    names = [b for b in available() if b != "numpy"] if backends is None else list(backends)
    results = {}
    for name in names:
        backend = get(name)
        out = beamline.track(reference_in.to_backend(name), method=method)
        coords = backend.to_numpy(out.coords)
        alive = backend.to_numpy(out.alive)
        diff = np.abs(coords - ref_coords)
        max_abs = float(np.max(diff)) if diff.size else 0.0
        max_rel = float(np.max(diff / scale)) if diff.size else 0.0
        mismatch = int(np.sum(alive != ref_alive))
        results[name] = Deviation(name, max_abs, max_rel, mismatch,
                                  bool(max_rel <= tolerance and mismatch == 0))
    return results
