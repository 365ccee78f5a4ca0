"""Diagnostics: beam position monitor readings and screen images.

Both observe the alive particles and change nothing (zero length, no body): a
``Monitor`` or ``Screen`` in a beamline passes particles unchanged under every tracking
method. The observation functions here compute what the instrument shows.

- :func:`monitor_reading`: the centroid ``(x, y)`` of the alive particles in the frame
  of the monitor (its offsets and tilt), plus optional Gaussian resolution noise drawn
  reproducibly from a seed (the same numbers on every backend). Differentiable: the
  noise is additive.
- :func:`screen_image`: the 2D image of the alive particles' ``(x, y)`` on a pixel
  grid, by plain histogram (counts, no gradient), cloud-in-cell (bilinear weights,
  differentiable) or Gaussian kernel density (pixel integrals of a Gaussian kernel,
  differentiable).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import array_api_compat
import numpy as np

from beamtrack.backends import backend_of
from beamtrack.tracking import frames
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.frames import frame_positions
from beamtrack.tracking.parameters import as_nonnegative_parameter, per_particle
from beamtrack.tracking.particles import Particles

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from beamtrack.tracking.frames import Misalignment

#: How a screen deposits particles on its pixels.
SCREEN_DEPOSITS = ("histogram", "cic", "kde")

#: Chebyshev coefficients of ``f(s) = log(erfc(z) / t) + z^2`` with ``t = 2 / (2 + z)``
#: and ``s = 2 t - 1``, for ``z >= 0`` (computed with mpmath at 50 digits from the
#: Gauss-Chebyshev quadrature of ``f``; the first omitted coefficient is 5e-20).
#: ``erfc(z) = t exp(-z^2 + f(s))`` is then accurate to a few units of rounding.
_ERFC_CHEBYSHEV = (
    -1.3026537197817094,
    0.6419697923564902,
    0.019476473204185836,
    -0.009561514786808632,
    -0.0009465953444820369,
    0.00036683949785276145,
    4.252332480690777e-05,
    -2.0278578112534242e-05,
    -1.6242900046470256e-06,
    1.3036558355805232e-06,
    1.5626441722066142e-08,
    -8.523809591492654e-08,
    6.5290544390988515e-09,
    5.059343495551469e-09,
    -9.91364156493033e-10,
    -2.273651222931836e-10,
    9.646791102015527e-11,
    2.3940380830391146e-12,
    -6.886027526497553e-12,
    8.944879273090725e-13,
    3.130921399342958e-13,
    -1.1270822361367252e-13,
    3.810905255189232e-16,
    7.106097613609237e-15,
    -1.5230282014571043e-15,
    -9.457494571291233e-17,
    1.210237189224279e-16,
    -2.816663087747177e-17,
)
#: erfc(z) is below the smallest float64 for z above this; larger z are clipped here.
_ERFC_ZMAX = 27.5


def erf(x: Any) -> Any:
    """The error function with Array API operations only (the standard has none).

    ``erfc(|x|) = t exp(-x^2 + f)`` with ``t = 2/(2 + |x|)`` and a 28-term Chebyshev
    series ``f`` in ``2t - 1``; ``erf = +-(1 - erfc(|x|))``. Absolute error below 4e-16
    on the real line; autodiff derivatives are those of this smooth approximation
    (``2/sqrt(pi) exp(-x^2)`` to the same accuracy), correct at ``x = 0`` too.
    """
    xp = array_api_compat.array_namespace(x)
    positive = x >= 0.0
    # where (not abs) so that the derivative at x = 0 is the one of the x branch.
    z = xp.clip(xp.where(positive, x, -x), max=_ERFC_ZMAX)
    t = 2.0 / (2.0 + z)
    s = 2.0 * t - 1.0
    b1 = xp.zeros_like(s)
    b2 = xp.zeros_like(s)
    for coefficient in _ERFC_CHEBYSHEV[:0:-1]:
        b1, b2 = 2.0 * s * b1 - b2 + coefficient, b1
    series = s * b1 - b2 + 0.5 * _ERFC_CHEBYSHEV[0]
    erfc = t * xp.exp(series - z * z)
    return xp.where(positive, 1.0 - erfc, erfc - 1.0)


# -- shared helpers ---------------------------------------------------------------------
def check_seed(seed: Any, element: str = "monitor") -> int:
    """Validate a random seed (a Python integer >= 0)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ParameterError(f"parameter 'seed' must be an integer >= 0, got {seed!r}",
                             element=element)
    return int(seed)


