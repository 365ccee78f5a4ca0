"""Drift: analytic checks of Bmad's exact drift and of the linear drift, on every backend.

References are computed here with mpmath (40 digits) from the textbook formulas, never
with beamtrack code.
"""

from __future__ import annotations

import functools

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
from beamtrack.tracking import ParameterError, Particles, drift_matrix, track_drift
from beamtrack.tracking.drift import drift_step
from beamtrack.tracking.stepping import Body, taylor_map

mpmath.mp.dps = 40

#: Large-angle particles (not paraxial) to test the exact drift: (n, 6) rows.
WIDE = np.array([
    [0.0, 0.3, 0.0, -0.2, 0.0, 0.1],
    [1e-3, -0.5, 2e-3, 0.4, 1e-3, -0.2],
    [0.0, 1e-8, 0.0, -3e-9, 0.0, 0.0],
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.05],
    [-2e-3, 0.7, 1e-3, 0.7, -4e-3, 0.0],
])


def _mp_ps(px, py, pz):
    """sqrt((1+pz)^2 - px^2 - py^2) in mpmath."""
    px, py, pz = (mpmath.mpf(float(v)) for v in (px, py, pz))
    return mpmath.sqrt((1 + pz) ** 2 - px**2 - py**2)


def _mp_drift(row, length, p0c, mc2):
    """Bmad exact drift from its definition, in mpmath: x += L px/ps, y += L py/ps,
    z += L (beta/beta0 - (1+pz)/ps)."""
    x, px, y, py, z, pz = (mpmath.mpf(v) for v in row)
    length = mpmath.mpf(length)
    ps = mpmath.sqrt((1 + pz) ** 2 - px**2 - py**2)
    p0c, mc2 = mpmath.mpf(p0c), mpmath.mpf(mc2)
    beta_ratio = (1 + pz) * mpmath.sqrt((p0c**2 + mc2**2) / (((1 + pz) * p0c) ** 2 + mc2**2))
    return [x + length * px / ps, px, y + length * py / ps, py,
            z + length * (beta_ratio - (1 + pz) / ps), pz]


def _exact_drift_reference(row, length, p0c, mc2):
    """:func:`_mp_drift` of a float row, rounded to float."""
    return np.array([float(v) for v in _mp_drift([float(v) for v in row], length, p0c, mc2)])


@pytest.mark.parametrize("length", [1.0, 0.37, 4.0])
def test_transverse_exact(xp, length):
    """x and y move by L px/ps and L py/ps with the exact ps."""
    p = make_particles(xp.name, WIDE)
    got = to_np(track_drift(p, length=length))
    for i, row in enumerate(WIDE):
        ps = _mp_ps(row[1], row[3], row[5])
        for k, pk in ((0, 1), (2, 3)):
            expected = float(mpmath.mpf(float(row[k])) + length * mpmath.mpf(float(row[pk])) / ps)
            assert got[k, i] == pytest.approx(expected, rel=2e-15, abs=1e-300)
    # Momenta do not change in a drift.
    np.testing.assert_array_equal(got[[1, 3, 5]], WIDE.T[[1, 3, 5]])


def test_z_ultra_relativistic(xp):
    """For beta = beta0 = 1, z changes by L (1 - 1/sqrt(1 - (px^2+py^2)/(1+pz)^2)),
    including tiny angles where a naive formula cancels."""
    length = 2.5
    beam = WIDE.copy()
    beam[:, 4] = 0.0
    # 1e20 eV/c electrons: beta/beta0 - 1 ~ (mc2/p0c)^2 ~ 1e-29, far below float64.
    p = make_particles(xp.name, beam, p0c=1e20, mc2=ELECTRON_MC2)
    got = to_np(track_drift(p, length=length))[4]
    for i, row in enumerate(beam):
        pxy2 = (mpmath.mpf(row[1]) ** 2 + mpmath.mpf(row[3]) ** 2) / (1 + mpmath.mpf(row[5])) ** 2
        expected = float(length * (1 - 1 / mpmath.sqrt(1 - pxy2)))
        # abs: the neglected velocity term is below L (mc2/p0c)^2 ~ 7e-29.
        assert got[i] == pytest.approx(expected, rel=1e-14, abs=length * (ELECTRON_MC2 / 1e20) ** 2)
    # The tiny-angle particle: dz = -L (px^2+py^2)/2 ~ -1.4e-16, still to full precision.
    assert got[2] < 0.0


