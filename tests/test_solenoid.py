"""Solenoid: Bmad's exact hard-edge solenoid against the Lorentz force, MAD-X and theory.

Bmad's "bmad_standard" solenoid is exact (no small-angle approximation), so the body
is compared with a numerical integration (scipy DOP853, rtol 1e-13) of the exact
equations of motion of the mechanical momenta in a uniform axial field,
``dm_x/ds = ks m_y/p_s``, ``dm_y/ds = -ks m_x/p_s``, ``dx/ds = m_x/p_s``,
with the hard-edge radial-field kicks written out in mechanical form at the two edges
(entrance ``m_x = px + ks y/2``, ``m_y = py - ks x/2``; exit the inverse).
"""

from __future__ import annotations

import functools
import math

import mpmath
import numpy as np
import pytest
from conftest import (
    ELECTRON_MC2,
    P0C,
    PROTON_MC2,
    SYMPLECTIC_J,
    alive_np,
    make_particles,
    mp_beta,
    random_beam,
    to_np,
    value_and_grad_np,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from beamtrack.backends import get
from beamtrack.lattice.beamline import Beamline
from beamtrack.lattice.elements import Drift, Solenoid
from beamtrack.tracking.drift import track_drift
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.solenoid import solenoid_map, track_solenoid

mpmath.mp.dps = 40
J = SYMPLECTIC_J

#: Generic particles, paraxial and wide-angle (mechanical momenta up to ~0.3).
BEAM = np.array([
    [1e-3, 2e-3, -3e-3, -1e-3, 2e-3, -1e-3],
    [-2e-3, 5e-4, 1e-3, 3e-3, -1e-3, 2e-2],
    [4e-3, -1e-3, 2e-3, -2e-3, 0.0, -3e-2],
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [2e-2, 0.25, -1e-2, -0.15, 1e-3, 0.05],
])
REFERENCES = {"electron 1 GeV": (P0C, ELECTRON_MC2), "proton 50 MeV/c": (5e7, PROTON_MC2)}


def lorentz_reference(row, length, ks, p0c, mc2):
    """Solenoid with hard edges from the Lorentz force (DOP853), z from mpmath."""
    x, px, y, py, z, pz = (float(v) for v in row)
    rel_p = 1.0 + pz
    mx, my = px + ks * y / 2, py - ks * x / 2  # entrance radial-field kick

    def rhs(_, u):
        ps = math.sqrt(rel_p**2 - u[1] ** 2 - u[3] ** 2)
        return [u[1] / ps, ks * u[3] / ps, u[3] / ps, -ks * u[1] / ps]

    sol = solve_ivp(rhs, (0.0, length), [x, mx, y, my], method="DOP853", rtol=1e-13,
                    atol=1e-18)
    x2, mx2, y2, my2 = sol.y[:, -1]
    # Path length: the longitudinal momentum is constant (|m| is), so dz/ds is too.
    m = [mpmath.mpf(v) for v in (px, py, x, y, pz)]
    mmx, mmy = m[0] + mpmath.mpf(ks) * m[3] / 2, m[1] - mpmath.mpf(ks) * m[2] / 2
    ps = mpmath.sqrt((1 + m[4]) ** 2 - mmx**2 - mmy**2)
    dz = length * (mp_beta(pz, p0c, mc2) / mp_beta(0.0, p0c, mc2) - (1 + m[4]) / ps)
    # Exit kick back to canonical (= free-space) momenta.
    return np.array([x2, mx2 - ks * y2 / 2, y2, my2 + ks * x2 / 2, float(z + dz), pz])


@functools.cache
def _cached_reference(row, length, ks, p0c, mc2):
    return lorentz_reference(row, length, ks, p0c, mc2)


def _ref_beam(beam, length, ks, p0c=P0C, mc2=ELECTRON_MC2):
    """References of a beam, computed once per test session (every backend reuses them)."""
    return np.stack([_cached_reference(tuple(r), length, ks, p0c, mc2) for r in beam], axis=1)


def _rotation(angle):
    c, s = math.cos(angle), math.sin(angle)
    r = np.eye(6)
    for i, j in ((0, 2), (1, 3)):
        r[i, i], r[i, j], r[j, i], r[j, j] = c, s, -s, c
    return r


# -- the body against the equations of motion --------------------------------------------


@pytest.mark.parametrize("ks", [2.0, -3.5, 1e-3, 12.0])
@pytest.mark.parametrize("ref", list(REFERENCES))
def test_body_against_lorentz_force(xp, ks, ref):
    """Exact model: all six coordinates agree with the integrated Lorentz force to
    ~1e-12, wide-angle particles included (a paraxial body would miss by ~1e-3)."""
    p0c, mc2 = REFERENCES[ref]
    length = 0.7
    got = to_np(track_solenoid(make_particles(xp.name, BEAM, p0c=p0c, mc2=mc2), length=length,
                               ks=ks))
    expected = _ref_beam(BEAM, length, ks, p0c, mc2)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=2e-15)


