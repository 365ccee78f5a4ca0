"""Symplecticity of the "bmad" maps and the "linear" maps as their first-order part.

Jacobians come from autodiff (torch.func.jacrev, jax.jacfwd) of the tracking functions
with respect to the six incoming coordinates.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import ELECTRON_MC2, P0C, PROTON_MC2, SYMPLECTIC_J, make_particles, to_np

from beamtrack.tracking import (
    Particles,
    drift_matrix,
    quadrupole_matrix,
    track_drift,
    track_quadrupole,
)

J = SYMPLECTIC_J

#: A generic point (not small, not special).
POINT = np.array([2e-3, -0.03, -1.5e-3, 0.02, 4e-3, 0.015])

QUADS = {
    "focusing": dict(length=0.4, k1=2.5),
    "defocusing": dict(length=0.4, k1=-1.7),
    "zero": dict(length=0.4, k1=0.0),
    "series": dict(length=0.5, k1=1e-3),
    "strong": dict(length=0.3, k1=60.0),
    "tilted": dict(length=0.4, k1=2.5, tilt=0.6),
    "skew": dict(length=0.4, k1=-1.7, tilt=np.pi / 4),
    "offset": dict(length=0.4, k1=2.5, x_offset=1e-3, y_offset=-2e-3),
    "all": dict(length=0.4, k1=-3.1, tilt=-0.4, x_offset=-1e-3, y_offset=5e-4, num_steps=3),
    "zero-tilted-offset": dict(length=0.4, k1=0.0, tilt=0.3, x_offset=1e-3, y_offset=1e-3),
}
DRIFTS = {"short": dict(length=0.25), "long": dict(length=3.0)}
REFERENCES = {"electron 1 GeV": (P0C, ELECTRON_MC2), "proton 50 MeV/c": (5e7, PROTON_MC2)}


def _element(kind, kw):
    track = track_quadrupole if kind == "quad" else track_drift
    return functools.partial(track, **kw)


def jacobian(ad, kind, kw, point, p0c, mc2):
    """6x6 Jacobian of the "bmad" map of the element at ``point`` by autodiff."""
    if ad.name == "torch":
        import torch

        def f(v):
            p = Particles(coords=v[:, None], p0c=p0c, mc2=mc2)
            return _element(kind, kw)(p).coords[:, 0]

        return torch.func.jacrev(f)(ad.asarray(point)).detach().numpy()
    params = {k: float(v) for k, v in kw.items() if k != "num_steps"}
    if kind == "quad":  # the same parameter set for every quad: one compilation
        params = dict(dict(tilt=0.0, x_offset=0.0, y_offset=0.0), **params)
    jac = _jax_jacobian(kind, kw.get("num_steps", 1))
    return np.array(jac(ad.asarray(point), params, p0c, mc2))


@functools.cache
def _jax_jacobian(kind, num_steps):
    """jax.jacfwd of the element map, compiled once per element kind and num_steps:
    the parameter values are traced arguments, not constants."""
    import jax

    def f(v, params, p0c, mc2):
        p = Particles(coords=v[:, None], p0c=p0c, mc2=mc2)
        kw = dict(params, num_steps=num_steps) if kind == "quad" else params
        return _element(kind, kw)(p).coords[:, 0]

    return jax.jit(jax.jacfwd(f))


def _cases():
    for ref in REFERENCES:
        for name, kw in QUADS.items():
            yield pytest.param("quad", kw, ref, id=f"quad-{name}-{ref}")
        for name, kw in DRIFTS.items():
            yield pytest.param("drift", kw, ref, id=f"drift-{name}-{ref}")


@pytest.mark.parametrize(("kind", "kw", "ref"), list(_cases()))
def test_bmad_map_is_symplectic(ad, kind, kw, ref):
    p0c, mc2 = REFERENCES[ref]
    m = jacobian(ad, kind, kw, POINT, p0c, mc2)
    assert np.all(np.isfinite(m))
    np.testing.assert_allclose(m.T @ J @ m, J, rtol=0, atol=1e-13)
    # Not trivially so: the map is not the identity.
    assert np.abs(m - np.eye(6)).max() > 1e-2


def test_non_symplectic_map_is_detected(ad):
    """The check itself can fail: scaling px alone breaks M^T J M = J."""
    m = jacobian(ad, "quad", QUADS["all"], POINT, P0C, ELECTRON_MC2)
    m[1] *= 1.0 + 1e-10
    assert np.abs(m.T @ J @ m - J).max() > 1e-11


def _linear_matrix(name, kind, kw, p0c, mc2):
    """Matrix of the "linear" method: images of the unit vectors minus the image of 0."""
    p = make_particles(name, np.vstack([np.zeros(6), np.eye(6)]), p0c=p0c, mc2=mc2)
    kw = {k: v for k, v in kw.items() if k != "num_steps"}
    images = to_np(_element(kind, dict(kw, method="linear"))(p))
    return images[:, 1:] - images[:, :1]


@pytest.mark.parametrize(("kind", "kw", "ref"), list(_cases()))
def test_linear_is_jacobian_at_reference_orbit(ad, kind, kw, ref):
    """The "linear" matrix is the Jacobian of the "bmad" map at the reference orbit
    (all zeros), tilts and offsets included (an offset magnet puts the reference orbit
    off its axis: chromatic R16..R46 and path-length R5j terms appear)."""
    p0c, mc2 = REFERENCES[ref]
    m = jacobian(ad, kind, kw, np.zeros(6), p0c, mc2)
    r = _linear_matrix(ad.name, kind, kw, p0c, mc2)
    np.testing.assert_allclose(r, m, rtol=0, atol=1e-13)
    np.testing.assert_allclose(r.T @ J @ r, J, rtol=0, atol=1e-13)


@pytest.mark.parametrize("ref", list(REFERENCES))
def test_public_matrices_are_jacobians(ad, ref):
    """drift_matrix and quadrupole_matrix equal the autodiff Jacobians at zero."""
    p0c, mc2 = REFERENCES[ref]
    xp = ad.namespace()
    f64 = dict(dtype=xp.float64)
    for kw in (QUADS["focusing"], QUADS["defocusing"], QUADS["zero"], QUADS["series"]):
        m = jacobian(ad, "quad", kw, np.zeros(6), p0c, mc2)
        r = quadrupole_matrix(xp.asarray(kw["length"], **f64), xp.asarray(kw["k1"], **f64),
                              xp.asarray(p0c, **f64), xp.asarray(mc2, **f64))
        np.testing.assert_allclose(ad.to_numpy(r), m, rtol=0, atol=1e-13)
    m = jacobian(ad, "drift", DRIFTS["long"], np.zeros(6), p0c, mc2)
    r = drift_matrix(xp.asarray(3.0, **f64), xp.asarray(p0c, **f64), xp.asarray(mc2, **f64))
    np.testing.assert_allclose(ad.to_numpy(r), m, rtol=0, atol=1e-13)


@pytest.mark.parametrize(("kind", "kw", "ref"), list(_cases()))
def test_linear_constant_is_bmad_image_of_zero(ad, kind, kw, ref):
    """The constant term of the "linear" map is the "bmad" image of the reference
    particle: for an offset quad the feed-down kick and its path length (nonzero),
    for an aligned element zero."""
    p0c, mc2 = REFERENCES[ref]
    zero = make_particles(ad.name, np.zeros((1, 6)), p0c=p0c, mc2=mc2)
    lin = dict({k: v for k, v in kw.items() if k != "num_steps"}, method="linear")
    bmad = to_np(_element(kind, kw)(zero))[:, 0]
    linear = to_np(_element(kind, lin)(zero))[:, 0]
    np.testing.assert_allclose(linear, bmad, rtol=0, atol=1e-15)
    offset = kw.get("x_offset", 0.0) or kw.get("y_offset", 0.0)
    if offset and kw["k1"]:
        assert np.abs(bmad[:4]).max() > 1e-5  # the feed-down kick
        assert bmad[4] != 0.0  # its path length
    else:  # zero up to the rounding of the frame round trip (offsets ~ 1e-3)
        np.testing.assert_allclose(bmad, 0.0, rtol=0, atol=1e-18)
