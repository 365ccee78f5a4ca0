"""Phase-space reconstruction from screen images through differentiable tracking (torch).

Generative phase-space reconstruction (Roussel et al., PRL 130, 145001, 2023): a small
neural network maps standard normal samples to 4D ``(x, px, y, py)`` or 6D phase space;
its particles are tracked through the beamline at every setting of a scan (one batched
call: the scanned parameters carry a batch dimension), deposited on the screen with a
differentiable deposit, and the network is trained until the predicted images match the
measured ones. The result is a beam model that can be sampled and that predicts images
at settings that were not measured.

``import beamtrack`` does not import this module (nor torch).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from beamtrack.lattice.beamline import Beamline
from beamtrack.lattice.elements import Screen
from beamtrack.lattice.optics import reference_of
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.particles import Particles

__all__ = ["BeamModel", "Reconstruction", "reconstruct"]


class BeamModel(torch.nn.Module):
    """A generative beam model: ``coords = scale * (z + network(z))``, ``z ~ N(0, I)``.

    The network's last layer starts near zero, so the model starts as the uncorrelated
    Gaussian of RMS ``scale`` and learns correlations and non-Gaussian shapes from there.

    Parameters
    ----------
    dimensions
        4 (``x, px, y, py``; ``z = pz = 0``) or 6 (all six coordinates).
    scale
        Initial RMS guess of each generated coordinate (``dimensions`` values, in m and
        rad, or 1 for ``pz``); trained as a logarithm.
    width, depth
        Hidden layer width and number of hidden layers (SiLU: unbounded, so that the
        model can grow tails, such as those of a banana-shaped beam, where a saturating
        activation would flatten them).
    """

    def __init__(self, dimensions: int, scale: Any, width: int = 64, depth: int = 2):
        super().__init__()
        if dimensions not in (4, 6):
            raise ParameterError(f"BeamModel: dimensions must be 4 or 6, got {dimensions!r}")
        self.dimensions = dimensions
        layers: list[torch.nn.Module] = []
        size = dimensions
        for _ in range(depth):
            layers += [torch.nn.Linear(size, width, dtype=torch.float64), torch.nn.SiLU()]
            size = width
        last = torch.nn.Linear(size, dimensions, dtype=torch.float64)
        with torch.no_grad():  # start as the uncorrelated Gaussian of RMS ``scale``
            last.weight.mul_(0.01)
            last.bias.zero_()
        layers.append(last)
        self.network = torch.nn.Sequential(*layers)
        self.log_scale = torch.nn.Parameter(torch.log(torch.as_tensor(
            np.asarray(scale, dtype=np.float64))))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Coordinates ``(6, n)`` (coordinate-major) of the samples ``z`` ``(n, dims)``."""
        u = (z + self.network(z)) * torch.exp(self.log_scale)
        if self.dimensions == 6:
            return u.T
        zeros = torch.zeros_like(u[:, 0])
        return torch.stack([u[:, 0], u[:, 1], u[:, 2], u[:, 3], zeros, zeros])


@dataclass
class Reconstruction:
    """What :func:`reconstruct` found.

    Attributes
    ----------
    model
        The trained :class:`BeamModel`.
    loss_history
        Loss after each iteration (relative squared image error).
    predicted_images
        ``(S, ny, nx)`` NumPy images of the trained model at the scan settings,
        normalised like the measured ones (each sums to 1).
    measured_images
        The normalised measured images ``(S, ny, nx)`` as the fit compared them: blurred
        by the differentiable deposit's extra kernel (cloud in cell: a sensor-pixel box;
        kde: the Gaussian), so that they are comparable with ``predicted_images``.
    seconds
        Wall-clock time of the fit [s].
    """

    model: BeamModel
    loss_history: list[float]
    predicted_images: np.ndarray
    measured_images: np.ndarray
    seconds: float
    _context: dict[str, Any] = field(repr=False)

    def sample(self, n: int, seed: int = 0) -> Particles:
        """``n`` torch particles of the reconstructed beam (no gradient)."""
        ctx = self._context
        generator = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.model.dimensions, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            coords = self.model(z)
        return Particles(coords=coords, p0c=ctx["p0c"], mc2=ctx["mc2"])

    def predict(self, scan: Mapping[str, Any], n: int | None = None,
                seed: int = 0, deposit: str | None = None) -> np.ndarray:
        """Normalised screen images ``(S, ny, nx)`` at other scan settings.

        ``deposit``: that of the fit by default (images comparable with
        ``measured_images``); ``"histogram"`` for images comparable with the raw,
        pixel-integrated measurements (use many samples, ``n``).
        """
        ctx = self._context
        particles = self.sample(n or ctx["n_particles"], seed)
        screen = ctx["screen"] if deposit is None else ctx["screen"].replace(deposit=deposit)
        with torch.no_grad():
            images = _images(ctx["line"], screen, _scan_values(scan), particles,
                             ctx["method"])
        return images.numpy()