def test_larmor_rotation_and_focusing(xp):
    """The transverse map is Rot(theta) * F: a rotation by the Larmor angle
    theta = ks L / (2 (1+pz)) times the same focusing block in both planes,
    [[cos th, sin th/k], [-k sin th, cos th]] with k = ks/2, i.e. slopes focus with
    strength (ks/2)^2/(1+pz)^2. Particles on axis (m_x, m_y small)."""
    ks, length = 3.0, 0.6
    for pz in (0.0, 0.02, -0.05):
        eps = 1e-9
        beam = np.zeros((5, 6))
        beam[:, 5] = pz
        beam[1:, :4] = eps * np.eye(4)
        out = to_np(track_solenoid(make_particles(xp.name, beam), length=length, ks=ks))
        m = (out[:4, 1:] - out[:4, :1]) / eps
        theta = ks * length / (2 * (1 + pz))
        k = ks / 2
        block = np.array([[math.cos(theta), math.sin(theta) / k],
                          [-k * math.sin(theta), math.cos(theta)]])
        focus = np.kron(np.eye(2), block)
        np.testing.assert_allclose(m, _rotation(theta)[:4, :4] @ focus, rtol=0, atol=2e-7)
        # Focusing strength of the slopes x' = m_x/(1+pz): trace = 2 cos(K L),
        # K^2 = (ks/2)^2 / (1+pz)^2.
        big_k = math.sqrt((ks / 2) ** 2 / (1 + pz) ** 2)
        assert np.trace(block) == pytest.approx(2 * math.cos(big_k * length), rel=1e-14)


@pytest.mark.parametrize("ks", [0.0, 1e-12, -1e-12, 1e-6, -1e-6, 1e-3])
def test_continuous_to_a_drift(xp, ks):
    """ks -> 0: ks = 0 is Bmad's exact drift (to rounding), and small ks differ from it
    linearly with the exact slope dx/dks (written out here) at ks = 0."""
    length = 1.1
    p = make_particles(xp.name, BEAM)
    sol = to_np(track_solenoid(p, length=length, ks=ks))
    drift = to_np(track_drift(p, length=length))
    x, px, y, py, z, pz = BEAM.T
    ps = np.sqrt((1 + pz) ** 2 - px**2 - py**2)
    slope_x = length / (2 * ps) * (y + length * py / ps) + length * px * (px * y - py * x) / (
        2 * ps**3)
    if ks == 0.0:
        np.testing.assert_allclose(sol, drift, rtol=1e-15, atol=1e-18)
    else:
        # atol: the rounding floor of the difference quotient, a few ulp of x over ks.
        floor = 8 * np.finfo(float).eps * np.abs(drift[0]) / abs(ks)
        assert np.all(np.abs((sol[0] - drift[0]) / ks - slope_x)
                      <= (1e-4 + 10 * abs(ks)) * np.abs(slope_x) + floor)


def test_paraxial_larmor_angle_entire_in_ks(xp):
    """Values at ks just below and above the series switch (theta^2 = 1, i.e.
    ks L/(2 ps) = 1) agree with the Lorentz-force reference on both sides."""
    length = 1.0
    beam = BEAM[:3]
    for ks in (2.0 * (1 - 1e-12), 2.0, 2.0 * (1 + 1e-12)):
        got = to_np(track_solenoid(make_particles(xp.name, beam), length=length, ks=ks))
        np.testing.assert_allclose(got, _ref_beam(beam, length, ks), rtol=1e-12, atol=2e-15)


