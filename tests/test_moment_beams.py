"""A moment beam (ParameterBeam) works wherever particles do: statistics, track_along,
track_each, observe (monitor centroid, screen pixel integrals, aperture transmission)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import ELECTRON_MC2, P0C

import beamtrack as bt
from beamtrack.lattice.elements import Aperture, Monitor
from beamtrack.tracking.moment_diagnostics import (
    gaussian_transmission,
    monitor_reading_moments,
    screen_image_moments,
)

SIGMA = np.array([5e-4, 5e-5, 4e-4, 6e-5, 1e-3, 1e-3])


def covariance(rho_xy: float = 0.0) -> np.ndarray:
    cov = np.diag(SIGMA**2)
    cov[0, 2] = cov[2, 0] = rho_xy * SIGMA[0] * SIGMA[2]
    cov[0, 1] = cov[1, 0] = -0.3 * SIGMA[0] * SIGMA[1]
    return cov


def moment_beam(xp, mean=(0.0,) * 6, rho_xy: float = 0.0) -> bt.ParameterBeam:
    return bt.ParameterBeam(xp.asarray(np.asarray(mean, dtype=float)),
                            xp.asarray(covariance(rho_xy)), p0c=P0C, mc2=ELECTRON_MC2)


def phi(t: float) -> float:
    return 0.5 * (1.0 + math.erf(t / math.sqrt(2.0)))


def test_beam_statistics_of_a_moment_beam(xp):
    beam = moment_beam(xp, mean=(1e-4, 0, -2e-4, 0, 0, 0))
    stats = bt.beam_statistics(beam)
    assert float(stats["mean_x"]) == pytest.approx(1e-4, rel=1e-14)
    assert float(stats["mean_y"]) == pytest.approx(-2e-4, rel=1e-14)
    assert float(stats["sigma_y"]) == pytest.approx(SIGMA[2], rel=1e-14)
    # eps_x = sigma_x sigma_px sqrt(1 - rho^2) with rho = -0.3
    assert float(stats["emittance_x"]) == pytest.approx(
        SIGMA[0] * SIGMA[1] * math.sqrt(1 - 0.09), rel=1e-12)
    assert "n_alive" not in stats


def test_statistics_refuse_weights_for_a_moment_beam():
    beam = moment_beam(bt.backends.get("numpy"))
    with pytest.raises(bt.ParameterError, match="weights"):
        bt.statistics.centroid(beam, weights=np.ones(3))


def test_track_along_moment_beam_equals_particle_second_moments(xp):
    """Second moments transform exactly under linear maps, so the moment beam built
    from particles and the particles tracked with the linear method agree everywhere."""
    line = bt.load(bt.EXAMPLE_LATTICE)
    particles = bt.gaussian_particles(2000, sigma=list(SIGMA), p0c=P0C, mc2=ELECTRON_MC2,
                                      seed=3, backend=xp.name)
    beam = bt.ParameterBeam.from_particles(particles)
    moments = bt.track_along(line, beam)
    tracked = bt.track_along(line, particles, method="linear")
    assert moments.names == tracked.names
    for key in ("sigma_x", "sigma_y", "mean_x", "emittance_x"):
        np.testing.assert_allclose(xp.to_numpy(moments[key]), xp.to_numpy(tracked[key]),
                                   rtol=1e-9, atol=1e-18)
    np.testing.assert_allclose(xp.to_numpy(moments.s), xp.to_numpy(tracked.s), atol=1e-15)


def test_track_each_refuses_a_custom_element():
    line = bt.Beamline([bt.Drift("d", length=1.0),
                        bt.Custom("c", function=lambda p: p)])
    beam = moment_beam(bt.backends.get("numpy"))
    with pytest.raises(bt.ParameterError, match="first-order map"):
        list(line.track_each(beam))


def test_monitor_reads_the_centroid_in_its_frame(xp):
    beam = moment_beam(xp, mean=(3e-4, 0, -1e-4, 0, 0, 0))
    tilt, x0, y0 = 0.3, 1e-4, 2e-4
    reading = xp.to_numpy(monitor_reading_moments(beam, tilt=tilt, x_offset=x0, y_offset=y0))
    dx, dy = 3e-4 - x0, -1e-4 - y0
    expected = [math.cos(tilt) * dx + math.sin(tilt) * dy,
                -math.sin(tilt) * dx + math.cos(tilt) * dy]
    np.testing.assert_allclose(reading, expected, rtol=1e-12)


def test_screen_image_of_an_uncorrelated_gaussian_is_the_product_of_erfs(xp):
    mean = (1.3e-4, 0, -0.7e-4, 0, 0, 0)
    beam = moment_beam(xp, mean=mean)
    nx, ny, d = 24, 20, 1e-4
    image = xp.to_numpy(screen_image_moments(beam, resolution=(nx, ny), pixel_size=(d, d)))
    xe = (np.arange(nx + 1) - nx / 2) * d
    ye = (np.arange(ny + 1) - ny / 2) * d
    gx = np.diff([phi((e - mean[0]) / SIGMA[0]) for e in xe])
    gy = np.diff([phi((e - mean[2]) / SIGMA[2]) for e in ye])
    np.testing.assert_allclose(image, np.outer(gy, gx), atol=1e-14)
    assert image.sum() == pytest.approx(
        (phi((xe[-1] - mean[0]) / SIGMA[0]) - phi((xe[0] - mean[0]) / SIGMA[0]))
        * (phi((ye[-1] - mean[2]) / SIGMA[2]) - phi((ye[0] - mean[2]) / SIGMA[2])), rel=1e-12)


def test_screen_image_of_a_correlated_gaussian_matches_dense_quadrature():
    """Against a 40 x 40 midpoint rule of the bivariate normal density in every pixel."""
    np_backend = bt.backends.get("numpy")
    beam = moment_beam(np_backend, mean=(1e-4, 0, 0, 0, 0, 0), rho_xy=0.7)
    nx, ny, d = 16, 14, 1.5e-4
    image = screen_image_moments(beam, resolution=(nx, ny), pixel_size=(d, d))
    sub = 40
    x = (np.arange(nx * sub) + 0.5) / sub * d - nx * d / 2
    y = (np.arange(ny * sub) + 0.5) / sub * d - ny * d / 2
    cov = covariance(0.7)[np.ix_([0, 2], [0, 2])]
    inv = np.linalg.inv(cov)
    gx, gy = np.meshgrid(x - 1e-4, y)
    q = inv[0, 0] * gx**2 + 2 * inv[0, 1] * gx * gy + inv[1, 1] * gy**2
    density = np.exp(-0.5 * q) / (2 * np.pi * math.sqrt(np.linalg.det(cov)))
    reference = density.reshape(ny, sub, nx, sub).sum(axis=(1, 3)) * (d / sub) ** 2
    np.testing.assert_allclose(image, reference, atol=2e-5 * reference.max())


def test_observe_a_moment_beam():
    np_backend = bt.backends.get("numpy")
    line = bt.Beamline([bt.Drift("d", length=1.0), Monitor("bpm"),
                        Aperture("ap", x_limit=6e-4, y_limit=5e-4),
                        bt.Screen("scr", resolution=(30, 30), pixel_size=(1e-4, 1e-4))])
    beam = moment_beam(np_backend, mean=(2e-4, 1e-5, 0, 0, 0, 0))
    obs = line.observe(beam)
    sx = math.sqrt(SIGMA[0] ** 2 + 2 * (-0.3 * SIGMA[0] * SIGMA[1]) + SIGMA[1] ** 2)
    sy = math.sqrt(SIGMA[2] ** 2 + SIGMA[3] ** 2)  # after 1 m of drift
    np.testing.assert_allclose(obs.readings["bpm"], [2.1e-4, 0.0], rtol=1e-12, atol=1e-18)
    mx = 2.1e-4
    expected = (phi((6e-4 - mx) / sx) - phi((-6e-4 - mx) / sx)) * (
        phi(5e-4 / sy) - phi(-5e-4 / sy))
    assert float(obs.weight) == pytest.approx(expected, rel=1e-12)
    assert obs.images["scr"].shape == (30, 30)
    assert obs.lost_at is None
    with pytest.raises(bt.ParameterError, match="ParameterBeam"):
        obs.lost_in("ap")


def test_elliptical_transmission_of_a_round_centred_beam():
    sigma, a = 3e-4, 5e-4
    cov = np.diag([sigma**2, 1e-10, sigma**2, 1e-10, 1e-6, 1e-6])
    beam = bt.ParameterBeam(np.zeros(6), cov, p0c=P0C, mc2=ELECTRON_MC2)
    t = gaussian_transmission(beam, shape="elliptical", x_limit=a, y_limit=a)
    assert float(t) == pytest.approx(1 - math.exp(-(a**2) / (2 * sigma**2)), rel=1e-12)


def test_screen_image_of_a_moment_beam_is_differentiable():
    """Gradient of one pixel of the image in the quadrupole strength, against a central
    finite difference, with a batch of two settings (torch: JAX's eager gradient of the
    erf series takes 20 s here; its values are checked above)."""
    pytest.importorskip("torch", reason="autodiff backend")
    ad = bt.backends.get("torch")
    line = bt.Beamline([bt.Quadrupole("q", length=0.2, k1=1.0), bt.Drift("d", length=2.0),
                        bt.Screen("scr", resolution=(20, 20), pixel_size=(1e-4, 1e-4))])
    beam = moment_beam(ad, mean=(1e-4, 0, 0, 0, 0, 0))

    def pixel(k1):
        return line.replace("q", k1=k1).observe(beam).images["scr"][..., 9, 12]

    k = ad.asarray(np.array([1.0, 2.0]))
    grad = ad.to_numpy(ad.value_and_grad(lambda k1: pixel(k1).sum())(k)[1])
    h = 1e-6
    fd = (ad.to_numpy(pixel(k + h)) - ad.to_numpy(pixel(k - h))) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-12)
    assert np.all(np.abs(grad) > 0)
