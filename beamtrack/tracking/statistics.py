"""Beam statistics over alive particles.

Every function averages over the alive particles only (weights 0 for lost ones) and
returns arrays of shape ``(*batch, ...)``.
"""

from __future__ import annotations

from typing import Any

from beamtrack.tracking.particles import Particles

_PLANES = {"x": 0, "y": 2, "z": 4}


def _weights(p: Particles) -> tuple[Any, Any]:
    xp = p.xp
    w = xp.astype(p.alive, p.dtype)
    return w, xp.sum(w, axis=-1)


def centroid(p: Particles) -> Any:
    """Mean of each coordinate over alive particles, shape ``(*batch, 6)``."""
    xp = p.xp
    w, total = _weights(p)
    return xp.sum(p.coords * w[..., None, :], axis=-1) / total[..., None]


def covariance(p: Particles) -> Any:
    """Covariance matrix of the six coordinates over alive particles, ``(*batch, 6, 6)``."""
    xp = p.xp
    w, total = _weights(p)
    d = (p.coords - centroid(p)[..., None]) * w[..., None, :]
    return xp.matmul(d, xp.matrix_transpose(d)) / total[..., None, None]


def rms_size(p: Particles) -> Any:
    """RMS spread of each coordinate over alive particles, shape ``(*batch, 6)``."""
    xp = p.xp
    cov = covariance(p)
    return xp.sqrt(xp.stack([cov[..., i, i] for i in range(6)], axis=-1))


def emittance(p: Particles, plane: str) -> Any:
    """Projected geometric RMS emittance of ``plane`` (``"x"``, ``"y"``, ``"z"``).

    ``sqrt(<u^2><pu^2> - <u pu>^2)`` of the centred alive particles, with the
    momentum coordinate of the plane (``px``, ``py``, ``pz``): [m] for x and y,
    [m] for z (as ``z`` times relative momentum).
    """
    if plane not in _PLANES:
        raise ValueError(f"unknown plane {plane!r}; choose x, y or z")
    xp = p.xp
    i = _PLANES[plane]
    cov = covariance(p)
    det = cov[..., i, i] * cov[..., i + 1, i + 1] - cov[..., i, i + 1] ** 2
    return xp.sqrt(xp.clip(det, min=0.0))


def beam_statistics(p: Particles) -> dict[str, Any]:
    """Centroids, RMS sizes and emittances in one dictionary.

    Keys: ``mean_<coord>`` and ``sigma_<coord>`` for each of the six coordinates,
    ``emittance_x``, ``emittance_y``, ``emittance_z``, and ``n_alive``.
    """
    from beamtrack.tracking.particles import COORDINATES

    xp = p.xp
    mean = centroid(p)
    sigma = rms_size(p)
    out: dict[str, Any] = {}
    for i, name in enumerate(COORDINATES):
        out[f"mean_{name}"] = mean[..., i]
        out[f"sigma_{name}"] = sigma[..., i]
    for plane in _PLANES:
        out[f"emittance_{plane}"] = emittance(p, plane)
    out["n_alive"] = xp.sum(xp.astype(p.alive, p.dtype), axis=-1)
    return out
