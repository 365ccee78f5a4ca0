"""Sextupole, octupole, thick and thin multipoles: Bmad "bmad_standard" physics.

References are written here, independently of the code under test:
- the multipole kick ``dpx - i dpy = -sum (K_nL + i K_nSL)(x + i y)^n / n!`` (Bmad
  ``ab_multipole_kick`` / MAD-X ``MULTIPOLE``) in explicit real form;
- the exact Hamiltonian of a straight magnet,
  ``H = -sqrt((1+pz)^2 - px^2 - py^2) + Re A(x + i y)`` with
  ``A(w) = sum (K_n + i K_nS) w^(n+1) / (n+1)!`` (per unit length), integrated with
  scipy ``solve_ivp`` (DOP853, rtol 1e-13): ``x' = px/ps``, ``px' = -Re A'(w)``,
  ``py' = Im A'(w)``, ``z' = beta/beta0 - (1+pz)/ps``;
- MAD-X (cpymad) TWISS RMATRIX where cpymad is installed.
"""

from __future__ import annotations

import functools
import json
import math

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
)
from scipy.integrate import solve_ivp

from beamtrack.backends import get
from beamtrack.lattice.beamline import Beamline
from beamtrack.lattice.elements import Drift, Multipole, Octupole, Sextupole, ThickMultipole
from beamtrack.lattice.io.json_format import from_dict, to_dict
from beamtrack.tracking import ParameterError, Particles, jets, track_drift
from beamtrack.tracking.multipole import (
    multipole_kick,
    track_multipole,
    track_octupole,
    track_sextupole,
    track_thick_multipole,
)

J = SYMPLECTIC_J

#: Generic incoming particles (n, 6): mm amplitudes, mrad angles, energy deviations.
BEAM = np.array([
    [1e-3, 2e-3, -3e-3, -1e-3, 2e-3, -1e-3],
    [-2e-3, 5e-4, 1e-3, 3e-3, -1e-3, 2e-2],
    [4e-3, -1e-3, 2e-3, -2e-3, 0.0, -3e-2],
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
])


def _gamma0_inv2(p0c=P0C, mc2=ELECTRON_MC2):
    return mc2**2 / (p0c**2 + mc2**2)


def _kick_reference(x, y, knl, ksl):
    """The kick written out order by order from (x + i y)^n, in complex NumPy."""
    w = x + 1j * y
    total = np.zeros_like(w)
    for n in range(max(len(knl), len(ksl))):
        kn = knl[n] if n < len(knl) else 0.0
        ks = ksl[n] if n < len(ksl) else 0.0
        total = total + (kn + 1j * ks) * w**n / math.factorial(n)
    return -total.real, total.imag


# -- the kick ---------------------------------------------------------------------------------


def test_kick_explicit_low_orders(xp):
    """Textbook kicks: dipole dpx = -K0L; quadrupole dpx = -K1L x, dpy = K1L y; sextupole
    dpx = -K2L (x^2 - y^2)/2, dpy = K2L x y; octupole dpx = -K3L (x^3 - 3 x y^2)/6,
    dpy = K3L (3 x^2 y - y^3)/6; skew quadrupole dpx = K1SL y, dpy = K1SL x."""
    x, y = random_beam(7, seed=1, scale=4e-3)[:, :2].T
    k0, k1, k2, k3, s1 = 2e-3, 0.7, 35.0, -800.0, -0.4
    cases = [
        ((k0,), (), -k0 + 0 * x, 0 * x),
        ((0.0, k1), (), -k1 * x, k1 * y),
        ((0.0, 0.0, k2), (), -k2 * (x**2 - y**2) / 2, k2 * x * y),
        ((0.0, 0.0, 0.0, k3), (), -k3 * (x**3 - 3 * x * y**2) / 6, k3 * (3 * x**2 * y - y**3) / 6),
        ((), (0.0, s1), s1 * y, s1 * x),
    ]
    for knl, ksl, dpx, dpy in cases:
        args = [xp.asarray(x), xp.asarray(y)]
        got = multipole_kick(*args, [xp.asarray(k) for k in knl], [xp.asarray(k) for k in ksl])
        np.testing.assert_allclose(xp.to_numpy(got[0]), dpx, rtol=1e-14, atol=1e-20)
        np.testing.assert_allclose(xp.to_numpy(got[1]), dpy, rtol=1e-14, atol=1e-20)


def _kick_jacobian(x, y, knl, ksl):
    """``(d dpx/dx, d dpx/dy, d dpy/dx, d dpy/dy)`` of :func:`multipole_kick`, from its
    first-order series (the derivatives the "linear" and "second_order" maps use)."""
    jx, jy = jets.seed([x, y])
    dpx, dpy = multipole_kick(jx, jy, [jets.constant(k) for k in knl],
                              [jets.constant(k) for k in ksl])
    return dpx.d[..., 0], dpx.d[..., 1], dpy.d[..., 0], dpy.d[..., 1]