def _progress(iterations: int, enabled: bool, description: str) -> Any:
    """``range(iterations)``, under a tqdm bar when ``enabled`` and tqdm is installed."""
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover - tqdm is in the 'progress' extra
            return range(iterations)
        return tqdm(range(iterations), desc=description)
    return range(iterations)


def _scan_values(scan: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    values = {k: torch.as_tensor(np.asarray(v, dtype=np.float64)) for k, v in scan.items()}
    sizes = {tuple(v.shape) for v in values.values()}
    if len(sizes) != 1 or len(next(iter(sizes))) != 1:
        raise ParameterError(f"reconstruct: every scan entry must be a 1D sequence of one "
                             f"length, got shapes {sorted(sizes)}")
    return values


def _blur(images: torch.Tensor, kernel_x: torch.Tensor, kernel_y: torch.Tensor) -> torch.Tensor:
    """``images`` ``(S, ny, nx)`` convolved with separable odd kernels (zero outside)."""
    s, ny, nx = images.shape
    out = torch.nn.functional.conv1d(images.reshape(s * ny, 1, nx), kernel_x.flip(0)[None, None],
                                     padding=kernel_x.shape[0] // 2).reshape(s, ny, nx)
    out = out.transpose(1, 2).reshape(s * nx, 1, ny)
    out = torch.nn.functional.conv1d(out, kernel_y.flip(0)[None, None],
                                     padding=kernel_y.shape[0] // 2)
    return out.reshape(s, nx, ny).transpose(1, 2)


def _deposit_kernel(deposit: str, bandwidth: float, pixel: float, binning: int) -> torch.Tensor:
    """The discrete kernel (in image pixels) that turns a pixel-integrated image into the
    expectation of the differentiable ``deposit``.

    A camera (or a histogram of particles) records the density integrated over each
    pixel. Cloud in cell spreads each particle over a sensor-pixel-wide square first, so
    its images are wider by one more sensor-pixel box (variance ``1 / (12 b^2)`` image
    pixels ``b`` = binning): a 3-tap kernel of that variance. The Gaussian kernel density
    integrates a Gaussian of standard deviation ``bandwidth`` over each pixel: a sampled
    Gaussian of that width (exact to ~exp(-2 pi^2 h^2) for ``h`` >~ 0.7 pixel).
    Without this, a fit matches images that are too wide and shrinks the beam, by
    ``1 / 12`` pixel^2 in variance with cloud in cell: -5 % at a waist 1.3 pixels wide.
    """
    if deposit == "cic":
        a = 1.0 / (24.0 * binning**2)
        return torch.tensor([a, 1.0 - 2.0 * a, a], dtype=torch.float64)
    h = (bandwidth if bandwidth > 0.0 else pixel) / (pixel * binning)
    half = max(1, math.ceil(4.0 * h))
    t = torch.arange(-half, half + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (t / h) ** 2)
    return kernel / kernel.sum()


def _images(line: Beamline, screen: Screen, values: dict[str, torch.Tensor],
            particles: Particles, method: str | None) -> torch.Tensor:
    """Normalised images ``(S, ny, nx)`` of ``particles`` tracked at every setting."""
    out = line.with_parameters(values).track(particles, method=method)
    images = screen.observe(out)
    return images / torch.clamp(images.sum(dim=(-2, -1), keepdim=True), min=1e-300)


def reconstruct(
    line: Beamline,
    screen: str,
    scan: Mapping[str, Any],
    images: Any,
    p0c: float | None = None,
    mc2: float | None = None,
    seed: int = 0,
    dimensions: int = 4,
    n_particles: int = 10_000,
    iterations: int = 1000,
    learning_rate: float = 1e-2,
    width: int = 64,
    depth: int = 2,
    deposit: str = "cic",
    method: str | None = "linear",
    progress: bool = True,
) -> Reconstruction:
    """Fit a generative beam model to screen images of a scan.

    Parameters
    ----------
    line
        The beamline up to (at least) the screen; elements after it are ignored.
    screen
        Name of the :class:`~beamtrack.lattice.elements.Screen` that took the images; its
        resolution, pixel size, binning and misalignment come from the line.
    scan
        ``{"element.parameter": values}``, ``S`` values each (one quadrupole or several
        parameters moved together).
    images
        Measured images ``(S, ny, nx)`` (array-like, any non-negative units): the
        intensity integrated over each pixel, as a camera or a histogram records it.
        Each is normalised to sum 1 and blurred by the fit deposit's extra kernel
        inside (see ``deposit``). The pixels should resolve the beam at the scan's
        waists: a waist one or two pixels wide hardly constrains the angles.
    p0c, mc2
        Reference momentum and rest energy [eV]; the line's reference by default.
    seed
        Seed of the network initialisation and of the Gaussian samples.
    dimensions
        4 (transverse) or 6.
    n_particles
        Samples per iteration (fresh ones each iteration).
    iterations, learning_rate
        Adam steps and step size.
    width, depth
        Size of the network.
    deposit
        Differentiable screen deposit used in the fit, ``"cic"`` (cloud in cell) or
        ``"kde"`` (the screen's own ``deposit`` is for measurement, often histogram;
        ``"kde"`` with the screen's ``bandwidth``, the pixel size when zero, and much
        slower). Either spreads each particle wider than the pixel integral of the
        measured images, so the measured images are blurred by the same amount (cic:
        one more sensor-pixel box; kde: the Gaussian) before they are compared.
    method
        Tracking method (``"linear"`` default: fast and exact for linear optics).
    progress
        Show a tqdm progress bar (``False`` silences it).

    Returns
    -------
    Reconstruction
        ``sample(n) -> Particles``, ``predict(scan)``, ``loss_history``,
        ``predicted_images``.
    """
    import time

    if screen not in line or not isinstance(line[screen], Screen):
        raise ParameterError(f"reconstruct: Beamline {line.name!r} has no screen {screen!r}")
    if deposit not in ("cic", "kde"):
        raise ParameterError(f"reconstruct: deposit must be 'cic' or 'kde', got {deposit!r}")
    p0c, mc2 = (float(v) for v in reference_of(line, p0c, mc2))
    names = line.names()
    upto = Beamline(list(line)[: names.index(screen) + 1], name=line.name,
                    method=line.method, reference=line.reference)
    screen_element = line[screen].replace(deposit=deposit)
    values = _scan_values(scan)
    measured = torch.as_tensor(np.asarray(images, dtype=np.float64))
    binning = screen_element.binning
    nx, ny = (k // binning for k in screen_element.resolution)
    count = next(iter(values.values())).shape[0]
    if measured.shape != (count, ny, nx):
        raise ParameterError(f"reconstruct: images must have shape (S, ny, nx) = "
                             f"{(count, ny, nx)} for {count} scan settings and the screen's "
                             f"resolution, got {tuple(measured.shape)}")
    if torch.any(measured < 0) or not torch.all(torch.isfinite(measured)):
        raise ParameterError("reconstruct: images must be finite and non-negative")
    measured = measured / measured.sum(dim=(-2, -1), keepdim=True)
    # Compare like with like: blur the measured (pixel-integrated) images by the extra
    # kernel of the differentiable deposit (see _deposit_kernel).
    bandwidth = float(np.asarray(screen_element.bandwidth)) if deposit == "kde" else 0.0
    measured = _blur(measured, *(
        _deposit_kernel(deposit, bandwidth, d, screen_element.binning)
        for d in screen_element.pixel_size))
    measured = measured / measured.sum(dim=(-2, -1), keepdim=True)

    # Initial scale: the mean RMS width of the images; angles that width over the
    # distance to the screen.
    dx, dy = (d * binning for d in screen_element.pixel_size)
    xs = (torch.arange(nx, dtype=torch.float64) - (nx - 1) / 2) * dx
    ys = (torch.arange(ny, dtype=torch.float64) - (ny - 1) / 2) * dy
    px_img, py_img = measured.sum(dim=-2), measured.sum(dim=-1)
    sx = float(torch.sqrt((px_img * xs**2).sum(-1) - (px_img * xs).sum(-1) ** 2).mean())
    sy = float(torch.sqrt((py_img * ys**2).sum(-1) - (py_img * ys).sum(-1) ** 2).mean())
    distance = max(float(upto.length), 0.1)
    scale = [sx, sx / distance, sy, sy / distance] + ([1e-3, 1e-3] if dimensions == 6 else [])
    torch.manual_seed(seed)
    model = BeamModel(dimensions, scale, width, depth)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, iterations)
    generator = torch.Generator().manual_seed(seed)
    norm = float((measured**2).sum())
    history: list[float] = []
    start = time.perf_counter()
    bar = _progress(iterations, progress, "reconstruct")
    for _ in bar:
        z = torch.randn(n_particles, dimensions, generator=generator, dtype=torch.float64)
        particles = Particles(coords=model(z), p0c=p0c, mc2=mc2)
        predicted = _images(upto, screen_element, values, particles, method)
        loss = ((predicted - measured) ** 2).sum() / norm
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        history.append(float(loss.detach()))
        if progress and len(history) % 20 == 0 and hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{history[-1]:.3e}")
    seconds = time.perf_counter() - start
    context = {"line": upto, "screen": screen_element, "method": method, "p0c": p0c,
               "mc2": mc2, "n_particles": n_particles}
    result = Reconstruction(model, history, np.zeros(0), measured.numpy(), seconds, context)
    result.predicted_images = result.predict(scan, n=max(n_particles, 100_000), seed=seed + 1)
    if not math.isfinite(history[-1] if history else 0.0):
        raise ParameterError("reconstruct: the loss became non-finite; lower learning_rate")
    return result
