"""The stepping framework: one integrator for every element with a body.

An element's ``"bmad"`` model is a :class:`Body`: a sequence of steps in the element
frame (edges, kicks, drifts, exact body slices, changes of reference), plus the frame
change at its ends (misalignment) and, for accelerating elements, the exit reference
momentum. :func:`track_body` runs it on particles and owns everything the elements
used to repeat: entering the element frame, the loss rules (a step computes on
:func:`safe` coordinates, particles it loses keep the coordinates they had before it,
see :func:`freeze`), leaving the frame and assembling the new record.

The other two methods are derived from the same model: :func:`taylor_map` runs the
``Body`` on truncated power series (:mod:`~beamtrack.tracking.jets`) seeded at the
laboratory reference orbit, which gives the exact first-order map ``(R, c)``
(``"linear"``) or the second-order map ``(R, c, T)`` (``"second_order"``), and
:func:`apply_map` applies it to the particles. An element module therefore writes its
physics once, as a function ``build(p, p0c, mc2) -> Body`` of its parameters, and calls
:func:`track_element`.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Collection, Sequence
from typing import Any

import array_api_compat

from beamtrack.tracking import jets, losses
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.frames import Six, from_element_frame, to_element_frame
from beamtrack.tracking.kinematics import physical_momentum
from beamtrack.tracking.losses import LossReason
from beamtrack.tracking.parameters import (
    as_number,
    as_parameter,
    broadcast_shape,
    is_number,
    per_particle,
)
from beamtrack.tracking.particles import Particles

#: A step of a body: coordinates -> (new coordinates, mask of particles it keeps or None).
Step = Callable[[Six], tuple[Six, Any]]

#: Tracking methods every element with a body provides.
METHODS = ("bmad", "linear", "second_order")
#: Order of the Taylor map of each map-based method.
MAP_ORDER = {"linear": 1, "second_order": 2}


def check_method(method: str, element: str) -> str:
    """Validate a tracking method name."""
    if method not in METHODS:
        raise ParameterError(
            f"unknown tracking method {method!r}; choose one of {', '.join(METHODS)}",
            element=element,
        )
    return method


def check_num_steps(num_steps: Any, element: str) -> int:
    """Validate ``num_steps`` (a Python integer >= 1: it sets the loop length)."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ParameterError(f"num_steps must be an integer >= 1, got {num_steps!r}",
                             element=element)
    return num_steps


def prepare(particles: Particles, element: str, method: str, *,
            numbers: Collection[str] = (), **params: Any) -> dict[str, Any]:
    """Validate ``method`` and convert every parameter to an array of the particles'
    library, dtype and device (errors name ``element`` and the parameter).

    Parameters named in ``numbers`` that are Python numbers stay Python floats
    (validated the same way): the element's model must accept them, and gains from
    it (no array operation until they meet the particles' arrays; offsets and tilt
    that are Python zeros skip the frame change, :func:`~beamtrack.tracking.frames.offsets`).
    """
    check_method(method, element)
    check_particles(particles, element)
    c = particles.coords
    out = {k: as_number(v, k, element) if k in numbers and _is_number(v)
           else as_parameter(v, c, k, element=element) for k, v in params.items()}
    batch = tuple(c.shape[:-2])
    for k, v in out.items():
        if not isinstance(v, float) and v.ndim:
            try:
                broadcast_shape(tuple(v.shape), batch)
            except ValueError:
                raise ParameterError(
                    f"parameter {k!r} has batch shape {tuple(v.shape)}, which does not "
                    f"broadcast with the particles' batch shape {batch}",
                    element=element) from None
    return out


def check_particles(particles: Any, element: str) -> Particles:
    """``particles`` if it is a :class:`Particles` record, else a ParameterError that says
    what was expected (a NumPy array, say, instead of ``Particles(coords=array, ...)``)."""
    if not isinstance(particles, Particles):
        raise ParameterError(
            f"expected a beamtrack Particles record, got {type(particles).__name__}; "
            "build one with Particles(coords=array, p0c=..., mc2=...)", element=element)
    return particles


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# -- loss bookkeeping -------------------------------------------------------------------