def test_kick_high_orders_and_jacobian(xp):
    """Orders up to 7, normal and skew, against the complex-power reference; its
    Jacobian (series) against central differences of the reference and symmetric and
    traceless."""
    x, y = random_beam(6, seed=2, scale=5e-3)[:, :2].T
    knl = [1e-3, 0.3, -12.0, 400.0, 2e4, -3e5, 1e7, 4e8]
    ksl = [-2e-3, 0.1, 5.0, -300.0, 0.0, 6e5]
    got = multipole_kick(xp.asarray(x), xp.asarray(y), [xp.asarray(k) for k in knl],
                         [xp.asarray(k) for k in ksl])
    ref = _kick_reference(x, y, knl, ksl)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(xp.to_numpy(g), r, rtol=1e-12, atol=1e-18)
    jac = [xp.to_numpy(v) for v in _kick_jacobian(
        xp.asarray(x), xp.asarray(y), [xp.asarray(k) for k in knl], [xp.asarray(k) for k in ksl])]
    h = 1e-7
    fd = []
    for i, (dx, dy) in enumerate(((h, 0.0), (0.0, h), (h, 0.0), (0.0, h))):
        plus = _kick_reference(x + dx, y + dy, knl, ksl)[i // 2]
        minus = _kick_reference(x - dx, y - dy, knl, ksl)[i // 2]
        fd.append((plus - minus) / (2 * h))
    for g, f in zip(jac, fd):
        np.testing.assert_allclose(g, f, rtol=1e-7, atol=1e-12)
    # Symmetric (curl-free field), to rounding: forward-mode sums the two in a different order.
    np.testing.assert_allclose(jac[1], jac[2], rtol=1e-15, atol=0)
    np.testing.assert_allclose(jac[0] + jac[3], 0.0, atol=1e-15)  # traceless: div-free


# -- the thin multipole -----------------------------------------------------------------------


def test_thin_multipole_kick_not_divided_by_momentum(xp):
    """Thin multipole: positions unchanged, px/py change by the kick whatever pz is."""
    beam = random_beam(5, seed=3, scale=3e-3)
    beam[:, 5] = np.array([-0.2, -0.01, 0.0, 0.05, 0.3])
    knl, ksl = (0.0, 0.4, 20.0, -500.0), (0.0, -0.2, 7.0)
    out = to_np(track_multipole(make_particles(xp.name, beam), knl=knl, ksl=ksl))
    dpx, dpy = _kick_reference(beam[:, 0], beam[:, 2], knl, ksl)
    expected = beam.T.copy()
    expected[1] += dpx
    expected[3] += dpy
    np.testing.assert_allclose(out, expected, rtol=1e-14, atol=1e-19)


@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
def test_thin_dipole_is_a_zero_length_bend(xp, method):
    """Bmad/MAD-X convention for K0L, K0SL of a thin multipole: the reference particle
    is not deflected, dpx = K0L pz, dpy = -K0SL pz, dz = -K0L x + K0SL y."""
    k0, s0 = 2e-3, -5e-4
    beam = BEAM.copy()
    out = to_np(track_multipole(make_particles(xp.name, beam), knl=(k0,), ksl=(s0,),
                                method=method))
    x, px, y, py, z, pz = beam.T
    expected = np.stack([x, px + k0 * pz, y, py - s0 * pz, z - k0 * x + s0 * y, pz])
    np.testing.assert_allclose(out, expected, rtol=1e-14, atol=1e-19)
    np.testing.assert_array_equal(out[:, 3], 0.0)  # the reference particle


def test_thin_limit_of_sextupole(xp):
    """Sextupole of length L with k2 = K/L -> thin multipole with K2L = K: the
    difference falls linearly with L (the drift and the kick spread), and the thin
    multipole is reached exactly at first order in L: |diff| / L tends to a limit."""
    kl = 40.0
    p = make_particles(xp.name, BEAM)
    thin = to_np(track_multipole(p, knl=(0.0, 0.0, kl)))
    ratios = []
    for length in (1e-2, 5e-3, 2.5e-3):
        thick = to_np(track_sextupole(p, length=length, k2=kl / length))
        ratios.append(np.abs(thick - thin)[:4].max() / length)
        # First order: x moves by the drift with the mean angle, px is the thin kick.
        assert np.abs(thick[1] - thin[1]).max() <= 2 * kl * 6e-3 * length * 5e-3
    assert ratios[-1] == pytest.approx(ratios[-2], rel=0.02)
    assert ratios[0] > 1e-3


# -- feed-down, tilt --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
def test_offset_sextupole_feed_down(xp, method):
    """A sextupole offset by (dx, dy) is a sextupole plus the feed-down quadrupole
    K1L = -K2L dx, skew quadrupole K1SL = -K2L dy and dipole kicks
    dpx = -K2L (dx^2 - dy^2)/2, dpy = K2L dx dy (thin; exact for "bmad" and for
    "second_order", the kick being quadratic; first order for "linear")."""
    k2l, dx, dy = 30.0, 1.5e-3, -1e-3
    beam = BEAM.copy()
    out = to_np(track_multipole(make_particles(xp.name, beam), knl=(0.0, 0.0, k2l),
                                x_offset=dx, y_offset=dy, method=method))
    x, y = beam[:, 0], beam[:, 2]
    k1l, k1sl = -k2l * dx, -k2l * dy  # dpx = -K1L x + K1SL y, dpy = K1L y + K1SL x
    quad = -k1l * x + k1sl * y, k1l * y + k1sl * x
    dipole = -k2l * (dx**2 - dy**2) / 2, k2l * dx * dy
    sext = (-k2l * (x**2 - y**2) / 2, k2l * x * y) if method != "linear" else (0, 0)
    np.testing.assert_allclose(out[1] - beam[:, 1], quad[0] + dipole[0] + sext[0],
                               rtol=1e-13, atol=1e-19)
    np.testing.assert_allclose(out[3] - beam[:, 3], quad[1] + dipole[1] + sext[1],
                               rtol=1e-13, atol=1e-19)


def test_offset_thick_sextupole_is_a_quadrupole(xp):
    """Thick feed-down: a sextupole K2 offset by dx whose dipole feed-down is cancelled
    by K0L = -K2L dx^2/2 keeps the reference orbit on x = 0, where it focuses like a
    thick quadrupole k1 = -K2 dx: its linear map converges to the cos/sin matrix
    (written here) as 1/num_steps^2."""
    length, k2, dx = 0.4, 600.0, 2e-3
    k1 = -k2 * dx
    w = math.sqrt(abs(k1))  # k1 < 0: x defocusing (cosh), y focusing (cos)
    expected = np.array([
        [math.cosh(w * length), math.sinh(w * length) / w, 0, 0],
        [w * math.sinh(w * length), math.cosh(w * length), 0, 0],
        [0, 0, math.cos(w * length), math.sin(w * length) / w],
        [0, 0, -w * math.sin(w * length), math.cos(w * length)]])
    errors = []
    for n in (8, 16, 32):
        r, c = _linear_matrix(xp.name, track_thick_multipole, dict(
            length=length, knl=(-k2 * length * dx**2 / 2, 0.0, k2 * length), x_offset=dx,
            num_steps=n))
        np.testing.assert_allclose(c, 0.0, atol=1e-18)  # the orbit stays on the axis
        errors.append(np.abs(r[:4, :4] - expected).max())
    assert errors[-1] < 2e-5  # ~ (w L)^2 / (12 N^2) of the leapfrog splitting
    np.testing.assert_allclose(np.array(errors[:-1]) / np.array(errors[1:]), 4.0, rtol=0.02)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
def test_skew_by_tilt(xp, order, method):
    """A normal multipole of order n tilted by pi/(2(n+1)) equals the skew component
    K_nSL = -K_nL (MAD-X: "TILT = pi/4 turns a positive normal quadrupole into a
    negative skew quadrupole"), thin and thick, with offsets."""
    k = [0.8, 40.0, 900.0, 3e4][order - 1]
    tilt = math.pi / (2 * (order + 1))
    normal = [0.0] * order + [k]
    skew = [0.0] * order + [-k]
    p = make_particles(xp.name, random_beam(6, seed=5, scale=3e-3))
    # Offsets move the magnet centre (before the rotation): the same for both.
    kw = dict(x_offset=5e-4, y_offset=-3e-4, method=method)
    tilted = to_np(track_multipole(p, knl=normal, tilt=tilt, **kw))
    rotated = to_np(track_multipole(p, ksl=skew, tilt=0.0, **kw))
    np.testing.assert_allclose(tilted, rotated, rtol=1e-12, atol=1e-17)
    assert np.abs(tilted[1] - to_np(p)[1]).max() > 1e-9  # not trivially equal
    thick_tilted = to_np(track_thick_multipole(p, length=0.3, knl=normal, tilt=tilt,
                                               num_steps=3, **kw))
    thick_skew = to_np(track_thick_multipole(p, length=0.3, ksl=skew, num_steps=3, **kw))
    np.testing.assert_allclose(thick_tilted, thick_skew, rtol=1e-12, atol=1e-17)
    if order in (2, 3):
        track, name = (track_sextupole, "k2") if order == 2 else (track_octupole, "k3")
        element = to_np(track(p, length=0.3, num_steps=3, tilt=tilt, **kw,
                              **{name: k / 0.3}))
        np.testing.assert_allclose(element, thick_skew, rtol=1e-12, atol=1e-17)


def test_sextupole_octupole_are_thick_multipoles(xp):
    """Sextupole (k2) == thick multipole with K2L = k2 L, octupole likewise; all six
    coordinates, misalignments included."""
    p = make_particles(xp.name, random_beam(5, seed=6, scale=4e-3))
    kw = dict(length=0.35, num_steps=4, tilt=0.3, x_offset=1e-3, y_offset=-5e-4)
    for method in ("bmad", "linear"):
        a = to_np(track_sextupole(p, k2=-75.0, method=method, **kw))
        b = to_np(track_thick_multipole(p, knl=(0.0, 0.0, -75.0 * 0.35), method=method, **kw))
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-19)
        a = to_np(track_octupole(p, k3=2500.0, method=method, **kw))
        b = to_np(track_thick_multipole(p, knl=(0.0, 0.0, 0.0, 2500.0 * 0.35), method=method,
                                        **kw))
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-19)


