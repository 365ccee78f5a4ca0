"""Phase-space reconstruction of a non-Gaussian beam from a quadrupole scan.

    python examples/phase_space_reconstruction.py [--iterations 1000] [--particles 10000]

Synthetic data: a beam made of two offset, tilted Gaussian blobs in (x, px) and a
banana-shaped (y, py) distribution (plainly not Gaussian) goes through
drift - quadrupole - drift to a 192 x 192 screen of 50 um pixels. Seven quadrupole
strengths are "measured" (histograms of 200 000 particles); an eighth is held out.

The scan passes through a waist in each plane (x near k1 = +10, y near k1 = -10, where
the y image is R12 * sigma_py = 0.13 mm rms: the setting that measures <py^2>). The
pixels must resolve those waists, as a real screen would: with 100 um pixels the y
waist was 1.3 pixels wide and <py^2> came out 5-8 % low; with 50 um, within 4 %.
:func:`beamtrack.reconstruction.reconstruct` fits a neural-network beam model to the
seven images; the script then compares the reconstructed second moments with the true
ones and predicts the held-out image.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import beamtrack as bt

SCAN = np.linspace(-15.0, 15.0, 7)  # quadrupole k1 [1/m^2]
HELD_OUT = 7.0  # k1 [1/m^2] not used in the fit
P0C, MC2 = 50e6, bt.electron.mc2


def true_beam(n: int, seed: int = 0) -> np.ndarray:
    """Coordinates ``(6, n)`` of the non-Gaussian test beam."""
    rng = np.random.default_rng(seed)
    side = rng.choice([-1.0, 1.0], size=n)
    x = 0.35e-3 * side + 0.25e-3 * rng.standard_normal(n)
    px = -0.2e-3 * side + 0.1e-3 * rng.standard_normal(n) + 0.3 * x
    y = 0.4e-3 * rng.standard_normal(n)
    py = 0.08e-3 * rng.standard_normal(n) + 250.0 * (y**2 - 0.16e-6) - 0.2 * y
    return np.stack([x, px, y, py, np.zeros(n), np.zeros(n)])


def beamline() -> bt.Beamline:
    return bt.Beamline([bt.Drift("d0", length=0.3), bt.Quadrupole("q", length=0.1, k1=0.0),
                        bt.Drift("d1", length=1.0),
                        bt.Screen("screen", resolution=(192, 192), pixel_size=(5e-5, 5e-5))])


def measure(line: bt.Beamline, coords: np.ndarray, k1: np.ndarray) -> np.ndarray:
    """Histogram images ``(S, ny, nx)`` of the true beam at strengths ``k1``."""
    particles = bt.Particles(coords=coords, p0c=P0C, mc2=MC2)
    return np.asarray(line.replace("q", k1=k1).observe(particles).images["screen"])


def main(iterations: int = 1000, particles: int = 10_000, seed: int = 0,
         progress: bool = True, threads: int | None = 1, samples: int = 200_000,
         deposit: str = "cic", learning_rate: float = 1e-2) -> dict:
    """Reconstruct and compare; ``threads``: torch threads (one is fastest for this
    size, and avoids contention on a shared machine; ``None`` keeps torch's);
    ``samples``: particles of the true beam (measured images) and of the comparisons."""
    import torch

    from beamtrack.reconstruction import reconstruct

    if threads is not None:
        torch.set_num_threads(threads)
    line = beamline()
    truth = true_beam(samples, seed=1)
    images = measure(line, truth, SCAN)
    start = time.perf_counter()
    result = reconstruct(line, "screen", {"q.k1": SCAN}, images, p0c=P0C, mc2=MC2,
                         seed=seed, n_particles=particles, iterations=iterations,
                         progress=progress, deposit=deposit, learning_rate=learning_rate)
    seconds = time.perf_counter() - start
    sample = result.sample(samples, seed=2)
    rec = np.cov(sample.coords.numpy()[:4], bias=True)
    ref = np.cov(truth[:4], bias=True)
    names = ["x", "px", "y", "py"]
    moment_errors = {f"<{a}{a}>": float(rec[i, i] / ref[i, i] - 1) for i, a in enumerate(names)}
    # Histogram deposit: comparable with the measured (pixel-integrated) image.
    held_out = result.predict({"q.k1": [HELD_OUT]}, n=samples, deposit="histogram")[0]
    held_truth = measure(line, truth, np.array([HELD_OUT]))[0]
    held_truth = held_truth / held_truth.sum()
    held_out_error = float(np.abs(held_out - held_truth).sum() / 2)  # total variation
    fit_error = float(np.abs(result.predicted_images - result.measured_images).sum(
        axis=(-2, -1)).max() / 2)
    print(f"{iterations} iterations x {particles} particles in {seconds:.0f} s; loss "
          f"{result.loss_history[0]:.3g} -> {result.loss_history[-1]:.3g}")
    print("second moments, reconstructed / true - 1: "
          + ", ".join(f"{k} {100 * v:+.1f}%" for k, v in moment_errors.items()))
    print(f"correlations <x px>: {rec[0, 1] / np.sqrt(rec[0, 0] * rec[1, 1]):+.3f} (true "
          f"{ref[0, 1] / np.sqrt(ref[0, 0] * ref[1, 1]):+.3f}), <y py>: "
          f"{rec[2, 3] / np.sqrt(rec[2, 2] * rec[3, 3]):+.3f} (true "
          f"{ref[2, 3] / np.sqrt(ref[2, 2] * ref[3, 3]):+.3f})")
    print(f"image total-variation distance: fitted settings max {fit_error:.3f}, held-out "
          f"k1 = {HELD_OUT} {held_out_error:.3f}")
    return {"seconds": seconds, "moment_errors": moment_errors, "held_out_error": held_out_error,
            "fit_error": fit_error, "loss": result.loss_history, "result": result}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--particles", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deposit", choices=["cic", "kde"], default="cic")
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    args = parser.parse_args()
    main(args.iterations, args.particles, seed=args.seed, threads=args.threads,
         deposit=args.deposit, learning_rate=args.learning_rate)
