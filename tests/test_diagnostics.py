"""Monitors and screens: readings and images against independent references (NumPy
centroids, numpy.histogram2d, bilinear weights, Gaussian pixel integrals with
scipy.special.ndtr), seeded noise, batches, gradients, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import compiled, make_particles, random_beam, to_np
from scipy.special import erf as scipy_erf
from scipy.special import ndtr

import beamtrack as bt
from beamtrack.lattice.elements import Monitor, Screen
from beamtrack.tracking.diagnostics import erf, monitor_reading, screen_grid, screen_image
from beamtrack.tracking.moment_diagnostics import screen_image_moments

DX, DY = 2.0**-11, 2.0**-12  # pixel sizes [m], exactly representable
NX, NY = 12, 10


def image(xp, p, **kw):
    """``screen_image`` on backend ``xp``, jitted on JAX (eager JAX is slow op by op)."""
    return xp.to_numpy(compiled(xp, lambda q: screen_image(q, **kw))(p))


def reading(xp, p, **kw):
    """``monitor_reading`` on backend ``xp``, jitted on JAX."""
    return xp.to_numpy(compiled(xp, lambda q: monitor_reading(q, **kw))(p))


def frame(beam, x0=0.0, y0=0.0, tilt=0.0):
    """Positions in an instrument frame, written independently of beamtrack.frames."""
    c, s = math.cos(tilt), math.sin(tilt)
    x, y = beam[..., 0] - x0, beam[..., 2] - y0
    return c * x + s * y, -s * x + c * y


# -- monitor ----------------------------------------------------------------------------
def test_monitor_reading_is_the_alive_centroid_in_its_frame(xp):
    beam = random_beam(400, seed=1, scale=2e-3) + np.array([3e-4, 0, -1e-4, 0, 0, 0])
    alive = np.random.default_rng(2).random(400) > 0.3
    p = make_particles(xp.name, beam, alive=alive)
    for x0, y0, tilt in ((0.0, 0.0, 0.0), (2e-4, -5e-4, 0.4)):
        got = reading(xp, p, x_offset=x0, y_offset=y0, tilt=tilt)
        u, v = frame(beam, x0, y0, tilt)
        expected = [u[alive].mean(), v[alive].mean()]
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-18)


def test_monitor_noise_is_seeded_pcg64_on_every_backend(xp):
    beam = random_beam(50, seed=3)
    p = make_particles(xp.name, np.stack([beam, 2 * beam, -beam]))  # batch (3,)
    clean = reading(xp, p)
    noisy = reading(xp, p, resolution=1e-5, seed=42)
    draws = np.random.Generator(np.random.PCG64(42)).standard_normal((3, 2))
    np.testing.assert_allclose(noisy - clean, 1e-5 * draws, rtol=1e-9, atol=1e-20)
    again = reading(xp, p, resolution=1e-5, seed=42)
    np.testing.assert_array_equal(noisy, again)
    other = reading(xp, p, resolution=1e-5, seed=43)
    assert np.all(other != noisy)
    # A batched resolution scales each entry's noise.
    res = np.array([1e-5, 0.0, 2e-5])
    scaled = reading(xp, p, resolution=xp.asarray(res), seed=42)
    np.testing.assert_allclose(scaled - clean, res[:, None] * draws, rtol=1e-9, atol=1e-20)


def test_monitor_without_beam_reads_nan_elsewhere_finite(xp):
    beam = random_beam(20, seed=4)
    alive = np.ones((2, 20), bool)
    alive[1] = False
    p = make_particles(xp.name, np.stack([beam, beam]), alive=alive)
    got = reading(xp, p, resolution=1e-6, seed=1)
    assert np.all(np.isnan(got[1])) and np.all(np.isfinite(got[0]))


def test_monitor_gradient_is_finite_with_an_empty_entry(ad):
    beam = random_beam(20, seed=4)
    alive = np.ones((2, 20), bool)
    alive[1] = False

    def f(coords):
        p = bt.Particles(coords=coords, p0c=1e9, mc2=0.511e6,
                         alive=ad.asarray(alive, dtype="bool"))
        return monitor_reading(p, tilt=0.1)[0, 0]

    _, g = compiled(ad, ad.value_and_grad(f))(ad.asarray(np.stack([beam, beam]).swapaxes(-1, -2)))
    g = ad.to_numpy(g)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g[0, 0], math.cos(0.1) / 20, rtol=1e-12)
    np.testing.assert_allclose(g[0, 2], math.sin(0.1) / 20, rtol=1e-12)
    assert np.all(g[1] == 0)


def test_monitor_gradient_through_quadrupole(ad):
    """d(reading)/d(k1) of a monitor behind an offset quadrupole vs finite differences."""
    beam = random_beam(64, seed=5)

    def line(k1):
        return bt.Beamline([bt.Quadrupole("q", length=0.3, k1=k1, x_offset=1e-3),
                            bt.Drift("d", length=1.0),
                            Monitor("bpm", x_offset=1e-4, tilt=0.05, resolution=1e-6, seed=3)])

    def reading(p, k1):
        out = line(k1).track(p)
        return line(k1)["bpm"].observe(out)

    p_np = make_particles("numpy", beam)
    h = 1e-6
    fd = (reading(p_np, 2.0 + h) - reading(p_np, 2.0 - h)) / (2 * h)
    p = make_particles(ad.name, beam)
    for plane in range(2):
        _, g = compiled(ad, ad.value_and_grad(lambda k, i=plane: reading(p, k)[i]))(
            ad.asarray(2.0))
        np.testing.assert_allclose(ad.to_numpy(g), fd[plane], rtol=1e-7)
    assert abs(fd[0]) > 1e-4


# -- screen: histogram -----------------------------------------------------------------
def test_screen_grid_edges():
    xe, ye = screen_grid((NX, NY), (DX, DY))
    np.testing.assert_array_equal(xe, DX * (np.arange(NX + 1) - NX / 2))
    np.testing.assert_array_equal(ye, DY * (np.arange(NY + 1) - NY / 2))


def test_histogram_matches_numpy_histogram2d(xp):
    beam = random_beam(3000, seed=6, scale=2.5e-3)
    # Points exactly on edges: lower edges open into the pixel above; the top/right
    # edge of the grid belongs to the last pixel (numpy.histogram2d's rule).
    xe, ye = screen_grid((NX, NY), (DX, DY))
    extra = np.zeros((6, 6))
    extra[:, 0] = [xe[0], xe[-1], xe[3], xe[-1], xe[0] - 1e-9, 0.0]
    extra[:, 2] = [ye[0], ye[-1], ye[5], ye[2], 0.0, ye[-1] + 1e-9]
    beam = np.concatenate([beam, extra])
    alive = np.random.default_rng(7).random(len(beam)) > 0.1
    alive[-6:] = True
    p = make_particles(xp.name, beam, alive=alive)
    for x0, y0, tilt in ((0.0, 0.0, 0.0), (3e-4, -2e-4, 0.25)):
        img = image(xp, p, resolution=(NX, NY), pixel_size=(DX, DY),
                    x_offset=x0, y_offset=y0, tilt=tilt)
        u, v = frame(beam, x0, y0, tilt)
        expected, _, _ = np.histogram2d(v[alive], u[alive], bins=[ye, xe])
        assert img.shape == (NY, NX)
        np.testing.assert_array_equal(img, expected)
        assert 100 < img.sum() < alive.sum()  # some particles fall off the grid


# -- screen: cloud in cell -------------------------------------------------------------
def cic_reference(u, v, weights, nx, ny, dx, dy):
    """Bilinear deposit, one particle at a time (independent loop implementation)."""
    img = np.zeros((ny, nx))
    for x, y, w in zip(u, v, weights):
        sx, sy = x / dx + nx / 2 - 0.5, y / dy + ny / 2 - 0.5
        i0, j0 = math.floor(sx), math.floor(sy)
        fx, fy = sx - i0, sy - j0
        for i, wx in ((i0, 1 - fx), (i0 + 1, fx)):
            for j, wy in ((j0, 1 - fy), (j0 + 1, fy)):
                if 0 <= i < nx and 0 <= j < ny:
                    img[j, i] += w * wx * wy
    return img


def test_cic_single_particle_exact_bilinear_weights(xp):
    # Pixel-centre coordinates (2.25, 3.5): column 2 gets 0.75, column 3 gets 0.25;
    # rows 3 and 4 get 0.5 each.
    x = (2.25 + 0.5 - NX / 2) * DX
    y = (3.5 + 0.5 - NY / 2) * DY
    beam = np.zeros((1, 6))
    beam[0, 0], beam[0, 2] = x, y
    img = image(xp, make_particles(xp.name, beam), resolution=(NX, NY),
                pixel_size=(DX, DY), deposit="cic")
    expected = np.zeros((NY, NX))
    expected[3, 2] = expected[4, 2] = 0.75 * 0.5
    expected[3, 3] = expected[4, 3] = 0.25 * 0.5
    np.testing.assert_array_equal(img, expected)


def test_cic_matches_loop_reference_and_conserves_charge(xp):
    beam = random_beam(500, seed=8, scale=2e-3)
    alive = np.random.default_rng(9).random(500) > 0.2
    p = make_particles(xp.name, beam, alive=alive)
    x0, y0, tilt = 1e-4, 2e-4, -0.3
    img = image(xp, p, resolution=(NX, NY), pixel_size=(DX, DY), x_offset=x0,
                y_offset=y0, tilt=tilt, deposit="cic")
    u, v = frame(beam, x0, y0, tilt)
    np.testing.assert_allclose(img, cic_reference(u, v, alive, NX, NY, DX, DY),
                               rtol=0, atol=1e-12)
    # Particles more than half a pixel inside the grid deposit all their charge.
    interior = (np.abs(u) < (NX / 2 - 0.5) * DX) & (np.abs(v) < (NY / 2 - 0.5) * DY)
    q = make_particles(xp.name, beam[interior], alive=alive[interior])
    inner = image(xp, q, resolution=(NX, NY), pixel_size=(DX, DY),
                  x_offset=x0, y_offset=y0, tilt=tilt, deposit="cic")
    assert inner.sum() == pytest.approx(alive[interior].sum(), rel=1e-13)
    assert interior.sum() > 50


# -- screen: kernel density ------------------------------------------------------------
def kde_reference(u, v, weights, xe, ye, sx, sy):
    """Sum over particles of the Gaussian's integral over each pixel (scipy.special.ndtr)."""
    gx = np.diff(ndtr((xe[None, :] - u[:, None]) / sx), axis=1)
    gy = np.diff(ndtr((ye[None, :] - v[:, None]) / sy), axis=1)
    return np.einsum("p,pj,pi->ji", weights, gy, gx)


