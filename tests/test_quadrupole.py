"""Quadrupole: analytic checks of Bmad's quadrupole and of the linear quadrupole.

References are computed in the tests from the equations of motion (mpmath, 40 digits):
in the body x'' = -k x and y'' = +k y with x' = px/(1+pz), k = K1/(1+pz), and the path
length z changes by -1/2 Integral(x'^2 + y'^2) ds + L (beta/beta0 - 1).
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
    alive_np,
    make_particles,
    mp_beta,
    random_beam,
    to_np,
    value_and_grad_np,
)

from beamtrack.backends import get
from beamtrack.tracking import (
    ParameterError,
    Particles,
    drift_matrix,
    quadrupole_matrix,
    track_drift,
    track_quadrupole,
)

mpmath.mp.dps = 40

EPS = np.finfo(np.float64).eps

#: Generic incoming particles (n, 6), paraxial and with energy deviations.
BEAM = np.array([
    [1e-3, 2e-3, -3e-3, -1e-3, 2e-3, -1e-3],
    [-2e-3, 5e-4, 1e-3, 3e-3, -1e-3, 2e-2],
    [4e-3, -1e-3, 2e-3, -2e-3, 0.0, -3e-2],
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
])


def _mp(v):
    return mpmath.mpf(float(v))


def _plane(k, length):
    """cos-like C(s) and sin-like S(s) of u'' = -k u, as mpmath functions of s."""
    if k == 0:
        return (lambda s: mpmath.mpf(1)), (lambda s: s)
    w = mpmath.sqrt(k)  # imaginary for k < 0: cosh and sinh
    return (lambda s: mpmath.re(mpmath.cos(w * s))), (lambda s: mpmath.re(mpmath.sin(w * s) / w))


@functools.cache
def quad_reference(row: tuple, length: float, k1: float, p0c: float = P0C,
                   mc2: float = ELECTRON_MC2, with_z: bool = True) -> np.ndarray:
    """Aligned quadrupole body, solved from its equations of motion in mpmath."""
    x, px, y, py, z, pz = (_mp(v) for v in row)
    length, rel = _mp(length), 1 + pz
    k = _mp(k1) / rel
    out, slopes = [], []
    for kk, u0, pu0 in ((k, x, px), (-k, y, py)):
        c, s = _plane(kk, length)
        du0 = pu0 / rel
        out += [c(length) * u0 + s(length) * du0, (-kk * s(length) * u0 + c(length) * du0) * rel]
        slopes.append(lambda t, c=c, s=s, kk=kk, u0=u0, du0=du0: -kk * s(t) * u0 + c(t) * du0)
    if with_z:
        path = mpmath.quad(lambda t: slopes[0](t) ** 2 + slopes[1](t) ** 2, [0, length])
        z = z - path / 2 + length * (mp_beta(pz, p0c, mc2) / mp_beta(0, p0c, mc2) - 1)
    return np.array([float(v) for v in (*out, z, pz)])


def _ref_beam(beam, length, k1, **kw):
    return np.stack([quad_reference(tuple(r), length, k1, **kw) for r in beam], axis=1)


def _matrix(name, method, length, k1, **kw):
    """Transport matrix of the quadrupole on ``name``: image of the unit vectors."""
    p = make_particles(name, np.eye(6))
    return to_np(track_quadrupole(p, length=length, k1=k1, method=method, **kw))


def _textbook_matrix(length, k1):
    """4x4 transverse matrix from cos/sin (k1 > 0) and cosh/sinh, written out here."""
    def block(k):
        if k > 0:
            w = math.sqrt(k)
            return [[math.cos(w * length), math.sin(w * length) / w],
                    [-w * math.sin(w * length), math.cos(w * length)]]
        if k < 0:
            w = math.sqrt(-k)
            return [[math.cosh(w * length), math.sinh(w * length) / w],
                    [w * math.sinh(w * length), math.cosh(w * length)]]
        return [[1.0, length], [0.0, 1.0]]

    m = np.zeros((4, 4))
    m[:2, :2] = block(k1)
    m[2:, 2:] = block(-k1)
    return m


# -- the body ---------------------------------------------------------------------------


@pytest.mark.parametrize("k1", [2.0, -1.5, 0.3, 40.0])
def test_linear_matrix_cos_sin(xp, k1):
    """'linear' method: x focusing cos/sin and y defocusing cosh/sinh blocks for k1 > 0
    (and the reverse for k1 < 0), R56 = L/gamma0^2, nothing else."""
    length = 0.5
    r = _matrix(xp.name, "linear", length, k1)
    expected = np.eye(6)
    expected[:4, :4] = _textbook_matrix(length, k1)
    expected[4, 5] = length * ELECTRON_MC2**2 / (P0C**2 + ELECTRON_MC2**2)
    np.testing.assert_allclose(r, expected, rtol=1e-14, atol=1e-300)
    if k1 > 0:
        assert abs(r[0, 0]) < 1.0 < r[2, 2]  # focusing in x, defocusing in y


@pytest.mark.parametrize("k1", [2.0, -1.5, 0.0])
def test_public_matrix_functions(xp, k1):
    """quadrupole_matrix and drift_matrix called with arrays of the backend."""
    length = 0.5
    expected = np.eye(6)
    expected[:4, :4] = _textbook_matrix(length, k1)
    expected[4, 5] = length * ELECTRON_MC2**2 / (P0C**2 + ELECTRON_MC2**2)
    args = [xp.asarray(v) for v in (length, k1, P0C, ELECTRON_MC2)]
    np.testing.assert_allclose(xp.to_numpy(quadrupole_matrix(*args)), expected, rtol=1e-14,
                               atol=1e-300)
    batch = [xp.asarray(np.array([v, v])) for v in (length, k1, P0C, ELECTRON_MC2)]
    assert tuple(quadrupole_matrix(*batch).shape) == (2, 6, 6)
    drift = np.eye(6)
    drift[0, 1] = drift[2, 3] = length
    drift[4, 5] = expected[4, 5]
    got = drift_matrix(args[0], args[2], args[3])
    np.testing.assert_allclose(xp.to_numpy(got), drift, rtol=1e-15, atol=1e-300)


@pytest.mark.parametrize("k1", [2.0, -1.5, 0.3, 40.0])
def test_bmad_transverse_is_the_matrix_at_pz_zero(xp, k1):
    """At pz = 0 the Bmad body is exactly linear in (x, px, y, py): tiny and large
    amplitudes give the textbook matrix; z gets only second-order terms."""
    length = 0.5
    m = _textbook_matrix(length, k1)
    for amplitude in (1e-9, 1e-2):
        beam = amplitude * np.eye(6)[:4]
        got = to_np(track_quadrupole(make_particles(xp.name, beam), length=length, k1=k1))
        np.testing.assert_allclose(got[:4] / amplitude, m, rtol=1e-13, atol=1e-15)
        assert np.all(np.abs(got[4]) <= 20 * amplitude**2 * (1 + abs(k1)))
        np.testing.assert_array_equal(got[5], 0.0)


@pytest.mark.parametrize("k1", [2.0, -1.5, 0.0, 1e-3, 25.0])
def test_bmad_body_against_equations_of_motion(xp, k1):
    """All six coordinates, with pz != 0 (chromatic focusing k1/(1+pz)) and the path
    length, against the solution of the equations of motion."""
    length = 0.6
    for mc2, p0c in ((ELECTRON_MC2, P0C), (PROTON_MC2, 5e7)):
        p = make_particles(xp.name, BEAM, p0c=p0c, mc2=mc2)
        got = to_np(track_quadrupole(p, length=length, k1=k1))
        expected = _ref_beam(BEAM, length, k1, p0c=p0c, mc2=mc2)
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-17)


def test_thin_lens_limit(xp):
    """L -> 0 with k1 L = K fixed: px kick -K x, x unchanged; the error is the next
    order of the lens, K^2 L x / 6 (for px0 = 0)."""
    kl, x0, y0 = 0.8, 1e-3, -2e-3
    p = make_particles(xp.name, np.array([[x0, 0.0, y0, 0.0, 0.0, 0.0]]))
    for length in (1e-1, 1e-2, 1e-3, 1e-4):
        for method in ("bmad", "linear"):
            got = to_np(track_quadrupole(p, length=length, k1=kl / length, method=method))[:, 0]
            assert abs(got[1] + kl * x0) <= kl**2 * length * x0 / 5
            assert abs(got[3] - kl * y0) <= kl**2 * length * abs(y0) / 5  # y: defocusing
            # Next order: (px + K x) / (K^2 L x / 6) -> 1.
            ratio = (got[1] + kl * x0) / (kl**2 * length * x0 / 6)
            assert ratio == pytest.approx(1.0, abs=kl * length / 10 + 1e-6)
            assert abs(got[0] - x0) <= kl * length * x0


def test_linear_focal_length(xp):
    """A particle parallel to the axis crosses it at 1/(k1 L) behind a thin focusing quad."""
    kl, length = 0.5, 1e-5
    p = make_particles(xp.name, np.array([[1e-3, 0.0, 0.0, 0.0, 0.0, 0.0]]))
    out = track_drift(track_quadrupole(p, length=length, k1=kl / length), length=1 / kl)
    assert abs(to_np(out)[0, 0]) < 1e-3 * 1e-4


# -- k1 -> 0 ------------------------------------------------------------------------------


K1_NEAR_ZERO = [0.0, 1e-12, -1e-12, 1e-6, -1e-6, 1e-3, -1e-3]


@pytest.mark.parametrize("method", ["bmad", "linear"])
def test_continuous_through_zero(xp, method):
    """k1 = 0, +-1e-12, +-1e-6, +-1e-3: values match the exact solution, hence vary
    continuously with slope dx/dk1 = -L^2 x/2 - L^3 x'/6 at 0 (pz = 0)."""
    length = 1.0
    beam = BEAM[:3].copy()
    beam[:, 5] = 0.0
    p = make_particles(xp.name, beam)
    results = {}
    for k1 in K1_NEAR_ZERO:
        got = to_np(track_quadrupole(p, length=length, k1=k1, method=method))
        results[k1] = got
        expected = _ref_beam(beam, length, k1, with_z=False)
        # atol: rounding of y + L py with |y|, |py| ~ 2e-3 (the third particle's y
        # nearly cancels).
        np.testing.assert_allclose(got[:4], expected[:4], rtol=2e-15, atol=1e-18)
    slope = -length**2 * beam[:, 0] / 2 - length**3 * beam[:, 1] / 6
    for k1 in (1e-6, -1e-6, 1e-3, -1e-3):
        diff = (results[k1][0] - results[0.0][0]) / k1
        np.testing.assert_allclose(diff, slope, rtol=2 * abs(k1), atol=1e-9)