# -- the body against the exact Hamiltonian ---------------------------------------------------


def _hamiltonian_reference(row, length, kn, ks, p0c=P0C, mc2=ELECTRON_MC2):
    """solve_ivp (DOP853, rtol 1e-13) of the exact straight-magnet Hamiltonian;
    ``kn``, ``ks`` are strengths per unit length K_n, K_nS [m^-(n+1)]."""
    x, px, y, py, z, pz = row
    rel = 1.0 + pz
    velocity = float(mp_beta(pz, p0c, mc2) / mp_beta(0.0, p0c, mc2) - 1)

    def rhs(s, u):
        x, px, y, py, _ = u
        w = complex(x, y)
        # A'(w) = sum (K_n + i K_nS) w^n / n!;  px' = -dH/dx = -Re A',  py' = Im A'.
        da = sum((a + 1j * b) * w**n / math.factorial(n)
                 for n, (a, b) in enumerate(zip(kn, ks)))
        ps = math.sqrt(rel * rel - px * px - py * py)
        # z' = beta/beta0 - (1+pz)/ps, written without cancellation.
        return [px / ps, -da.real, py / ps, da.imag,
                velocity - (px * px + py * py) / (ps * (rel + ps))]

    sol = solve_ivp(rhs, (0.0, length), [x, px, y, py, z], method="DOP853", rtol=1e-13,
                    atol=1e-18)
    assert sol.success
    return np.array([*sol.y[:, -1], pz])


CONVERGENCE = {
    "sextupole": (track_sextupole, dict(length=0.5, k2=200.0), [0, 0, 200.0], [0, 0, 0]),
    "octupole": (track_octupole, dict(length=0.4, k3=-2e4), [0, 0, 0, -2e4], [0, 0, 0, 0]),
    "multipole": (track_thick_multipole,
                  dict(length=0.6, knl=(1e-3 * 0.6, 0.5 * 0.6, 150.0 * 0.6, 0.0, 2e5 * 0.6),
                       ksl=(0.0, -0.3 * 0.6, 0.0, 8e3 * 0.6)),
                  [1e-3, 0.5, 150.0, 0.0, 2e5], [0.0, -0.3, 0.0, 8e3, 0.0]),
}


