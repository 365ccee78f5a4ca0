"""Beam statistics over alive particles, optionally weighted.

Every function averages over the alive particles only (lost ones get weight 0) and
accepts optional per-particle ``weights`` (macro-particle charges, shape
``(*batch, n)``); without them, the particles' own ``weight`` where set. Results
have shape ``(*batch, ...)``. All are differentiable.

Every function also accepts a moment beam
(:class:`~beamtrack.tracking.parameter_beam.ParameterBeam`) in place of particles: its
mean and covariance are used as they are (no ``weights``; :func:`beam_statistics` then
has no ``n_alive``).

Sizes, covariances and emittances are **population** moments: sums over the particles
divided by their number (or total weight), not by ``n - 1``. Cheetah and
``numpy.std(..., ddof=1)`` use ``n - 1``; for ``n`` particles the sizes differ by the
factor ``sqrt(n / (n - 1))`` (0.05 % at 1000 particles).
"""

from __future__ import annotations

from typing import Any

from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.particles import COORDINATES, Particles

_PLANES = {"x": 0, "y": 2, "z": 4}


def _is_moment_beam(p: Any) -> bool:
    """Whether ``p`` is a moment beam (``ParameterBeam``) rather than particles."""
    return not isinstance(p, Particles) and hasattr(p, "covariance") and hasattr(p, "mean")


def _moment_beam(p: Any, weights: Any) -> bool:
    if not _is_moment_beam(p):
        return False
    if weights is not None:
        raise ParameterError("statistics of a ParameterBeam take no per-particle weights")
    return True


def _weights(p: Particles, weights: Any = None) -> tuple[Any, Any]:
    xp = p.xp
    w = xp.astype(p.alive, p.dtype)
    if weights is None:
        weights = p.explicit_weight  # macro-particle weights, where the beam has them
    if weights is not None:
        w = w * weights
    return w, xp.sum(w, axis=-1)


def centroid(p: Particles, weights: Any = None) -> Any:
    """Mean of each coordinate over alive particles, shape ``(*batch, 6)``."""
    if _moment_beam(p, weights):
        return p.mean
    xp = p.xp
    w, total = _weights(p, weights)
    return xp.sum(p.coords * w[..., None, :], axis=-1) / total[..., None]


def covariance(p: Particles, weights: Any = None) -> Any:
    """Covariance matrix of the six coordinates over alive particles, ``(*batch, 6, 6)``.

    Normalised by the total weight (the population covariance, not ``n - 1``).
    """
    if _moment_beam(p, weights):
        return p.covariance
    xp = p.xp
    w, total = _weights(p, weights)
    d = p.coords - centroid(p, weights)[..., None]
    return xp.matmul(d * w[..., None, :], xp.matrix_transpose(d)) / total[..., None, None]


def rms_size(p: Particles, weights: Any = None) -> Any:
    """RMS spread of each coordinate over alive particles, shape ``(*batch, 6)``."""
    xp = p.xp
    cov = covariance(p, weights)
    return xp.sqrt(xp.stack([cov[..., i, i] for i in range(6)], axis=-1))


def _plane_index(plane: str) -> int:
    if plane not in _PLANES:
        raise ValueError(f"unknown plane {plane!r}; choose x, y or z")
    return _PLANES[plane]


def _det2(cov: Any, i: int) -> Any:
    return cov[..., i, i] * cov[..., i + 1, i + 1] - cov[..., i, i + 1] ** 2


def emittance(p: Particles, plane: str, weights: Any = None) -> Any:
    """Projected geometric RMS emittance of ``plane`` (``"x"``, ``"y"``, ``"z"``).

    ``sqrt(<u^2><pu^2> - <u pu>^2)`` of the centred alive particles, with the
    momentum coordinate of the plane (``px``, ``py``, ``pz``) [m].
    """
    xp = p.xp
    det = _det2(covariance(p, weights), _plane_index(plane))
    return xp.sqrt(xp.clip(det, min=0.0))


def normalized_emittance(p: Particles, plane: str, weights: Any = None) -> Any:
    """Normalised emittance ``beta0 gamma0 eps`` [m] with ``beta0 gamma0 = p0c / mc2``.

    With Bmad's momenta (``px = P_x/P0``) this is the standard normalised emittance.
    """
    return emittance(p, plane, weights) * p.p0c / p.mc2