def test_continuous_across_series_threshold(xp):
    """cos/sinc switch from a series to the closed form at |k1 L^2| = 1e-2: the values
    on the three floats around the switch, both signs, match the exact functions."""
    length = 1.0  # u = k1 L^2 = k1 exactly
    beam = BEAM[:3].copy()
    beam[:, 5] = 0.0
    p = make_particles(xp.name, beam)
    for sign in (1.0, -1.0):
        values = []
        for u in (np.nextafter(1e-2, 0.0), 1e-2, np.nextafter(1e-2, 1.0)):
            k1 = sign * float(u)
            for method in ("bmad", "linear"):
                got = to_np(track_quadrupole(p, length=length, k1=k1, method=method))
                expected = _ref_beam(beam, length, k1, with_z=False)
                np.testing.assert_allclose(got[:4], expected[:4], rtol=2e-15, atol=1e-18)
            values.append(got[:4])
        # Neighbouring floats of k1 give outputs a few ulp apart, no jump.
        assert np.abs(values[2] - values[0]).max() <= 1e-17


def test_zero_k1_is_a_paraxial_drift(xp):
    """k1 = 0: x += L px/(1+pz) exactly, z gets -L (px^2+py^2)/(2 (1+pz)^2) plus the
    velocity term; the exact drift differs only at third order in the angles."""
    length = 1.3
    p = make_particles(xp.name, BEAM)
    quad = to_np(track_quadrupole(p, length=length, k1=0.0))
    x, px, y, py, z, pz = BEAM.T
    rel = 1 + pz
    np.testing.assert_allclose(quad[0], x + length * px / rel, rtol=1e-15, atol=1e-19)
    np.testing.assert_allclose(quad[2], y + length * py / rel, rtol=1e-15, atol=1e-19)
    np.testing.assert_array_equal(quad[[1, 3, 5]], BEAM.T[[1, 3, 5]])
    velocity = np.array([float(mp_beta(_mp(d), P0C, ELECTRON_MC2) / mp_beta(0, P0C, ELECTRON_MC2)
                               - 1) for d in pz])
    expected_z = z - length * (px**2 + py**2) / (2 * rel**2) + length * velocity
    np.testing.assert_allclose(quad[4], expected_z, rtol=1e-14, atol=1e-19)

    drift = to_np(track_drift(p, length=length))
    angle2 = (px**2 + py**2) / rel**2
    assert np.all(np.abs(drift[0] - quad[0]) <= length * np.abs(px) * angle2 + 1e-19)
    assert np.all(np.abs(drift[4] - quad[4]) <= length * angle2**2 + 1e-19)
    assert np.abs(drift[0] - quad[0]).max() > 0.0