@pytest.mark.parametrize("name", list(CONVERGENCE))
def test_second_order_convergence_to_exact_hamiltonian(name):
    """The kick-drift-kick body converges to the exact solution as 1/num_steps^2: the
    error ratio is 4 when num_steps doubles (all coordinates), and the Richardson
    extrapolation R(N) = (4 M(2N) - M(N))/3 converges to the exact solution at fourth
    order (its error falls 16-fold per doubling, down to 1e-3 of the error of M(32))."""
    track, kw, kn, ks = CONVERGENCE[name]
    rows = np.array([[5e-3, 2e-3, -4e-3, 1e-3, 0.0, 1e-2],
                     [-3e-3, -1e-3, 2e-3, 4e-3, 1e-3, -2e-2]])
    for p0c, mc2 in ((P0C, ELECTRON_MC2), (5e7, PROTON_MC2)):
        ref = np.stack([_hamiltonian_reference(r, kw["length"], kn, ks, p0c, mc2)
                        for r in rows], axis=1)
        p = make_particles("numpy", rows, p0c=p0c, mc2=mc2)
        results = {n: to_np(track(p, num_steps=n, **kw)) for n in (4, 8, 16, 32)}
        errors = {n: np.abs(results[n] - ref)[:5] for n in results}
        for n in (8, 16, 32):
            big = errors[n // 2] > 1e-11  # ratios of resolved errors only
            assert big[:4].all()
            np.testing.assert_allclose(errors[n // 2][big] / errors[n][big], 4.0, rtol=0.06)
        richardson = [np.abs((4 * results[2 * n] - results[n]) / 3 - ref)[:5].max()
                      for n in (4, 8, 16)]
        np.testing.assert_allclose(np.array(richardson[:2]) / np.array(richardson[1:]), 16.0,
                                   rtol=0.15)
        assert richardson[-1] < 1e-3 * errors[32].max()
        assert errors[32].max() < 2e-7


# -- the linear map ---------------------------------------------------------------------------


def _on(name, kw):
    """Array-valued parameters moved to backend ``name``."""
    return {k: get(name).asarray(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}


def _linear_matrix(name, track, kw, p0c=P0C, mc2=ELECTRON_MC2):
    p = make_particles(name, np.vstack([np.zeros(6), np.eye(6)]), p0c=p0c, mc2=mc2)
    images = to_np(track(p, method="linear", **_on(name, kw)))
    return images[:, 1:] - images[:, :1], images[:, 0]


@pytest.mark.parametrize("track", [track_sextupole, track_octupole])
def test_aligned_linear_map_is_exact_drift_matrix(xp, track):
    """Aligned sextupole/octupole: R = drift matrix (R12 = R34 = L, R56 = L/gamma0^2),
    constant zero, for either reference particle and any num_steps."""
    name = "k2" if track is track_sextupole else "k3"
    for p0c, mc2 in ((P0C, ELECTRON_MC2), (5e7, PROTON_MC2)):
        r, c = _linear_matrix(xp.name, track, {"length": 0.7, name: 55.0, "num_steps": 3},
                              p0c, mc2)
        expected = np.eye(6)
        expected[0, 1] = expected[2, 3] = 0.7
        expected[4, 5] = 0.7 * _gamma0_inv2(p0c, mc2)
        np.testing.assert_allclose(r, expected, rtol=1e-14, atol=1e-300)
        np.testing.assert_array_equal(c, 0.0)


def test_thin_multipole_linear_matrix(xp):
    """Aligned thin multipole: only K1L, K1SL and the K0L/K0SL bend terms are first
    order: R21 = -K1L, R43 = K1L, R23 = R41 = K1SL, R26 = K0L, R51 = -K0L, R46 = -K0SL,
    R53 = K0SL."""
    k0, k1, s0, s1 = 1e-3, 0.6, -2e-3, 0.25
    r, c = _linear_matrix(xp.name, track_multipole,
                          dict(knl=(k0, k1, 50.0, 1e3), ksl=(s0, s1, -20.0)))
    expected = np.eye(6)
    expected[1, 0], expected[3, 2], expected[1, 2], expected[3, 0] = -k1, k1, s1, s1
    expected[1, 5], expected[4, 0], expected[3, 5], expected[4, 2] = k0, -k0, -s0, s0
    np.testing.assert_allclose(r, expected, rtol=1e-15, atol=0)
    np.testing.assert_array_equal(c, 0.0)


#: Cases for symplecticity and Jacobian tests: (function, parameters); ``num_steps`` is
#: fixed per function so that jax compiles each once.
CASES = {
    "sextupole": (track_sextupole, dict(length=0.4, k2=80.0, tilt=0.3, x_offset=1e-3,
                                         y_offset=-2e-3, num_steps=3)),
    "sextupole-k2-zero": (track_sextupole, dict(length=0.4, k2=0.0, tilt=0.0, x_offset=0.0,
                                                 y_offset=0.0, num_steps=3)),
    "octupole": (track_octupole, dict(length=0.3, k3=-3e3, tilt=-0.2, x_offset=2e-3,
                                       y_offset=1e-3, num_steps=2)),
    "thick-multipole": (track_thick_multipole, dict(
        length=0.5, knl=np.array([2e-3, 0.8, -60.0, 900.0]),
        ksl=np.array([-1e-3, 0.3, 25.0, 0.0]), tilt=0.4, x_offset=-1e-3, y_offset=5e-4,
        num_steps=4)),
    "thin-multipole": (track_multipole, dict(
        knl=np.array([2e-3, 0.8, -60.0, 900.0]), ksl=np.array([-1e-3, 0.3, 25.0, 0.0]),
        tilt=0.4, x_offset=-1e-3, y_offset=5e-4)),
    "thin-zero": (track_multipole, dict(
        knl=np.zeros(4), ksl=np.zeros(4), tilt=0.0, x_offset=0.0, y_offset=0.0)),
}
REFERENCES = {"electron 1 GeV": (P0C, ELECTRON_MC2), "proton 50 MeV/c": (5e7, PROTON_MC2)}
POINT = np.array([2e-3, -0.03, -1.5e-3, 0.02, 4e-3, 0.015])


def _split(kw):
    static = {k: v for k, v in kw.items() if k == "num_steps"}
    return static, {k: v for k, v in kw.items() if k != "num_steps"}


def jacobian(ad, case, point, p0c, mc2):
    """6x6 Jacobian of the "bmad" map at ``point`` by autodiff (jax: compiled once per
    element function, parameters traced)."""
    track, kw = CASES[case]
    static, params = _split(kw)
    if ad.name == "torch":
        import torch

        tparams = {k: ad.asarray(np.asarray(v, dtype=np.float64)) for k, v in params.items()}

        def f(v):
            p = Particles(coords=v[:, None], p0c=p0c, mc2=mc2)
            return track(p, **static, **tparams).coords[:, 0]

        return torch.func.jacrev(f)(ad.asarray(point)).detach().numpy()
    jac = _jax_jacobian(track, tuple(sorted(static.items())))
    jparams = {k: ad.asarray(np.asarray(v, dtype=np.float64)) for k, v in params.items()}
    return np.array(jac(ad.asarray(point), jparams, p0c, mc2))


@functools.cache
def _jax_jacobian(track, static):
    import jax

    def f(v, params, p0c, mc2):
        p = Particles(coords=v[:, None], p0c=p0c, mc2=mc2)
        return track(p, **dict(static), **params).coords[:, 0]

    return jax.jit(jax.jacfwd(f))


def _cases():
    for ref in REFERENCES:
        for case in CASES:
            yield pytest.param(case, ref, id=f"{case}-{ref}")


@pytest.mark.parametrize(("case", "ref"), list(_cases()))
def test_bmad_map_is_symplectic(ad, case, ref):
    p0c, mc2 = REFERENCES[ref]
    m = jacobian(ad, case, POINT, p0c, mc2)
    assert np.all(np.isfinite(m))
    np.testing.assert_allclose(m.T @ J @ m, J, rtol=0, atol=1e-13)
    if CASES[case][0] is not track_multipole:
        assert np.abs(m - np.eye(6)).max() > 1e-2  # not the identity


@pytest.mark.parametrize(("case", "ref"), list(_cases()))
def test_linear_is_jacobian_and_bmad_image_at_reference_orbit(ad, case, ref):
    """"linear" = Jacobian of "bmad" at the zero orbit (feed-down of the offsets, tilt,
    exact-drift R56 and the orbit the feed-down dipole makes), constant = bmad(0)."""
    p0c, mc2 = REFERENCES[ref]
    track, kw = CASES[case]
    m = jacobian(ad, case, np.zeros(6), p0c, mc2)
    r, c = _linear_matrix(ad.name, track, kw, p0c, mc2)
    np.testing.assert_allclose(r, m, rtol=0, atol=1e-13)
    zero = make_particles(ad.name, np.zeros((1, 6)), p0c=p0c, mc2=mc2)
    bmad = to_np(track(zero, **_on(ad.name, kw)))[:, 0]
    np.testing.assert_allclose(c, bmad, rtol=1e-13, atol=1e-20)
    offset = kw.get("x_offset", 0.0) or kw.get("y_offset", 0.0)
    if offset:
        assert np.abs(c[:4]).max() > 1e-7 and c[4] != 0.0  # feed-down orbit and its z


# -- cross-backend, batches -------------------------------------------------------------------


def _line_output(name, method):
    beam = random_beam(50, seed=11, scale=2e-3)
    beam[:, 5] *= 5
    p = make_particles(name, beam)
    xp = get(name)
    arr = lambda v: xp.asarray(np.asarray(v, dtype=np.float64))  # noqa: E731
    p = track_sextupole(p, length=0.3, k2=arr(120.0), num_steps=3, tilt=0.1, x_offset=arr(1e-3),
                        method=method)
    p = track_drift(p, length=0.5, method=method)
    p = track_octupole(p, length=0.2, k3=-4e3, num_steps=2, y_offset=-1e-3, method=method)
    p = track_thick_multipole(p, length=0.4, knl=arr([1e-4, 0.5, 30.0]), ksl=(0.0, arr(0.2)),
                              num_steps=2, tilt=-0.3, method=method)
    return track_multipole(p, knl=(1e-4, 0.2, arr(-40.0), 500.0), ksl=arr([2e-4, 0.0, 5.0]),
                           x_offset=2e-4, tilt=0.2, method=method)


@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
def test_same_as_numpy(xp, method):
    expected = to_np(_line_output("numpy", method))
    got_p = _line_output(xp.name, method)
    assert got_p.backend == xp.name
    got = to_np(got_p)
    scale = np.abs(expected).max(axis=-1, keepdims=True)
    assert np.all(np.abs(got - expected) <= 1e-12 * scale)
    assert float(xp.to_numpy(got_p.s)) == pytest.approx(1.4, rel=1e-15)


@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
@pytest.mark.parametrize("batched_particles", [True, False])
def test_batched_parameters(xp, method, batched_particles):
    """Parameters of shape (B,), knl/ksl as arrays (N, B) or tuples of (B,) arrays,
    against particles (B, n) or (n,), equal a loop over B."""
    length = np.array([0.2, 0.5, 0.0])
    k2 = np.array([50.0, 0.0, -80.0])
    knl = np.array([[1e-4, 0.0, -2e-4], [0.3, -0.5, 0.0], [10.0, 0.0, 40.0]])  # (N, B)
    ksl = (np.array([0.0, 1e-4, 0.0]), np.array([0.1, 0.0, -0.2]))
    tilt = np.array([0.0, 0.3, -0.7])
    x_offset = np.array([0.0, 1e-3, -2e-3])
    beam = random_beam(4, seed=9)
    beams = np.stack([beam * (1 + b) for b in range(3)])
    p = make_particles(xp.name, beams if batched_particles else beam)
    a = xp.asarray
    outs = {
        "sext": track_sextupole(p, length=a(length), k2=a(k2), tilt=a(tilt),
                                x_offset=a(x_offset), num_steps=2, method=method),
        "thick": track_thick_multipole(p, length=a(length), knl=a(knl),
                                       ksl=tuple(a(k) for k in ksl), tilt=a(tilt),
                                       y_offset=a(x_offset), num_steps=2, method=method),
        "thin": track_multipole(p, knl=a(knl), ksl=tuple(a(k) for k in ksl), tilt=a(tilt),
                                x_offset=a(x_offset), method=method),
    }
    for key, out in outs.items():
        got = to_np(out)
        assert got.shape == (3, 6, 4)
        assert alive_np(out).shape == (3, 4)
        for b in range(3):  # the loop on NumPy (cross-backend agreement is tested above)
            single = make_particles("numpy", beams[b] if batched_particles else beam)
            if key == "sext":
                one = track_sextupole(single, length=length[b], k2=k2[b], tilt=tilt[b],
                                      x_offset=x_offset[b], num_steps=2, method=method)
            elif key == "thick":
                one = track_thick_multipole(single, length=length[b], knl=list(knl[:, b]),
                                            ksl=[k[b] for k in ksl], tilt=tilt[b],
                                            y_offset=x_offset[b], num_steps=2, method=method)
            else:
                one = track_multipole(single, knl=list(knl[:, b]), ksl=[k[b] for k in ksl],
                                      tilt=tilt[b], x_offset=x_offset[b], method=method)
            np.testing.assert_allclose(got[b], to_np(one), rtol=1e-13, atol=1e-18)
    np.testing.assert_allclose(xp.to_numpy(outs["sext"].s), length, rtol=1e-15)
    np.testing.assert_array_equal(xp.to_numpy(outs["thin"].s), 0.0)


# -- gradients --------------------------------------------------------------------------------

#: Gradient cases: element function of the parameter vector v, the points where
#: gradients are checked ("zeros" is the singular-looking point: k2 = 0, knl = ksl = 0,
#: zero tilt and offsets) and the size of each parameter (finite-difference steps).
#: Each case is compiled once (jax) and serves both points.
GRAD_CASES = {
    # v = (length, k2, tilt, x_offset, y_offset)
    "sextupole": (
        lambda p, v: track_sextupole(p, length=v[0], k2=v[1], tilt=v[2], x_offset=v[3],
                                     y_offset=v[4], num_steps=2),
        {"generic": [0.4, 70.0, 0.3, 1e-3, -5e-4], "zeros": [0.4, 0.0, 0.0, 0.0, 0.0]},
        [1.0, 100.0, 1.0, 1e-3, 1e-3]),
    # v = (length, knl0, knl1, knl2, ksl1, ksl2, tilt, x_offset): knl as an array slice
    "thick-multipole": (
        lambda p, v: track_thick_multipole(p, length=v[0], knl=v[1:4], ksl=(0.0, v[4], v[5]),
                                           tilt=v[6], x_offset=v[7], num_steps=2),
        {"generic": [0.4, 1e-3, 0.5, -20.0, 0.2, 15.0, -0.2, 1e-3],
         "zeros": [0.4, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]},
        [1.0, 1e-3, 1.0, 100.0, 1.0, 100.0, 1.0, 1e-3]),
    # v = (knl0, knl1, knl3, ksl0, ksl1, tilt, x_offset, y_offset): tuple and array slice
    "thin-multipole": (
        lambda p, v: track_multipole(p, knl=(v[0], v[1], 0.0, v[2]), ksl=v[3:5], tilt=v[5],
                                     x_offset=v[6], y_offset=v[7]),
        {"generic": [1e-3, 0.5, 800.0, -2e-3, 0.3, 0.3, 1e-3, -2e-3],
         "zeros": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]},
        [1e-3, 1.0, 1e3, 1e-3, 1.0, 1.0, 1e-3, 1e-3]),
}
#: Two good particles and the four lost ones of LOST (below): gradients stay finite.
GRAD_BEAM = np.vstack([random_beam(2, seed=13, scale=2e-3), [
    [1e-3, 0.8, 2e-3, 0.6, 1e-3, 0.0], [0.0, 0.5, 0.0, -0.5, 0.0, -0.5],
    [1e-3, 0.0, 1e-3, 0.0, 0.0, -1.0], [0.6, 0.0, 0.0, 0.0, 0.0, 0.0]]])
GRAD_WEIGHTS = np.array([1.0, 3.0, -2.0, 5.0, 7.0, 0.5])[:, None]


def _grad_loss(xp, case, v, coords):
    """Weighted change of the coordinates plus its square (lost particles add 0)."""
    p = Particles(coords=coords, p0c=P0C, mc2=ELECTRON_MC2)
    change = GRAD_CASES[case][0](p, v).coords - coords
    return xp.sum(change * xp.asarray(GRAD_WEIGHTS)) + 100.0 * xp.sum(change[..., :4, :] ** 2)


def _finite_differences(f, v0, scales):
    """Fourth-order central differences, steps 1e-4 of each parameter's size."""
    fd = np.empty_like(v0)
    for i in range(len(v0)):
        e = np.zeros_like(v0)
        e[i] = h = 1e-4 * max(abs(v0[i]), scales[i])
        fd[i] = (-f(v0 + 2 * e) + 8 * f(v0 + e) - 8 * f(v0 - e) + f(v0 - 2 * e)) / (12 * h)
    return fd


@functools.cache
def _grad_function(name, case):
    """value_and_grad of the case's loss w.r.t. v (jax: compiled once per case)."""
    backend = get(name)
    xp = backend.namespace()
    fn = backend.value_and_grad(lambda v, coords: _grad_loss(xp, case, v, coords))
    return backend.jit(fn) if name == "jax" else fn


@pytest.mark.parametrize("point", ["generic", "zeros"])
@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_gradients_match_finite_differences(ad, case, point):
    """Gradients w.r.t. every parameter (length, k2, knl and ksl entries given as array
    slices or tuples, tilt, offsets) are finite with lost particles in the beam, agree
    with central finite differences (NumPy) and so between torch and jax, also at
    k2 = 0, knl = ksl = 0 and zero tilt/offsets."""
    _, points, scales = GRAD_CASES[case]
    v0 = np.array(points[point])
    coords = ad.asarray(GRAD_BEAM.T.copy())
    value, grad = (ad.to_numpy(a)
                   for a in _grad_function(ad.name, case)(ad.asarray(v0), coords))
    assert np.all(np.isfinite(grad))
    npx = get("numpy").namespace()
    f = lambda v: float(_grad_loss(npx, case, v, GRAD_BEAM.T.copy()))  # noqa: E731
    assert value == pytest.approx(f(v0), rel=1e-13)
    np.testing.assert_allclose(grad, _finite_differences(f, v0, scales), rtol=1e-7, atol=1e-10)
    assert np.abs(grad).max() > 1e-3


# -- lost particles ---------------------------------------------------------------------------

LOST = np.array([
    [1e-3, 0.8, 2e-3, 0.6, 1e-3, 0.0],  # unphysical on entry
    [0.0, 0.5, 0.0, -0.5, 0.0, -0.5],  # unphysical on entry
    [1e-3, 0.0, 1e-3, 0.0, 0.0, -1.0],  # 1 + pz = 0
    [0.6, 0.0, 0.0, 0.0, 0.0, 0.0],  # kicked beyond |p_perp| = 1 + pz inside the magnet
])
GOOD = BEAM[:2]
LOSS_KW = dict(length=0.5, k2=40.0, num_steps=3, tilt=0.2, x_offset=1e-3)


@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
def test_lost_particles_frozen_without_nan(xp, method):
    beam = np.vstack([GOOD, LOST])
    out = track_sextupole(make_particles(xp.name, beam), method=method, **LOSS_KW)
    got, alive = to_np(out), alive_np(out)
    assert np.all(np.isfinite(got))
    assert np.all(alive[:2])
    if method == "bmad":
        np.testing.assert_array_equal(alive, [True, True, False, False, False, False])
        np.testing.assert_array_equal(got[:, 2:5], LOST[:3].T)
        # The strongly kicked particle survives the entrance half kick (px = -0.6) and is
        # lost in the first step (px = -1.4 after drift and kick): it keeps the
        # laboratory coordinates it had after the half kick, a thin sextupole with
        # 1/(2 num_steps) of K2L.
        half = track_multipole(make_particles(xp.name, LOST[3:]),
                               knl=(0.0, 0.0, 0.5 * 40.0 / 6), tilt=0.2, x_offset=1e-3)
        np.testing.assert_allclose(got[:, 5], to_np(half)[:, 0], rtol=1e-15, atol=1e-18)
        assert abs(got[1, 5]) < 1.0
    thin = track_multipole(make_particles(xp.name, beam), knl=(0.0, 0.0, 40.0),
                           method=method)
    assert np.all(np.isfinite(to_np(thin)))
    if method == "bmad":
        np.testing.assert_array_equal(alive_np(thin), [True, True] + [False] * 4)
        np.testing.assert_array_equal(to_np(thin)[:, 2:], LOST.T)


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("track", "element", "kw"), [
    (track_sextupole, "sextupole", dict(length=0.5, k2=1.0)),
    (track_octupole, "octupole", dict(length=0.5, k3=1.0)),
    (track_thick_multipole, "thick_multipole", dict(length=0.5, knl=(0.0, 1.0))),
])
def test_invalid_method_and_num_steps(xp, track, element, kw):
    p = make_particles(xp.name, GOOD)
    with pytest.raises(ParameterError, match=rf"(?s){element}.*method"):
        track(p, method="exact", **kw)
    for steps in (0, -1, 1.5, True, "2"):
        with pytest.raises(ParameterError, match=rf"(?s){element}.*num_steps"):
            track(p, num_steps=steps, **kw)


@pytest.mark.parametrize("bad", ["abc", 1.0, None, {"a": 1}, ((1.0,),), (True,), ("x",)])
@pytest.mark.parametrize("param", ["knl", "ksl"])
def test_invalid_strengths(xp, bad, param):
    p = make_particles(xp.name, GOOD)
    for track, element, kw in ((track_multipole, "multipole", {}),
                               (track_thick_multipole, "thick_multipole", dict(length=0.3))):
        with pytest.raises(ParameterError, match=rf"(?s){element}.*{param}"):
            track(p, **{param: bad}, **kw)


def test_invalid_strength_arrays(xp):
    p = make_particles(xp.name, GOOD)
    other = "numpy" if xp.name != "numpy" else "array_api_strict"
    with pytest.raises(ParameterError, match=r"(?s)multipole.*knl.*0-d"):
        track_multipole(p, knl=xp.asarray(1.0))
    with pytest.raises(ParameterError, match=r"(?s)multipole.*ksl\[1\]"):
        track_multipole(p, ksl=(0.0, get(other).asarray(0.1)))
    with pytest.raises(ParameterError, match=r"(?s)multipole.*knl\[0\]"):
        track_multipole(p, knl=get(other).asarray(np.array([0.1, 0.2])))
    for name in ("k2", "tilt", "x_offset", "y_offset", "length"):
        kw = dict(length=0.5, k2=1.0)
        kw[name] = get(other).asarray(0.1)
        with pytest.raises(ParameterError, match=rf"(?s)sextupole.*{name}"):
            track_sextupole(p, **kw)
    with pytest.raises(ParameterError, match=r"(?s)multipole.*method"):
        track_multipole(p, knl=(0.0, 1.0), method="Bmad")


# -- records ----------------------------------------------------------------------------------


def test_records_in_beamline_track_like_functions(xp):
    beam = random_beam(5, seed=21, scale=2e-3)
    p = make_particles(xp.name, beam)
    line = Beamline([
        Sextupole("s1", length=0.3, k2=90.0, num_steps=3, tilt=0.1, x_offset=1e-3),
        Drift("d1", length=0.4),
        Octupole("o1", length=0.2, k3=-2e3, num_steps=2, y_offset=5e-4),
        ThickMultipole("t1", length=0.5, knl=[1e-4, 0.3, 20.0], ksl=(0.0, 0.1), num_steps=2),
        Multipole("m1", knl=(1e-4, 0.2, -30.0), ksl=[0.0, 0.0, 4.0], tilt=0.3),
    ])
    for method in ("bmad", "linear"):
        out = line.track(p, method=method)
        q = track_sextupole(p, length=0.3, k2=90.0, num_steps=3, tilt=0.1, x_offset=1e-3,
                            method=method)
        q = track_drift(q, length=0.4, method=method)
        q = track_octupole(q, length=0.2, k3=-2e3, num_steps=2, y_offset=5e-4, method=method)
        q = track_thick_multipole(q, length=0.5, knl=(1e-4, 0.3, 20.0), ksl=(0.0, 0.1),
                                  num_steps=2, method=method)
        q = track_multipole(q, knl=(1e-4, 0.2, -30.0), ksl=(0.0, 0.0, 4.0), tilt=0.3,
                            method=method)
        np.testing.assert_array_equal(to_np(out), to_np(q))
    assert float(line.length) == pytest.approx(1.4)
    assert line["t1"].knl == (1e-4, 0.3, 20.0)  # a list is stored as a tuple
    assert line["m1"].length == 0.0


def test_record_validation_and_round_trip():
    m = Multipole("m", knl=[0.0, 0.5, 10.0], ksl=(0.0, 1e-3), tilt=0.1)
    again = from_dict(json.loads(json.dumps(to_dict(m))))
    assert again == m and again.knl == (0.0, 0.5, 10.0)
    assert m != Multipole("m", knl=(0.0, 0.5, 11.0), ksl=(0.0, 1e-3), tilt=0.1)
    t = ThickMultipole("t", length=0.3, knl=np.array([0.0, 1.0]))
    assert from_dict(to_dict(t)) == t
    assert m.replace(knl=[1.0]).knl == (1.0,)
    for bad, match in (("abc", "knl"), ((0.0, "x"), r"knl\[1\]"), ((float("nan"),), r"knl\[0\]"),
                       ((True,), r"knl\[0\]"), (np.asarray(1.0), "knl")):
        with pytest.raises(ParameterError, match=rf"Multipole 'm'.*{match}"):
            Multipole("m", knl=bad)
    with pytest.raises(ParameterError, match=r"Sextupole 's'.*num_steps"):
        Sextupole("s", length=0.2, k2=1.0, num_steps=0)
    with pytest.raises(ParameterError, match=r"Octupole 'o'.*k3"):
        Octupole("o", length=0.2, k3="strong")
    with pytest.raises(ParameterError, match=r"Sextupole 's'.*k2"):
        Beamline([Sextupole("s", length=0.2, k2=get("numpy").asarray(1.0))]).track(
            make_particles("array_api_strict", GOOD))


# -- MAD-X ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("knl", "ksl", "align"), [
    pytest.param((0.0, 0.1, 5.0), (0.0, 0.0, 0.0, 20.0), (1e-3, -2e-3, 0.1),
                 id="offset-tilted-feed-down"),
    pytest.param((0.0, 0.1, 5.0), (0.0, -0.3), (-2e-3, 5e-4, -0.7), id="offset-tilted-skew"),
    pytest.param((2e-3, 0.1, 5.0), (-1e-3, 0.0, 0.0, 20.0), None, id="zero-length-bend"),
])
def test_thin_multipole_against_madx_rmatrix(knl, ksl, align):
    """Linear map and orbit of a thin multipole against MAD-X TWISS RMATRIX, converted
    from MAD-X (t, pt) to Bmad (z, pz) (z = beta0 t, pz = pt / beta0 to first order):
    offsets and tilt (MAD-X EALIGN dx, dy, dpsi) with the sextupole feed-down and skew
    terms, and the K0L/K0SL zero-length bend. (MAD-X misaligns a multipole with K0L as a
    bend of the reference orbit; Bmad's offsets are straight, so the bend is compared
    aligned.)"""
    cpymad = pytest.importorskip("cpymad.madx", reason="cpymad (MAD-X) not installed")
    madx = cpymad.Madx(stdout=False)
    madx.input(f"""
        beam, particle=proton, pc=0.05;
        ms: multipole, knl={{{', '.join(map(str, knl))}}}, ksl={{{', '.join(map(str, ksl))}}};
        seq: sequence, l=1e-12; ms, at=0.5e-12; endsequence;
        use, sequence=seq;
    """)
    kw = dict(knl=knl, ksl=ksl)
    if align:
        dx, dy, dpsi = align
        madx.input(f"select, flag=error, pattern=ms; ealign, dx={dx}, dy={dy}, dpsi={dpsi};")
        kw.update(x_offset=dx, y_offset=dy, tilt=dpsi)
    # MAD-X's own proton mass (CODATA 2018), so that beta0 and gamma0 agree exactly.
    mc2, p0c = madx.sequence.seq.beam.mass * 1e9, madx.sequence.seq.beam.pc * 1e9
    twiss = madx.twiss(betx=1, bety=1, rmatrix=True)
    r_madx = np.array([[twiss[f"re{i}{j}"][-1] for j in range(1, 7)] for i in range(1, 7)])
    orbit = np.array([twiss[c][-1] for c in ("x", "px", "y", "py", "t", "pt")])
    beta0 = p0c / math.hypot(p0c, mc2)
    d = np.diag([1.0, 1.0, 1.0, 1.0, beta0, 1.0 / beta0])
    r_bmad = d @ r_madx @ np.linalg.inv(d)
    r, c = _linear_matrix("numpy", track_multipole, kw, p0c, mc2)
    np.testing.assert_allclose(r, r_bmad, rtol=0, atol=1e-9)
    np.testing.assert_allclose(c, d @ orbit, rtol=0, atol=1e-12)
    assert abs(r[1, 0]) > 1e-3  # quadrupole (and feed-down) terms present
    if align is None:
        assert abs(r[1, 5]) > 1e-3  # the bend's dispersive term
    else:
        assert np.abs(c[:4]).max() > 1e-6  # the feed-down dipole kick
