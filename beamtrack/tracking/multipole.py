"""Straight multipoles: Bmad's "bmad_standard" kick-drift-kick body and the thin multipole.

A multipole kicks ``dpx - i dpy = -sum_n (K_nL + i K_nSL) (x + i y)^n / n!`` (not
divided by ``1 + pz``). Sextupoles, octupoles, thick multipoles and the correctors of
:mod:`~beamtrack.tracking.kicker` share one body (Bmad's ``track_a_thick_multipole``):
a half kick, then ``num_steps`` times [exact drift of ``L / num_steps``, kick], the last
kick again a half kick. The thin :func:`track_multipole` is one full kick whose dipole
terms bend the reference orbit (a zero-length bend). The ``"linear"`` and
``"second_order"`` maps are the Taylor maps of these bodies (stepping framework).

Multipole strengths ``knl`` and ``ksl`` are given order by order: a tuple or list whose
entry ``n`` is ``K_nL`` (resp. ``K_nSL``) as a Python number or an array of shape
``(*batch)``, or one array whose FIRST axis runs over the orders (shape ``(N,)`` or
``(N, *batch)``). The two may have different lengths (missing orders are zero). The
number of orders sets the polynomial degree, so it is static (a shape, never a traced
value).

Physics: docs/physics/multipoles.md (kick and skew conventions, the zero-length bend,
the body splitting, the correctors; Bmad manual references).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import array_api_compat

from beamtrack.tracking import frames
from beamtrack.tracking.drift import exact_drift
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.frames import from_element_frame, to_element_frame
from beamtrack.tracking.parameters import as_nonnegative_parameter
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.stepping import (
    Body,
    Build,
    Six,
    Step,
    check_num_steps,
    checked,
    physical,
    prepare,
    track_element,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from beamtrack.tracking.frames import Misalignment

#: A kick ``(six, weight) -> six``; ``weight`` is the fraction of the integrated strength.
Kick = Callable[[Six, float], Six]
#: An element's kick from its parameters (arrays or jets of shape ``(*batch, 1)``).
KickOf = Callable[[dict[str, Any]], Kick]


# -- the kick ------------------------------------------------------------------------------


def _horner(x: Any, y: Any, knl: list[Any], ksl: list[Any]) -> tuple[Any, Any]:
    """``(Re S, Im S)`` of ``S(w) = sum_n c_n w^n``, ``w = x + i y``, ``c_n = (knl + i ksl)/n!``.

    Horner's rule on the complex polynomial in real arithmetic; entries that are
    ``None`` (absent orders) are skipped rather than multiplied by zero.
    """
    sr = si = 0.0 * (x + y)
    for n in range(max(len(knl), len(ksl)) - 1, -1, -1):
        a = knl[n] if n < len(knl) else None
        b = ksl[n] if n < len(ksl) else None
        sr, si = sr * x - si * y, sr * y + si * x
        if a is not None:
            sr = sr + a / math.factorial(n)
        if b is not None:
            si = si + b / math.factorial(n)
    return sr, si


def multipole_kick(x: Any, y: Any, knl: Any, ksl: Any = ()) -> tuple[Any, Any]:
    """Transverse kick ``(dpx, dpy)`` of thin multipoles at positions ``(x, y)`` [m].

    ``dpx - i dpy = -sum_n (knl[n] + i ksl[n]) (x + i y)^n / n!`` (Bmad and MAD-X
    convention, see docs/physics/multipoles.md), evaluated with Horner's rule on the
    complex polynomial. Not divided by ``1 + pz``; strengths are integrated
    (``K_nL`` [m^-n]).

    Parameters
    ----------
    x, y
        Positions [m] in the multipole's frame; arrays (or jets) that broadcast
        together.
    knl, ksl
        Sequences of integrated normal and skew strengths, entry ``n`` of order ``n``:
        arrays (or numbers) broadcasting against ``x``. Either may be shorter or empty.

    Returns
    -------
    (dpx, dpy)
        Changes of ``px = P_x/P0`` and ``py = P_y/P0``.
    """
    sr, si = _horner(x, y, list(knl), list(ksl))
    return -sr, si


def _multipole_kick(knl: list[Any], ksl: list[Any]) -> Kick:
    """The kick of strengths ``knl``, ``ksl`` (``None`` entries: absent orders)."""

    def kick(six: Six, weight: float) -> Six:
        x, px, y, py, z, pz = six
        sr, si = _horner(x, y, [None if k is None else k * weight for k in knl],
                         [None if k is None else k * weight for k in ksl])
        return (x, px - sr, y, py + si, z, pz)

    return kick


# -- the kick-drift-kick body ----------------------------------------------------------------


def _kick_weights(num_steps: int) -> list[float]:
    """Fraction of the integrated strength after each of the ``num_steps`` drifts."""
    return [1.0 / num_steps] * (num_steps - 1) + [0.5 / num_steps]


def kick_drift_kick_body(num_steps: int, kick_of: KickOf) -> Build:
    """Bmad's thick-multipole body (``track_a_thick_multipole``) as a
    :class:`~beamtrack.tracking.stepping.Body`.

    A half kick, then ``num_steps`` times [exact drift of ``length / num_steps``, kick],
    the last kick again a half kick, in the frame of ``x_offset, y_offset, tilt``. A
    particle whose transverse momentum reaches its total momentum after a kick is lost
    and keeps the coordinates it had before that kick's step (drift and kick).
    """

    def build(p: dict[str, Any], p0c: Any, mc2: Any) -> Body:
        kick = kick_of(p)
        step_length = p["length"] / num_steps

        def slice_(weight: float) -> Step:
            return checked(lambda six: kick(exact_drift(six, step_length, p0c, mc2), weight))

        steps = [checked(lambda six: kick(six, 0.5 / num_steps))]
        steps += [slice_(weight) for weight in _kick_weights(num_steps)]
        return Body(steps, offsets=(p["x_offset"], p["y_offset"], p["tilt"]))

    return build


def track_kick_drift_kick(particles: Particles, element: str, method: str, num_steps: Any,
                          kick_of: KickOf, misalignment: Mapping[str, Any],
                          **params: Any) -> Particles:
    """Track through a kick-drift-kick element (:func:`kick_drift_kick_body`).

    ``element`` labels errors; ``misalignment`` holds the misalignment keywords given
    to the tracking function (checked by :func:`~beamtrack.tracking.frames.misalignment`)
    and ``params`` the element's other parameters (``length`` and those ``kick_of``
    reads); all are validated and converted by
    :func:`~beamtrack.tracking.stepping.prepare`.
    """
    num_steps = check_num_steps(num_steps, element)
    p = prepare(particles, element, method, **params,
                **frames.misalignment(misalignment, element))
    return track_element(particles, kick_drift_kick_body(num_steps, kick_of), p,
                         length=p["length"], method=method)


def _normal(order: int, name: str) -> KickOf:
    """Kick of a normal multipole of ``order`` with strength ``p[name] * p["length"]``."""
    return lambda p: _multipole_kick([None] * order + [p[name] * p["length"]], [])


# -- strengths order by order ---------------------------------------------------------------


def _orders(value: Any, name: str, element: str) -> dict[str, Any]:
    """Strengths ``knl`` / ``ksl`` as parameters named ``name[n]`` (order ``n``).

    ``value`` is a tuple or list (entry ``n`` is order ``n``) or one array whose first
    axis runs over the orders; anything else is refused (the entries themselves are
    checked by :func:`~beamtrack.tracking.stepping.prepare`).
    """
    is_array = array_api_compat.is_array_api_obj(value)
    if isinstance(value, (tuple, list)):
        entries = list(value)
    elif is_array and value.ndim > 0:
        entries = [value[i, ...] for i in range(value.shape[0])]
    else:
        got = "a 0-d array" if is_array else f"{type(value).__name__} {value!r}"
        raise ParameterError(
            f"parameter {name!r} must be a sequence of strengths, one per order (e.g. "
            "(0.0, 0.0, 1.2) for K2L = 1.2), or an array whose first axis runs over the "
            f"orders; got {got}", element=element)
    return {f"{name}[{n}]": v for n, v in enumerate(entries)}


def _strengths(p: dict[str, Any], name: str, count: int) -> list[Any]:
    return [p[f"{name}[{n}]"] for n in range(count)]


def _thick_multipole(n_normal: int, n_skew: int) -> KickOf:
    return lambda p: _multipole_kick(_strengths(p, "knl", n_normal),
                                     _strengths(p, "ksl", n_skew))


def _thin_multipole_body(n_normal: int, n_skew: int) -> Build:
    """The thin multipole: one kick, its dipole terms a zero-length bend
    (``dpx = K0L pz``, ``dpy = -K0SL pz``, ``dz = -K0L x + K0SL y``), plus the curvature
    terms of a reference of length ``ref_length`` (through the parameters ``h_x =
    K0L/ref_length`` and ``h_y = K0SL/ref_length``, zero without it)::

        dpx += -h_x K0L x + h_x K1L (y^2/2 - x^2) + h_y K1L x y
        dpy += -h_y K0SL y + h_x K1L x y + h_y K1L (x^2/2 - y^2)

    The frame change is part of the step, so a particle lost at the kick keeps its
    incoming laboratory coordinates exactly.
    """

    def build(p: dict[str, Any], p0c: Any, mc2: Any) -> Body:
        knl, ksl = _strengths(p, "knl", n_normal), _strengths(p, "ksl", n_skew)
        k0n, k0s = (knl or [None])[0], (ksl or [None])[0]
        k1n = knl[1] if n_normal > 1 else None
        kick = _multipole_kick([None, *knl[1:]] if knl else [], [None, *ksl[1:]] if ksl else [])
        offsets = (p["x_offset"], p["y_offset"], p["tilt"])
        h_x, h_y = p.get("h_x"), p.get("h_y")

        def step(six: Six) -> tuple[Six, Any]:
            x0, _, y0, _, _, _ = inside = to_element_frame(six, *offsets)
            x, px, y, py, z, pz = kick(inside, 1.0)
            if k0n is not None:
                px, z = px + k0n * pz, z - k0n * x
                if h_x is not None:
                    px = px - h_x * k0n * x0
                    if k1n is not None:
                        px = px + h_x * k1n * (0.5 * y0 * y0 - x0 * x0)
                        py = py + h_x * k1n * x0 * y0
            if k0s is not None:
                py, z = py - k0s * pz, z + k0s * y
                if h_y is not None:
                    py = py - h_y * k0s * y0
                    if k1n is not None:
                        px = px + h_y * k1n * x0 * y0
                        py = py + h_y * k1n * (0.5 * x0 * x0 - y0 * y0)
            inside = (x, px, y, py, z, pz)
            return from_element_frame(inside, *offsets), physical(inside)

        return Body([step])

    return build


def _curvature(strength: Any, ref_length: Any) -> Any:
    """``strength / ref_length`` where ``ref_length != 0``, else 0 (values and
    derivatives: the division only ever sees a nonzero denominator)."""
    xp = array_api_compat.array_namespace(strength, ref_length)
    curved = ref_length != 0.0
    safe = xp.where(curved, ref_length, xp.ones_like(ref_length))
    return xp.where(curved, strength / safe, xp.zeros_like(strength / safe))


# -- elements --------------------------------------------------------------------------------


def track_sextupole(particles: Particles, *, length: Any, k2: Any, num_steps: int = 1,
                    method: str = "bmad", **misalignment: Unpack[Misalignment]) -> Particles:
    """Track through a sextupole (Bmad ``sextupole``, "bmad_standard" tracking).

    Its kick is quadratic in the position, so an aligned sextupole is a drift to first
    order (chromatic correction at second order); off axis it feeds down.

    Parameters
    ----------
    particles
        Incoming particles (any backend).
    length
        Length [m]; zero gives a thin sextupole kick of ``K2L = k2 * length`` (zero).
    k2
        Normalised strength ``K2 = (d^2 B_y/dx^2) / (B rho)`` [1/m^3]. The integrated
        kick is ``dpx = -K2 L (x^2 - y^2)/2``, ``dpy = K2 L x y`` (not divided by
        ``1 + pz``). Any sign, and zero.
    num_steps
        Number of kick-drift-kick slices; the body converges as ``1/num_steps^2``.
    method
        ``"bmad"``: half kick, ``num_steps`` x (exact drift, kick), last kick a half
        kick (Bmad's ``track_a_thick_multipole``). ``"linear"``: exact first-order map
        of the ``"bmad"`` map about the laboratory reference orbit (a drift for an
        aligned sextupole; offsets add the feed-down quadrupole terms and a constant).
        ``"second_order"``: its second-order Taylor map there.
    **misalignment
        ``tilt`` [rad], ``x_offset``, ``y_offset`` [m] of the magnet
        (:class:`~beamtrack.tracking.frames.Misalignment`; 0 by default).
        ``tilt = pi/6`` gives a skew sextupole with ``K2SL = -K2 L``; offsets feed down
        (an offset sextupole acts as a quadrupole plus a dipole kick on the reference
        orbit).

    Returns
    -------
    Particles
        Outgoing particles, ``s`` advanced by ``length``. Every parameter may have batch
        shape ``(*batch)``, broadcast against particles of shape ``(*batch, n)``.
    """
    return track_kick_drift_kick(particles, "sextupole", method, num_steps, _normal(2, "k2"),
                                 misalignment, length=length, k2=k2)


def track_octupole(particles: Particles, *, length: Any, k3: Any, num_steps: int = 1,
                   method: str = "bmad", **misalignment: Unpack[Misalignment]) -> Particles:
    """Track through an octupole (Bmad ``octupole``, "bmad_standard" tracking).

    Its kick is cubic in the position (an amplitude-dependent tune shift).

    Parameters
    ----------
    particles
        Incoming particles (any backend).
    length
        Length [m] over which the kick ``K3 L`` is spread.
    k3
        Normalised strength ``K3 = (d^3 B_y/dx^3) / (B rho)`` [1/m^4]. The integrated
        kick is ``dpx = -K3 L (x^3 - 3 x y^2)/6``, ``dpy = K3 L (3 x^2 y - y^3)/6``.
    num_steps
        Number of kick-drift-kick slices.
    method
        ``"bmad"``, ``"linear"`` or ``"second_order"``, as for :func:`track_sextupole`.
    **misalignment
        ``tilt`` [rad], ``x_offset``, ``y_offset`` [m] of the magnet
        (:class:`~beamtrack.tracking.frames.Misalignment`; 0 by default);
        ``tilt = pi/8`` gives a skew octupole with ``K3SL = -K3 L``.

    Returns
    -------
    Particles
        Outgoing particles, ``s`` advanced by ``length``.
    """
    return track_kick_drift_kick(particles, "octupole", method, num_steps, _normal(3, "k3"),
                                 misalignment, length=length, k3=k3)


def track_thick_multipole(particles: Particles, *, length: Any, knl: Any = (), ksl: Any = (),
                          num_steps: int = 1, method: str = "bmad",
                          **misalignment: Unpack[Misalignment]) -> Particles:
    """Track through a straight thick multipole (Bmad ``thick_multipole``).

    Any number of normal and skew orders in one kick-drift-kick body.

    Parameters
    ----------
    particles
        Incoming particles (any backend).
    length
        Length [m] over which the integrated strengths are spread.
    knl, ksl
        Integrated normal and skew strengths ``K_nL``, ``K_nSL`` [m^-n] over the whole
        length, order by order (see the module docstring for the accepted forms). The
        kick is ``dpx - i dpy = -sum (K_nL + i K_nSL)(x + i y)^n / n!`` spread over the
        body; a dipole term is a plain kick (``dpx = -K0L``).
    num_steps
        Number of kick-drift-kick slices.
    method
        ``"bmad"``, ``"linear"`` or ``"second_order"``, as for :func:`track_sextupole`.
    **misalignment
        ``tilt`` [rad], ``x_offset``, ``y_offset`` [m] of the whole magnet
        (:class:`~beamtrack.tracking.frames.Misalignment`; 0 by default); with an
        offset each order feeds down to the lower ones.

    Returns
    -------
    Particles
        Outgoing particles, ``s`` advanced by ``length``. Parameters may have batch
        shape ``(*batch)``; an array ``knl`` or ``ksl`` has it after its order axis.
    """
    element = "thick_multipole"
    normal, skew = _orders(knl, "knl", element), _orders(ksl, "ksl", element)
    return track_kick_drift_kick(particles, element, method, num_steps,
                                 _thick_multipole(len(normal), len(skew)), misalignment,
                                 length=length, **normal, **skew)


def track_multipole(particles: Particles, *, knl: Any = (), ksl: Any = (),
                    ref_length: Any = 0.0, method: str = "bmad",
                    **misalignment: Unpack[Misalignment]) -> Particles:
    """Track through a thin multipole (Bmad ``multipole``, MAD-X ``MULTIPOLE``).

    Zero length: one kick, ``s`` unchanged.

    Parameters
    ----------
    particles
        Incoming particles (any backend).
    knl, ksl
        Integrated normal and skew strengths ``K_nL``, ``K_nSL`` [m^-n], order by order
        (see the module docstring for the accepted forms). Orders ``n >= 1`` kick with
        ``dpx - i dpy = -sum (K_nL + i K_nSL)(x + i y)^n / n!``. The dipole terms
        ``K0L``, ``K0SL`` are a zero-length bend of the reference orbit (Bmad's
        ``ref_orb_offset``, MAD-X convention): ``dpx = K0L pz``, ``dpy = -K0SL pz``,
        ``dz = -K0L x + K0SL y``; the reference particle is not deflected.
    ref_length
        Length [m] of the curved reference orbit the multipole stands for (MAD-X
        ``lrad``, Xsuite ``Multipole.length`` with ``hxl = K0L``): a slice of a bend.
        The dipole terms then bend the reference with curvature ``h_x = K0L/ref_length``
        (``h_y = K0SL/ref_length``), which adds the curvature terms of the field:
        weak focusing ``dpx -= h_x K0L x``, ``dpy -= h_y K0SL y`` (MAD-X's
        ``-K0L^2/lrad``) and, with ``K1L``, ``dpx += h_x K1L (y^2/2 - x^2) + h_y K1L x y``,
        ``dpy += h_x K1L x y + h_y K1L (x^2/2 - y^2)`` (Xsuite, MAD-8). Positions are
        those before the kick. 0 (default): no curvature terms. A number >= 0.
    method
        ``"bmad"``: the thin kick. ``"linear"``: its exact first-order map about the
        laboratory reference orbit (feed-down of offsets included).
        ``"second_order"``: its second-order Taylor map there.
    **misalignment
        ``tilt`` [rad], ``x_offset``, ``y_offset`` [m] of the whole multipole
        (:class:`~beamtrack.tracking.frames.Misalignment`; 0 by default).

    Returns
    -------
    Particles
        Outgoing particles; ``s`` is unchanged (zero length). Particles whose
        transverse momentum reaches their total momentum after the kick are lost and
        keep their incoming coordinates.
    """
    element = "multipole"
    normal, skew = _orders(knl, "knl", element), _orders(ksl, "ksl", element)
    p = prepare(particles, element, method, **frames.misalignment(misalignment, element),
                **normal, **skew,
                ref_length=as_nonnegative_parameter(ref_length, particles.coords, "ref_length",
                                                    element))
    ref = p.pop("ref_length")
    if normal:
        p["h_x"] = _curvature(p["knl[0]"], ref)
    if skew:
        p["h_y"] = _curvature(p["ksl[0]"], ref)
    return track_element(particles, _thin_multipole_body(len(normal), len(skew)), p,
                         length=0.0 * p["tilt"], method=method)