# -- derivatives with respect to k1 ----------------------------------------------------------

#: (k1, pz) points: the singular point k1 = 0 and both sides of the series threshold
#: |k1 L^2| = 1e-2 (L = 0.5, so k1 = 4 u), and generic values.
DERIVATIVE_POINTS = [
    (0.0, 0.0),
    (0.0, 0.02),
    (4e-2 * (1 - 1e-9), 0.0),
    (4e-2, 0.0),
    (4e-2 * (1 + 1e-9), 0.0),
    (-4e-2 * (1 - 1e-9), 0.0),
    (-4e-2 * (1 + 1e-9), 0.0),
    (2.8, 0.0),
    (-2.8, -0.01),
]
DERIV_LENGTH = 0.5
DERIV_ROW = (1e-3, 2e-3, -3e-3, 1e-3, 0.0)


def _torch_k1_function(pz):
    """k1 -> (x, px, y, py, z) of one particle after the quadrupole, with torch."""
    p = make_particles("torch", np.array([[*DERIV_ROW, pz]]))

    def f(k1):
        return track_quadrupole(p, length=DERIV_LENGTH, k1=k1).coords[:5, 0]

    return f


def _derivatives(ad, pz, k1):
    """First and second derivatives of the five outputs w.r.t. k1, by autodiff:
    torch.autograd.grad with create_graph, jax.grad(jax.grad(...))."""
    if ad.name == "torch":
        import torch

        f = _torch_k1_function(pz)
        k = torch.tensor(k1, dtype=torch.float64, requires_grad=True)
        out = f(k)
        first, second = [], []
        for i in range(5):
            (g,) = torch.autograd.grad(out[i], k, create_graph=True, retain_graph=True)
            (h,) = torch.autograd.grad(g, k, retain_graph=True)
            first.append(g.item())
            second.append(h.item())
        return np.array(first), np.array(second)
    first, second = _jax_derivatives()(k1, pz)
    return np.asarray(first), np.asarray(second)