def freeze(xp: Any, alive: Any, new: Six, old: Six) -> Six:
    """Take ``new`` coordinates where ``alive``, keep ``old`` ones elsewhere.

    This is how lost particles keep the coordinates they had at the point of loss.
    """
    return tuple(xp.where(alive, n, o) for n, o in zip(new, old))  # type: ignore[return-value]


def safe(xp: Any, alive: Any, coords: Six) -> Six:
    """Coordinates with lost particles replaced by the reference orbit (all zero).

    Tracking computes on these so that a lost particle's unphysical momentum never
    produces inf or NaN, not even in the branch that :func:`freeze` discards (which
    would turn gradients into NaN).
    """
    # A Python zero for arrays (one operation less per step); jets need a jet.
    zero = xp.zeros_like(coords[0]) if isinstance(coords[0], jets.Jet) else 0.0
    return tuple(xp.where(alive, c, zero) for c in coords)  # type: ignore[return-value]


def physical(six: Six) -> Any:
    """Mask of particles whose momentum lets them move forward (see
    :func:`~beamtrack.tracking.kinematics.unphysical_momentum`); False for NaN
    momenta."""
    return physical_momentum(six[1], six[3], six[5])


def checked(update: Callable[[Six], Six]) -> Step:
    """A step that applies ``update`` and loses particles left with an unphysical
    momentum (``px^2 + py^2 >= (1+pz)^2``); they keep their coordinates from before."""

    def step(six: Six) -> tuple[Six, Any]:
        new = update(six)
        return new, physical(new)

    return step


@dataclasses.dataclass(frozen=True)
class Everyone:
    """A step applied to every particle, lost ones included, with no loss check
    (a change of reference momentum: lost particles are re-expressed too)."""

    update: Callable[[Six], Six]


@dataclasses.dataclass(frozen=True)
class Body:
    """An element's ``"bmad"`` model in its own frame.

    Parameters
    ----------
    steps
        Steps in order: :data:`Step` callables or :class:`Everyone`.
    offsets
        ``(x_offset, y_offset, tilt)`` [m, m, rad] of the element frame (entrance and
        exit misalignment, :mod:`~beamtrack.tracking.frames`), or ``None``.
    p0c_out
        Reference momentum after the element [eV] (accelerating elements), or ``None``.
    outside
        Maps the laboratory coordinates of particles that never enter the body (lost
        before it) to the exit reference, or ``None`` (unchanged).
    admits
        Mask of batch entries whose element admits particles at all (an lcavity whose
        reference would fall below rest energy does not), or ``None``.
    """

    steps: Sequence[Step | Everyone]
    offsets: tuple[Any, Any, Any] | None = None
    p0c_out: Any = None
    outside: Callable[[Six], Six] | None = None
    admits: Any = None


def integrate(six: Six, alive: Any, steps: Sequence[Step | Everyone]) -> tuple[Six, Any]:
    """Run ``steps`` on coordinates ``six`` of particles flagged ``alive``.

    Each step computes on :func:`safe` coordinates; a particle it loses keeps the
    coordinates it had before the step (:func:`freeze`).
    """
    xp = array_api_compat.array_namespace(six[0])
    arrays = not isinstance(six[0], jets.Jet)
    reporting = losses.active() and arrays
    # The exit check, fused into the last step's loss mask (its freeze is reused): a
    # particle whose result is not finite (an overflow) is lost there. A NaN made by
    # an earlier step reaches the last one (or is lost earlier as unphysical).
    last = -1
    if arrays:
        for index in range(len(steps)):  # a plain loop: torch.compile traces it
            if not isinstance(steps[index], Everyone):
                last = index
    for index, step in enumerate(steps):
        if isinstance(step, Everyone):
            six = step.update(six)
            continue
        new, ok = step(safe(xp, alive, six))
        if index == last:
            fine = losses.finite_six(xp, new)
            ok = fine if ok is None else ok & fine
        if ok is not None:
            if reporting:
                losses.report(alive & ~ok, losses.step_reason(xp, new))
            alive = alive & ok
        six = freeze(xp, alive, new, six)
    return six, alive


