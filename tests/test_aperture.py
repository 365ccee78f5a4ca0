"""Apertures: Bmad's exact boundaries, offsets and tilt, batches, the smooth weight,
gradients and errors. References are formulas written here, never the code under test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import alive_np, backend_or_skip, compiled, make_particles, random_beam, to_np
from scipy.special import expit

import beamtrack as bt
from beamtrack.lattice.elements import Aperture
from beamtrack.tracking import track_drift
from beamtrack.tracking.aperture import (
    aperture_factor,
    aperture_weight,
    inside_aperture,
    track_aperture,
)

A, B = 2.0**-7, 2.0**-8  # half-widths [m], exactly representable


def call(xp, fn, particles, **kw):
    """``fn(particles, **kw)`` on backend ``xp``, jitted on JAX (eager JAX is slow)."""
    return compiled(xp, lambda q: fn(q, **kw))(particles)


def beam_at(x, y, alive=None) -> np.ndarray:
    """Particle-major (n, 6) beam at transverse positions x, y (other coordinates small)."""
    x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
    beam = np.zeros(x.shape + (6,))
    beam[..., 0], beam[..., 2] = x, y
    beam[..., 1], beam[..., 3], beam[..., 5] = 1e-4, -2e-4, 1e-3
    return beam


def numpy_inside(shape, x, y, a, b, x0=0.0, y0=0.0, tilt=0.0):
    """Bmad's rule, written independently: rotate (x - x0, y - y0) by -tilt, then test."""
    c, s = math.cos(tilt), math.sin(tilt)
    u = c * (x - x0) + s * (y - y0)
    v = -s * (x - x0) + c * (y - y0)
    if shape == "rectangular":
        return ((a == 0) | (np.abs(u) <= a)) & ((b == 0) | (np.abs(v) <= b)), u, v
    r = (u / a) ** 2 if a else 0 * u
    r = r + ((v / b) ** 2 if b else 0 * v)
    return r < 1, u, v


def test_rectangular_boundary_is_exact(xp):
    up, down = np.nextafter(A, 1.0), np.nextafter(-A, -1.0)
    x = np.array([A, -A, up, down, 0.0, 0.0, 0.0, A, -A, 0.5 * A])
    y = np.array([0.0, 0.0, 0.0, 0.0, B, -B, np.nextafter(B, 1.0), B, -B,
                  np.nextafter(-B, -1.0)])
    expected = [True, True, False, False, True, True, False, True, True, False]
    p = make_particles(xp.name, beam_at(x, y))
    out = call(xp, track_aperture, p, shape="rectangular", x_limit=A, y_limit=B)
    assert alive_np(out).tolist() == expected
    np.testing.assert_array_equal(to_np(out), to_np(p))  # zero length: nothing moves
    assert float(xp.to_numpy(out.s)) == 0.0


def test_elliptical_boundary_is_exact(xp):
    """Bmad keeps a particle only for (x/a)^2 + (y/b)^2 < 1: on the ellipse it is lost."""
    x = np.array([A, np.nextafter(A, 0.0), 0.0, 0.0, 0.0, -A, 0.5 * A, A])
    y = np.array([0.0, 0.0, B, np.nextafter(-B, 0.0), 0.0, 0.0, 0.5 * B, B])
    expected = [False, True, False, True, True, False, True, False]
    p = make_particles(xp.name, beam_at(x, y))
    out = call(xp, track_aperture, p, shape="elliptical", x_limit=A, y_limit=B)
    assert alive_np(out).tolist() == expected
    assert call(xp, inside_aperture, p, shape="elliptical", x_limit=A, y_limit=B) is not None


def test_zero_limit_means_no_limit(xp):
    x = np.array([0.0, 10.0, 10.0, -3.0])
    y = np.array([0.0, 0.0, 2 * B, np.nextafter(B, 0.0)])
    p = make_particles(xp.name, beam_at(x, y))
    rect = call(xp, track_aperture, p, shape="rectangular", x_limit=0.0, y_limit=B)
    assert alive_np(rect).tolist() == [True, True, False, True]
    slit = call(xp, track_aperture, p, shape="elliptical", x_limit=0.0, y_limit=B)
    assert alive_np(slit).tolist() == [True, True, False, True]
    for shape in ("rectangular", "elliptical"):
        assert alive_np(call(xp, track_aperture, p, shape=shape)).all()
        factor = call(xp, aperture_factor, p, shape=shape, smooth=1e-4)
        np.testing.assert_array_equal(xp.to_numpy(factor), np.ones(4))