@functools.cache
def _jax_derivatives():
    """jit-compiled (once) k1 derivatives of the five outputs for jax, vmapped over the
    outputs: jax.grad and jax.grad(jax.grad(...)) of each."""
    import jax
    import jax.numpy as jnp

    def component(k1, pz, w):
        row = jnp.concatenate([jnp.asarray(DERIV_ROW, dtype=jnp.float64), pz[None]])
        p = Particles(coords=row[:, None], p0c=P0C, mc2=ELECTRON_MC2)
        out = track_quadrupole(p, length=DERIV_LENGTH, k1=k1).coords[:5, 0]
        return jnp.sum(out * w)

    def both(k1, pz):
        weights = jnp.eye(5)
        first = jax.vmap(jax.grad(component), in_axes=(None, None, 0))(k1, pz, weights)
        second = jax.vmap(jax.grad(jax.grad(component)), in_axes=(None, None, 0))(
            k1, pz, weights)
        return first, second

    return jax.jit(both)


def _numpy_outputs(pz, k1):
    p = make_particles("numpy", np.array([[*DERIV_ROW, pz]]))
    return to_np(track_quadrupole(p, length=DERIV_LENGTH, k1=k1))[:5, 0]


def _mp_transverse(pz):
    """k1 -> (x, px, y, py) after the quadrupole, in mpmath, from the power series of
    the entire functions cos(sqrt u) and sin(sqrt u)/sqrt u (40 terms: |u| < 1 here)."""
    x, px, y, py, _ = (_mp(v) for v in DERIV_ROW)
    rel, length = 1 + _mp(pz), _mp(DERIV_LENGTH)

    def outputs(k1):
        k = k1 / rel
        out = []
        for kk, u0, pu0 in ((k, x, px), (-k, y, py)):
            u = kk * length**2
            c = mpmath.fsum((-u) ** n / mpmath.factorial(2 * n) for n in range(40))
            s = length * mpmath.fsum((-u) ** n / mpmath.factorial(2 * n + 1) for n in range(40))
            out += [c * u0 + s * pu0 / rel, -kk * s * u0 * rel + c * pu0]
        return out

    return outputs


