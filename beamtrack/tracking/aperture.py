"""Apertures: Bmad's rectangular and elliptical limits, hard cut and smooth weight.

A standalone aperture is a zero-length element (Bmad checks an element's aperture at
its edges; here the check is an element of its own). Bmad's limit parameters
``x1_limit, x2_limit, y1_limit, y2_limit`` are used in their symmetric form: the
half-widths ``x_limit`` and ``y_limit`` [m]. As in Bmad:

- a limit of zero means "no limit in that plane";
- rectangular: a particle is lost when ``|x| > x_limit`` or ``|y| > y_limit``
  (a particle exactly on the edge survives);
- elliptical: a particle is lost when ``(x/x_limit)^2 + (y/y_limit)^2 >= 1`` (a
  particle exactly on the ellipse is lost; Bmad's ``r < 1`` test); a zero limit drops
  that plane's term, which leaves a slit in the other plane;
- the aperture moves with its own offsets and tilt: the particle's ``(x, y)`` are
  taken into the aperture frame with :func:`~beamtrack.tracking.frames.to_element_frame`
  before the test.

Particles outside are marked lost (``alive`` cleared); their coordinates are those at
the aperture (a zero-length element changes no coordinate). The cut is the same for
the ``"bmad"`` and ``"linear"`` methods: an aperture is a test, not a map.

``Particles.alive`` is boolean, so the cut has no gradient. For optimisation,
:func:`aperture_weight` (and :func:`aperture_factor`) give a differentiable survival
weight in ``[0, 1]``: a logistic step of width ``smooth`` [m] across the boundary,
0.5 on it. Multiply it into a loss, or use :meth:`Beamline.observe
<beamtrack.lattice.beamline.Beamline.observe>`, which multiplies the factors of all
apertures along a beamline into ``Observation.weight``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import array_api_compat

from beamtrack.tracking import frames
from beamtrack.tracking.drift import track_drift
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.frames import frame_positions
from beamtrack.tracking.losses import finite
from beamtrack.tracking.parameters import as_nonnegative_parameter, per_particle
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.stepping import check_method

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from beamtrack.tracking.frames import Misalignment

#: Aperture shapes.
APERTURE_SHAPES = ("rectangular", "elliptical")

#: Normalised coordinates ``x / x_limit`` are clipped to this size in the smooth
#: elliptical weight, so that nothing overflows for absurd coordinates (the weight is
#: already zero to all digits far before).
_CLIP = 1.0e6


def check_shape(shape: Any, element: str = "aperture") -> str:
    """Validate an aperture shape name."""
    if not isinstance(shape, str) or shape not in APERTURE_SHAPES:
        raise ParameterError(
            f"parameter 'shape' must be one of {', '.join(APERTURE_SHAPES)}, got {shape!r}",
            element=element,
        )
    return shape


def _inside(xp: Any, shape: str, u: Any, v: Any, a: Any, b: Any) -> Any:
    """Hard test of aperture-frame positions against half-widths ``a``, ``b`` (0: none)."""
    if shape == "rectangular":
        in_x = (a == 0.0) | ((u <= a) & (u >= -a))
        in_y = (b == 0.0) | ((v <= b) & (v >= -b))
        return in_x & in_y
    one = xp.ones_like(a)
    zero = xp.zeros_like(u)
    tx = xp.clip(xp.where(a > 0.0, u / xp.where(a > 0.0, a, one), zero), min=-_CLIP, max=_CLIP)
    ty = xp.clip(xp.where(b > 0.0, v / xp.where(b > 0.0, b, one), zero), min=-_CLIP, max=_CLIP)
    return tx * tx + ty * ty < 1.0


def _logistic(t: Any) -> Any:
    """``1 / (1 + exp(-t))``, accurate to rounding in both tails, never overflowing.

    With ``e = exp(-|t|) <= 1``: ``1/(1+e)`` for ``t >= 0`` and ``e/(1+e)`` below. The
    ``|t|`` is a ``where`` so that the derivative at ``t = 0`` is right (1/4).
    """
    xp = array_api_compat.array_namespace(t)
    positive = t >= 0.0
    e = xp.exp(xp.where(positive, -t, t))
    return xp.where(positive, 1.0, e) / (1.0 + e)


def _soft(xp: Any, shape: str, u: Any, v: Any, a: Any, b: Any, width: Any) -> Any:
    """Smooth survival factor of width ``width`` > 0 (the caller guards zero)."""
    one = xp.ones_like(a)
    has_a, has_b = a > 0.0, b > 0.0
    if shape == "rectangular":
        wx = _logistic((a - u) / width) * _logistic((a + u) / width)
        wy = _logistic((b - v) / width) * _logistic((b + v) / width)
        return xp.where(has_a, wx, xp.ones_like(wx)) * xp.where(has_b, wy, xp.ones_like(wy))
    # Elliptical: f = (u/a)^2 + (v/b)^2; the margin (1 - f) / |grad f| is the signed
    # distance to the ellipse to first order (positive inside). |grad f| / 2 is floored
    # at half its smallest value on the ellipse, so the margin stays finite at the centre.
    safe_a, safe_b = xp.where(has_a, a, one), xp.where(has_b, b, one)
    zero_u, zero_v = xp.zeros_like(u), xp.zeros_like(v)
    un = xp.clip(xp.where(has_a, u / safe_a, zero_u), min=-_CLIP, max=_CLIP)
    vn = xp.clip(xp.where(has_b, v / safe_b, zero_v), min=-_CLIP, max=_CLIP)
    ia = xp.where(has_a, 1.0 / (safe_a * safe_a), 0.0 * one)
    ib = xp.where(has_b, 1.0 / (safe_b * safe_b), 0.0 * one)
    smallest = xp.where(has_a & has_b, xp.minimum(ia, ib), ia + ib)
    floor = xp.where(has_a | has_b, 0.25 * smallest, one)
    g = xp.sqrt(xp.maximum(un * un * ia + vn * vn * ib, floor))
    margin = (1.0 - (un * un + vn * vn)) / (2.0 * g)
    weight = _logistic(margin / width)
    return xp.where(has_a | has_b, weight, xp.ones_like(weight))


def inside_aperture(
    particles: Particles,
    *,
    shape: str = "rectangular",
    x_limit: Any = 0.0,
    y_limit: Any = 0.0,
    **misalignment: Unpack[Misalignment],
) -> Any:
    """Boolean mask of the particles inside the aperture, shape ``(*batch, n)``.

    Geometry only: the particles' ``alive`` flags are not looked at. Parameters as in
    :func:`track_aperture`.
    """
    check_shape(shape)
    c = particles.coords
    a = per_particle(as_nonnegative_parameter(x_limit, c, "x_limit"))
    b = per_particle(as_nonnegative_parameter(y_limit, c, "y_limit"))
    u, v = frame_positions(particles, **frames.misalignment(misalignment, "aperture"))
    return _inside(particles.xp, shape, u, v, a, b)


def aperture_factor(
    particles: Particles,
    *,
    shape: str = "rectangular",
    x_limit: Any = 0.0,
    y_limit: Any = 0.0,
    smooth: Any = 0.0,
    **misalignment: Unpack[Misalignment],
) -> Any:
    """Differentiable survival factor in ``[0, 1]`` of each particle, ``(*batch, n)``.

    Geometry only (``alive`` is not looked at; :func:`aperture_weight` includes it).

    - ``smooth > 0``: rectangular apertures give
      ``s((a - x)/w) s((a + x)/w) s((b - y)/w) s((b + y)/w)`` with the logistic
      function ``s(t) = 1/(1 + exp(-t))``, half-widths ``a = x_limit``,
      ``b = y_limit`` and ``w = smooth``; elliptical apertures give ``s(d/w)`` with
      ``d = (1 - f) / |grad f|``, ``f = (x/a)^2 + (y/b)^2``: the signed distance to the
      ellipse to first order (0.5 on the boundary, positive distance inside). A zero
      limit contributes a factor 1.
    - ``smooth = 0``: the hard test as a 0/1 float (the same as the cut of
      :func:`track_aperture`).

    ``smooth`` may be an array of shape ``(*batch)``; zero and positive entries mix.
    """
    check_shape(shape)
    c = particles.coords
    xp = particles.xp
    a = per_particle(as_nonnegative_parameter(x_limit, c, "x_limit"))
    b = per_particle(as_nonnegative_parameter(y_limit, c, "y_limit"))
    w = per_particle(as_nonnegative_parameter(smooth, c, "smooth"))
    u, v = frame_positions(particles, **frames.misalignment(misalignment, "aperture"))
    hard = xp.astype(_inside(xp, shape, u, v, a, b), c.dtype)
    soft = _soft(xp, shape, u, v, a, b, xp.where(w > 0.0, w, xp.ones_like(w)))
    return xp.where(w > 0.0, soft, hard)


def aperture_weight(particles: Particles, **params: Any) -> Any:
    """Differentiable survival weight of particles arriving at an aperture, ``(*batch, n)``.

    :func:`aperture_factor` (whose keyword parameters ``shape, x_limit, y_limit,
    x_offset, y_offset, tilt, smooth`` it takes) times the particles' ``alive`` flags:
    0 for particles lost before the aperture, the smooth factor for the others. ``sum(weight)`` is a
    differentiable stand-in for the number of particles the aperture transmits.

    Examples
    --------
    >>> import numpy as np
    >>> from beamtrack import Particles, electron
    >>> p = Particles(np.array([0.0, 0.01]), *np.zeros((5, 2)), p0c=1e9, mc2=electron.mc2)
    >>> w = aperture_weight(p, x_limit=0.01, smooth=1e-4)
    >>> [round(float(v), 3) for v in w]
    [1.0, 0.5]
    """
    factor = aperture_factor(particles, **params)
    xp = particles.xp
    return factor * xp.astype(particles.alive, factor.dtype)


def track_aperture(
    particles: Particles,
    *,
    shape: str = "rectangular",
    x_limit: Any = 0.0,
    y_limit: Any = 0.0,
    smooth: Any = 0.0,
    method: str = "bmad",
    **misalignment: Unpack[Misalignment],
) -> Particles:
    """Pass particles through a zero-length aperture; those outside are lost.

    Parameters
    ----------
    particles
        Incoming particles (any backend).
    shape
        ``"rectangular"`` or ``"elliptical"``.
    x_limit, y_limit
        Half-widths [m] (Bmad's symmetric ``x1_limit = x2_limit``, ...); zero means no
        limit in that plane. Numbers or arrays of shape ``(*batch)``.
    smooth
        Softness length [m] of the differentiable weight of :func:`aperture_weight`.
        It does not change the cut: ``alive`` is boolean and the cut is always hard.
    method
        ``"bmad"``, ``"linear"`` or ``"second_order"``: all cut the same way.
    **misalignment
        ``tilt`` [rad], ``x_offset``, ``y_offset`` [m] of the aperture
        (:class:`~beamtrack.tracking.frames.Misalignment`; 0 by default).

    Returns
    -------
    Particles
        The same coordinates and ``s``; ``alive`` cleared for particles outside.
    """
    check_method(method, "aperture")
    c = particles.coords
    as_nonnegative_parameter(smooth, c, "smooth")
    inside = inside_aperture(particles, shape=shape, x_limit=x_limit, y_limit=y_limit,
                             **misalignment)
    xp = particles.xp
    # A non-finite coordinate is no position inside: lost here (a NaN compares False,
    # but a plane without limit would let it through).
    alive = particles.alive & inside & finite(c)
    coords = c
    if tuple(alive.shape[:-1]) != tuple(c.shape[:-2]):
        coords = xp.broadcast_to(c, tuple(alive.shape[:-1]) + tuple(c.shape[-2:]))
    return Particles.from_fields(coords, particles.s, particles.p0c, particles.mc2, alive,
                                 charge=particles.charge, weight=particles.explicit_weight)


def track_collimator(particles: Particles, *, length: Any, method: str = "bmad",
                     **opening: Any) -> Particles:
    """Track through a collimator: a field-free drift whose aperture is checked at its
    exit (Bmad ``rcollimator`` / ``ecollimator`` with the default
    ``aperture_at = exit_end``; MAD-X ``collimator`` with ``apertype``).

    Parameters
    ----------
    particles
        Incoming particles (any backend).
    length
        Length [m].
    method
        ``"bmad"`` (exact drift), ``"linear"`` or ``"second_order"`` (its Taylor maps);
        the exit cut is the same under every method.
    **opening
        The opening, as for :func:`track_aperture`: ``shape`` (``"rectangular"``, Bmad
        ``rcollimator``, or ``"elliptical"``, ``ecollimator``), half-widths ``x_limit``,
        ``y_limit`` [m] (zero: no limit in that plane), ``x_offset``, ``y_offset`` [m]
        and ``tilt`` [rad].

    Returns
    -------
    Particles
        Outgoing particles, ``s`` advanced by ``length``; particles outside the opening
        at the exit are lost with their exit coordinates.
    """
    check_method(method, "collimator")
    try:
        out = track_drift(particles, length=length, method=method)
        return track_aperture(out, method=method, **opening)
    except ParameterError as exc:
        raise exc.for_element("collimator") from exc