@pytest.mark.parametrize("bandwidth", [0.0, 3e-4])
def test_kde_is_the_pixel_integral_of_gaussians(xp, bandwidth):
    beam = random_beam(300, seed=10, scale=2e-3)
    alive = np.random.default_rng(11).random(300) > 0.2
    p = make_particles(xp.name, beam, alive=alive)
    x0, tilt = -2e-4, 0.15
    img = image(xp, p, resolution=(NX, NY), pixel_size=(DX, DY), x_offset=x0,
                tilt=tilt, deposit="kde", bandwidth=bandwidth)
    u, v = frame(beam, x0, 0.0, tilt)
    xe, ye = screen_grid((NX, NY), (DX, DY))
    sx, sy = (DX, DY) if bandwidth == 0.0 else (bandwidth, bandwidth)
    np.testing.assert_allclose(img, kde_reference(u, v, alive, xe, ye, sx, sy),
                               rtol=0, atol=1e-13)


def test_kde_of_a_central_particle_integrates_to_one(xp):
    beam = np.zeros((2, 6))
    beam[1, 0] = 1.0  # far off the screen: contributes nothing
    p = make_particles(xp.name, beam)
    img = image(xp, p, resolution=(40, 40), pixel_size=(DX, DX), deposit="kde",
                bandwidth=2 * DX)
    # The kernel's mass outside +-20 pixels = +-10 sigma is below 1e-22.
    assert img.sum() == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose(img, img.T, atol=1e-16)  # symmetric kernel, square grid