@pytest.mark.parametrize(("k1", "pz"), DERIVATIVE_POINTS)
def test_k1_derivatives(ad, k1, pz):
    """First and second derivatives w.r.t. k1 are finite and agree with central finite
    differences (all five outputs) and with the exact derivatives (x, px, y, py)."""
    first, second = _derivatives(ad, pz, k1)
    assert np.all(np.isfinite(first)) and np.all(np.isfinite(second))

    # Central finite differences of the values (NumPy backend).
    h1, h2 = 1e-5, 2e-3
    fd1 = (_numpy_outputs(pz, k1 + h1) - _numpy_outputs(pz, k1 - h1)) / (2 * h1)
    fd2 = (_numpy_outputs(pz, k1 + h2) - 2 * _numpy_outputs(pz, k1)
           + _numpy_outputs(pz, k1 - h2)) / h2**2
    np.testing.assert_allclose(first, fd1, rtol=1e-7, atol=1e-16)
    np.testing.assert_allclose(second, fd2, rtol=1e-5, atol=1e-12)

    # Exact derivatives of the transverse outputs (mpmath, 40 digits).
    fn = _mp_transverse(pz)
    exact1 = np.array([float(mpmath.diff(lambda k, i=i: fn(k)[i], _mp(k1), 1)) for i in range(4)])
    exact2 = np.array([float(mpmath.diff(lambda k, i=i: fn(k)[i], _mp(k1), 2)) for i in range(4)])
    np.testing.assert_allclose(first[:4], exact1, rtol=1e-13, atol=1e-20)
    # Second derivatives: the closed form just above |u| = 1e-2 loses digits as
    # eps / u^2 ~ 1e-12 relative (cancellation in d^2/du^2 sin(sqrt u)/sqrt u).
    np.testing.assert_allclose(second[:4], exact2, rtol=1e-10, atol=1e-20)


def test_k1_derivatives_at_zero_analytic(ad):
    """At k1 = 0 and pz = 0: dx/dk1 = -L^2 x/2 - L^3 px/6 and
    d2x/dk1^2 = L^4 x/12 + L^5 px/60 (Taylor coefficients of cos and sinc)."""
    first, second = _derivatives(ad, 0.0, 0.0)
    length = DERIV_LENGTH
    x, px, y, py, _ = DERIV_ROW
    np.testing.assert_allclose(first[0], -length**2 * x / 2 - length**3 * px / 6, rtol=1e-14)
    np.testing.assert_allclose(second[0], length**4 * x / 12 + length**5 * px / 60, rtol=1e-14)
    # y sees -k1: opposite sign in the first derivative, same in the second.
    np.testing.assert_allclose(first[2], length**2 * y / 2 + length**3 * py / 6, rtol=1e-14)
    np.testing.assert_allclose(second[2], length**4 * y / 12 + length**5 * py / 60, rtol=1e-14)
    # px: d px/dk1 = -L x - L^2 px / 2 at k1 = 0.
    np.testing.assert_allclose(first[1], -length * x - length**2 * px / 2, rtol=1e-14)


# -- misalignments ----------------------------------------------------------------------------


def _rotation(angle):
    """Transverse rotation into a frame turned by ``angle`` (counter-clockwise along +s)."""
    c, s = math.cos(angle), math.sin(angle)
    r = np.eye(6)
    for i, j in ((0, 2), (1, 3)):
        r[i, i], r[i, j], r[j, i], r[j, j] = c, s, -s, c
    return r