@pytest.mark.parametrize("num_steps", [2, 5])
def test_num_steps_same_as_one(xp, num_steps):
    """The body is exact per slice: slicing changes nothing but rounding."""
    p = make_particles(xp.name, BEAM)
    kw = dict(length=0.8, ks=-2.2, x_offset=1e-3, y_offset=-2e-3)
    one = to_np(track_solenoid(p, **kw))
    many = to_np(track_solenoid(p, num_steps=num_steps, **kw))
    np.testing.assert_allclose(many, one, rtol=0, atol=1e-15)


@settings(max_examples=30, deadline=None)
@given(
    ks=st.floats(-20.0, 20.0),
    l1=st.floats(0.0, 1.5),
    l2=st.floats(0.0, 1.5),
    seed=st.integers(0, 2**16),
)
def test_composition_property(ks, l1, l2, seed):
    """Exact flow: solenoid(l1) then solenoid(l2) equals solenoid(l1 + l2), and a
    negative length undoes it (numpy)."""
    beam = random_beam(4, seed=seed, scale=3e-3)
    p = make_particles("numpy", beam)
    two = track_solenoid(track_solenoid(p, length=l1, ks=ks), length=l2, ks=ks)
    one = track_solenoid(p, length=l1 + l2, ks=ks)
    np.testing.assert_allclose(to_np(two), to_np(one), rtol=1e-12, atol=1e-16)
    back = track_solenoid(one, length=-(l1 + l2), ks=ks)
    np.testing.assert_allclose(to_np(back), beam.T, rtol=1e-12, atol=1e-16)