def test_erf_against_scipy_and_its_derivative(ad):
    x = np.concatenate([np.linspace(-30, 30, 6001), [0.0, 1e-300, -1e-12, 26.0, 28.0]])
    np.testing.assert_allclose(erf(x), scipy_erf(x), rtol=0, atol=4e-16)
    xp = ad.namespace()

    def total(values):
        return xp.sum(erf(values))

    _, g = compiled(ad, ad.value_and_grad(total))(ad.asarray(x))
    np.testing.assert_allclose(ad.to_numpy(g), 2 / np.sqrt(np.pi) * np.exp(-x * x),
                               rtol=1e-12, atol=1e-300)


# -- screens: shapes, batches, backends ------------------------------------------------
@pytest.mark.parametrize("deposit", ["histogram", "cic", "kde"])
def test_batched_images_equal_single_ones(xp, deposit):
    beam = random_beam(80, seed=12, scale=1.5e-3)
    pb = make_particles(xp.name, np.stack([beam, 0.5 * beam]))
    offsets = np.array([1e-4, -3e-4])
    imgs = image(xp, pb, resolution=(NX, NY), pixel_size=(DX, DY),
                 x_offset=xp.asarray(offsets), deposit=deposit)
    assert imgs.shape == (2, NY, NX)
    for i, scale in enumerate((1.0, 0.5)):
        single = image(xp, make_particles(xp.name, scale * beam), resolution=(NX, NY),
                       pixel_size=(DX, DY), x_offset=float(offsets[i]), deposit=deposit)
        np.testing.assert_allclose(imgs[i], single, rtol=1e-13, atol=1e-15)
    # A (3,)-batched bandwidth broadcasts against unbatched particles.
    if deposit == "kde":
        p = make_particles(xp.name, beam)
        bws = np.array([1e-4, 2e-4, 4e-4])
        by_bandwidth = image(xp, p, resolution=(NX, NY), pixel_size=(DX, DY), deposit="kde",
                             bandwidth=xp.asarray(bws))
        assert by_bandwidth.shape == (3, NY, NX)
        for i, bw in enumerate(bws):
            single = image(xp, p, resolution=(NX, NY), pixel_size=(DX, DY), deposit="kde",
                           bandwidth=float(bw))
            np.testing.assert_allclose(by_bandwidth[i], single, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("deposit", ["cic", "kde"])
def test_images_agree_across_backends(xp, deposit):
    beam = random_beam(200, seed=13, scale=2e-3)
    args = dict(resolution=(NX, NY), pixel_size=(DX, DY), tilt=0.1, deposit=deposit)
    ref = screen_image(make_particles("numpy", beam), **args)
    got = image(xp, make_particles(xp.name, beam), **args)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method", ["bmad", "linear"])
def test_diagnostics_pass_particles_unchanged(xp, method):
    p = make_particles(xp.name, random_beam(30, seed=14))
    line = bt.Beamline([Monitor("bpm", resolution=1e-5), Screen("scr", deposit="kde")])
    out = line.track(p, method=method)
    np.testing.assert_array_equal(to_np(out), to_np(p))
    assert bt.Beamline([Monitor("m")]).length == 0.0


@pytest.mark.parametrize("deposit", ["cic", "kde"])
def test_image_loss_gradient_through_quadrupole(ad, deposit):
    """d/dk1 of a screen-image loss (focus onto a target image) vs finite differences."""
    beam = random_beam(120, seed=15, scale=1e-3)
    grid = dict(resolution=(8, 8), pixel_size=(5e-4, 5e-4), deposit=deposit, bandwidth=4e-4)
    target = np.zeros((8, 8))
    target[3:5, 3:5] = 30.0

    def image_loss(p, k1):
        line = bt.Beamline([bt.Quadrupole("q", length=0.3, k1=k1), bt.Drift("d", length=2.0),
                            Screen("scr", **grid)])
        img = line["scr"].observe(line.track(p))
        xp = p.xp
        return xp.sum((img - xp.asarray(target, device=p.device)) ** 2)

    p_np = make_particles("numpy", beam)
    h = 1e-6
    fd = (image_loss(p_np, 1.5 + h) - image_loss(p_np, 1.5 - h)) / (2 * h)
    p = make_particles(ad.name, beam)
    _, g = compiled(ad, ad.value_and_grad(lambda k: image_loss(p, k)))(ad.asarray(1.5))
    np.testing.assert_allclose(ad.to_numpy(g), fd, rtol=1e-6)
    assert abs(fd) > 1.0


# -- records and errors ----------------------------------------------------------------
def test_records_observe_like_the_functions():
    p = make_particles("numpy", random_beam(40, seed=16))
    m = Monitor("bpm", x_offset=1e-4, tilt=0.2, resolution=1e-6, seed=5)
    np.testing.assert_array_equal(
        m.observe(p), monitor_reading(p, x_offset=1e-4, tilt=0.2, resolution=1e-6, seed=5))
    s = Screen("scr", resolution=[NX, NY], pixel_size=[DX, DY], deposit="cic")
    assert s.resolution == (NX, NY) and s.pixel_size == (DX, DY)  # lists become tuples
    np.testing.assert_array_equal(
        s.observe(p), screen_image(p, resolution=(NX, NY), pixel_size=(DX, DY), deposit="cic"))
    assert bt.Drift("d").observe(p) is None and bt.Drift("d").survival_factor(p) is None
    assert Monitor("m").parameters() == {"x_offset": 0.0, "y_offset": 0.0, "tilt": 0.0,
                                         "resolution": 0.0, "seed": 0}


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: Screen("s1", resolution=(0, 10)), ["Screen", "'s1'", "resolution"]),
        (lambda: Screen("s1", resolution=(10,)), ["'s1'", "resolution"]),
        (lambda: Screen("s1", resolution=(10.0, 10)), ["'s1'", "resolution", "integers"]),
        (lambda: Screen("s1", resolution="ab"), ["'s1'", "resolution"]),
        (lambda: Screen("s1", resolution=(True, 2)), ["'s1'", "resolution"]),
        (lambda: Screen("s2", pixel_size=(0.0, 1e-4)), ["'s2'", "pixel_size"]),
        (lambda: Screen("s2", pixel_size=(-1e-4, 1e-4)), ["'s2'", "pixel_size"]),
        (lambda: Screen("s2", pixel_size=(math.inf, 1e-4)), ["'s2'", "pixel_size"]),
        (lambda: Screen("s3", deposit="gauss"), ["'s3'", "deposit", "kde"]),
        (lambda: Screen("s3", bandwidth=-1e-4), ["'s3'", "bandwidth", ">= 0"]),
        (lambda: Monitor("m1", resolution=-1e-6), ["Monitor", "'m1'", "resolution"]),
        (lambda: Monitor("m1", seed=-1), ["'m1'", "seed", "integer >= 0"]),
        (lambda: Monitor("m1", seed=1.5), ["'m1'", "seed"]),
        (lambda: Monitor("m1", x_offset="0"), ["'m1'", "x_offset"]),
    ],
)
def test_record_errors_name_element_and_parameter(build, words):
    with pytest.raises(bt.ParameterError) as info:
        build()
    for word in words:
        assert word in str(info.value)