@pytest.mark.parametrize("method", ["bmad", "linear"])
def test_skew_quadrupole(xp, method):
    """tilt = pi/4 turns a normal quad into a skew quad: x-y coupling, and in the thin
    limit the kicks px = -K y, py = -K x (K = k1 L)."""
    kl, length = 0.5, 1e-5
    p = make_particles(xp.name, np.array([[1e-3, 0, 0, 0, 0, 0], [0, 0, 1e-3, 0, 0, 0.0]]))
    out = to_np(track_quadrupole(p, length=length, k1=kl / length, tilt=math.pi / 4,
                                 method=method))
    assert out[3, 0] == pytest.approx(-kl * 1e-3, rel=1e-4)  # x -> py
    assert out[1, 1] == pytest.approx(-kl * 1e-3, rel=1e-4)  # y -> px
    assert abs(out[1, 0]) < 1e-3 * kl * 1e-4  # no normal kick left
    assert abs(out[3, 1]) < 1e-3 * kl * 1e-4

    # Thick: R = Rot(tilt)^T R_body Rot(tilt), with R_body written out here.
    k1, long = 1.7, 0.4
    body = np.eye(6)
    body[:4, :4] = _textbook_matrix(long, k1)
    body[4, 5] = long * ELECTRON_MC2**2 / (P0C**2 + ELECTRON_MC2**2)
    for tilt in (math.pi / 4, 0.3, -1.1):
        rot = _rotation(tilt)
        expected = rot.T @ body @ rot
        got = _matrix(xp.name, method, long, k1, tilt=tilt) if method == "linear" else (
            to_np(track_quadrupole(make_particles(xp.name, 1e-3 * np.eye(6)[:4]), length=long,
                                   k1=k1, tilt=tilt))[:4] / 1e-3)
        np.testing.assert_allclose(got[:4, :4], expected[:4, :4], rtol=1e-13, atol=1e-15)


def test_tilt_symmetries(xp):
    """tilt + pi/2 is the same quad with -k1; tilt + pi is the same quad (all six
    coordinates, path length included)."""
    p = make_particles(xp.name, random_beam(5, seed=4, scale=3e-3))
    base = to_np(track_quadrupole(p, length=0.4, k1=2.2, tilt=0.3))
    swapped = to_np(track_quadrupole(p, length=0.4, k1=-2.2, tilt=0.3 + math.pi / 2))
    turned = to_np(track_quadrupole(p, length=0.4, k1=2.2, tilt=0.3 + math.pi))
    np.testing.assert_allclose(swapped, base, rtol=1e-12, atol=1e-17)
    np.testing.assert_allclose(turned, base, rtol=1e-12, atol=1e-17)


@pytest.mark.parametrize("method", ["bmad", "linear"])
def test_particle_on_offset_axis_unaffected(xp, method):
    """A particle on the axis of an offset (and tilted) magnet keeps x, px, y, py: for
    any pz with "bmad"; at pz = 0 with "linear" (its chromatic terms are those of the
    reference orbit, which is off the magnet axis, so on the axis they hold only to
    first order)."""
    xo, yo = 2e-3, -1e-3
    momenta = (0.0, 0.01, -0.02) if method == "bmad" else (0.0,)
    beam = np.array([[xo, 0.0, yo, 0.0, 1e-3, pz] for pz in momenta])
    p = make_particles(xp.name, beam)
    out = to_np(track_quadrupole(p, length=0.3, k1=3.0, x_offset=xo, y_offset=yo, tilt=0.7,
                                 method=method))
    np.testing.assert_allclose(out[:4], beam.T[:4], rtol=1e-14, atol=1e-18)


def test_offset_is_a_translation(xp):
    """An offset quad ("bmad") equals: shift particles by -offset, aligned quad, shift
    back."""
    xo, yo, k1, length = 1e-3, -2e-3, -2.5, 0.3
    beam = random_beam(4, seed=8)
    offset = np.array([xo, 0, yo, 0, 0, 0])
    got = to_np(track_quadrupole(make_particles(xp.name, beam), length=length, k1=k1,
                                 x_offset=xo, y_offset=yo))
    aligned = to_np(track_quadrupole(make_particles(xp.name, beam - offset), length=length,
                                     k1=k1))
    np.testing.assert_allclose(got, aligned + offset[:, None], rtol=1e-13, atol=1e-18)


@pytest.mark.parametrize("method", ["bmad", "linear"])
def test_offset_feed_down_kick(xp, method):
    """The reference particle in a quad offset by xo gets the dipole kick px = k1 S xo
    (S = sinh(wL)/w for k1 = -w^2) and x = (1 - C) xo."""
    xo, k1, length = 1e-3, -2.5, 0.3
    zero = make_particles(xp.name, np.zeros((1, 6)))
    out = to_np(track_quadrupole(zero, length=length, k1=k1, x_offset=xo, method=method))
    w = math.sqrt(-k1)
    assert out[1, 0] == pytest.approx(k1 * math.sinh(w * length) / w * xo, rel=1e-13)
    assert out[0, 0] == pytest.approx((1 - math.cosh(w * length)) * xo, rel=1e-13)
    np.testing.assert_array_equal(out[[2, 3, 5], 0], 0.0)