@pytest.mark.parametrize("mc2", [ELECTRON_MC2, PROTON_MC2])
@pytest.mark.parametrize("p0c", [5e6, 1e9])
def test_exact_drift_all_coordinates(xp, mc2, p0c):
    """All six coordinates against Bmad's exact-drift formulas, slow and fast particles."""
    beam = np.vstack([WIDE, random_beam(4, seed=3, scale=1e-2)])
    p = make_particles(xp.name, beam, p0c=p0c, mc2=mc2)
    got = to_np(track_drift(p, length=1.5))
    expected = np.stack([_exact_drift_reference(row, 1.5, p0c, mc2) for row in beam], axis=1)
    np.testing.assert_allclose(got, expected, rtol=4e-15, atol=1e-18)


def test_z_velocity_term_without_angles(xp):
    """On axis only the velocity term remains: dz = L (beta/beta0 - 1), no cancellation
    even when beta/beta0 - 1 is ~1e-12."""
    beam = np.zeros((4, 6))
    beam[:, 5] = [1e-3, -1e-3, 0.2, 1e-9]
    for mc2, p0c in ((PROTON_MC2, 5e7), (ELECTRON_MC2, 1e9)):
        p = make_particles(xp.name, beam, p0c=p0c, mc2=mc2)
        got = to_np(track_drift(p, length=1.0))[4]
        expected = [float(mp_beta(d, p0c, mc2) / mp_beta(0.0, p0c, mc2) - 1) for d in beam[:, 5]]
        np.testing.assert_allclose(got, expected, rtol=1e-14, atol=0)


def test_linear_matrix(xp):
    """The linear drift: R12 = R34 = L, R56 = L/gamma0^2, identity elsewhere."""
    length, p0c, mc2 = 0.8, 2e7, ELECTRON_MC2
    basis = np.eye(6)
    out = to_np(track_drift(make_particles(xp.name, basis, p0c=p0c, mc2=mc2), length=length,
                            method="linear"))
    gamma0 = float(mpmath.sqrt(mpmath.mpf(p0c) ** 2 + mpmath.mpf(mc2) ** 2) / mc2)
    expected = np.eye(6)
    expected[0, 1] = expected[2, 3] = length
    expected[4, 5] = length / gamma0**2
    # Column j of the output is the image of unit vector e_j: the matrix itself.
    np.testing.assert_allclose(out, expected, rtol=1e-15, atol=1e-300)


@functools.cache
def _mp_hessian(length, p0c, mc2):
    """Second derivatives ``d^2 out_i / (d in_j d in_k)`` of :func:`_mp_drift` at the
    reference orbit (mpmath differentiation, 40 digits), shape ``(6, 6, 6)``."""
    hessian = np.zeros((6, 6, 6))
    for i in (0, 2, 4):  # px, py, pz do not change
        def out(*v, i=i):
            return _mp_drift(v, length, p0c, mc2)[i]

        for j in range(6):
            for k in range(j, 6):
                order = tuple(int(m == j) + int(m == k) for m in range(6))
                hessian[i, j, k] = hessian[i, k, j] = float(mpmath.diff(out, (0,) * 6, order))
    return hessian


def _drift_body(p, p0c, mc2):
    return Body([drift_step(p["length"], p0c, mc2)])


@pytest.mark.parametrize(("p0c", "mc2"), [(2e7, ELECTRON_MC2), (5e7, PROTON_MC2)])
def test_closed_form_and_series(xp, p0c, mc2):
    """The closed-form drift_matrix (the "linear" method) equals the first-order series
    of the exact drift step; the second-order series equals the Hessian of the mpmath
    drift at the reference orbit (only x, y, z have one)."""
    lengths = np.array([0.8, 0.0, -1.3])
    args = {"length": xp.asarray(lengths)}
    p0c_a, mc2_a = xp.asarray(p0c), xp.asarray(mc2)
    r, c, t, p0c_out = taylor_map(_drift_body, args, p0c_a, mc2_a, order=2)
    assert p0c_out is None
    np.testing.assert_array_equal(xp.to_numpy(c), 0.0)
    closed = xp.to_numpy(drift_matrix(args["length"], p0c_a, mc2_a))
    np.testing.assert_allclose(xp.to_numpy(r), closed, rtol=1e-15, atol=1e-300)
    r1, c1, _, _ = taylor_map(_drift_body, args, p0c_a, mc2_a, order=1)
    np.testing.assert_array_equal(xp.to_numpy(r1), xp.to_numpy(r))
    t = xp.to_numpy(t)
    np.testing.assert_array_equal(t, np.swapaxes(t, -1, -2))
    for b, length in enumerate(lengths):
        np.testing.assert_allclose(t[b], _mp_hessian(float(length), p0c, mc2), rtol=1e-13,
                                   atol=1e-16)