def run_body(lab: Six, alive: Any, body: Body) -> tuple[Six, Any]:
    """The whole ``"bmad"`` map of a body, laboratory to laboratory coordinates.

    Particles lost before the element or at its entrance keep their coordinates exactly
    (no round trip through the element frame; only :attr:`Body.outside` applies);
    those lost inside keep the laboratory coordinates of their point of loss.
    """
    xp = array_api_compat.array_namespace(lab[0])
    entering = alive & physical(lab)  # False for non-finite momenta
    reporting = losses.active() and not isinstance(lab[0], jets.Jet)
    if not isinstance(lab[0], jets.Jet):
        # Non-finite positions (and an infinite pz, which the momentum check lets
        # through: inf < inf is False but px^2 + py^2 < (1 + inf)^2 holds): lost before
        # the element, computed on as the reference orbit (`safe`), so neither values
        # nor gradients see them.
        entering = entering & xp.isfinite(lab[0] + lab[2] + lab[4] + lab[5])
    if reporting:
        losses.report(alive & ~entering, LossReason.UNPHYSICAL_MOMENTUM)
    if body.admits is not None:
        if reporting:
            losses.report(entering & ~body.admits, LossReason.BELOW_REST_ENERGY)
        entering = entering & body.admits
    # The entering coordinates are passed, not kept: integrate can free each state as
    # it goes (holding them here measurably slows large beams).
    six, alive = integrate(
        to_element_frame(lab, *body.offsets) if body.offsets is not None else lab,
        entering, body.steps)
    if (body.offsets is None and body.outside is None
            and not any(isinstance(step, Everyone) for step in body.steps)):
        return six, alive  # nothing moved the particles that did not enter
    if body.offsets is not None:
        six = from_element_frame(six, *body.offsets)
    outside = body.outside(lab) if body.outside is not None else lab
    return freeze(xp, entering, six, outside), alive


def assemble(particles: Particles, coords: Six, alive: Any, length: Any,
             p0c: Any = None) -> Particles:
    """Stack tracked coordinates into a new record, advanced by ``length`` in ``s``
    (and with the reference momentum ``p0c`` if given)."""
    xp = particles.xp
    shape = broadcast_shape(*(tuple(a.shape) for a in (*coords, alive)))
    parts = [a if tuple(a.shape) == shape else xp.broadcast_to(a, shape) for a in coords]
    if tuple(alive.shape) != shape:
        alive = xp.broadcast_to(alive, shape)
    return Particles.from_fields(
        xp.stack(parts, axis=-2),
        particles.s + length,
        particles.p0c if p0c is None else p0c,
        particles.mc2,
        alive,
        charge=particles.charge,
        weight=particles.explicit_weight,
    )


# -- the three methods ----------------------------------------------------------------------

Build = Callable[[dict[str, Any], Any, Any], Body]


def _build_on(particles: Particles, build: Build, params: dict[str, Any]) -> Body:
    """``build`` on the parameters and the particles' reference as ``(*batch, 1)``
    arrays broadcasting over particles."""
    p = {k: per_particle(v) for k, v in params.items()}
    return build(p, per_particle(particles.p0c), per_particle(particles.mc2))


def track_body(particles: Particles, build: Build, params: dict[str, Any],
               length: Any) -> Particles:
    """Track ``particles`` through the ``"bmad"`` model ``build(p, p0c, mc2)``.

    ``params`` are arrays of shape ``(*batch)`` (see :func:`prepare`); ``build`` gets
    them and the reference as ``(*batch, 1)`` arrays broadcasting over particles.
    """
    body = _build_on(particles, build, params)
    lab = particles.unpack()
    if body.outside is None:
        out, alive = run_body(lab, particles.alive, body)
    else:
        # Particles that do not enter are re-expressed at the exit reference, so
        # non-finite ones are first replaced by the reference orbit (no NaN in the
        # gradient), then given back their own coordinates.
        xp = particles.xp
        finite = losses.finite(particles.coords)
        clean = safe(xp, finite, lab)
        out, alive = run_body(clean, particles.alive & finite, body)
        out = freeze(xp, finite, out, lab)
    p0c_out = None if body.p0c_out is None else body.p0c_out[..., 0]
    return assemble(particles, out, alive, length, p0c_out)