# -- slicing --------------------------------------------------------------------------------


@pytest.mark.parametrize("num_steps", [2, 3, 7])
def test_num_steps_same_as_one(xp, num_steps):
    """The paraxial body is exact per slice: slicing does not change the result."""
    p = make_particles(xp.name, random_beam(6, seed=6, scale=5e-3))
    for k1 in (3.0, -3.0, 0.0):
        kw = dict(length=0.7, k1=k1, tilt=0.2, x_offset=1e-3, y_offset=-5e-4)
        one = to_np(track_quadrupole(p, **kw))
        many = to_np(track_quadrupole(p, num_steps=num_steps, **kw))
        np.testing.assert_allclose(many, one, rtol=0, atol=1e-15)


# -- lost particles ---------------------------------------------------------------------------

LOST = np.array([
    [1e-3, 0.8, 2e-3, 0.6, 1e-3, 0.0],
    [1e-3, 1.5, -2e-3, 0.0, 5e-3, 0.2],
    [0.0, 0.5, 0.0, -0.5, 0.0, -0.5],
    [1e-3, 0.0, 1e-3, 0.0, 0.0, -1.0],
])
GOOD = BEAM[:2]
LOSS_KW = dict(length=0.5, k1=1.5, tilt=0.4, x_offset=1e-3, y_offset=2e-3)


@pytest.mark.parametrize("method", ["bmad", "linear"])
def test_lost_particles_frozen_without_nan(xp, method):
    beam = np.vstack([GOOD, LOST])
    out = track_quadrupole(make_particles(xp.name, beam), num_steps=3, method=method, **LOSS_KW)
    got, alive = to_np(out), alive_np(out)
    assert np.all(np.isfinite(got))
    if method == "bmad":
        np.testing.assert_array_equal(alive, [True, True] + [False] * len(LOST))
        np.testing.assert_array_equal(got[:, 2:], LOST.T)
    assert np.all(alive[:2])
    assert np.all(got[1, :2] != beam[:2, 1])  # good particles are focused


def test_lost_inside_keeps_point_of_loss(xp):
    """A particle whose momentum becomes unphysical in slice j keeps the coordinates it
    had after slice j-1 (in the laboratory frame) and is flagged lost."""
    # x = 0.1 m in a horizontally defocusing k1 = -60 (w = sqrt(60) = 7.75 /m):
    # px = w sinh(w s) x is 0.87 after s = 0.125 m and 2.7 after 0.25 m.
    beam = np.array([[0.1, 0.0, 0.0, 0.0, 0.0, 0.0], [1e-3, 0.0, 0.0, 0.0, 0.0, 0.0]])
    p = make_particles(xp.name, beam)
    kw = dict(k1=-60.0, tilt=0.1, x_offset=1e-3)
    out = track_quadrupole(p, length=0.5, num_steps=4, **kw)
    np.testing.assert_array_equal(alive_np(out), [False, True])
    # After one slice (length 0.125) the particle was still physical; after two it was not.
    first = track_quadrupole(p, length=0.125, **kw)
    one = to_np(first)
    assert bool(alive_np(first)[0])
    assert not bool(alive_np(track_quadrupole(p, length=0.25, num_steps=2, **kw))[0])
    np.testing.assert_allclose(to_np(out)[:, 0], one[:, 0], rtol=1e-15, atol=0)
    assert one[1, 0] ** 2 + one[3, 0] ** 2 < 1.0
    assert np.all(np.isfinite(to_np(out)))