# -- monitor ----------------------------------------------------------------------------
def monitor_reading(
    particles: Particles,
    *,
    resolution: Any = 0.0,
    seed: int = 0,
    **misalignment: Unpack[Misalignment],
) -> Any:
    """Reading of a beam position monitor: the centroid ``(x, y)`` of the alive particles.

    Parameters
    ----------
    particles
        Particles at the monitor (any backend).
    resolution
        RMS of the Gaussian measurement noise [m], added to each plane; a number or an
        array of shape ``(*batch)``. Zero (the default) adds nothing.
    seed
        Seed of the noise. The standard normal numbers come from
        :meth:`Backend.normal <beamtrack.backends.base.Backend.normal>` (NumPy's PCG64,
        moved to the particles' backend): a seed gives the same reading on every
        backend and in every call.
    **misalignment
        ``tilt`` [rad], ``x_offset``, ``y_offset`` [m] of the monitor
        (:class:`~beamtrack.tracking.frames.Misalignment`; 0 by default); the reading
        is in its frame: ``(x - x_offset, y - y_offset)`` rotated by ``-tilt``.

    Returns
    -------
    array
        Shape ``(*batch, 2)``: the horizontal and vertical reading [m]. NaN where no
        particle is alive (the monitor sees no beam). Differentiable with respect to
        the particles and all parameters.
    """
    seed = check_seed(seed)
    c = particles.coords
    xp = particles.xp
    res = as_nonnegative_parameter(resolution, c, "resolution")
    u, v = frame_positions(particles, **frames.misalignment(misalignment, "monitor"))
    w = xp.astype(particles.alive, c.dtype)
    u, v, w = xp.broadcast_arrays(u, v, w)
    total = xp.sum(w, axis=-1)
    has_beam = total > 0.0
    safe_total = xp.where(has_beam, total, xp.ones_like(total))
    nan = xp.full_like(total, xp.nan)
    means = [xp.where(has_beam, xp.sum(w * q, axis=-1) / safe_total, nan) for q in (u, v)]
    reading = xp.stack(means, axis=-1)
    if isinstance(resolution, numbers.Real) and resolution == 0:
        return reading
    scale = res[..., None]
    shape = xp.broadcast_arrays(reading, scale)[0].shape
    noise = backend_of(c).normal(tuple(shape), seed, dtype=c.dtype, device=particles.device)
    return reading + scale * noise


# -- screen -----------------------------------------------------------------------------
def check_screen_grid(
    resolution: Any, pixel_size: Any, element: str = "screen"
) -> tuple[tuple[int, int], tuple[float, float]]:
    """Validate ``resolution = (nx, ny)`` (integers >= 1) and ``pixel_size = (dx, dy)`` [m]."""
    if (
        not isinstance(resolution, Sequence)
        or len(resolution) != 2
        or any(isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1
               for k in resolution)
    ):
        raise ParameterError(
            f"parameter 'resolution' must be a pair of integers (nx, ny) >= 1, "
            f"got {resolution!r}", element=element,
        )
    if (
        not isinstance(pixel_size, Sequence)
        or len(pixel_size) != 2
        or any(isinstance(d, bool) or not isinstance(d, numbers.Real)
               or not math.isfinite(d) or d <= 0 for d in pixel_size)
    ):
        raise ParameterError(
            f"parameter 'pixel_size' must be a pair of finite numbers "
            f"(dx, dy) > 0 [m], got {pixel_size!r}", element=element,
        )
    nx, ny = (int(k) for k in resolution)
    dx, dy = (float(d) for d in pixel_size)
    return (nx, ny), (dx, dy)


def check_binning(binning: Any, resolution: tuple[int, int], element: str = "screen") -> int:
    """Validate a camera ``binning`` (an integer >= 1 dividing both pixel counts)."""
    if isinstance(binning, bool) or not isinstance(binning, numbers.Integral) or binning < 1:
        raise ParameterError(f"parameter 'binning' must be an integer >= 1, got {binning!r}",
                             element=element)
    if resolution[0] % binning or resolution[1] % binning:
        raise ParameterError(f"parameter 'binning' = {binning} must divide the resolution "
                             f"{tuple(resolution)}", element=element)
    return int(binning)