# -- MAD-X -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ks", "length"), [(1.7, 0.8), (-0.4, 2.0), (25.0, 0.3)])
def test_linear_matrix_against_madx(ks, length):
    """The first-order map equals MAD-X's TWISS RMATRIX of a SOLENOID after the change
    of coordinates (t, pt) = (z/beta0, beta0 pz) at the reference orbit."""
    cpymad = pytest.importorskip("cpymad.madx", reason="cpymad (MAD-X) not installed")
    madx = cpymad.Madx(stdout=False)
    try:
        madx.input(f"""
        beam, particle=proton, pc=2.0;
        sol: solenoid, l={length!r}, ks={ks!r};
        seq: sequence, l={length!r}, refer=entry; sol, at=0; endsequence;
        use, sequence=seq;
        """)
        tw = madx.twiss(betx=1, bety=1, rmatrix=True)
        r_madx = np.array([[tw[f"re{i}{j}"][-1] for j in range(1, 7)] for i in range(1, 7)])
        beta0 = float(madx.sequence.seq.beam.beta)
        p0c = 2.0e9
        mc2 = float(madx.sequence.seq.beam.mass) * 1e9
    finally:
        madx.quit()
    t = np.diag([1.0, 1.0, 1.0, 1.0, 1.0 / beta0, beta0])
    expected = np.linalg.inv(t) @ r_madx @ t
    r, c = solenoid_map(np.asarray(length), np.asarray(ks), np.asarray(p0c), np.asarray(mc2))
    np.testing.assert_allclose(r, expected, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(c, 0.0)
    assert abs(r[0, 2]) > 0.05  # coupled: the check is not trivial


# -- symplecticity and the linear map ------------------------------------------------------------

CASES = {
    "plain": dict(length=0.5, ks=2.5),
    "negative": dict(length=0.9, ks=-1.3),
    "zero": dict(length=0.4, ks=0.0),
    "strong": dict(length=0.3, ks=40.0),
    "misaligned": dict(length=0.5, ks=2.5, x_offset=1e-3, y_offset=-2e-3, tilt=0.4),
    "sliced": dict(length=0.5, ks=-4.0, x_offset=-5e-4, num_steps=2),
}
POINT = np.array([2e-3, -0.03, -1.5e-3, 0.02, 4e-3, 0.015])


def jacobian(ad, kw, point, p0c, mc2, method="bmad"):
    """6x6 Jacobian of the solenoid map at ``point`` by torch.func.jacrev / jax.jacfwd."""
    if ad.name == "torch":
        import torch

        def f(v):
            p = Particles(coords=v[:, None], p0c=p0c, mc2=mc2)
            return track_solenoid(p, method=method, **kw).coords[:, 0]

        return torch.func.jacrev(f)(ad.asarray(point)).detach().numpy()
    import jax

    def g(v):
        p = Particles(coords=v[:, None], p0c=p0c, mc2=mc2)
        return track_solenoid(p, method=method, **kw).coords[:, 0]

    return np.array(jax.jacfwd(g)(ad.asarray(point)))  # eager: cheaper than compiling


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("ref", list(REFERENCES))
def test_bmad_map_is_symplectic(ad, case, ref):
    p0c, mc2 = REFERENCES[ref]
    m = jacobian(ad, CASES[case], POINT, p0c, mc2)
    assert np.all(np.isfinite(m))
    np.testing.assert_allclose(m.T @ J @ m, J, rtol=0, atol=1e-12)
    assert np.abs(m - np.eye(6)).max() > 1e-2


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("ref", list(REFERENCES))
def test_linear_is_jacobian_and_constant_is_image(ad, case, ref):
    """'linear' = exact Jacobian of 'bmad' at the laboratory zero orbit plus the 'bmad'
    image of that orbit (nonzero for an offset solenoid: a helix)."""
    p0c, mc2 = REFERENCES[ref]
    kw = CASES[case]
    m = jacobian(ad, kw, np.zeros(6), p0c, mc2)
    p = make_particles(ad.name, np.vstack([np.zeros(6), np.eye(6)]), p0c=p0c, mc2=mc2)
    lin = to_np(track_solenoid(p, method="linear", **kw))
    np.testing.assert_allclose(lin[:, 1:] - lin[:, :1], m, rtol=0, atol=1e-13)
    bmad0 = to_np(track_solenoid(p, **kw))[:, 0]
    np.testing.assert_allclose(lin[:, 0], bmad0, rtol=0, atol=1e-16)
    if kw.get("x_offset", 0.0) and kw["ks"]:
        assert np.abs(bmad0[:4]).max() > 1e-6
    if ad.name == "torch":  # autodiff through the linear method gives the same matrix
        np.testing.assert_allclose(jacobian(ad, kw, POINT, p0c, mc2, method="linear"), m,
                                   rtol=0, atol=1e-13)


def test_aligned_linear_matrix_textbook(xp):
    """Aligned: R = Rot(theta) F with theta = ks L/2, R56 = L/gamma0^2, c = 0."""
    ks, length = 1.3, 0.9
    p = make_particles(xp.name, np.vstack([np.zeros(6), np.eye(6)]))
    lin = to_np(track_solenoid(p, length=length, ks=ks, method="linear"))
    r = lin[:, 1:] - lin[:, :1]
    theta, k = ks * length / 2, ks / 2
    block = np.array([[math.cos(theta), math.sin(theta) / k],
                      [-k * math.sin(theta), math.cos(theta)]])
    expected = _rotation(theta) @ np.kron(np.eye(3), block)
    expected[4:, :] = 0.0
    expected[4, 4] = expected[5, 5] = 1.0
    expected[4, 5] = length * ELECTRON_MC2**2 / (P0C**2 + ELECTRON_MC2**2)
    np.testing.assert_allclose(r, expected, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(lin[:, 0], 0.0)


# -- cross-backend, gradients, batches ---------------------------------------------------------


@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
def test_cross_backend(xp, method):
    beam = np.vstack([BEAM, random_beam(5, seed=7, scale=4e-3)])
    kw = dict(length=0.6, ks=-2.7, tilt=0.3, x_offset=1e-3, y_offset=2e-3, num_steps=2)
    ref = to_np(track_solenoid(make_particles("numpy", beam), method=method, **kw))
    got = to_np(track_solenoid(make_particles(xp.name, beam), method=method, **kw))
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-18)


def _numpy_out(ks, length=0.7, x_offset=0.0, y_offset=0.0):
    p = make_particles("numpy", BEAM[:3])
    return to_np(track_solenoid(p, length=length, ks=ks, x_offset=x_offset,
                                y_offset=y_offset))


@pytest.mark.parametrize("ks", [0.0, 1e-9, 2.0, -6.0, 2.0 * 2 / 0.7])
def test_parameter_gradients(ad, ks):
    """d(sum of outputs)/d(ks, length, offsets) by autodiff: finite (ks = 0 and the
    series switch included) and equal to central finite differences."""
    xp = ad.namespace()
    particles = make_particles(ad.name, BEAM[:3])
    weights = np.array([1.0, 3.0, -2.0, 0.5, 7.0, 1.0])

    def loss(v):
        out = track_solenoid(particles, length=v[1], ks=v[0], x_offset=v[2], y_offset=v[3])
        return xp.sum(out.coords * ad.asarray(weights)[:, None])

    v0 = np.array([ks, 0.7, 1e-3, -1e-3])
    _, grad = value_and_grad_np(ad, loss, v0)
    assert np.all(np.isfinite(grad))

    def f(v):
        return float((_numpy_out(v[0], v[1], v[2], v[3]) * weights[:, None]).sum())

    for i, h in enumerate((1e-6, 1e-6, 1e-7, 1e-7)):
        dv = np.zeros(4)
        dv[i] = h
        fd = (f(v0 + dv) - f(v0 - dv)) / (2 * h)
        assert grad[i] == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_ks_second_derivative_at_zero(ad):
    """d^2 x/dks^2 at ks = 0 is finite and matches central differences."""
    if ad.name == "torch":
        import torch

        p = make_particles("torch", BEAM[:1])
        k = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
        x = track_solenoid(p, length=0.7, ks=k).coords[0, 0]
        (g,) = torch.autograd.grad(x, k, create_graph=True)
        (h,) = torch.autograd.grad(g, k)
        second = h.item()
    else:
        import jax

        p = make_particles("jax", BEAM[:1])
        second = float(jax.jit(jax.grad(jax.grad(
            lambda k: track_solenoid(p, length=0.7, ks=k).coords[0, 0])))(0.0))
    h = 1e-3
    fd = (_numpy_out(h)[0, 0] - 2 * _numpy_out(0.0)[0, 0] + _numpy_out(-h)[0, 0]) / h**2
    assert np.isfinite(second)
    assert second == pytest.approx(fd, rel=1e-5)


@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
@pytest.mark.parametrize("batched_particles", [True, False])
def test_batched_parameters(xp, method, batched_particles):
    params = dict(length=np.array([0.2, 0.5, 1.0]), ks=np.array([1.5, 0.0, -4.0]),
                  tilt=np.array([0.0, 0.3, -0.7]), x_offset=np.array([0.0, 1e-3, -2e-3]),
                  y_offset=np.array([5e-4, 0.0, 1e-3]))
    beam = random_beam(4, seed=9)
    beams = np.stack([beam * (1 + b) for b in range(3)])
    p = make_particles(xp.name, beams if batched_particles else beam)
    out = track_solenoid(p, num_steps=2, method=method,
                         **{k: xp.asarray(v) for k, v in params.items()})
    got = to_np(out)
    assert got.shape == (3, 6, 4)
    assert alive_np(out).shape == (3, 4)
    np.testing.assert_allclose(xp.to_numpy(out.s), params["length"], rtol=1e-15)
    for b in range(3):
        single = track_solenoid(make_particles(xp.name, beams[b] if batched_particles else beam),
                                num_steps=2, method=method,
                                **{k: float(v[b]) for k, v in params.items()})
        np.testing.assert_allclose(got[b], to_np(single), rtol=0, atol=1e-15)


# -- misalignments --------------------------------------------------------------------------------


def test_offset_is_a_translation_and_tilt_does_nothing(xp):
    xo, yo, ks, length = 1e-3, -2e-3, 2.5, 0.4
    beam = random_beam(4, seed=8)
    offset = np.array([xo, 0, yo, 0, 0, 0])
    got = to_np(track_solenoid(make_particles(xp.name, beam), length=length, ks=ks,
                               x_offset=xo, y_offset=yo))
    aligned = to_np(track_solenoid(make_particles(xp.name, beam - offset), length=length, ks=ks))
    np.testing.assert_allclose(got, aligned + offset[:, None], rtol=1e-13, atol=1e-18)
    tilted = to_np(track_solenoid(make_particles(xp.name, beam), length=length, ks=ks, tilt=0.9))
    plain = to_np(track_solenoid(make_particles(xp.name, beam), length=length, ks=ks))
    np.testing.assert_allclose(tilted, plain, rtol=1e-13, atol=1e-18)
    # A particle on the offset axis with no transverse momentum only drifts.
    on_axis = make_particles(xp.name, np.array([[xo, 0.0, yo, 0.0, 0.0, 0.01]]))
    out = to_np(track_solenoid(on_axis, length=length, ks=ks, x_offset=xo, y_offset=yo))
    np.testing.assert_allclose(out[:4, 0], [xo, 0.0, yo, 0.0], rtol=1e-15, atol=1e-19)


# -- losses, errors, records ------------------------------------------------------------

LOST = np.array([
    [1e-3, 0.8, 2e-3, 0.6, 1e-3, 0.0],        # unphysical outside
    [0.0, 0.0, 0.0, 0.0, 0.0, -1.0],           # pz = -1
    [0.3, 0.0, 0.0, 0.5, 0.0, 0.0],            # mechanical m_y = 0.5 - ks x/2 = -1.0 inside
])


@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
def test_lost_particles_frozen_without_nan(xp, method):
    beam = np.vstack([BEAM[:2], LOST])
    out = track_solenoid(make_particles(xp.name, beam), length=0.5, ks=10.0, method=method)
    got, alive = to_np(out), alive_np(out)
    assert np.all(np.isfinite(got))
    if method == "bmad":
        np.testing.assert_array_equal(alive, [True, True, False, False, False])
        np.testing.assert_array_equal(got[:, 2:], LOST.T)


def test_lost_particles_finite_gradients(ad):
    beam = np.vstack([BEAM[:2], LOST])
    xp = ad.namespace()

    def loss(c):
        p = Particles(coords=c, p0c=P0C, mc2=ELECTRON_MC2)
        return xp.sum(track_solenoid(p, length=0.5, ks=10.0).coords)

    _, grad = value_and_grad_np(ad, loss, beam.T.copy())
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[:, 2:], np.ones_like(LOST.T))


