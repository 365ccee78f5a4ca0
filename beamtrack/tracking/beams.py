"""Generating particle distributions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from beamtrack.backends import get
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.particles import Particles


def gaussian_particles(
    n: int,
    *,
    sigma: Sequence[float],
    p0c: float,
    mc2: float,
    mean: Sequence[float] | None = None,
    seed: int = 0,
    backend: str = "numpy",
    dtype: Any = None,
    device: Any = None,
) -> Particles:
    """An uncorrelated Gaussian bunch.

    The numbers are drawn with the backend's :meth:`~beamtrack.backends.Backend.normal`,
    which gives the same particles on every backend for one seed.

    Parameters
    ----------
    n
        Number of particles.
    sigma
        RMS spreads of ``x [m], px, y [m], py, z [m], pz``.
    p0c, mc2
        Reference momentum and rest energy [eV].
    mean
        Centroid of the six coordinates (zero by default).
    seed
        Random seed.
    backend, dtype, device
        Where the particles live (float64 by default).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ParameterError(f"gaussian_particles: n must be a positive integer, got {n!r}")
    sigma_arr = np.asarray(sigma, dtype=np.float64)
    mean_arr = np.zeros(6) if mean is None else np.asarray(mean, dtype=np.float64)
    if sigma_arr.shape != (6,) or mean_arr.shape != (6,):
        raise ParameterError("gaussian_particles: sigma and mean need six values each")
    if not np.all(np.isfinite(sigma_arr)) or np.any(sigma_arr < 0):
        raise ParameterError(f"gaussian_particles: sigma must be finite and >= 0, got {sigma}")
    target = get(backend)
    unit = get("numpy").normal((6, n), seed)
    coords = mean_arr[:, None] + sigma_arr[:, None] * unit
    return Particles(
        coords=target.asarray(coords, dtype=dtype, device=device),
        p0c=p0c,
        mc2=mc2,
    )