@pytest.mark.parametrize("shape", ["rectangular", "elliptical"])
def test_offsets_and_tilt_against_formula(xp, shape):
    rng = np.random.default_rng(7)
    x, y = rng.uniform(-0.012, 0.012, (2, 3000))
    x0, y0, tilt = 1.5e-3, -0.7e-3, 0.3
    expected, u, v = numpy_inside(shape, x, y, A, B, x0, y0, tilt)
    # Leave out points within rounding of the boundary.
    if shape == "rectangular":
        margin = np.minimum(np.abs(np.abs(u) - A), np.abs(np.abs(v) - B))
    else:
        margin = np.abs((u / A) ** 2 + (v / B) ** 2 - 1)
    keep = margin > 1e-12
    p = make_particles(xp.name, beam_at(x[keep], y[keep]))
    out = call(xp, track_aperture, p, shape=shape, x_limit=A, y_limit=B, x_offset=x0,
               y_offset=y0, tilt=tilt)
    np.testing.assert_array_equal(alive_np(out), expected[keep])
    assert 300 < expected[keep].sum() < 2700  # both outcomes well represented


def test_tilt_sign_counter_clockwise(xp):
    """A wide ellipse tilted by +pi/4 is long along the (1, 1) diagonal (Bmad sense)."""
    d = 0.6 * A
    p = make_particles(xp.name, beam_at([d, d], [d, -d]))
    out = call(xp, track_aperture, p, shape="elliptical", x_limit=A, y_limit=B, tilt=math.pi / 4)
    assert alive_np(out).tolist() == [True, False]


def test_lost_particles_stay_lost_and_frozen(xp):
    x = np.array([0.0, 2 * A, 0.0, 0.5 * A])
    beam = beam_at(x, 0.0)
    p = make_particles(xp.name, beam, alive=np.array([True, True, False, True]))
    out = call(xp, track_aperture, p, x_limit=A, y_limit=B)
    assert alive_np(out).tolist() == [True, False, False, True]
    np.testing.assert_array_equal(to_np(out), beam.T)
    # A second aperture changes nothing more, and the count of survivors is exact.
    again = call(xp, track_aperture, out, shape="elliptical", x_limit=A, y_limit=B)
    assert int(alive_np(again).sum()) == 2


@pytest.mark.parametrize("shape", ["rectangular", "elliptical"])
def test_linear_method_cuts_the_same(xp, shape):
    beam = random_beam(200, seed=3, scale=4e-3)
    p = make_particles(xp.name, beam)
    bmad = call(xp, track_aperture, p, shape=shape, x_limit=A, y_limit=B, method="bmad")
    lin = call(xp, track_aperture, p, shape=shape, x_limit=A, y_limit=B, method="linear")
    np.testing.assert_array_equal(alive_np(bmad), alive_np(lin))
    assert 0 < alive_np(bmad).sum() < 200
    line = bt.Beamline([Aperture("ap", shape=shape, x_limit=A, y_limit=B)], method="linear")
    np.testing.assert_array_equal(alive_np(line.track(p)), alive_np(bmad))
    with pytest.raises(bt.ParameterError, match="method"):
        call(xp, track_aperture, p, x_limit=A, method="exact")


