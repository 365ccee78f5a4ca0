"""The thin multipole's curved reference (``Multipole.ref_length``): a slice of a bend.

References, independent of the code under test:
- Xsuite (xtrack) ``Multipole(knl, ksl, hxl=knl[0], length=ref_length)`` tracking, in
  Bmad coordinates (``z = zeta beta/beta0``), where xtrack is installed;
- MAD-X (cpymad) TWISS RMATRIX of ``multipole, knl, ksl, lrad, tilt`` (its weak focusing
  ``-knl[0]^2/lrad`` and ``-ksl[0]^2/lrad``), where cpymad is installed;
- symmetry: a multipole rolled by pi/2 is the multipole with rotated strengths
  (``K_nL + i K_nSL -> (K_nL + i K_nSL) exp(-i (n+1) pi/2)``), which fixes the vertical
  curvature terms from the horizontal ones; and the map is symplectic (a kick from a
  potential).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import PROTON_MC2, SYMPLECTIC_J, make_particles, random_beam, to_np
from madx import madx_matrix

import beamtrack as bt
from beamtrack.tracking import Particles
from beamtrack.tracking.multipole import track_multipole

P0C_PROTON = 0.5e9
BEAM = random_beam(16, seed=3, scale=2e-3)

XSUITE_CASES = [
    dict(knl=(0.1,), ref_length=0.5),
    dict(knl=(-0.19634954085, 0.0), ref_length=1.617696),  # a PS Booster dipole slice
    dict(knl=(0.05, 0.3, 2.0), ref_length=0.3),
    dict(knl=(0.02, -0.4, 0.0, 50.0), ksl=(0.0, 0.1, 1.0), ref_length=0.25),
]


def _xsuite_track(rows: np.ndarray, p0c: float, mc2: float, knl: tuple, ksl: tuple,
                  ref_length: float) -> np.ndarray:
    """Xsuite's thin Multipole with hxl = knl[0] and length = ref_length, in Bmad
    coordinates, on a particle-major ``(n, 6)`` array."""
    xt = pytest.importorskip("xtrack", reason="xtrack (Xsuite) not installed")
    order = max(len(knl), len(ksl))
    knl = list(knl) + [0.0] * (order - len(knl))
    ksl = list(ksl) + [0.0] * (order - len(ksl))
    particles = xt.Particles(p0c=p0c, mass0=mc2, x=rows[:, 0], px=rows[:, 1], y=rows[:, 2],
                             py=rows[:, 3], delta=rows[:, 5])
    beta0 = particles.beta0[0]
    particles.zeta = rows[:, 4] * beta0 / (particles.beta0 * particles.rvv)  # zeta = z b0/b
    xt.Multipole(knl=knl, ksl=ksl, hxl=knl[0], length=ref_length).track(particles)
    z = particles.zeta * particles.beta0 * particles.rvv / beta0
    return np.stack([particles.x, particles.px, particles.y, particles.py, z,
                     particles.delta])


@pytest.mark.parametrize("case", XSUITE_CASES)
def test_matches_xsuite_multipole_with_curvature(xp, case):
    knl, ksl, ref_length = case["knl"], case.get("ksl", ()), case["ref_length"]
    expected = _xsuite_track(BEAM, P0C_PROTON, PROTON_MC2, knl, ksl, ref_length)
    p = make_particles(xp.name, BEAM, p0c=P0C_PROTON, mc2=PROTON_MC2)
    got = to_np(track_multipole(p, knl=knl, ksl=ksl, ref_length=ref_length))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)
    # and the weak focusing is really there (not a trivially equal map)
    flat = to_np(track_multipole(p, knl=knl, ksl=ksl))
    assert np.abs(flat - expected)[1].max() > 1e-6


MADX_CASES = [
    ("knl={0.1}", dict(knl=(0.1,))),
    ("ksl={0.1}", dict(ksl=(0.1,))),
    ("knl={0.1, 0.3}", dict(knl=(0.1, 0.3))),
    ("knl={-0.08}, ksl={0.05, -0.2}", dict(knl=(-0.08,), ksl=(0.05, -0.2))),
    ("knl={0.1, 0.0, 3.0}, ksl={0.0, 0.2}", dict(knl=(0.1, 0.0, 3.0), ksl=(0.0, 0.2))),
]


@pytest.mark.parametrize(("particle", "p0c"), [("proton", 0.5e9), ("electron", 2e9)])
@pytest.mark.parametrize(("strengths", "params"), MADX_CASES)
def test_first_order_map_matches_madx_lrad(xp, strengths, params, particle, p0c):
    """The ``"linear"`` map of the ``"bmad"`` model against MAD-X's thin multipole with
    ``lrad`` (RMATRIX, Bmad coordinates)."""
    lrad = 0.7
    theirs = madx_matrix(f"e1: multipole, {strengths}, lrad={lrad};", 0.0, p0c, particle)
    mc2 = bt.tracking.species(particle).mc2
    line = bt.Beamline([bt.Multipole("e1", ref_length=lrad, **params)])
    r, _ = bt.transfer_map(line, p0c=p0c, mc2=mc2, backend=xp.name)
    # MAD-X's sequence of length 1e-9 m adds that much drift (R12, R34)
    np.testing.assert_allclose(xp.to_numpy(r), theirs, rtol=0, atol=2e-9)
    assert min(theirs[1, 0], theirs[3, 2]) < -1e-3  # weak focusing present


def test_weak_focusing_values():
    """The first-order terms in closed form: ``R21 = -K0L^2/L``, ``R43 = -K0SL^2/L``,
    the dispersive terms of the zero-length bend unchanged."""
    k0, k0s, length = 0.12, -0.05, 0.6
    line = bt.Beamline([bt.Multipole("m", knl=(k0,), ksl=(k0s,), ref_length=length)])
    r, c = bt.transfer_map(line, p0c=P0C_PROTON, mc2=PROTON_MC2)
    r = np.asarray(r)
    assert r[1, 0] == pytest.approx(-k0 * k0 / length, rel=1e-15)
    assert r[3, 2] == pytest.approx(-k0s * k0s / length, rel=1e-15)
    assert (r[1, 5], r[3, 5], r[4, 0], r[4, 2]) == pytest.approx((k0, -k0s, -k0, k0s),
                                                                   rel=1e-15)
    np.testing.assert_array_equal(np.asarray(c), 0.0)


@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
def test_zero_ref_length_is_the_plain_thin_multipole(xp, method):
    p = make_particles(xp.name, BEAM, p0c=P0C_PROTON, mc2=PROTON_MC2)
    kw = dict(knl=(0.03, 0.4, 5.0), ksl=(0.01, 0.2), tilt=0.1, x_offset=1e-4, method=method)
    got = to_np(track_multipole(p, ref_length=0.0, **kw))
    # ref_length = 0 (the default) is exactly the thin multipole without curvature terms
    np.testing.assert_array_equal(got, to_np(track_multipole(p, **kw)))


def test_rolled_by_a_right_angle_is_the_rotated_multipole(xp):
    """Rolling (tilt = pi/2) a multipole with K0L, K1L, K2L and a curved reference equals
    the untilted one with strengths rotated by exp(-i (n+1) pi/2): the vertical
    curvature terms (K0SL, with K1L) are the horizontal ones turned by a right angle."""
    k = (0.07, 0.4, 6.0)
    rotated_n, rotated_s = [], []
    for n, value in enumerate(k):
        angle = (n + 1) * math.pi / 2
        rotated_n.append(value * round(math.cos(angle)))
        rotated_s.append(-value * round(math.sin(angle)))
    p = make_particles(xp.name, BEAM, p0c=P0C_PROTON, mc2=PROTON_MC2)
    rolled = to_np(track_multipole(p, knl=k, ref_length=0.4, tilt=math.pi / 2))
    turned = to_np(track_multipole(p, knl=tuple(rotated_n), ksl=tuple(rotated_s),
                                   ref_length=0.4))
    np.testing.assert_allclose(rolled, turned, rtol=0, atol=1e-15)


def test_symplectic_with_curvature():
    line = bt.Beamline([bt.Multipole("m", knl=(0.1, 0.5, 20.0), ksl=(0.04, 0.2, 3.0),
                                     ref_length=0.3, x_offset=2e-3, y_offset=-1e-3)])
    orbit = np.array([[1e-3], [-2e-4], [2e-3], [1e-4], [0.0], [1e-3]])
    jacobian = np.empty((6, 6))
    step = 1e-7
    for j in range(6):
        shifted = []
        for sign in (1, -1):
            coords = orbit.copy()
            coords[j] += sign * step
            out = line.track(Particles(coords=coords, p0c=P0C_PROTON, mc2=PROTON_MC2))
            shifted.append(np.asarray(out.coords)[:, 0])
        jacobian[:, j] = (shifted[0] - shifted[1]) / (2 * step)
    np.testing.assert_allclose(jacobian.T @ SYMPLECTIC_J @ jacobian, SYMPLECTIC_J, rtol=0,
                               atol=1e-9)


def test_gradient_with_respect_to_ref_length(ad):
    """d px / d ref_length = K0L^2 x / L^2 (from ``dpx = -K0L^2 x / L``), by autodiff."""
    k0, length, x = 0.1, 0.5, 2e-3
    row = np.array([[x, 0.0, 0.0, 0.0, 0.0, 0.0]])

    def px(ref_length):
        p = make_particles(ad.name, row, p0c=P0C_PROTON, mc2=PROTON_MC2)
        return track_multipole(p, knl=(k0,), ref_length=ref_length).px[0]

    value, grad = ad.value_and_grad(px)(ad.asarray(length))
    assert float(value) == pytest.approx(-k0 * k0 * x / length, rel=1e-14)
    assert float(grad) == pytest.approx(k0 * k0 * x / length**2, rel=1e-12)
    _, grad_zero = ad.value_and_grad(px)(ad.asarray(0.0))
    assert float(grad_zero) == 0.0  # no curvature terms, finite gradient


def test_negative_ref_length_is_refused():
    p = make_particles("numpy", BEAM[:1])
    with pytest.raises(bt.ParameterError, match="ref_length"):
        track_multipole(p, knl=(0.1,), ref_length=-1.0)