@pytest.mark.parametrize("name", ["length", "ks", "tilt", "x_offset", "y_offset"])
def test_bad_parameters(xp, name):
    p = make_particles(xp.name, BEAM[:1])
    kw = dict(length=0.5, ks=1.0)
    kw[name] = True
    with pytest.raises(ParameterError, match=rf"(?s)solenoid.*{name}"):
        track_solenoid(p, **kw)
    other = "numpy" if xp.name != "numpy" else "array_api_strict"
    kw[name] = get(other).asarray(0.1)
    with pytest.raises(ParameterError, match=rf"(?s)solenoid.*{name}"):
        track_solenoid(p, **kw)


@pytest.mark.parametrize(("kw", "word"), [(dict(method="exact"), "method"),
                                         (dict(num_steps=0), "num_steps"),
                                         (dict(num_steps=1.5), "num_steps")])
def test_bad_method_and_steps(xp, kw, word):
    p = make_particles(xp.name, BEAM[:1])
    with pytest.raises(ParameterError, match=rf"(?s)solenoid.*{word}"):
        track_solenoid(p, length=0.5, ks=1.0, **kw)


def test_record_in_beamline(xp):
    """A Solenoid record in a Beamline tracks exactly like the function; bad records
    raise naming the element and the parameter."""
    kw = dict(length=0.4, ks=-1.9, num_steps=2, tilt=0.1, x_offset=1e-3, y_offset=0.0)
    line = Beamline([Drift("d", length=0.3), Solenoid("sol", **kw)])
    p = make_particles(xp.name, BEAM)
    for method in ("bmad", "linear"):
        expected = track_solenoid(track_drift(p, length=0.3, method=method), method=method, **kw)
        np.testing.assert_array_equal(to_np(line.track(p, method=method)), to_np(expected))
    with pytest.raises(ParameterError, match=r"(?s)Solenoid.*'s1'.*ks"):
        Solenoid("s1", length=1.0, ks=float("nan"))
    with pytest.raises(ParameterError, match=r"(?s)Solenoid.*num_steps"):
        Solenoid("s2", length=1.0, ks=1.0, num_steps=0)