def emittance_4d(p: Particles, weights: Any = None) -> Any:
    """Transverse 4D emittance ``det(Sigma_4x4)^(1/4)`` [m] (equals ``sqrt(eps_x eps_y)``
    for an uncoupled beam)."""
    xp = p.xp
    det = xp.linalg.det(covariance(p, weights)[..., :4, :4])
    return xp.clip(det, min=0.0) ** 0.25


def emittance_6d(p: Particles, weights: Any = None) -> Any:
    """6D emittance ``det(Sigma)^(1/6)`` [m]."""
    xp = p.xp
    det = xp.linalg.det(covariance(p, weights))
    return xp.clip(det, min=0.0) ** (1.0 / 6.0)


def dispersion(p: Particles, weights: Any = None) -> Any:
    """Dispersion from the correlation with ``pz``: ``<u pz> / <pz^2>`` for u = x, px, y, py.

    Shape ``(*batch, 4)``: ``(D_x [m], D_px, D_y [m], D_py)``.
    """
    xp = p.xp
    cov = covariance(p, weights)
    return xp.stack([cov[..., i, 5] for i in range(4)], axis=-1) / cov[..., 5, 5][..., None]


def twiss_from_moments(
    p: Particles, plane: str, weights: Any = None, remove_dispersion: bool = True
) -> dict[str, Any]:
    """Twiss parameters of ``plane`` (``"x"`` or ``"y"``) from the second moments.

    ``beta = <u^2>/eps``, ``alpha = -<u pu>/eps``, ``gamma = <pu^2>/eps``. With
    ``remove_dispersion`` the correlation with ``pz`` is subtracted first
    (``u -> u - D pz``), which gives the betatron Twiss parameters of a beam with
    energy spread.
    """
    i = _plane_index(plane)
    if plane == "z":
        raise ValueError("twiss_from_moments: plane must be 'x' or 'y'")
    xp = p.xp
    cov = covariance(p, weights)
    a, b, c = cov[..., i, i], cov[..., i, i + 1], cov[..., i + 1, i + 1]
    if remove_dispersion:
        s55 = cov[..., 5, 5]
        safe = xp.where(s55 > 0, s55, xp.ones_like(s55))
        d, dp = cov[..., i, 5] / safe, cov[..., i + 1, 5] / safe
        d = xp.where(s55 > 0, d, xp.zeros_like(d))
        dp = xp.where(s55 > 0, dp, xp.zeros_like(dp))
        a, b, c = a - d * d * s55, b - d * dp * s55, c - dp * dp * s55
    eps = xp.sqrt(xp.clip(a * c - b * b, min=0.0))
    return {"beta": a / eps, "alpha": -b / eps, "gamma": c / eps, "emittance": eps}


def beam_statistics(p: Particles, weights: Any = None) -> dict[str, Any]:
    """Centroids, RMS sizes and emittances in one dictionary.

    Keys: ``mean_<coord>`` and ``sigma_<coord>`` for each of the six coordinates,
    ``emittance_x``, ``emittance_y``, ``emittance_z``, ``normalized_emittance_x``,
    ``normalized_emittance_y`` and ``n_alive`` (not for a ``ParameterBeam``). Sizes are
    population standard deviations (divided by ``n``, not ``n - 1`` as in Cheetah).
    """
    xp = p.xp
    mean = centroid(p, weights)
    cov = covariance(p, weights)
    out: dict[str, Any] = {}
    for i, name in enumerate(COORDINATES):
        out[f"mean_{name}"] = mean[..., i]
        out[f"sigma_{name}"] = xp.sqrt(cov[..., i, i])
    for plane, i in _PLANES.items():
        out[f"emittance_{plane}"] = xp.sqrt(xp.clip(_det2(cov, i), min=0.0))
    for plane in ("x", "y"):
        out[f"normalized_emittance_{plane}"] = out[f"emittance_{plane}"] * p.p0c / p.mc2
    if not _is_moment_beam(p):
        out["n_alive"] = xp.sum(xp.astype(p.alive, p.dtype), axis=-1)
    return out