def test_function_errors():
    p = make_particles("numpy", random_beam(3, seed=0))
    with pytest.raises(bt.ParameterError, match="resolution"):
        screen_image(p, resolution=(4, -1))
    with pytest.raises(bt.ParameterError, match="pixel_size"):
        screen_image(p, pixel_size=(1e-4,))
    with pytest.raises(bt.ParameterError, match="deposit"):
        screen_image(p, deposit="nearest")
    with pytest.raises(bt.ParameterError, match="bandwidth"):
        screen_image(p, deposit="kde", bandwidth=-1.0)
    with pytest.raises(bt.ParameterError, match="seed"):
        monitor_reading(p, seed=-3)
    with pytest.raises(bt.ParameterError, match="resolution"):
        monitor_reading(p, resolution=-1e-6)


def test_screen_binning_sums_blocks_of_sensor_pixels(xp):
    """A binned histogram is the histogram on pixels ``binning`` times larger; the
    moment-beam image likewise; a binning that does not divide the sensor is refused."""
    beam = random_beam(400, seed=5) * 0.3
    p = make_particles(xp.name, beam)
    binned = screen_image(p, resolution=(12, 8), pixel_size=(1e-4, 2e-4), binning=2)
    coarse = screen_image(p, resolution=(6, 4), pixel_size=(2e-4, 4e-4))
    np.testing.assert_array_equal(xp.to_numpy(binned), xp.to_numpy(coarse))
    moments = bt.ParameterBeam.from_particles(p)
    np.testing.assert_allclose(
        xp.to_numpy(screen_image_moments(moments, resolution=(12, 8), pixel_size=(1e-4, 2e-4),
                                         binning=2)),
        xp.to_numpy(screen_image_moments(moments, resolution=(6, 4),
                                         pixel_size=(2e-4, 4e-4))), atol=1e-15)
    with pytest.raises(bt.ParameterError, match="divide"):
        screen_image(p, resolution=(12, 8), pixel_size=(1e-4, 1e-4), binning=3)
    with pytest.raises(bt.ParameterError, match="binning"):
        bt.Screen("scr", binning=0)
