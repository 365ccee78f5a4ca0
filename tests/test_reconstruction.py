"""beamtrack.reconstruction: generative phase-space reconstruction from screen images."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="beamtrack.reconstruction needs torch")

import beamtrack as bt  # noqa: E402
from beamtrack.reconstruction import reconstruct  # noqa: E402

P0C, MC2 = 50e6, bt.electron.mc2
SIGMA = np.array([4e-4, 1.5e-4, 3e-4, 1e-4])  # x, px, y, py
SCAN = np.linspace(-6.0, 6.0, 5)


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def line() -> bt.Beamline:
    return bt.Beamline([bt.Quadrupole("q", length=0.1, k1=0.0), bt.Drift("d", length=1.5),
                        bt.Screen("scr", resolution=(32, 32), pixel_size=(1e-4, 1e-4))])


def analytic_images(k1: np.ndarray) -> np.ndarray:
    """Images of an uncorrelated Gaussian beam: the transported covariance (thin-lens-free
    linear optics from the transfer map) integrated over the pixels with erf."""
    from math import erf, sqrt

    out = []
    edges = (np.arange(33) - 16) * 1e-4
    for k in k1:
        r, _ = bt.transfer_map(line().replace("q", k1=float(k)), p0c=P0C, mc2=MC2)
        cov = r[:4, :4] @ np.diag(SIGMA**2) @ r[:4, :4].T
        gx = np.diff([0.5 * (1 + erf(e / sqrt(2 * cov[0, 0]))) for e in edges])
        gy = np.diff([0.5 * (1 + erf(e / sqrt(2 * cov[2, 2]))) for e in edges])
        out.append(np.outer(gy, gx))
    return np.array(out)


def test_reconstruction_of_a_gaussian_beam_finds_its_sizes():
    images = analytic_images(SCAN)
    result = reconstruct(line(), "scr", {"q.k1": SCAN}, images * 1000.0, p0c=P0C, mc2=MC2,
                         n_particles=3000, iterations=200, learning_rate=2e-2,
                         progress=False)
    assert len(result.loss_history) == 200
    assert result.loss_history[-1] < 0.3 * result.loss_history[0]
    assert result.predicted_images.shape == (5, 32, 32)
    np.testing.assert_allclose(result.measured_images.sum(axis=(1, 2)), 1.0, rtol=1e-12)
    sample = result.sample(20_000, seed=3)
    assert sample.coords.shape == (6, 20_000)
    sizes = sample.coords[:4].std(dim=1).numpy()
    # 200 iterations of a stochastic fit: sizes within 15 % (the example gets 5 %).
    np.testing.assert_allclose(sizes, SIGMA, rtol=0.15)
    held_out = result.predict({"q.k1": [3.0]}, n=20_000)
    assert held_out.shape == (1, 32, 32)
    # Total-variation distance to the analytic image at a setting not fitted (0.04).
    assert np.abs(held_out - analytic_images(np.array([3.0]))).sum() / 2 < 0.08


def test_reconstruct_validates_its_inputs():
    images = np.ones((5, 32, 32))
    with pytest.raises(bt.ParameterError, match="no screen"):
        reconstruct(line(), "q", {"q.k1": SCAN}, images, p0c=P0C, mc2=MC2, progress=False)
    with pytest.raises(bt.ParameterError, match="shape"):
        reconstruct(line(), "scr", {"q.k1": SCAN}, images[:, :8], p0c=P0C, mc2=MC2,
                    progress=False)
    with pytest.raises(bt.ParameterError, match="non-negative"):
        reconstruct(line(), "scr", {"q.k1": SCAN}, -images, p0c=P0C, mc2=MC2, progress=False)


@pytest.mark.parametrize("deposit", ["cic", "kde"])
def test_measured_images_are_blurred_like_the_fit_deposit(deposit):
    """A histogram (or camera) image blurred by _deposit_kernel has the expectation of the
    differentiable deposit: without it a fit shrinks the beam (1/12 pixel^2 for cic)."""
    from beamtrack.reconstruction import _blur, _deposit_kernel
    from beamtrack.tracking.diagnostics import screen_image

    rng = np.random.default_rng(0)
    coords = np.zeros((6, 100_000))
    coords[0] = 1.3e-4 * rng.standard_normal(100_000) + 3e-5  # a waist 1.3 pixels wide
    coords[2] = 1.0e-4 * rng.standard_normal(100_000)
    particles = bt.Particles(coords=torch.tensor(coords), p0c=P0C, mc2=MC2)
    hist = screen_image(particles, resolution=(32, 32), deposit="histogram").double()
    fit = screen_image(particles, resolution=(32, 32), deposit=deposit)
    kernel = _deposit_kernel(deposit, 0.0, 1e-4, 1)
    blurred = _blur(hist[None] / hist.sum(), kernel, kernel)[0]

    def variance(image):
        p = image.sum(0) / image.sum()
        x = torch.arange(32, dtype=torch.float64)
        return float((p * x**2).sum() - (p * x).sum() ** 2)

    assert variance(blurred) == pytest.approx(variance(fit), rel=2e-3)
    assert variance(hist) < 0.97 * variance(fit)  # the bias the blur removes
    assert float((blurred - fit / fit.sum()).abs().sum()) / 2 < 0.01