def binned(image: Any, binning: int) -> Any:
    """Sum blocks of ``binning x binning`` pixels of images ``(*batch, ny, nx)``."""
    if binning == 1:
        return image
    xp = array_api_compat.array_namespace(image)
    *batch, ny, nx = image.shape
    blocks = xp.reshape(image, (*batch, ny // binning, binning, nx // binning, binning))
    return xp.sum(xp.sum(blocks, axis=-1), axis=-2)


def screen_grid(
    resolution: tuple[int, int], pixel_size: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel edges ``(x_edges, y_edges)`` [m] of a screen, in its own frame (NumPy).

    The grid is centred on the screen: ``x_edges[i] = (i - nx/2) dx`` for
    ``i = 0..nx``, likewise in y. Pixel ``(j, i)`` of an image (row ``j``, column
    ``i``) covers ``[x_edges[i], x_edges[i+1]) x [y_edges[j], y_edges[j+1])``: rows
    go up in y (plot with ``origin="lower"``).
    """
    (nx, ny), (dx, dy) = check_screen_grid(resolution, pixel_size)
    return (np.arange(nx + 1) - nx / 2) * dx, (np.arange(ny + 1) - ny / 2) * dy


def _scatter_image(
    particles: Particles, indices: Any, values: Any, batch: tuple[int, ...], size: int
) -> Any:
    """Sum ``values`` into pixels ``indices`` (flat, per batch entry) of ``(*batch, size)``."""
    xp = particles.xp
    count = math.prod(batch)
    offsets = xp.reshape(xp.arange(count, dtype=indices.dtype, device=particles.device) * size,
                         batch + (1,))
    flat_indices = xp.reshape(indices + offsets, (-1,))
    flat_values = xp.reshape(values, (-1,))
    target = xp.zeros((count * size,), dtype=values.dtype, device=particles.device)
    image = backend_of(particles.coords).scatter_add(target, flat_indices, flat_values)
    return xp.reshape(image, batch + (size,))


def _cell_index(xp: Any, t: Any, cells: int) -> Any:
    """Integer cell index of fractional positions already known to lie in ``[0, cells)``."""
    return xp.astype(xp.clip(t, min=0.0, max=float(cells - 1)), xp.int32)


def screen_image(
    particles: Particles,
    *,
    resolution: tuple[int, int] = (100, 100),
    pixel_size: tuple[float, float] = (1.0e-4, 1.0e-4),
    deposit: str = "histogram",
    bandwidth: Any = 0.0,
    binning: int = 1,
    **misalignment: Unpack[Misalignment],
) -> Any:
    """Image of the alive particles' transverse positions on a screen.

    Parameters
    ----------
    particles
        Particles at the screen (any backend).
    resolution
        ``(nx, ny)``: number of pixels along x and y (Python integers; they set the
        image shape).
    pixel_size
        ``(dx, dy)``: pixel width and height [m]. The grid is centred on the screen
        (see :func:`screen_grid`).
    deposit
        ``"histogram"``: counts of particles per pixel (no gradient; a particle on the
        upper edge of the grid counts in the last pixel, as in ``numpy.histogram2d``).
        ``"cic"``: cloud in cell, each particle a pixel-sized square shared bilinearly
        among the four pixels whose centres surround it (differentiable, through the
        backend's ``scatter_add``). ``"kde"``: Gaussian kernel density, each particle a
        Gaussian of standard deviation ``bandwidth`` whose integral over each pixel is
        deposited (differentiable; cost and memory grow as ``n (nx + ny)`` plus an
        ``n nx ny`` matrix product).
    bandwidth
        Standard deviation of the ``"kde"`` kernel [m], the same in x and y; zero (the
        default) uses the pixel size of each plane. Number or array of shape ``(*batch)``.
    binning
        Camera binning: the image of the ``(nx, ny)`` sensor pixels is summed over blocks
        of ``binning x binning`` (an integer dividing both), as Cheetah's ``Screen``.
    **misalignment
        ``tilt`` [rad], ``x_offset``, ``y_offset`` [m] of the screen
        (:class:`~beamtrack.tracking.frames.Misalignment`; 0 by default); the image is
        in its frame.

    Returns
    -------
    array
        Shape ``(*batch, ny, nx)`` (divided by ``binning``); row ``j`` is the j-th pixel
        row from the bottom.
        Each alive particle contributes its weight 1 times the part of its cloud that
        falls on the grid, so the image sums to the number of alive particles inside
        the grid when they are away from its edges (exactly, for histogram and cic).
    """
    binning = check_binning(binning, check_screen_grid(resolution, pixel_size)[0])
    image = _sensor_image(particles, resolution, pixel_size, deposit, bandwidth, misalignment)
    return binned(image, binning)


def _sensor_image(particles: Particles, resolution: tuple[int, int],
                  pixel_size: tuple[float, float], deposit: str, bandwidth: Any,
                  misalignment: Any) -> Any:
    """:func:`screen_image` on the sensor's own pixels (before binning)."""
    (nx, ny), (dx, dy) = check_screen_grid(resolution, pixel_size)
    if not isinstance(deposit, str) or deposit not in SCREEN_DEPOSITS:
        raise ParameterError(
            f"screen: parameter 'deposit' must be one of {', '.join(SCREEN_DEPOSITS)}, "
            f"got {deposit!r}"
        )
    c = particles.coords
    xp = particles.xp
    bw = as_nonnegative_parameter(bandwidth, c, "bandwidth")
    u, v = frame_positions(particles, **frames.misalignment(misalignment, "screen"))
    w = xp.astype(particles.alive, c.dtype)
    u, v, w = xp.broadcast_arrays(u, v, w)
    batch = tuple(u.shape[:-1])
    x_min, y_min = -0.5 * nx * dx, -0.5 * ny * dy
    # Fractional pixel coordinates: pixel i covers [i, i + 1).
    tx = (u - x_min) / dx
    ty = (v - y_min) / dy

    if deposit == "histogram":
        inside = (tx >= 0.0) & (tx <= float(nx)) & (ty >= 0.0) & (ty <= float(ny))
        zero = xp.zeros_like(tx)
        ix = _cell_index(xp, xp.floor(xp.where(inside, tx, zero)), nx)
        iy = _cell_index(xp, xp.floor(xp.where(inside, ty, zero)), ny)
        values = xp.where(inside, w, zero)
        image = _scatter_image(particles, iy * nx + ix, values, batch, nx * ny)
        return xp.reshape(image, batch + (ny, nx))

    if deposit == "cic":
        # Positions relative to pixel centres; clip far-away particles (their weights
        # are zero anyway) and send NaN positions outside.
        sx = xp.clip(tx - 0.5, min=-1.0, max=float(nx))
        sy = xp.clip(ty - 0.5, min=-1.0, max=float(ny))
        outside = xp.full_like(sx, -1.0)
        sx = xp.where(xp.isnan(sx), outside, sx)
        sy = xp.where(xp.isnan(sy), outside, sy)
        ix0, iy0 = xp.floor(sx), xp.floor(sy)
        fx, fy = sx - ix0, sy - iy0
        zero = xp.zeros_like(sx)
        indices, values = [], []
        for di, dj, weight in (
            (0.0, 0.0, (1.0 - fx) * (1.0 - fy)),
            (1.0, 0.0, fx * (1.0 - fy)),
            (0.0, 1.0, (1.0 - fx) * fy),
            (1.0, 1.0, fx * fy),
        ):
            ix, iy = ix0 + di, iy0 + dj
            valid = (ix >= 0.0) & (ix < float(nx)) & (iy >= 0.0) & (iy < float(ny))
            indices.append(_cell_index(xp, iy, ny) * nx + _cell_index(xp, ix, nx))
            values.append(xp.where(valid, weight * w, zero))
        image = _scatter_image(particles, xp.concat(indices, axis=-1),
                               xp.concat(values, axis=-1), batch, nx * ny)
        return xp.reshape(image, batch + (ny, nx))

    # Gaussian kernel density: separable pixel integrals of the kernel.
    bw = per_particle(bw)
    sigma_x = xp.where(bw > 0.0, bw, xp.full_like(bw, dx))
    sigma_y = xp.where(bw > 0.0, bw, xp.full_like(bw, dy))
    edges_x = xp.arange(nx + 1, dtype=c.dtype, device=particles.device)
    edges_y = xp.arange(ny + 1, dtype=c.dtype, device=particles.device)
    root2 = math.sqrt(2.0)
    # erf of (edge - position) / (sqrt(2) sigma), in pixel units: (*batch, n, n_edges)
    ex = erf((edges_x - tx[..., None]) * (dx / root2) / sigma_x[..., None])
    ey = erf((edges_y - ty[..., None]) * (dy / root2) / sigma_y[..., None])
    gx = 0.5 * (ex[..., 1:] - ex[..., :-1])
    gy = 0.5 * (ey[..., 1:] - ey[..., :-1]) * w[..., None]
    return xp.matmul(xp.matrix_transpose(gy), gx)