def _zero_orbit(params: dict[str, Any], p0c: Any, mc2: Any,
                order: int) -> tuple[Six, dict[str, Any], Any, Any]:
    """Seeded jets of the zero laboratory orbit (one particle per batch entry) and the
    parameters and reference, all of the common batch shape.

    Parameters stay plain arrays where the library hands ``array op jet`` to the jet
    (NumPy, torch, JAX): arithmetic with them then carries no derivative arrays, which
    halves the cost of building a map. array-api-strict arrays do not defer, so there
    they become constant jets (same values and derivatives, more arithmetic).
    """
    values = [v for v in (*params.values(), p0c, mc2) if not is_number(v)]
    xp = array_api_compat.array_namespace(*values)
    shape = broadcast_shape(*(tuple(v.shape) for v in values))
    zero = xp.zeros(shape, dtype=p0c.dtype, device=array_api_compat.device(p0c))
    col = zero[..., None]
    lab = jets.seed([col] * 6, order)
    wrap = array_api_compat.is_array_api_strict_namespace(xp)

    def const(v: Any) -> Any:
        v = per_particle(v + zero)
        return jets.constant(v, order) if wrap else v

    return lab, {k: const(v) for k, v in params.items()}, const(p0c), const(mc2)


def _taylor(build: Build, params: dict[str, Any], p0c: Any, mc2: Any,
            order: int) -> tuple[Any, Any, Any, Any, Body]:
    """:func:`taylor_map` plus the body it ran (built on jets)."""
    lab, p, p0c_j, mc2_j = _zero_orbit(params, p0c, mc2, order)
    body = build(p, p0c_j, mc2_j)
    xp = array_api_compat.array_namespace(lab[0].v)
    alive = xp.ones(lab[0].v.shape, dtype=xp.bool, device=array_api_compat.device(lab[0].v))
    out, _ = run_body(lab, alive, body)
    if order == 2:
        r, c, t = jets.second_order_map(out)
    else:
        (r, c), t = jets.first_order_map(out), None
    p0c_out = body.p0c_out
    if isinstance(p0c_out, jets.Jet):
        p0c_out = p0c_out.v
    return r, c, t, None if p0c_out is None else p0c_out[..., 0], body


def taylor_map(build: Build, params: dict[str, Any], p0c: Any, mc2: Any,
               order: int) -> tuple[Any, ...]:
    """Taylor map of the ``"bmad"`` model about the laboratory reference orbit.

    Returns ``(R, c, T, p0c_out)`` with ``R`` of shape ``(*batch, 6, 6)``, ``c``
    ``(*batch, 6)`` and, for ``order=2``, ``T`` of shape ``(*batch, 6, 6, 6)``
    (``None`` for ``order=1``): the map is
    ``x_i -> c_i + R_ij x_j + T_ijk x_j x_k / 2``. ``p0c_out`` is the exit reference
    momentum (``None`` if unchanged).
    """
    return _taylor(build, params, p0c, mc2, order)[:4]


