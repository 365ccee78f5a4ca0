"""Straight multipoles: Bmad's "bmad_standard" kick-drift-kick body and its first-order map.

Conventions (Bmad manual, "Magnetic Multipoles"; Bmad ``ab_multipole_kick``)
--------------------------------------------------------------------------------
A multipole of order ``n`` (0 dipole, 1 quadrupole, 2 sextupole, 3 octupole, ...) with
integrated normal strength ``K_nL`` and skew strength ``K_nSL`` [m^-n] (the field
derivative ``d^n B_y / dx^n`` times the length over ``B rho``) gives a particle at
``(x, y)`` the transverse kick

    ``dpx - i dpy = -sum_n (K_nL + i K_nSL) (x + i y)^n / n!``

on ``px = P_x/P0`` and ``py = P_y/P0``. The kick is NOT divided by ``1 + pz``: it is a
change of transverse momentum, so its angle ``dpx / (1+pz)`` scales as ``1/(1+pz)``
(chromatic). A positive ``K1L`` focuses horizontally (``dpx = -K1L x``); a sextupole
gives ``dpx = -K2L (x^2 - y^2)/2``, ``dpy = K2L x y``. Skew components follow MAD-X and
Bmad: ``K1SL`` alone gives ``dpx = K1SL y``, ``dpy = K1SL x``; rotating a normal
multipole of order ``n`` by ``tilt = pi / (2 (n+1))`` gives a skew one with
``K_nSL = -K_nL`` (as in MAD-X: "TILT = pi/4 turns a positive normal quadrupole into a
negative skew quadrupole").

Body tracking (Bmad ``track_a_thick_multipole``, used by Bmad for sextupoles,
octupoles, thick multipoles and kickers): entrance misalignment, a half kick with
``1/(2 N)`` of the integrated strength, then ``N`` times [exact drift of ``L/N``, kick
with ``1/N``] where the last kick is again a half kick, exit misalignment. This is the
symmetric (second-order, symplectic) kick-drift-kick splitting; its error falls as
``1/N^2``. The drift is Bmad's exact drift
(:func:`~beamtrack.tracking.drift.exact_drift`), including the low-energy ``z`` term.

The thin :func:`track_multipole` (Bmad ``multipole`` element) applies one full kick.
Its dipole components ``K0L``, ``K0SL`` follow Bmad's zero-length-bend convention
(``ref_orb_offset``, as MAD-X): they bend the reference orbit, so the reference particle
is not deflected; an off-momentum particle gets ``dpx = K0L pz``, ``dpy = -K0SL pz`` and
its path length changes by ``dz = -K0L x + K0SL y``. In the thick elements
(:func:`track_thick_multipole`) a dipole component is a plain kick ``dpx = -K0L``.

Multipole strengths
-------------------
``knl`` and ``ksl`` are given order by order: a tuple or list whose entry ``n`` is
``K_nL`` (resp. ``K_nSL``) as a Python number or an array of shape ``(*batch)``, or one
array whose FIRST axis runs over the orders (shape ``(N,)`` or ``(N, *batch)``). The two
may have different lengths (missing orders are zero). The number of orders sets the
polynomial degree, so it is static (a shape, never a traced value).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import array_api_compat

from beamtrack.tracking.drift import exact_drift
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.frames import from_element_frame, to_element_frame
from beamtrack.tracking.kinematics import unphysical_momentum
from beamtrack.tracking.linear import apply_linear_map, matrix6, rotation_matrix
from beamtrack.tracking.parameters import as_parameter, per_particle
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.stepping import (
    Six,
    assemble,
    check_method,
    check_num_steps,
    freeze,
    safe,
)

# -- the kick ------------------------------------------------------------------------------


def _horner(x: Any, y: Any, knl: list[Any], ksl: list[Any], derivative: bool) -> tuple[Any, ...]:
    """``S(w) = sum_n c_n w^n`` (and ``S'(w)``) for ``w = x + i y``, ``c_n = (knl + i ksl)/n!``.

    Horner's rule on the complex polynomial in real arithmetic. Entries that are
    ``None`` (absent orders) are skipped rather than multiplied by zero. Returns
    ``(Sr, Si)``, or ``(Sr, Si, Gr, Gi)`` with ``G = S'`` when ``derivative``.
    """
    xp = array_api_compat.array_namespace(x, y)
    zero = xp.zeros_like(x + y)
    sr, si, gr, gi = zero, zero, zero, zero
    for n in range(max(len(knl), len(ksl)) - 1, -1, -1):
        a = knl[n] if n < len(knl) else None
        b = ksl[n] if n < len(ksl) else None
        if derivative:
            # G <- G w + S, with S the value before this order's update.
            gr, gi = gr * x - gi * y + sr, gr * y + gi * x + si
        sr, si = sr * x - si * y, sr * y + si * x
        if a is not None:
            sr = sr + a / math.factorial(n)
        if b is not None:
            si = si + b / math.factorial(n)
    return (sr, si, gr, gi) if derivative else (sr, si)


def multipole_kick(x: Any, y: Any, knl: Any, ksl: Any = ()) -> tuple[Any, Any]:
    """Transverse kick ``(dpx, dpy)`` of thin multipoles at positions ``(x, y)`` [m].

    ``dpx - i dpy = -sum_n (knl[n] + i ksl[n]) (x + i y)^n / n!`` (Bmad and MAD-X
    convention, see the module docstring), evaluated with Horner's rule on the complex
    polynomial. Not divided by ``1 + pz``; strengths are integrated (``K_nL`` [m^-n]).

    Parameters
    ----------
    x, y
        Positions [m] in the multipole's frame; arrays that broadcast together.
    knl, ksl
        Sequences of integrated normal and skew strengths, entry ``n`` of order ``n``:
        arrays (or numbers) broadcasting against ``x``. Either may be shorter or empty.

    Returns
    -------
    (dpx, dpy)
        Changes of ``px = P_x/P0`` and ``py = P_y/P0``.
    """
    sr, si = _horner(x, y, list(knl), list(ksl), derivative=False)
    return -sr, si


def multipole_kick_jacobian(
    x: Any, y: Any, knl: Any, ksl: Any = ()
) -> tuple[Any, Any, Any, Any]:
    """Derivatives ``(d dpx/dx, d dpx/dy, d dpy/dx, d dpy/dy)`` of :func:`multipole_kick`.

    With ``dpx - i dpy = -S(w)``, ``w = x + i y`` and ``S' = dS/dw``:
    ``d dpx/dx = -Re S'``, ``d dpx/dy = d dpy/dx = Im S'``, ``d dpy/dy = Re S'``. The
    matrix is symmetric and traceless (a curl- and divergence-free field), so the kick
    is symplectic.
    """
    _, _, gr, gi = _horner(x, y, list(knl), list(ksl), derivative=True)
    return -gr, gi, gi, gr


# -- parameters ----------------------------------------------------------------------------


def _param(value: Any, like: Any, element: str, name: str) -> Any:
    """``as_parameter`` with the element kind in the error message."""
    try:
        return as_parameter(value, like, name)
    except ParameterError as exc:
        raise ParameterError(f"{element}: {exc}") from exc


def as_orders(value: Any, like: Any, element: str, name: str) -> list[Any]:
    """Multipole strengths ``knl`` / ``ksl`` as a list of arrays, one per order.

    Parameters
    ----------
    value
        A tuple or list of numbers or arrays (entry ``n`` is order ``n``), or one array
        whose first axis runs over the orders (shape ``(N,)`` or ``(N, *batch)``).
    like
        An array of the particles (namespace, dtype, device).
    element, name
        Element kind and parameter name, for error messages.

    Raises
    ------
    ParameterError
        For anything else (a number, a string, a 0-d array, entries that are not real
        numbers or arrays of the particles' library).
    """
    if isinstance(value, (tuple, list)):
        entries = list(value)
    elif array_api_compat.is_array_api_obj(value):
        if value.ndim == 0:
            raise ParameterError(
                f"{element}: parameter {name!r} must be a sequence of strengths, one per "
                "order, or an array whose first axis runs over the orders; got a 0-d array"
            )
        entries = [value[i, ...] for i in range(value.shape[0])]
    else:
        raise ParameterError(
            f"{element}: parameter {name!r} must be a sequence of strengths, one per order "
            f"(e.g. (0.0, 0.0, 1.2) for K2L = 1.2), or an array whose first axis runs over "
            f"the orders; got {type(value).__name__} {value!r}"
        )
    return [_param(v, like, element, f"{name}[{i}]") for i, v in enumerate(entries)]


# -- kick models -----------------------------------------------------------------------------


class MultipoleKick:
    """Kick of integrated multipole strengths, scaled by a fraction ``weight``.

    ``bend`` (thin ``Multipole`` only) replaces the order-0 kick by Bmad's zero-length
    bend of the reference orbit (``ref_orb_offset``): ``dpx = K0L pz``,
    ``dpy = -K0SL pz``, ``dz = -K0L x + K0SL y``.
    """

    def __init__(self, knl: list[Any], ksl: list[Any], bend: bool = False) -> None:
        self.bend = bend
        self.k0 = (knl[0] if knl else None, ksl[0] if ksl else None)
        if bend:
            knl = [None, *knl[1:]] if knl else []
            ksl = [None, *ksl[1:]] if ksl else []
        self.knl, self.ksl = knl, ksl

    def _scaled(self, weight: float) -> tuple[list[Any], list[Any]]:
        return ([None if k is None else k * weight for k in self.knl],
                [None if k is None else k * weight for k in self.ksl])

    def apply(self, six: Six, weight: float) -> Six:
        x, px, y, py, z, pz = six
        knl, ksl = self._scaled(weight)
        sr, si = _horner(x, y, knl, ksl, derivative=False)
        px, py = px - sr, py + si
        if self.bend:
            k0n, k0s = self.k0
            if k0n is not None:
                px = px + weight * k0n * pz
                z = z - weight * k0n * x
            if k0s is not None:
                py = py - weight * k0s * pz
                z = z + weight * k0s * y
        return (x, px, y, py, z, pz)

    def jacobian(self, six: Six, weight: float) -> dict[tuple[int, int], Any]:
        x, _, y, _, _, _ = six
        knl, ksl = self._scaled(weight)
        _, _, gr, gi = _horner(x, y, knl, ksl, derivative=True)
        entries = {(1, 0): -gr, (1, 2): gi, (3, 0): gi, (3, 2): gr}
        if self.bend:
            k0n, k0s = self.k0
            if k0n is not None:
                entries[(1, 5)] = weight * k0n
                entries[(4, 0)] = -weight * k0n
            if k0s is not None:
                entries[(3, 5)] = -weight * k0s
                entries[(4, 2)] = weight * k0s
        return entries


class DipoleKick:
    """Uniform kick ``px += hkick * weight``, ``py += vkick * weight`` (correctors)."""

    def __init__(self, hkick: Any, vkick: Any) -> None:
        self.hkick, self.vkick = hkick, vkick

    def apply(self, six: Six, weight: float) -> Six:
        x, px, y, py, z, pz = six
        return (x, px + weight * self.hkick, y, py + weight * self.vkick, z, pz)

    def jacobian(self, six: Six, weight: float) -> dict[tuple[int, int], Any]:
        return {}


Kick = Any  # MultipoleKick | DipoleKick: apply(six, weight), jacobian(six, weight)


# -- the body ------------------------------------------------------------------------------


def _kick_weights(num_steps: int) -> list[float]:
    """Fraction of the integrated strength after each of the ``num_steps`` drifts."""
    return [1.0 / num_steps] * (num_steps - 1) + [0.5 / num_steps]


def track_kick_drift_kick(
    particles: Particles,
    *,
    length: Any,
    num_steps: int,
    kick: Kick,
    x_offset: Any,
    y_offset: Any,
    tilt: Any,
) -> Particles:
    """Bmad's thick-multipole body (``track_a_thick_multipole``) on ``particles``.

    Entrance misalignment, half kick, ``num_steps`` times [exact drift of
    ``length / num_steps``, kick] (the last one a half kick), exit misalignment.
    Parameters are already arrays of the particles' library, ``kick`` holds strengths
    shaped ``(*batch, 1)`` (see :func:`~beamtrack.tracking.parameters.per_particle`).
    A particle whose transverse momentum reaches its total momentum after a kick is lost
    and keeps the (laboratory) coordinates it had before that kick's step.
    """
    xp = particles.xp
    p0c, mc2 = per_particle(particles.p0c), per_particle(particles.mc2)
    step = per_particle(length / num_steps)
    offsets = (per_particle(x_offset), per_particle(y_offset), per_particle(tilt))
    lab = particles.unpack()
    entering = particles.alive & ~unphysical_momentum(lab[1], lab[3], lab[5])
    body = to_element_frame(lab, *offsets)
    new = kick.apply(safe(xp, entering, body), 0.5 / num_steps)
    alive = entering & ~unphysical_momentum(new[1], new[3], new[5])
    body = freeze(xp, alive, new, body)
    for weight in _kick_weights(num_steps):
        new = kick.apply(exact_drift(safe(xp, alive, body), step, p0c, mc2), weight)
        alive = alive & ~unphysical_momentum(new[1], new[3], new[5])
        body = freeze(xp, alive, new, body)
    out = freeze(xp, entering, from_element_frame(body, *offsets), lab)
    return assemble(particles, out, alive, length)


def exact_drift_jacobian(six: Six, length: Any, p0c: Any, mc2: Any) -> dict[tuple[int, int], Any]:
    """Entries of the Jacobian of :func:`~beamtrack.tracking.drift.exact_drift` at ``six``.

    With ``P = 1 + pz`` and ``ps = sqrt(P^2 - px^2 - py^2)``:
    ``dx/dpx = L (P^2 - py^2)/ps^3``, ``dx/dpy = L px py/ps^3``, ``dx/dpz = -L px P/ps^3``
    (``y`` likewise), ``dz/dpx = -L P px/ps^3``, ``dz/dpy = -L P py/ps^3`` and
    ``dz/dpz = L (px^2 + py^2)/ps^3 + L mc2^2 E0 / E^3`` (the second term is
    ``L d(beta/beta0)/dpz``; at the reference orbit it is ``L / gamma0^2``).
    If ``ps^2 <= 0`` (a reference orbit lost in the element) ``ps = P`` is used so that
    the result stays finite.
    """
    xp = array_api_compat.array_namespace(six[0])
    _, px, _, py, _, pz = six
    rel_p = 1.0 + pz
    ps2 = rel_p * rel_p - px * px - py * py
    ps2 = xp.where(ps2 > 0.0, ps2, rel_p * rel_p + xp.zeros_like(ps2))
    ps = xp.sqrt(ps2)
    f = length / (ps2 * ps)
    pc = rel_p * p0c
    energy = xp.sqrt(pc * pc + mc2 * mc2)
    energy0 = xp.sqrt(p0c * p0c + mc2 * mc2)
    dbeta = length * mc2 * mc2 * energy0 / (energy * energy * energy)
    return {
        (0, 1): f * (rel_p * rel_p - py * py), (0, 3): f * px * py, (0, 5): -f * px * rel_p,
        (2, 1): f * px * py, (2, 3): f * (rel_p * rel_p - px * px), (2, 5): -f * py * rel_p,
        (4, 1): -f * rel_p * px, (4, 3): -f * rel_p * py,
        (4, 5): f * (px * px + py * py) + dbeta,
    }


def _drift_value(six: Six, length: Any, p0c: Any, mc2: Any) -> Six:
    """Exact drift of the reference-orbit state; an unphysical momentum (a reference
    orbit lost in the element) drifts as if it were zero, so values stay finite."""
    xp = array_api_compat.array_namespace(six[0])
    x, px, y, py, z, pz = six
    lost = unphysical_momentum(px, py, pz)
    zero = xp.zeros_like(px)
    guarded = (x, xp.where(lost, zero, px), y, xp.where(lost, zero, py), z,
               xp.where(lost, zero, pz))
    return exact_drift(guarded, length, p0c, mc2)


def linear_kick_drift_kick(
    *,
    length: Any,
    num_steps: int,
    kick: Kick,
    p0c: Any,
    mc2: Any,
    x_offset: Any,
    y_offset: Any,
    tilt: Any,
    like: Any,
) -> tuple[Any, Any]:
    """First-order map ``(R, c)`` of :func:`track_kick_drift_kick` about the zero orbit.

    The laboratory reference orbit (all coordinates zero) is tracked through the same
    steps as the "bmad" body, and the Jacobian is carried along it step by step (chain
    rule: frame rotation, kick Jacobians, exact-drift Jacobians), so ``R`` is the exact
    Jacobian of the "bmad" map there and ``c`` its image of the zero orbit. ``kick``
    holds strengths of shape ``(*batch)``. Returns ``R`` of shape ``(*batch, 6, 6)`` and
    ``c`` of shape ``(*batch, 6)``.
    """
    xp = array_api_compat.array_namespace(like)
    zero = 0.0 * (length + x_offset + y_offset + tilt + p0c + mc2)
    step = length / num_steps
    state = to_element_frame((zero,) * 6, x_offset, y_offset, tilt)
    state = tuple(v + zero for v in state)
    rot = rotation_matrix(tilt + zero)
    m = rot

    def apply_kick(state: Six, m: Any, weight: float) -> tuple[Six, Any]:
        entries = kick.jacobian(state, weight)
        new = kick.apply(state, weight)
        if entries:
            m = xp.matmul(matrix6(entries, like), m)
        return tuple(v + zero for v in new), m

    state, m = apply_kick(state, m, 0.5 / num_steps)
    for weight in _kick_weights(num_steps):
        jac = matrix6(exact_drift_jacobian(state, step, p0c, mc2), like)
        m = xp.matmul(jac, m)
        state = _drift_value(state, step, p0c, mc2)
        state, m = apply_kick(state, m, weight)
    r = xp.matmul(xp.matrix_transpose(rot), m)
    lab = from_element_frame(state, x_offset, y_offset, tilt)
    return r, xp.stack(xp.broadcast_arrays(*lab), axis=-1)


# -- elements --------------------------------------------------------------------------------


def prepare_parameters(particles: Particles, element: str, method: str, num_steps: Any,
                       **params: Any) -> tuple[int, dict[str, Any]]:
    """Validate ``method`` and ``num_steps`` and convert every parameter to an array of
    the particles' library (errors name ``element`` and the parameter)."""
    check_method(method, element)
    steps = check_num_steps(num_steps, element)
    c = particles.coords
    return steps, {k: _param(v, c, element, k) for k, v in params.items()}


def track_thick_element(particles: Particles, method: str, num_steps: int,
                        kick_of: Callable[[Callable[[Any], Any]], Kick],
                        p: dict[str, Any]) -> Particles:
    """Dispatch a kick-drift-kick element to the "bmad" body or its linear map.

    ``kick_of(shape)`` builds the kick model with every strength passed through
    ``shape`` (``per_particle`` for tracking, identity for the linear map).
    """
    if method == "linear":
        r, const = linear_kick_drift_kick(
            length=p["length"], num_steps=num_steps, kick=kick_of(lambda v: v),
            p0c=particles.p0c, mc2=particles.mc2, x_offset=p["x_offset"],
            y_offset=p["y_offset"], tilt=p["tilt"], like=particles.coords)
        return apply_linear_map(particles, r, const, p["length"])
    return track_kick_drift_kick(
        particles, length=p["length"], num_steps=num_steps, kick=kick_of(per_particle),
        x_offset=p["x_offset"], y_offset=p["y_offset"], tilt=p["tilt"])


def track_sextupole(
    particles: Particles,
    *,
    length: Any,
    k2: Any,
    num_steps: int = 1,
    tilt: Any = 0.0,
    x_offset: Any = 0.0,
    y_offset: Any = 0.0,
    method: str = "bmad",
) -> Particles:
    """Track through a sextupole (Bmad ``sextupole``, "bmad_standard" tracking).

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
    tilt
        Rotation about s [rad]; ``pi/6`` gives a skew sextupole with ``K2SL = -K2 L``.
    x_offset, y_offset
        Magnet offsets [m] (feed-down: an offset sextupole acts as a quadrupole plus a
        dipole kick on the reference orbit).
    method
        ``"bmad"``: half kick, ``num_steps`` x (exact drift, kick), last kick a half
        kick (Bmad's ``track_a_thick_multipole``). ``"linear"``: exact first-order map
        of the ``"bmad"`` map about the laboratory reference orbit (a drift for an
        aligned sextupole; offsets add the feed-down quadrupole terms and a constant).

    Returns
    -------
    Particles
        Outgoing particles, ``s`` advanced by ``length``. Every parameter may have batch
        shape ``(*batch)``, broadcast against particles of shape ``(*batch, n)``.
    """
    steps, p = prepare_parameters(particles, "sextupole", method, num_steps, length=length, k2=k2,
                       tilt=tilt, x_offset=x_offset, y_offset=y_offset)
    k2l = p["k2"] * p["length"]
    return track_thick_element(
        particles, method, steps,
        lambda shape: MultipoleKick([None, None, shape(k2l)], []), p)


def track_octupole(
    particles: Particles,
    *,
    length: Any,
    k3: Any,
    num_steps: int = 1,
    tilt: Any = 0.0,
    x_offset: Any = 0.0,
    y_offset: Any = 0.0,
    method: str = "bmad",
) -> Particles:
    """Track through an octupole (Bmad ``octupole``, "bmad_standard" tracking).

    Parameters
    ----------
    particles
        Incoming particles (any backend).
    length
        Length [m].
    k3
        Normalised strength ``K3 = (d^3 B_y/dx^3) / (B rho)`` [1/m^4]. The integrated
        kick is ``dpx = -K3 L (x^3 - 3 x y^2)/6``, ``dpy = K3 L (3 x^2 y - y^3)/6``.
    num_steps
        Number of kick-drift-kick slices.
    tilt
        Rotation about s [rad]; ``pi/8`` gives a skew octupole with ``K3SL = -K3 L``.
    x_offset, y_offset
        Magnet offsets [m].
    method
        ``"bmad"`` or ``"linear"``, as for :func:`track_sextupole`.

    Returns
    -------
    Particles
        Outgoing particles, ``s`` advanced by ``length``.
    """
    steps, p = prepare_parameters(particles, "octupole", method, num_steps, length=length, k3=k3,
                       tilt=tilt, x_offset=x_offset, y_offset=y_offset)
    k3l = p["k3"] * p["length"]
    return track_thick_element(
        particles, method, steps,
        lambda shape: MultipoleKick([None, None, None, shape(k3l)], []), p)


def track_thick_multipole(
    particles: Particles,
    *,
    length: Any,
    knl: Any = (),
    ksl: Any = (),
    num_steps: int = 1,
    tilt: Any = 0.0,
    x_offset: Any = 0.0,
    y_offset: Any = 0.0,
    method: str = "bmad",
) -> Particles:
    """Track through a straight thick multipole (Bmad ``thick_multipole``).

    Parameters
    ----------
    particles
        Incoming particles (any backend).
    length
        Length [m].
    knl, ksl
        Integrated normal and skew strengths ``K_nL``, ``K_nSL`` [m^-n] over the whole
        length, order by order (see the module docstring for the accepted forms). The
        kick is ``dpx - i dpy = -sum (K_nL + i K_nSL)(x + i y)^n / n!`` spread over the
        body; a dipole term is a plain kick (``dpx = -K0L``).
    num_steps
        Number of kick-drift-kick slices.
    tilt
        Rotation about s [rad] of the whole magnet.
    x_offset, y_offset
        Magnet offsets [m].
    method
        ``"bmad"`` or ``"linear"``, as for :func:`track_sextupole`.

    Returns
    -------
    Particles
        Outgoing particles, ``s`` advanced by ``length``.
    """
    steps, p = prepare_parameters(particles, "thick_multipole", method, num_steps, length=length,
                       tilt=tilt, x_offset=x_offset, y_offset=y_offset)
    c = particles.coords
    normal = as_orders(knl, c, "thick_multipole", "knl")
    skew = as_orders(ksl, c, "thick_multipole", "ksl")
    return track_thick_element(
        particles, method, steps,
        lambda shape: MultipoleKick([shape(k) for k in normal], [shape(k) for k in skew]), p)


def multipole_map(
    knl: list[Any],
    ksl: list[Any],
    x_offset: Any,
    y_offset: Any,
    tilt: Any,
    like: Any,
) -> tuple[Any, Any]:
    """First-order map ``(R, c)`` of the thin "bmad" multipole about the zero orbit.

    Strengths are lists of arrays of shape ``(*batch)``. For an aligned multipole the
    only first-order terms are the quadrupole ``K1L``, ``K1SL`` and the dispersive
    terms of the zero-length bend (``R26 = K0L``, ``R51 = -K0L``, ``R46 = -K0SL``,
    ``R53 = K0SL``); offsets add the feed-down of all orders.
    """
    xp = array_api_compat.array_namespace(like)
    zero = 0.0 * (x_offset + y_offset + tilt)
    for k in (*knl, *ksl):
        zero = zero + 0.0 * k
    kick = MultipoleKick(knl, ksl, bend=True)
    state = tuple(v + zero for v in to_element_frame((zero,) * 6, x_offset, y_offset, tilt))
    rot = rotation_matrix(tilt + zero)
    body = matrix6(kick.jacobian(state, 1.0), like)
    new = kick.apply(state, 1.0)
    r = xp.matmul(xp.matrix_transpose(rot), xp.matmul(body, rot))
    lab = from_element_frame(new, x_offset, y_offset, tilt)
    lab = tuple(v + zero for v in lab)
    return r, xp.stack(xp.broadcast_arrays(*lab), axis=-1)


def track_multipole(
    particles: Particles,
    *,
    knl: Any = (),
    ksl: Any = (),
    tilt: Any = 0.0,
    x_offset: Any = 0.0,
    y_offset: Any = 0.0,
    method: str = "bmad",
) -> Particles:
    """Track through a thin multipole (Bmad ``multipole``, MAD-X ``MULTIPOLE``).

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
    tilt
        Rotation about s [rad] of the whole multipole.
    x_offset, y_offset
        Offsets [m].
    method
        ``"bmad"``: the thin kick. ``"linear"``: its exact first-order map about the
        laboratory reference orbit (feed-down of offsets included).

    Returns
    -------
    Particles
        Outgoing particles; ``s`` is unchanged (zero length). Particles whose
        transverse momentum reaches their total momentum after the kick are lost and
        keep their incoming coordinates.
    """
    check_method(method, "multipole")
    c = particles.coords
    tilt = _param(tilt, c, "multipole", "tilt")
    x_offset = _param(x_offset, c, "multipole", "x_offset")
    y_offset = _param(y_offset, c, "multipole", "y_offset")
    normal = as_orders(knl, c, "multipole", "knl")
    skew = as_orders(ksl, c, "multipole", "ksl")
    length = 0.0 * tilt
    if method == "linear":
        r, const = multipole_map(normal, skew, x_offset, y_offset, tilt, c)
        return apply_linear_map(particles, r, const, length)
    xp = particles.xp
    kick = MultipoleKick([per_particle(k) for k in normal], [per_particle(k) for k in skew],
                         bend=True)
    offsets = (per_particle(x_offset), per_particle(y_offset), per_particle(tilt))
    lab = particles.unpack()
    entering = particles.alive & ~unphysical_momentum(lab[1], lab[3], lab[5])
    body = to_element_frame(safe(xp, entering, lab), *offsets)
    new = kick.apply(body, 1.0)
    alive = entering & ~unphysical_momentum(new[1], new[3], new[5])
    out = freeze(xp, alive, from_element_frame(new, *offsets), lab)
    return assemble(particles, out, alive, length)
