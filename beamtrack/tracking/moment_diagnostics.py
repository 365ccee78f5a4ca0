"""What monitors, screens and apertures see of a moment beam (:class:`ParameterBeam`).

A :class:`~beamtrack.tracking.parameter_beam.ParameterBeam` is a Gaussian with the
beam's mean and covariance. The functions here are the moment-beam counterparts of
:func:`~beamtrack.tracking.diagnostics.monitor_reading`,
:func:`~beamtrack.tracking.diagnostics.screen_image` and the aperture cut, all
differentiable and batched:

- :func:`monitor_reading_moments`: the centroid in the monitor frame (exact).
- :func:`screen_image_moments`: the Gaussian integrated over every pixel (the row
  masses exactly, with erf; the distribution along x inside a row with an 8-point
  Gauss-Legendre rule over the row), normalised to the probability of a particle
  landing in the pixel.
- :func:`gaussian_transmission`: the Gaussian's integral inside an aperture's opening.
  This is an approximation: a rectangular opening gets the product of the two
  marginal integrals (exact when x and y are uncorrelated in the aperture frame); an
  elliptical one gets the exact value for a round, centred Gaussian in coordinates
  normalised by the half-axes, with the same mean square normalised radius.
  The moments downstream are not truncated (the beam stays Gaussian).
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any

import numpy as np

from beamtrack.backends import backend_of
from beamtrack.tracking import frames
from beamtrack.tracking.aperture import check_shape
from beamtrack.tracking.diagnostics import (
    check_binning,
    check_screen_grid,
    check_seed,
    erf,
    screen_grid,
)
from beamtrack.tracking.parameter_beam import ParameterBeam
from beamtrack.tracking.parameters import as_nonnegative_parameter, as_parameter

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from beamtrack.tracking.frames import Misalignment

#: Gauss-Legendre nodes and weights on [-1, 1] for the y integral inside a pixel row.
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(8)
#: Smallest variance used [m^2] (a beam of zero size in a plane stays finite).
_TINY_VARIANCE = 1.0e-30


def transverse_moments(beam: ParameterBeam, **misalignment: Unpack[Misalignment]) -> tuple[
        Any, Any]:
    """Mean ``(*batch, 2)`` [m] and covariance ``(*batch, 2, 2)`` [m^2] of ``(x, y)`` in
    the frame of a zero-length element at ``x_offset``, ``y_offset`` [m] and ``tilt``
    [rad] (translated, then rotated by ``-tilt``, as for particles)."""
    xp = beam.xp
    mis = frames.misalignment(misalignment, "screen")
    like = beam.mean
    x_off, y_off, tilt = (as_parameter(mis[k], like, k) for k in ("x_offset", "y_offset", "tilt"))
    mean = xp.stack([beam.mean[..., 0] - x_off, beam.mean[..., 2] - y_off], axis=-1)
    cov = beam.covariance
    cov2 = xp.stack([xp.stack([cov[..., 0, 0], cov[..., 0, 2]], axis=-1),
                     xp.stack([cov[..., 2, 0], cov[..., 2, 2]], axis=-1)], axis=-2)
    c, s = xp.cos(tilt), xp.sin(tilt)
    zero_tilt = isinstance(mis["tilt"], numbers.Real) and mis["tilt"] == 0
    if zero_tilt:
        return mean, cov2
    rot = xp.stack([xp.stack([c, s], axis=-1), xp.stack([-s, c], axis=-1)], axis=-2)
    mean = xp.matmul(rot, mean[..., None])[..., 0]
    cov2 = xp.matmul(xp.matmul(rot, cov2), xp.matrix_transpose(rot))
    return mean, cov2


def monitor_reading_moments(
    beam: ParameterBeam, *, resolution: Any = 0.0, seed: int = 0,
    **misalignment: Unpack[Misalignment],
) -> Any:
    """Monitor reading of a moment beam: its centroid ``(x, y)`` [m] in the monitor frame.

    The same as :func:`~beamtrack.tracking.diagnostics.monitor_reading` for particles
    (including the seeded noise of RMS ``resolution`` [m]); shape ``(*batch, 2)``.
    """
    seed = check_seed(seed)
    xp = beam.xp
    res = as_nonnegative_parameter(resolution, beam.mean, "resolution")
    reading, _ = transverse_moments(beam, **misalignment)
    if isinstance(resolution, numbers.Real) and resolution == 0:
        return reading
    scale = res[..., None]
    shape = xp.broadcast_arrays(reading, scale)[0].shape
    noise = backend_of(beam.mean).normal(tuple(shape), seed, dtype=beam.dtype,
                                         device=beam.device)
    return reading + scale * noise


def _normal_cdf(t: Any) -> Any:
    return 0.5 * (1.0 + erf(t / math.sqrt(2.0)))


def screen_image_moments(
    beam: ParameterBeam,
    *,
    resolution: tuple[int, int] = (100, 100),
    pixel_size: tuple[float, float] = (1.0e-4, 1.0e-4),
    deposit: str = "histogram",
    bandwidth: Any = 0.0,
    binning: int = 1,
    **misalignment: Unpack[Misalignment],
) -> Any:
    """Screen image of a moment beam: its Gaussian integrated over each pixel.

    Parameters
    ----------
    beam
        The beam at the screen.
    resolution, pixel_size
        ``(nx, ny)`` pixels of ``(dx, dy)`` [m], on the grid of
        :func:`~beamtrack.tracking.diagnostics.screen_grid`.
    deposit, bandwidth
        Accepted for the screen's parameters and ignored: a moment beam has no
        particles to deposit.
    binning
        Camera binning, as for particles.
    **misalignment
        ``tilt`` [rad], ``x_offset``, ``y_offset`` [m] of the screen.

    Returns
    -------
    array
        Shape ``(*batch, ny, nx)``: the probability that a particle lands in each pixel
        (normalised: the image sums to the fraction of the beam on the grid, 1 for a
        beam well inside it). Differentiable in the moments and the screen offsets.
        Row masses are exact; within a row an 8-point Gauss-Legendre rule in y
        handles x-y correlation (error below 1e-6 of the row mass while the RMS height
        exceeds a quarter pixel; exact without correlation).
    """
    (nx, ny), (dx, dy) = check_screen_grid(resolution, pixel_size)
    binning = check_binning(binning, (nx, ny))
    if binning > 1:  # the binned pixels are the sensor's pixels summed: integrate over them
        nx, ny, dx, dy = nx // binning, ny // binning, dx * binning, dy * binning
    xp = beam.xp
    mean, cov = transverse_moments(beam, **misalignment)
    mx, my = mean[..., 0], mean[..., 1]
    vxx = xp.clip(cov[..., 0, 0], min=_TINY_VARIANCE)
    vyy = xp.clip(cov[..., 1, 1], min=_TINY_VARIANCE)
    vxy = cov[..., 0, 1]
    sy = xp.sqrt(vyy)
    slope = vxy / vyy
    sx_cond = xp.sqrt(xp.clip(vxx - vxy * slope, min=_TINY_VARIANCE))
    dev = beam.device
    x_edges, y_edges = (xp.asarray(e, dtype=beam.dtype, device=dev)
                        for e in screen_grid((nx, ny), (dx, dy)))
    # Row masses, exact: (*batch, ny)
    cdf_y = _normal_cdf((y_edges - my[..., None]) / sy[..., None])
    row_mass = cdf_y[..., 1:] - cdf_y[..., :-1]
    # Quadrature nodes in every row: (ny, q)
    centres = 0.5 * (y_edges[1:] + y_edges[:-1])
    nodes = xp.asarray(_NODES, dtype=beam.dtype, device=dev)
    log_w = xp.asarray(np.log(_WEIGHTS), dtype=beam.dtype, device=dev)
    y_q = centres[:, None] + 0.5 * dy * nodes[None, :]
    # Weights of the nodes within a row, proportional to the marginal density (softmax
    # in log space, so rows far from the beam stay finite): (*batch, ny, q)
    z = (y_q - my[..., None, None]) / sy[..., None, None]
    logits = log_w - 0.5 * z * z
    logits = logits - xp.max(logits, axis=-1, keepdims=True)
    node_w = xp.exp(logits)
    node_w = node_w / xp.sum(node_w, axis=-1, keepdims=True)
    # Conditional x distribution at each node: mean mx + slope (y - my)
    mx_q = mx[..., None, None] + slope[..., None, None] * (y_q - my[..., None, None])
    cdf_x = _normal_cdf((x_edges - mx_q[..., None]) / sx_cond[..., None, None, None])
    cols = cdf_x[..., 1:] - cdf_x[..., :-1]  # (*batch, ny, q, nx)
    within = xp.sum(cols * node_w[..., None], axis=-2)  # (*batch, ny, nx)
    return within * row_mass[..., None]


def gaussian_transmission(
    beam: ParameterBeam,
    *,
    shape: str = "rectangular",
    x_limit: Any = 0.0,
    y_limit: Any = 0.0,
    smooth: Any = 0.0,
    **misalignment: Unpack[Misalignment],
) -> Any:
    """Approximate fraction of a moment beam inside an aperture's opening, ``(*batch)``.

    Rectangular: ``P(|x| < x_limit) P(|y| < y_limit)`` from the marginals in the
    aperture frame (exact for a beam without x-y correlation there). Elliptical:
    ``1 - exp(-1 / (2 s^2))`` with ``s^2`` half the mean of ``(x/x_limit)^2 +
    (y/y_limit)^2`` (exact for a round centred beam in normalised coordinates). A limit
    of 0 means no limit in that plane. ``smooth`` (the particles' softness length) is
    accepted and ignored: the Gaussian integral is smooth already. Differentiable.
    """
    check_shape(shape)
    xp = beam.xp
    like = beam.mean
    mean, cov = transverse_moments(beam, **misalignment)
    limits = [as_nonnegative_parameter(v, like, k) for k, v in
              (("x_limit", x_limit), ("y_limit", y_limit))]
    active = [not (isinstance(v, numbers.Real) and v == 0) for v in (x_limit, y_limit)]
    one = xp.ones_like(mean[..., 0])
    if shape == "elliptical" and all(active):
        ms = sum((cov[..., i, i] + mean[..., i] ** 2) / limits[i] ** 2 for i in range(2))
        s2 = xp.clip(0.5 * ms, min=_TINY_VARIANCE)
        return 1.0 - xp.exp(-0.5 / s2)
    out = one
    for i in range(2):
        if not active[i]:
            continue
        sigma = xp.sqrt(xp.clip(cov[..., i, i], min=_TINY_VARIANCE))
        limit = limits[i]
        out = out * (_normal_cdf((limit - mean[..., i]) / sigma)
                     - _normal_cdf((-limit - mean[..., i]) / sigma))
    return out