def test_batched_limits_and_particles(xp):
    beam = random_beam(50, seed=4, scale=5e-3)
    limits = np.array([A, 2 * A, 0.5 * A])
    p = make_particles(xp.name, beam)
    out = call(xp, track_aperture, p, shape="elliptical", x_limit=xp.asarray(limits), y_limit=B)
    assert out.alive.shape == (3, 50) and out.coords.shape == (3, 6, 50)
    for i, a in enumerate(limits):
        single = call(xp, track_aperture, p, shape="elliptical", x_limit=float(a), y_limit=B)
        np.testing.assert_array_equal(alive_np(out)[i], alive_np(single))
    counts = alive_np(out).sum(axis=-1)
    assert counts[2] < counts[0] < counts[1]
    # Batched particles (2, n) against batched offsets (2,).
    pb = make_particles(xp.name, np.stack([beam, -beam]))
    offsets = np.array([1e-3, -2e-3])
    outb = call(xp, track_aperture, pb, x_limit=A, y_limit=B, x_offset=xp.asarray(offsets))
    for i in range(2):
        expected, _, _ = numpy_inside("rectangular", (1 - 2 * i) * beam[:, 0],
                                      (1 - 2 * i) * beam[:, 2], A, B, offsets[i])
        np.testing.assert_array_equal(alive_np(outb)[i], expected)


def test_no_nan_for_extreme_coordinates(xp):
    x = np.array([0.0, 1e300, -1e300, 1e-300, 1e300, A])
    y = np.array([0.0, 1e300, 0.0, -1e300, -1e300, 0.0])
    p = make_particles(xp.name, beam_at(x, y))
    for shape in ("rectangular", "elliptical"):
        out = call(xp, track_aperture, p, shape=shape, x_limit=A, y_limit=B, tilt=0.1)
        assert alive_np(out).tolist()[:5] == [True, False, False, False, False]
        for smooth in (0.0, 1e-4):
            w = xp.to_numpy(call(xp, aperture_factor, p, shape=shape, x_limit=A, y_limit=B,
                                 smooth=smooth))
            assert np.all(np.isfinite(w)) and np.all((w >= 0) & (w <= 1))
            assert w[0] == pytest.approx(1.0) and np.all(w[1:5] < 1e-12)


def test_rectangular_weight_is_the_logistic_product(xp):
    rng = np.random.default_rng(5)
    x, y = rng.uniform(-1.5 * A, 1.5 * A, (2, 400))
    s = 2e-4
    alive = rng.random(400) > 0.2
    p = make_particles(xp.name, beam_at(x, y), alive=alive)
    got = xp.to_numpy(call(xp, aperture_weight, p, x_limit=A, y_limit=B, smooth=s))
    expected = (expit((A - x) / s) * expit((A + x) / s) * expit((B - y) / s)
                * expit((B + y) / s) * alive)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    hard = xp.to_numpy(call(xp, aperture_weight, p, x_limit=A, y_limit=B, smooth=0.0))
    inside, _, _ = numpy_inside("rectangular", x, y, A, B)
    np.testing.assert_array_equal(hard, (inside & alive).astype(float))


def test_elliptical_weight_is_a_step_across_the_boundary(xp):
    """0.5 on the ellipse; expit(-d/s) at distance d along the outward normal, to
    first order in d (curvature error <= d^2 / (2 rho_min) in the margin)."""
    s = A / 1e4
    theta = np.linspace(0.0, 2 * np.pi, 13)
    bx, by = A * np.cos(theta), B * np.sin(theta)
    normal = np.stack([bx / A**2, by / B**2])
    normal /= np.linalg.norm(normal, axis=0)
    ds = np.array([-3.0, -1.0, 0.0, 0.5, 2.0]) * s
    x = (bx[:, None] + ds[None, :] * normal[0][:, None]).ravel()
    y = (by[:, None] + ds[None, :] * normal[1][:, None]).ravel()
    p = make_particles(xp.name, beam_at(x, y))
    w = xp.to_numpy(call(xp, aperture_factor, p, shape="elliptical", x_limit=A, y_limit=B,
                         smooth=s))
    expected = np.tile(expit(-ds / s), theta.size)
    # margin error <= d^2 / (2 * B^2 / A) (smallest radius of curvature b^2/a), times
    # the largest slope 1/(4 s) of the logistic function.
    bound = (3 * s) ** 2 / (2 * B**2 / A) / (4 * s)
    np.testing.assert_allclose(w, expected, atol=bound + 1e-12)
    on_boundary = w.reshape(theta.size, ds.size)[:, 2]
    np.testing.assert_allclose(on_boundary, 0.5, atol=1e-9)
    # Monotone: deeper inside, larger weight.
    inner = make_particles(xp.name, beam_at(np.linspace(0, 2 * A, 50), 0.0))
    wi = xp.to_numpy(call(xp, aperture_factor, inner, shape="elliptical", x_limit=A,
                          y_limit=B, smooth=A / 3))
    assert np.all(np.diff(wi) < 0) and wi[0] > 0.9 and wi[-1] < 0.15