def test_drift_step_loses_unphysical_particles(xp):
    """drift_step checks the momenta itself (it follows steps that change pz): those
    lost get the reference orbit's drift (finite) and a False mask."""
    beam = np.vstack([GOOD, LOST])
    six = tuple(xp.asarray(beam[:, i]) for i in range(6))
    new, ok = drift_step(xp.asarray(1.0), xp.asarray(P0C), xp.asarray(ELECTRON_MC2))(six)
    np.testing.assert_array_equal(xp.to_numpy(ok), [True] + [False] * len(LOST))
    got = np.stack([xp.to_numpy(v) for v in new])
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got[:, 0], _exact_drift_reference(GOOD[0], 1.0, P0C,
                                                                  ELECTRON_MC2),
                               rtol=1e-14, atol=1e-18)


def test_linear_is_first_order_of_exact(xp):
    """Small amplitudes: linear and exact drift agree to second order in the amplitude."""
    scale = 1e-6
    beam = random_beam(6, seed=11, scale=scale)
    p = make_particles(xp.name, beam, p0c=3e7, mc2=PROTON_MC2)
    exact = to_np(track_drift(p, length=1.0))
    linear = to_np(track_drift(p, length=1.0, method="linear"))
    diff = np.abs(exact - linear).max()
    assert diff < 10 * scale**2
    assert diff > 0.0  # they are different models beyond first order


def test_composition_and_reversal(xp):
    """drift(a) then drift(b) equals drift(a+b); drift(-L) undoes drift(L)."""
    p = make_particles(xp.name, WIDE)
    two = track_drift(track_drift(p, length=0.3), length=0.9)
    one = track_drift(p, length=1.2)
    np.testing.assert_allclose(to_np(two), to_np(one), rtol=1e-14, atol=1e-17)
    back = track_drift(one, length=-1.2)
    # atol: rounding of the intermediate x, y, z (up to ~1.7 m here) is ~4e-16.
    np.testing.assert_allclose(to_np(back), WIDE.T, rtol=1e-14, atol=1e-15)
    assert float(xp.to_numpy(back.s)) == 0.0
    assert float(xp.to_numpy(two.s)) == pytest.approx(1.2, rel=1e-15)


def test_zero_length_is_identity(xp):
    p = make_particles(xp.name, WIDE)
    for method in ("bmad", "linear"):
        np.testing.assert_array_equal(to_np(track_drift(p, length=0.0, method=method)), WIDE.T)


# -- lost particles ---------------------------------------------------------------------

#: Unphysical momenta: px^2+py^2 >= (1+pz)^2 (equality included), 1+pz <= 0.
LOST = np.array([
    [1e-3, 0.8, 2e-3, 0.6, 1e-3, 0.0],     # px^2+py^2 = 1 exactly
    [1e-3, 1.5, -2e-3, 0.0, 5e-3, 0.2],
    [0.0, 0.5, 0.0, -0.5, 0.0, -0.5],       # = (1+pz)^2 exactly
    [1e-3, 0.0, 1e-3, 0.0, 0.0, -1.0],      # pz = -1
    [1e-3, 1e-3, 1e-3, 0.0, 0.0, -1.5],     # pz < -1
])
GOOD = np.array([[1e-3, 2e-3, -3e-3, -1e-3, 2e-3, -1e-3]])


@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
def test_lost_particles_frozen_without_nan(xp, method):
    beam = np.vstack([GOOD, LOST])
    p = make_particles(xp.name, beam)
    out = track_drift(p, length=1.0, method=method)
    got, alive = to_np(out), alive_np(out)
    assert np.all(np.isfinite(got))
    if method == "bmad":
        np.testing.assert_array_equal(alive, [True] + [False] * len(LOST))
        np.testing.assert_array_equal(got[:, 1:], LOST.T)
    assert alive[0]
    assert got[0, 0] != GOOD[0, 0]  # the good particle did move