def test_lost_particles_finite_gradients(ad):
    """Gradients w.r.t. coordinates and every parameter are finite with lost particles;
    a lost particle's gradient w.r.t. its own input is the identity."""
    beam = np.vstack([GOOD, LOST])
    xp = ad.namespace()
    coords = beam.T.copy()
    params = np.array([0.5, 1.5, 0.4, 1e-3, 2e-3])

    def loss_coords(c):
        p = Particles(coords=c, p0c=P0C, mc2=ELECTRON_MC2)
        return xp.sum(track_quadrupole(p, num_steps=2, **LOSS_KW).coords)

    def loss_params(v):
        p = make_particles(ad.name, beam)
        out = track_quadrupole(p, length=v[0], k1=v[1], tilt=v[2], x_offset=v[3],
                               y_offset=v[4], num_steps=2)
        return xp.sum(out.coords[:, :2] ** 2) + xp.sum(out.coords)

    value, grad = value_and_grad_np(ad, loss_coords, coords)
    assert np.isfinite(value)
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[:, 2:], np.ones_like(LOST.T))
    value, grad = value_and_grad_np(ad, loss_params, params)
    assert np.all(np.isfinite(grad))
    assert np.all(grad[:2] != 0.0)


# -- batches, records, parameters ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["bmad", "linear"])
@pytest.mark.parametrize("batched_particles", [True, False])
def test_batched_parameters(xp, method, batched_particles):
    """Parameters of shape (B,) against particles (B, n) or (n,) equal a loop over B."""
    params = dict(
        length=np.array([0.2, 0.5, 1.0]),
        k1=np.array([1.5, 0.0, -4.0]),
        tilt=np.array([0.0, 0.3, -0.7]),
        x_offset=np.array([0.0, 1e-3, -2e-3]),
        y_offset=np.array([5e-4, 0.0, 1e-3]),
    )
    beam = random_beam(4, seed=9)
    beams = (np.stack([beam * (1 + b) for b in range(3)]) if batched_particles
             else np.broadcast_to(beam, (3,) + beam.shape).copy())
    p = make_particles(xp.name, beams if batched_particles else beam)
    out = track_quadrupole(p, num_steps=2, method=method,
                           **{k: xp.asarray(v) for k, v in params.items()})
    got = to_np(out)
    assert got.shape == (3, 6, 4)
    assert alive_np(out).shape == (3, 4)
    np.testing.assert_allclose(xp.to_numpy(out.s), params["length"], rtol=1e-15)
    for b in range(3):
        single = track_quadrupole(make_particles(xp.name, beams[b]), num_steps=2, method=method,
                                  **{k: float(v[b]) for k, v in params.items()})
        np.testing.assert_allclose(got[b], to_np(single), rtol=0, atol=1e-14)


def test_input_not_mutated_and_s_advances(xp):
    beam = random_beam(5, seed=2)
    p = make_particles(xp.name, beam, s=1.5)
    before = to_np(p).copy()
    for method in ("bmad", "linear"):
        out = track_quadrupole(p, length=0.25, k1=2.0, tilt=0.1, x_offset=1e-3, method=method)
        np.testing.assert_array_equal(to_np(p), before)
        assert float(xp.to_numpy(out.s)) == 1.75
        assert float(xp.to_numpy(p.s)) == 1.5


@pytest.mark.parametrize("method", ["exact", "Bmad", "", "linear "])
def test_invalid_method(xp, method):
    p = make_particles(xp.name, GOOD)
    with pytest.raises(ParameterError, match=r"(?s)quadrupole.*method"):
        track_quadrupole(p, length=1.0, k1=1.0, method=method)


@pytest.mark.parametrize("num_steps", [0, -2, 1.5, True, 2.0, "2", None])
def test_invalid_num_steps(xp, num_steps):
    p = make_particles(xp.name, GOOD)
    with pytest.raises(ParameterError, match=r"(?s)quadrupole.*num_steps"):
        track_quadrupole(p, length=1.0, k1=1.0, num_steps=num_steps)


@pytest.mark.parametrize("name", ["length", "k1", "tilt", "x_offset", "y_offset"])
def test_parameter_from_other_library(xp, name):
    other = "numpy" if xp.name != "numpy" else "array_api_strict"
    p = make_particles(xp.name, GOOD)
    kw = dict(length=0.5, k1=1.0)
    kw[name] = get(other).asarray(0.1)
    with pytest.raises(ParameterError, match=name):
        track_quadrupole(p, **kw)


@pytest.mark.parametrize("name", ["k1", "tilt"])
def test_bool_parameter_rejected(xp, name):
    p = make_particles(xp.name, GOOD)
    kw = dict(length=0.5, k1=1.0)
    kw[name] = True
    with pytest.raises(ParameterError, match=name):
        track_quadrupole(p, **kw)