def apply_map(particles: Particles, r: Any, c: Any, t: Any, length: Any,
              p0c_out: Any = None, body: Body | None = None,
              valid: Any = None) -> Particles:
    """Apply the Taylor map ``x_i -> c_i + R_ij x_j + T_ijk x_j x_k / 2`` (``c`` and
    ``t`` may be ``None``: zero) to the alive particles; lost ones keep their
    coordinates. A map never loses particles, except all those of a batch entry that
    ``body`` (the element's model on the particles' arrays) does not admit
    (:attr:`Body.admits`); particles not mapped are re-expressed by
    :attr:`Body.outside` where ``body`` has one. ``s`` advances by ``length`` [m].

    Particles entering with a non-finite coordinate, or leaving with one, are lost
    and keep their coordinates; so are all particles of the batch entries where
    ``valid`` (shape ``(*batch)``, optional) is False (a map that is not exact there).
    """
    xp = particles.xp
    coords = particles.coords
    # A particle entering with a non-finite coordinate leaves with one and is lost by
    # the exit check below (one check per element: maps are cheap, a second pass over
    # the coordinates would double their cost).
    new = r @ coords
    if c is not None:
        new = new + c[..., None]
    if t is not None:
        n = coords.shape[-1]
        pairs = coords[..., :, None, :] * coords[..., None, :, :]
        batch = pairs.shape[:-3]
        quad = xp.matmul(xp.reshape(t, t.shape[:-3] + (6, 36)),
                         xp.reshape(pairs, batch + (36, n)))
        new = new + 0.5 * quad
    alive, kept = particles.alive, coords
    if body is not None and body.admits is not None:
        if losses.active():
            losses.report(alive & ~body.admits, LossReason.BELOW_REST_ENERGY)
        alive = alive & body.admits
    if body is not None and body.outside is not None:
        kept = xp.stack(xp.broadcast_arrays(*body.outside(particles.unpack())), axis=-2)
    ok = losses.finite(new)
    if valid is not None:
        ok = ok & valid[..., None]
    if losses.active():
        losses.report(alive & ~ok, LossReason.NON_FINITE)
    alive = alive & ok
    new = xp.where(alive[..., None, :], new, kept)
    shape = tuple(new.shape[:-2]) + tuple(new.shape[-1:])
    if tuple(alive.shape) != shape:
        alive = xp.broadcast_to(alive, shape)
    return Particles.from_fields(new, particles.s + length,
                                  particles.p0c if p0c_out is None else p0c_out,
                                  particles.mc2, alive, charge=particles.charge,
                                  weight=particles.explicit_weight)


def track_element(particles: Particles, build: Build, params: dict[str, Any], *,
                  length: Any, method: str,
                  linear: Callable[[], tuple[Any, Any]] | None = None) -> Particles:
    """Track through an element given by its ``"bmad"`` model, with any method.

    Parameters
    ----------
    particles
        Incoming particles.
    build
        ``build(p, p0c, mc2) -> Body``: the element's model; ``p`` maps parameter names
        to arrays (or jets) of shape ``(*batch, 1)``.
    params
        The element's parameters as arrays of shape ``(*batch)`` (:func:`prepare`).
    length
        Advance of ``s`` [m].
    method
        ``"bmad"``, ``"linear"`` or ``"second_order"``.
    linear
        Optional closed form of the first-order map, ``() -> (R, c)`` or
        ``() -> (R, c, valid)`` (``c`` may be ``None``: zero; ``valid``, of shape
        ``(*batch)``, marks the batch entries whose map is finite: the particles of the
        others are lost, reason ``NON_FINITE``), used for
        ``"linear"`` instead of the series (kept only where speed needs it, and tested
        against the series); only for elements whose body has no ``admits``, ``outside``
        or ``p0c_out``.
    """
    if method == "bmad":
        return track_body(particles, build, params, length)
    if method == "linear" and linear is not None:
        # Closed forms serve elements that keep the reference and lose no particle
        # (drift, quadrupole), so no body is needed for lost-particle bookkeeping;
        # a third value, where given, masks the batch entries whose map is valid.
        r, c, *valid = linear()
        return apply_map(particles, r, c, None, length, valid=valid[0] if valid else None)
    r, c, t, p0c_out, model = _taylor(build, params, particles.p0c, particles.mc2,
                                      MAP_ORDER[method])
    # The lost-particle bookkeeping acts on the particles' own arrays, so only a model
    # that has any (an lcavity's exit reference) is built a second time, on them.
    bookkeeping = None
    if model.admits is not None or model.outside is not None:
        bookkeeping = _build_on(particles, build, params)
    return apply_map(particles, r, c, t, length, p0c_out, bookkeeping)