@pytest.mark.parametrize("shape", ["rectangular", "elliptical"])
def test_weight_agrees_across_backends(xp, shape):
    beam = random_beam(300, seed=9, scale=4e-3)
    args = dict(shape=shape, x_limit=A, y_limit=B, x_offset=2e-4, tilt=0.2, smooth=3e-4)
    ref = aperture_factor(make_particles("numpy", beam), **args)
    got = xp.to_numpy(call(xp, aperture_factor, make_particles(xp.name, beam), **args))
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("shape", ["rectangular", "elliptical"])
def test_weight_gradients_match_finite_differences(ad, shape):
    """d sum(weight) / d(x_limit, x_offset, tilt), and finite gradients w.r.t. positions
    (the centre and a far particle included)."""
    beam = random_beam(60, seed=2, scale=4e-3)
    beam[0, [0, 2]] = 0.0
    beam[1, 0] = 1e3
    point = np.array([A, 1e-4, 0.2])

    def weight_sum(p, params):
        return aperture_factor(p, shape=shape, x_limit=params[0], y_limit=B,
                               x_offset=params[1], tilt=params[2], smooth=2e-4)

    p_np = make_particles("numpy", beam)
    fd = []
    for i in range(3):
        h = np.zeros(3)
        h[i] = 1e-7
        fd.append((weight_sum(p_np, point + h).sum() - weight_sum(p_np, point - h).sum())
                  / 2e-7)
    p = make_particles(ad.name, beam)
    _, grad = compiled(ad, ad.value_and_grad(lambda q: ad.namespace().sum(weight_sum(p, q))))(
        ad.asarray(point))
    np.testing.assert_allclose(ad.to_numpy(grad), fd, rtol=1e-6)

    def by_positions(coords):
        q = bt.Particles(coords=coords, p0c=1e9, mc2=0.511e6)
        return ad.namespace().sum(weight_sum(q, ad.asarray(point)))

    _, g = compiled(ad, ad.value_and_grad(by_positions))(ad.asarray(beam.T.copy()))
    g = ad.to_numpy(g)
    assert np.all(np.isfinite(g)) and np.abs(g).max() > 1.0


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: Aperture("ap1", x_limit=-1e-3), ["Aperture", "'ap1'", "x_limit", ">= 0"]),
        (lambda: Aperture("ap1", y_limit=np.array([1e-3, -1e-3])), ["'ap1'", "y_limit"]),
        (lambda: Aperture("ap2", shape="round"), ["'ap2'", "shape", "elliptical"]),
        (lambda: Aperture("ap2", shape=1), ["'ap2'", "shape"]),
        (lambda: Aperture("ap3", smooth=-1e-4), ["'ap3'", "smooth"]),
        (lambda: Aperture("ap3", x_limit="1"), ["'ap3'", "x_limit"]),
        (lambda: Aperture("ap3", x_limit=math.nan), ["'ap3'", "x_limit", "finite"]),
        (lambda: Aperture("ap3").replace(shape="square"), ["'ap3'", "shape"]),
        (lambda: Aperture("ap4", radius=1.0), ["'ap4'", "radius"]),
    ],
)
def test_record_errors_name_element_and_parameter(build, words):
    with pytest.raises((bt.ParameterError, TypeError)) as info:
        build()
    for word in words:
        assert word in str(info.value)