def test_already_lost_particles_stay_frozen(xp):
    """A particle lost upstream keeps its coordinates and flag in every method."""
    beam = random_beam(3, seed=1)
    p = make_particles(xp.name, beam, alive=np.array([True, False, True]))
    for method in ("bmad", "linear"):
        out = track_drift(p, length=2.0, method=method)
        np.testing.assert_array_equal(alive_np(out), [True, False, True])
        np.testing.assert_array_equal(to_np(out)[:, 1], beam[1])
        assert np.all(to_np(out)[0, [0, 2]] != beam[[0, 2], 0])


def test_lost_particles_finite_gradients(ad):
    """Gradients through a drift with lost particles are finite (the 'double where'),
    and a lost particle's output is its input: its gradient is exactly 1 per coordinate."""
    beam = np.vstack([GOOD, LOST])

    def loss(coords):
        p = Particles(coords=coords, p0c=P0C, mc2=ELECTRON_MC2)
        return ad.namespace().sum(track_drift(p, length=1.0).coords)

    value, grad = value_and_grad_np(ad, loss, beam.T.copy())
    assert np.isfinite(value)
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[:, 1:], np.ones_like(LOST.T))
    # The alive particle: d(sum)/dx = 1, d(sum)/dpx = 1 + L dx/dpx + ... (> 1).
    assert grad[0, 0] == 1.0
    assert grad[1, 0] > 1.0


def test_lost_particles_finite_length_gradient(ad):
    beam = np.vstack([GOOD, LOST])
    particles = make_particles(ad.name, beam)

    def loss(length):
        return ad.namespace().sum(track_drift(particles, length=length).coords)

    _, grad = value_and_grad_np(ad, loss, np.asarray(1.0))
    # Only the alive particle depends on L: d/dL (x+y+z) = (px+py)/ps + (beta/beta0 - 1/ps_n).
    expected = (_exact_drift_reference(GOOD[0], 1.0, P0C, ELECTRON_MC2) - GOOD[0]).sum()
    assert float(grad) == pytest.approx(expected, rel=1e-13)


# -- batches, records, parameters ----------------------------------------------------------


@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
@pytest.mark.parametrize("batched_particles", [True, False])
def test_batched_length(xp, method, batched_particles):
    """length of shape (B,) against particles (B, n) or (n,) equals a loop over B."""
    lengths = np.array([0.1, 1.0, 2.5])
    beam = random_beam(4, seed=5, scale=1e-2)
    if batched_particles:
        beams = np.stack([beam * (1 + b) for b in range(len(lengths))])
    else:
        beams = np.broadcast_to(beam, (len(lengths),) + beam.shape).copy()
    p = make_particles(xp.name, beams if batched_particles else beam)
    out = track_drift(p, length=xp.asarray(lengths), method=method)
    got = to_np(out)
    assert got.shape == (3, 6, 4)
    assert alive_np(out).shape == (3, 4)
    for b, length in enumerate(lengths):
        single = to_np(track_drift(make_particles(xp.name, beams[b]), length=float(length),
                                   method=method))
        np.testing.assert_allclose(got[b], single, rtol=1e-14, atol=1e-17)
    np.testing.assert_allclose(xp.to_numpy(out.s), lengths, rtol=1e-15)


def test_input_not_mutated_and_s_advances(xp):
    beam = random_beam(5, seed=2)
    p = make_particles(xp.name, beam, s=3.0)
    before = to_np(p).copy()
    for method in ("bmad", "linear"):
        out = track_drift(p, length=0.75, method=method)
        np.testing.assert_array_equal(to_np(p), before)
        assert float(xp.to_numpy(out.s)) == 3.75
        assert float(xp.to_numpy(p.s)) == 3.0
        assert float(xp.to_numpy(out.p0c)) == P0C
        assert float(xp.to_numpy(out.mc2)) == ELECTRON_MC2


def test_invalid_method(xp):
    p = make_particles(xp.name, GOOD)
    with pytest.raises(ParameterError, match=r"(?s)drift.*method.*'exact'"):
        track_drift(p, length=1.0, method="exact")


@pytest.mark.parametrize("bad", [True, "1.0", None])
def test_invalid_length_type(xp, bad):
    p = make_particles(xp.name, GOOD)
    with pytest.raises(ParameterError, match="length"):
        track_drift(p, length=bad)


def test_parameter_from_other_library(xp):
    """A length array of another library raises: data are never moved silently."""
    other = "numpy" if xp.name != "numpy" else "array_api_strict"
    p = make_particles(xp.name, GOOD)
    with pytest.raises(ParameterError, match="length"):
        track_drift(p, length=get(other).asarray(1.0))
