"""RF cavities: Bmad's "bmad_standard" ``rfcavity``, ``lcavity`` and ``crab_cavity``.

Each model is one :class:`~beamtrack.tracking.stepping.Body` of steps in the element
frame (energy kicks at fixed time, exact drifts and, for the lcavity, changes of
reference momentum); :func:`~beamtrack.tracking.stepping.track_element` derives the
``"linear"`` and ``"second_order"`` methods from it. ``voltage`` is the energy gain
amplitude [eV] of the reference species (charge folded in, as Bmad's ``voltage`` acts
on the reference particle), ``phi0`` the RF phase [rad/2pi] and ``frequency`` the RF
frequency [Hz].

Physics: docs/physics/cavities.md (conventions, the three models, what is not
modelled, references).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import array_api_compat

from beamtrack.tracking import frames
from beamtrack.tracking.drift import drift_step
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.special import sqrt1
from beamtrack.tracking.stepping import (
    Body,
    Build,
    Everyone,
    Six,
    Step,
    check_method,
    check_num_steps,
    prepare,
    taylor_map,
    track_element,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from beamtrack.tracking.frames import Misalignment

#: Speed of light [m/s].
C_LIGHT = 299792458.0
TWO_PI = 2.0 * math.pi
#: Bmad's ``cavity_type`` values of an lcavity.
CAVITY_TYPES = ("standing_wave", "traveling_wave")


# -- elementary pieces --------------------------------------------------------------------


def _xp(a: Any) -> Any:
    return array_api_compat.array_namespace(a)


def rf_time(six: Six, p0c: Any, mc2: Any) -> Any:
    """``tau = z / beta = -c (t - t0)`` [m] of each particle (kept by energy kicks)."""
    xp = _xp(six[0])
    pc = (1.0 + six[5]) * p0c
    return six[4] * xp.sqrt(pc * pc + mc2 * mc2) / pc


def energy_kick(six: Six, de: Any, p0c: Any, mc2: Any) -> tuple[Six, Any]:
    """Change the energy of each particle by ``de`` [eV] at fixed time (Bmad's
    ``apply_energy_kick``).

    Returns the new coordinates and the mask of particles that stay above their rest
    energy (``E + dE > mc2``). ``pz`` changes by ``(1+pz) (sqrt(1 + u) - 1)`` with
    ``u = dE (2E + dE) / (P c)^2`` and ``z`` by the factor ``beta'/beta``; both free
    of cancellation, also for ``dE -> 0`` and slow particles. Where the particle is
    lost the returned values are those of ``dE = 0`` (finite; the caller freezes).
    """
    xp = _xp(six[0])
    x, px, y, py, z, pz = six
    rel_p = 1.0 + pz
    pc = rel_p * p0c
    energy = xp.sqrt(pc * pc + mc2 * mc2)
    kinetic = pc * pc / (energy + mc2)
    ok = kinetic + de > 0.0
    de = xp.where(ok, de, xp.zeros_like(de + kinetic))
    growth = sqrt1(de * (2.0 * energy + de) / (pc * pc))  # P'/P - 1
    pz_new = pz + rel_p * growth
    z_new = z * ((1.0 + growth) * energy / (energy + de))
    return (x, px, y, py, z_new, pz_new), ok


def _change_reference(six: Six, p_old: Any, p_new: Any, e_old: Any, de_ref: Any) -> Six:
    """Re-express coordinates relative to a new reference momentum (Bmad's
    ``orbit_reference_energy_correction``): ``px, py`` times ``P_old/P_new``,
    ``pz = ((1+pz) P_old - P_new)/P_new``, ``z`` unchanged. ``P_new - P_old`` is
    computed as ``dE_ref (2 E_old + dE_ref) / (P_new + P_old)`` (no cancellation)."""
    x, px, y, py, z, pz = six
    ratio = p_old / p_new
    dp = de_ref * (2.0 * e_old + de_ref) / (p_new + p_old)
    return (x, px * ratio, y, py * ratio, z, (pz * p_old - dp) / p_new)


def _new_reference(p_old: Any, p_new: Any, e_old: Any, de_ref: Any) -> Everyone:
    """The change of reference momentum as a step for every particle, lost ones too."""
    return Everyone(lambda six: _change_reference(six, p_old, p_new, e_old, de_ref))


def _wavenumber(frequency: Any) -> Any:
    return TWO_PI * frequency / C_LIGHT


def _trapezoid(num_steps: int) -> list[float]:
    """Weights of ``num_steps + 1`` kicks: ``1/n``, half of it at the two ends."""
    n = num_steps
    return [(0.5 if i in (0, n) else 1.0) / n for i in range(n + 1)]


def _offsets(p: dict[str, Any]) -> tuple[Any, Any, Any]:
    return p["x_offset"], p["y_offset"], p["tilt"]


# -- parameter checks and the shared entry point ----------------------------------------------


def _check_frequency(element: str, frequency: Any, voltage: Any) -> None:
    """Python-number checks (arrays are not inspected: that would break ``jax.jit``)."""
    if isinstance(frequency, numbers.Real) and not isinstance(frequency, bool):
        if not math.isfinite(frequency) or frequency < 0.0:
            raise ParameterError(
                "parameter 'frequency' must be a finite number >= 0 [Hz], "
                f"got {frequency!r}", element=element)
        if frequency == 0.0 and isinstance(voltage, numbers.Real) and voltage != 0.0:
            raise ParameterError(
                "parameter 'frequency' is 0 with a nonzero voltage (Bmad: zero RF "
                "frequency); give the RF frequency in Hz", element=element)


def _check_cavity_type(cavity_type: Any) -> bool:
    """``True`` for a standing wave, ``False`` for a traveling wave."""
    if cavity_type not in CAVITY_TYPES:
        raise ParameterError(
            f"parameter 'cavity_type' must be one of {', '.join(CAVITY_TYPES)}, "
            f"got {cavity_type!r}", element="lcavity")
    return cavity_type == "standing_wave"


def _track(particles: Particles, element: str, body: Callable[[int], Build], method: str,
           num_steps: Any, misalignment: Mapping[str, Any], **params: Any) -> Particles:
    """What the three trackers share: validate (method, ``num_steps``, the model's own
    options in ``body(num_steps)``, the misalignment keywords, frequency, then the
    parameters) and track."""
    check_method(method, element)
    build = body(check_num_steps(num_steps, element))
    offsets = frames.misalignment(misalignment, element)
    _check_frequency(element, params["frequency"], params["voltage"])
    p = prepare(particles, element, method, **params, **offsets)
    return track_element(particles, build, p, length=p["length"], method=method)


def _first_order(build: Build, length: Any, voltage: Any, phi0: Any, frequency: Any,
                 p0c: Any, mc2: Any, offsets: tuple[Any, Any, Any]) -> tuple[Any, ...]:
    """``(R, c, p0c_out)`` of ``build`` from the series (the public ``*_map``)."""
    x_offset, y_offset, tilt = (v + 0.0 * length for v in offsets)
    params = dict(length=length, voltage=voltage, phi0=phi0, frequency=frequency,
                  tilt=tilt, x_offset=x_offset, y_offset=y_offset)
    r, c, _, p0c_out = taylor_map(build, params, p0c, mc2, 1)
    return r, c, p0c_out


# -- rfcavity ----------------------------------------------------------------------------


def _rf_phase(six: Six, phi0: Any, k: Any, p0c: Any, mc2: Any) -> Any:
    """RF phase ``2 pi phi0 + k tau`` of the rfcavity and the crab cavity."""
    return TWO_PI * phi0 + k * rf_time(six, p0c, mc2)


def _rf_kick(amplitude: Any, phi0: Any, k: Any, p0c: Any, mc2: Any) -> Step:
    """Energy kick ``dE = amplitude sin(2 pi phi0 + k tau)``."""

    def step(six: Six) -> tuple[Six, Any]:
        de = amplitude * _xp(six[0]).sin(_rf_phase(six, phi0, k, p0c, mc2))
        return energy_kick(six, de, p0c, mc2)

    return step


def _rf_body(num_steps: int) -> Build:
    """Bmad's rfcavity: ``num_steps + 1`` energy kicks (half kicks at the ends) with
    exact drifts of ``length/num_steps`` between them."""

    def build(p: dict[str, Any], p0c: Any, mc2: Any) -> Body:
        k = _wavenumber(p["frequency"])
        drift = drift_step(p["length"] / num_steps, p0c, mc2)
        steps: list[Step] = []
        for scale in _trapezoid(num_steps):
            steps += [drift, _rf_kick(scale * p["voltage"], p["phi0"], k, p0c, mc2)]
        return Body(steps[1:], offsets=_offsets(p))  # kick, drift, kick, ..., kick

    return build


def rfcavity_map(length: Any, voltage: Any, phi0: Any, frequency: Any, p0c: Any, mc2: Any,
                 x_offset: Any = 0.0, y_offset: Any = 0.0, tilt: Any = 0.0,
                 num_steps: int = 1) -> tuple[Any, Any]:
    """First-order map ``(R, c)`` of the "bmad" RF cavity about the laboratory
    reference orbit: ``R`` the exact Jacobian (forward-mode derivatives,
    :mod:`~beamtrack.tracking.jets`), ``c`` the "bmad" image of the zero orbit
    (nonzero ``pz`` when ``sin(2 pi phi0) != 0``). Arrays of one library; shapes
    ``(*batch, 6, 6)`` and ``(*batch, 6)``."""
    return _first_order(_rf_body(num_steps), length, voltage, phi0, frequency, p0c, mc2,
                        (x_offset, y_offset, tilt))[:2]


def track_rfcavity(
    particles: Particles,
    *,
    length: Any,
    voltage: Any,
    phi0: Any = 0.0,
    frequency: Any,
    num_steps: int = 1,
    method: str = "bmad",
    **misalignment: Unpack[Misalignment],
) -> Particles:
    """Track through an RF cavity that does not change the reference energy (Bmad
    ``rfcavity``, "bmad_standard" tracking).

    Parameters
    ----------
    particles
        Incoming particles (any backend).
    length
        Length [m].
    voltage
        Energy gain amplitude [eV] of the reference species (charge folded in; see the
        module documentation).
    phi0
        RF phase [rad/2pi]. The energy kick is
        ``voltage * sin(2 pi (phi0 + f (t0 - t)))``: zero crossing at ``phi0 = 0``, and
        the reference particle gains ``voltage * sin(2 pi phi0)`` (exactly when it does
        not slip, e.g. ``beta = 1``).
    frequency
        RF frequency [Hz] (> 0; 0 only with zero voltage).
    num_steps
        Number of drifts; ``num_steps + 1`` energy kicks, half kicks at the ends (Bmad's
        ``n_slice``).
    method
        ``"bmad"``: Bmad's kick-drift-kick model. ``"linear"``: its first-order Taylor
        map about the laboratory reference orbit (:func:`rfcavity_map`).
        ``"second_order"``: its second-order Taylor map.
    **misalignment
        ``tilt`` [rad], ``x_offset``, ``y_offset`` [m] of the cavity
        (:class:`~beamtrack.tracking.frames.Misalignment`; 0 by default). The model
        (pure energy kicks and drifts) is axially symmetric, so they change nothing but
        rounding; kept for a uniform interface.

    Returns
    -------
    Particles
        Outgoing particles (same reference momentum), ``s`` advanced by ``length``.
    """
    return _track(particles, "rfcavity", _rf_body, method, num_steps, misalignment,
                  length=length, voltage=voltage, phi0=phi0, frequency=frequency)


# -- crab cavity --------------------------------------------------------------------------


def _crab_kick(amplitude: Any, phi0: Any, k: Any, p0c: Any, mc2: Any) -> Step:
    """Thin deflection ``px += amplitude/P0 sin(phase)`` with its Panofsky-Wenzel
    energy kick ``dE = amplitude k x cos(phase)``, ``phase = 2 pi phi0 + k tau``."""

    def step(six: Six) -> tuple[Six, Any]:
        xp = _xp(six[0])
        phase = _rf_phase(six, phi0, k, p0c, mc2)
        x, px, y, py, z, pz = six
        px = px + (amplitude / p0c) * xp.sin(phase)
        de = amplitude * k * x * xp.cos(phase)
        return energy_kick((x, px, y, py, z, pz), de, p0c, mc2)

    return step


def _crab_body(num_steps: int) -> Build:
    """Bmad's crab cavity: ``num_steps`` thin kicks at the slice centres, exact drifts
    between them and half drifts at the ends."""
    n = num_steps

    def build(p: dict[str, Any], p0c: Any, mc2: Any) -> Body:
        kick = _crab_kick(p["voltage"] / n, p["phi0"], _wavenumber(p["frequency"]), p0c, mc2)
        half = drift_step(p["length"] / (2 * n), p0c, mc2)
        full = drift_step(p["length"] / n, p0c, mc2)
        return Body([half, *[kick, full] * (n - 1), kick, half], offsets=_offsets(p))

    return build


def crab_cavity_map(length: Any, voltage: Any, phi0: Any, frequency: Any, p0c: Any, mc2: Any,
                    x_offset: Any = 0.0, y_offset: Any = 0.0, tilt: Any = 0.0,
                    num_steps: int = 1) -> tuple[Any, Any]:
    """First-order map ``(R, c)`` of the "bmad" crab cavity about the laboratory
    reference orbit (exact Jacobian by forward-mode derivatives, and the image of the
    zero orbit: ``px = voltage sin(2 pi phi0)/P0`` in the thin limit)."""
    return _first_order(_crab_body(num_steps), length, voltage, phi0, frequency, p0c, mc2,
                        (x_offset, y_offset, tilt))[:2]


def track_crab_cavity(
    particles: Particles,
    *,
    length: Any,
    voltage: Any,
    phi0: Any = 0.0,
    frequency: Any,
    num_steps: int = 1,
    method: str = "bmad",
    **misalignment: Unpack[Misalignment],
) -> Particles:
    """Track through a transverse deflecting (crab) cavity (Bmad ``crab_cavity``,
    "bmad_standard" tracking).

    Parameters
    ----------
    particles
        Incoming particles (any backend).
    length
        Length [m].
    voltage
        Deflecting voltage [eV]: the transverse momentum kick ``voltage/P0 c`` of the
        reference species at the crest (charge folded in, as for the other cavities).
    phi0
        RF phase [rad/2pi]: the kick is ``px += voltage/P0 sin(2 pi (phi0 + f (t0 - t)))``,
        so at ``phi0 = 0`` the reference particle is not deflected and a particle ahead
        of it (``z > 0``) is deflected towards +x for ``voltage > 0`` (crabbing).
    frequency
        RF frequency [Hz].
    num_steps
        Number of thin kicks (Bmad's ``n_slice``), at the slice centres.
    method
        ``"bmad"``, ``"linear"`` (first-order Taylor map of the "bmad" map about the
        laboratory reference orbit, :func:`crab_cavity_map`) or ``"second_order"``
        (its second-order Taylor map).
    **misalignment
        ``tilt`` [rad], ``x_offset``, ``y_offset`` [m] of the cavity
        (:class:`~beamtrack.tracking.frames.Misalignment`; 0 by default).
        ``tilt = pi/2`` deflects in y; offsets matter because the energy kick grows
        with x in the cavity frame.

    Returns
    -------
    Particles
        Outgoing particles (same reference momentum), ``s`` advanced by ``length``.
    """
    return _track(particles, "crab_cavity", _crab_body, method, num_steps, misalignment,
                  length=length, voltage=voltage, phi0=phi0, frequency=frequency)


# -- lcavity ----------------------------------------------------------------------------------


def lcavity_reference(p0c: Any, mc2: Any, voltage: Any, phi0: Any,
                      num_steps: int) -> tuple[list[Any], list[Any], list[Any], Any, Any]:
    """Reference momenta and energies of Bmad's stair-step lcavity.

    Returns ``(P, E, dE, gain, ok)``: lists of ``num_steps + 2`` reference momenta
    ``P[i]`` [eV] and energies ``E[i]`` before energy step ``i`` (``P[0] = p0c``,
    ``P[-1]`` the exit reference momentum), the ``num_steps + 1`` reference energy
    gains ``dE[i]`` (``gain`` times ``1/(2n), 1/n, ..., 1/(2n)``), the total gain
    ``gain = voltage cos(2 pi phi0)``, and the mask ``ok`` of references that stay above
    rest energy (where not, the gain is replaced by 0 so everything stays finite).
    Kinetic energies ``K0 + f gain`` and momentum changes
    ``f gain (K + K0 + 2 mc2) / (P + P0)`` are used, so nothing cancels for slow
    references and ``P`` stays exactly ``p0c`` without a gain.
    """
    xp = _xp(voltage + p0c)
    e0 = xp.sqrt(p0c * p0c + mc2 * mc2)
    kinetic0 = p0c * p0c / (e0 + mc2)
    gain = voltage * xp.cos(TWO_PI * phi0)
    ok = kinetic0 + gain > 0.0
    gain = xp.where(ok, gain, xp.zeros_like(gain + kinetic0))
    scales = _trapezoid(num_steps)
    fractions = [0.0]
    for scale in scales[:-1]:
        fractions.append(fractions[-1] + scale)
    fractions.append(1.0)
    momenta, energies = [], []
    for fraction in fractions:
        # P^2 - P0^2 = (K - K0)(K + K0 + 2 mc2): the momentum change has no
        # cancellation, is exactly 0 without a gain, and differentiable everywhere.
        de = fraction * gain
        kinetic = kinetic0 + de
        p_raw = xp.sqrt(kinetic * (kinetic + 2.0 * mc2))
        momenta.append(p0c + de * (kinetic + kinetic0 + 2.0 * mc2) / (p_raw + p0c))
        energies.append(kinetic + mc2)
    return momenta, energies, [s * gain for s in scales], gain, ok


def _lcavity_phase(six: Six, phi0: Any, k: Any, p0c: Any, mc2: Any) -> Any:
    """RF phase ``2 pi phi0 - k tau`` of the lcavity (Bmad's sign convention)."""
    return TWO_PI * phi0 - k * rf_time(six, p0c, mc2)


def _lcavity_kick(amplitude: Any, phi0: Any, k: Any, p0c: Any, mc2: Any) -> Step:
    """Energy kick ``dE = amplitude cos(2 pi phi0 - k tau)``."""

    def step(six: Six) -> tuple[Six, Any]:
        de = amplitude * _xp(six[0]).cos(_lcavity_phase(six, phi0, k, p0c, mc2))
        return energy_kick(six, de, p0c, mc2)

    return step


def _fringe(edge: float, gradient: Any, phi0: Any, k: Any, p0c: Any, mc2: Any) -> Step:
    """Hard-edge entrance (``edge = 1``) or exit (``-1``) kick: focusing
    ``px -= edge G cos(phi) x / (2 P0)`` (same in y) and the energy change
    ``dE = -edge G k sin(phi) (x^2 + y^2) / 4``."""

    def step(six: Six) -> tuple[Six, Any]:
        xp = _xp(six[0])
        phase = _lcavity_phase(six, phi0, k, p0c, mc2)
        x, px, y, py, z, pz = six
        kick = (0.5 * edge) * gradient * xp.cos(phase) / p0c
        de = (-0.25 * edge) * gradient * k * xp.sin(phase) * (x * x + y * y)
        return energy_kick((x, px - kick * x, y, py - kick * y, z, pz), de, p0c, mc2)

    return step


def _ponderomotive(strength: Any, p0c: Any) -> Step:
    """Standing-wave ponderomotive kick (Rosenzweig & Serafini) with
    ``C = strength / (P0^2 (1+pz))``: ``px -= C x``, ``py -= C y``,
    ``z -= C (x^2 + y^2) / (2 (1+pz))``."""

    def step(six: Six) -> tuple[Six, Any]:
        x, px, y, py, z, pz = six
        rel_p = 1.0 + pz
        coef = strength / (p0c * p0c * rel_p)
        z = z - 0.5 * coef * (x * x + y * y) / rel_p
        return (x, px - coef * x, y, py - coef * y, z, pz), rel_p > 0.0

    return step


def _lcavity_body(num_steps: int, cavity_type: str) -> Build:
    """Bmad's stair-step lcavity: entrance edge, then per RF step (drift and
    ponderomotive kick,) energy kick, change of reference (and ponderomotive kick),
    then the exit edge; the ponderomotive kicks only for a standing wave."""
    standing = _check_cavity_type(cavity_type)
    n = num_steps

    def build(p: dict[str, Any], p0c: Any, mc2: Any) -> Body:
        xp = _xp(p["length"])
        length, voltage, phi0 = p["length"], p["voltage"], p["phi0"]
        k = _wavenumber(p["frequency"])
        momenta, energies, gains, gain, ok = lcavity_reference(p0c, mc2, voltage, phi0, n)
        nonzero = xp.abs(length) > 0.0
        gradient = xp.where(nonzero, voltage / xp.where(nonzero, length, 1.0 + 0.0 * length),
                            0.0 * voltage)
        strength = gradient * gradient * length / (16.0 * n)
        steps: list[Step | Everyone] = [_fringe(1.0, gradient, phi0, k, momenta[0], mc2)]
        for i, scale in enumerate(_trapezoid(n)):
            if i > 0:
                steps.append(drift_step(length / n, momenta[i], mc2))
                steps += [_ponderomotive(strength, momenta[i])] if standing else []
            steps.append(_lcavity_kick(scale * voltage, phi0, k, momenta[i], mc2))
            steps.append(_new_reference(momenta[i], momenta[i + 1], energies[i], gains[i]))
            steps += [_ponderomotive(strength, momenta[i + 1])] if i < n and standing else []
        steps.append(_fringe(-1.0, gradient, phi0, k, momenta[n + 1], mc2))
        # Particles lost before the cavity are re-expressed in the exit reference; a
        # reference below rest energy admits none (and keeps p0c: its gain is zeroed).
        outside = _new_reference(momenta[0], momenta[-1], energies[0], gain).update
        return Body(steps, offsets=_offsets(p), p0c_out=momenta[-1], outside=outside,
                    admits=ok)

    return build


def lcavity_map(length: Any, voltage: Any, phi0: Any, frequency: Any, p0c: Any, mc2: Any,
                x_offset: Any = 0.0, y_offset: Any = 0.0, tilt: Any = 0.0,
                num_steps: int = 1,
                cavity_type: str = "standing_wave") -> tuple[Any, Any, Any]:
    """First-order map of the "bmad" lcavity about the laboratory reference orbit.

    Returns ``(R, c, p0c_out)``: ``R`` (shape ``(*batch, 6, 6)``) maps incoming
    coordinates (relative to ``p0c``) to outgoing ones relative to the exit reference
    momentum ``p0c_out`` (shape ``(*batch)``); it is the exact Jacobian of the "bmad"
    map (forward-mode derivatives) and ``c`` the image of the zero orbit (zero for an
    aligned cavity: the reference particle stays on the reference orbit).
    ``R^T J R = (p0c / p0c_out) J``.
    """
    return _first_order(_lcavity_body(num_steps, cavity_type), length, voltage, phi0,
                        frequency, p0c, mc2, (x_offset, y_offset, tilt))


def track_lcavity(
    particles: Particles,
    *,
    length: Any,
    voltage: Any,
    phi0: Any = 0.0,
    frequency: Any,
    num_steps: int = 1,
    cavity_type: str = "standing_wave",
    method: str = "bmad",
    **misalignment: Unpack[Misalignment],
) -> Particles:
    """Track through an accelerating cavity (Bmad ``lcavity``, "bmad_standard"
    stair-step tracking of a standing-wave cavity); the reference momentum changes.

    Parameters
    ----------
    particles
        Incoming particles (any backend).
    length
        Length [m] (the active length: Bmad's ``l_active = length``).
    voltage
        Energy gain amplitude [eV] of the reference species (charge folded in; see the
        module documentation). The reference energy at the exit is
        ``E0 + voltage cos(2 pi phi0)``.
    phi0
        RF phase [rad/2pi]; ``0`` is on crest. A particle arriving ``dt`` after the
        reference sees the phase ``2 pi (phi0 + f dt)``.
    frequency
        RF frequency [Hz] (> 0; 0 only with zero voltage).
    num_steps
        Number of RF steps (Bmad's ``n_rf_steps``): ``num_steps + 1`` energy kicks
        (half at the ends) with drifts of ``length/num_steps`` between them.
    cavity_type
        ``"standing_wave"`` (Bmad's default) or ``"traveling_wave"``: a traveling wave
        co-moving with the particle has no ponderomotive focusing (Bmad drops those
        kicks); the edge kicks stay.
    method
        ``"bmad"``: the stair-step model (see the module documentation).
        ``"linear"``: first-order Taylor map of the "bmad" map about the laboratory
        reference orbit, in the exit reference's coordinates (:func:`lcavity_map`).
        ``"second_order"``: its second-order Taylor map.
    **misalignment
        ``tilt`` [rad], ``x_offset``, ``y_offset`` [m] of the cavity
        (:class:`~beamtrack.tracking.frames.Misalignment`; 0 by default). Offsets
        matter through the fringe and ponderomotive focusing; the axially symmetric
        model ignores the tilt.

    Returns
    -------
    Particles
        Outgoing particles with the exit reference momentum ``p0c`` (shape of the
        broadcast parameters), ``s`` advanced by ``length``. ``px, py, pz`` are relative
        to the new reference momentum and ``z`` uses the new reference velocity.
        Particles lost in the cavity keep their coordinates at the point of loss, with
        their momenta re-expressed relative to the exit reference (physical momentum
        unchanged). If the reference itself would fall below its rest energy, every
        particle is lost and the reference momentum is left unchanged.

    Notes
    -----
    Accelerating maps are not symplectic in these coordinates: the first-order map
    ``M`` satisfies ``M^T J M = (p0c_in/p0c_out) J`` and ``det M = (p0c_in/p0c_out)^3``
    (every piece is symplectic at fixed reference momentum; each change of reference
    scales ``px, py, 1+pz`` by ``P_old/P_new``).
    """
    return _track(particles, "lcavity", lambda n: _lcavity_body(n, cavity_type), method,
                  num_steps, misalignment, length=length, voltage=voltage, phi0=phi0,
                  frequency=frequency)