def test_function_errors():
    p = make_particles("numpy", random_beam(3, seed=0))
    with pytest.raises(bt.ParameterError, match="x_limit"):
        track_aperture(p, x_limit=-1.0)
    with pytest.raises(bt.ParameterError, match="shape"):
        track_aperture(p, shape="hexagonal")
    with pytest.raises(bt.ParameterError, match="smooth"):
        aperture_weight(p, x_limit=1.0, smooth=-0.1)
    torch = backend_or_skip("torch")
    with pytest.raises(bt.ParameterError, match="x_limit"):
        track_aperture(make_particles("torch", random_beam(3, seed=0)),
                       x_limit=np.asarray(1e-3))
    assert torch.name == "torch"


def test_record_defaults_and_tracking():
    ap = Aperture("ap", shape="elliptical", x_limit=A, y_limit=B, tilt=0.1)
    assert ap.parameters() == {"shape": "elliptical", "x_limit": A, "y_limit": B,
                               "x_offset": 0.0, "y_offset": 0.0, "tilt": 0.1, "smooth": 0.0}
    assert ap.length == 0.0
    p = make_particles("numpy", random_beam(100, seed=8, scale=5e-3))
    np.testing.assert_array_equal(
        alive_np(ap.track(p)),
        alive_np(track_aperture(p, shape="elliptical", x_limit=A, y_limit=B, tilt=0.1)))
    factor = ap.replace(smooth=1e-4).survival_factor(p)
    assert factor.shape == (100,) and 0 < factor.sum() < 100


# -- Collimator: a drift whose opening is checked at its exit ---------------------------


@pytest.mark.parametrize("method", ["bmad", "linear", "second_order"])
def test_collimator_cuts_at_its_exit(xp, method):
    """A particle inside the opening at the entrance but outside at the exit is lost
    with its exit coordinates (Bmad's aperture_at = exit_end); the opening is offset,
    so the test uses the collimator frame; every method cuts."""
    # x at entrance, px: exits at x + L px (straight line, pz = 0 and tiny angles).
    x0 = np.array([0.0, 0.7e-3, 0.5e-3, -1.1e-3, 0.0])
    px0 = np.array([0.0, 0.0, 1.0e-3, 0.0, 0.0])
    y0 = np.array([0.0, 0.0, 0.0, 0.0, 2.5e-3])
    coords = np.zeros((5, 6))
    coords[:, 0], coords[:, 1], coords[:, 2] = x0, px0, y0
    p = make_particles(xp.name, coords)
    col = bt.Collimator("col", length=1.0, shape="rectangular", x_limit=1e-3,
                        y_limit=2e-3, x_offset=-2e-4)
    out = col.track(p, method)
    x_exit = x0 + 1.0 * px0
    inside = (np.abs(x_exit + 2e-4) <= 1e-3) & (np.abs(y0) <= 2e-3)
    np.testing.assert_array_equal(alive_np(out), inside)
    assert list(inside) == [True, True, False, True, False]  # -1.1 mm: inside by offset
    drift = track_drift(p, length=1.0, method=method)
    np.testing.assert_allclose(to_np(out), to_np(drift), rtol=0, atol=1e-18)
    assert float(xp.to_numpy(out.s)) == 1.0


def test_collimator_elliptical_and_errors():
    p = make_particles("numpy", random_beam(200, seed=4, scale=2e-3))
    col = bt.Collimator("ec", length=0.5, shape="elliptical", x_limit=2e-3, y_limit=3e-3)
    drifted = track_drift(p, length=0.5)
    expected = alive_np(track_aperture(drifted, shape="elliptical", x_limit=2e-3,
                                       y_limit=3e-3))
    np.testing.assert_array_equal(alive_np(col.track(p)), expected)
    assert 0 < expected.sum() < 200
    with pytest.raises(bt.ParameterError, match=r"^Collimator 'c': parameter 'x_limit'"):
        bt.Collimator("c", length=1.0, x_limit=-1.0)
    with pytest.raises(bt.ParameterError, match="^collimator: parameter 'length'"):
        bt.tracking.track_collimator(p, length="one")
    backend_or_skip("torch")
    with pytest.raises(bt.ParameterError, match="^Collimator 'c': parameter 'length'"):
        bt.Collimator("c", length=np.asarray(1.0)).track(
            make_particles("torch", random_beam(3, seed=0)))
