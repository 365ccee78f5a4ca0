"""RF cavities: Bmad's "bmad_standard" ``rfcavity``, ``lcavity`` and ``crab_cavity``.

Conventions shared by the three (Bmad's, with relative time tracking):

- ``voltage`` is the energy gain amplitude [eV] **of a particle of the reference
  species**: the charge is folded in, exactly as Bmad's ``voltage`` acts on the
  reference particle (Bmad multiplies by the tracked-to-reference charge ratio, which
  is 1 here: beamtrack tracks the reference species). Numerically it equals the cavity
  voltage in volts for a singly charged species; an electron beam is accelerated by a
  positive ``voltage`` like a proton beam.
- ``phi0`` is the RF phase in units of ``2 pi`` (radians/2pi), as in Bmad.
- ``frequency`` is the RF frequency [Hz]; ``k = 2 pi frequency / c`` [1/m].
- The RF phase a particle sees depends on its arrival time relative to the reference
  particle, ``t - t0 = -z / (beta c)``: with ``tau = z / beta`` (``= -c (t - t0)``,
  unchanged by an energy kick) the phase is ``2 pi phi0 + k tau`` for ``rfcavity`` and
  ``crab_cavity`` and ``2 pi phi0 - k tau`` for ``lcavity`` (Bmad's two sign
  conventions).
- Energy kicks keep the particle's time: ``pz`` changes by the exact momentum change
  for the energy change ``dE`` (computed as ``dE (2E + dE)/(P' + P)``, no cancellation)
  and ``z`` is rescaled by ``beta'/beta``. A particle whose energy would drop to or
  below its rest energy is lost (flag cleared, coordinates frozen before that kick).
- Drifts inside the cavities are Bmad's exact drifts.

The three models:

``rfcavity`` (Bmad ``track_a_rfcavity``): ``num_steps + 1`` energy kicks
``dE = voltage/num_steps * sin(2 pi phi0 + k tau)`` (half kicks at the two ends,
a trapezoidal rule) with exact drifts of ``length/num_steps`` between them. No
transverse RF forces; the reference momentum does not change. The reference particle
(``z = pz = 0``) gains ``voltage * sin(2 pi phi0)`` if it does not slip in phase
(``beta = 1``, or ``phi0 = 0``).

``lcavity`` (Bmad ``track_a_lcavity`` with ``lcavity_rf_step_setup``, the "stair-step"
model of current Bmad, for a standing-wave cavity with ``l_active = length``): the
reference energy grows by ``voltage * cos(2 pi phi0)`` in ``num_steps + 1`` steps at
``s = i length/num_steps`` (half steps at the ends). At each step the particle gets the
energy kick ``dE = scale_i * voltage * cos(2 pi phi0 - k tau)`` (``scale_i = 1/n``,
``1/(2n)`` at the ends) and its coordinates are re-expressed relative to the new
reference momentum (``px, py`` scaled by ``P_old/P_new``, ``pz`` relative to
``P_new``; ``z`` unchanged), so the reference particle stays at the origin. Around
every energy kick inside the cavity a standing-wave ponderomotive kick (Rosenzweig &
Serafini) ``px -= C x``, ``py -= C y``, ``z -= C (x^2 + y^2)/(2 (1+pz))`` with
``C = G^2 length / (16 n P0^2 (1+pz))`` (``G = voltage/length``, ``P0`` the current
reference momentum) focuses with ``G^2 / (8 (P c)^2)`` per metre. The hard-edge
entrance and exit fringes (``edge = +1, -1``) kick ``px -= edge G cos(phi) x / (2 P0)``
(same in y: entrance focusing, exit defocusing) and, from the time dependence of the
field, change the energy by ``dE = -edge G k sin(phi) (x^2 + y^2) / 4``. Every piece is
symplectic at fixed reference momentum, so the whole map ``M`` satisfies
``M^T J M = (P0_in / P0_out) J`` (``det M = (P0_in/P0_out)^3``).
With ``cavity_type="traveling_wave"`` the ponderomotive kicks are left out (Bmad: no
wave travels against the particle); the edge kicks stay.
Not modelled (Bmad features left out): ``l_active`` different from ``length``, coupler
kicks, field autoscaling, multipoles, a solenoid field in the cavity, absolute time
tracking, multipass phase bookkeeping.

``crab_cavity`` (Bmad ``track_a_crab_cavity``): ``num_steps`` thin kicks at the slice
centres with exact drifts between them (half drifts at the ends); each kick is
``px += voltage/(num_steps P0) sin(2 pi phi0 + k tau)`` with the Panofsky-Wenzel
energy kick ``dE = voltage/num_steps * k x cos(2 pi phi0 + k tau)`` that makes it
symplectic. ``tilt`` turns the deflection plane.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import array_api_compat

from beamtrack.tracking import jets
from beamtrack.tracking.drift import exact_drift
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.frames import from_element_frame, to_element_frame
from beamtrack.tracking.kinematics import unphysical_momentum
from beamtrack.tracking.linear import apply_linear_map
from beamtrack.tracking.parameters import as_parameter, per_particle
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.special import sqrt1
from beamtrack.tracking.stepping import (
    Six,
    assemble,
    check_method,
    check_num_steps,
    freeze,
    safe,
)

#: Speed of light [m/s].
C_LIGHT = 299792458.0
TWO_PI = 2.0 * math.pi
#: Bmad's ``cavity_type`` values of an lcavity.
CAVITY_TYPES = ("standing_wave", "traveling_wave")

Op = Callable[[Six], tuple[Six, Any]]


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


def _drift(length: Any, p0c: Any, mc2: Any) -> Op:
    """Exact drift; a particle with ``px^2 + py^2 >= (1+pz)^2`` is lost before it."""

    def op(six: Six) -> tuple[Six, Any]:
        xp = _xp(six[0])
        ok = ~unphysical_momentum(six[1], six[3], six[5])
        return exact_drift(safe(xp, ok, six), length, p0c, mc2), ok

    return op


def _apply(op: Op, six: Six, alive: Any) -> tuple[Six, Any]:
    """Apply ``op`` to the alive particles; those it loses keep their coordinates."""
    xp = _xp(six[0])
    new, ok = op(safe(xp, alive, six))
    alive = alive & ok
    return freeze(xp, alive, new, six), alive


def _change_reference(six: Six, p_old: Any, p_new: Any, e_old: Any, de_ref: Any) -> Six:
    """Re-express coordinates relative to a new reference momentum (Bmad's
    ``orbit_reference_energy_correction``): ``px, py`` times ``P_old/P_new``,
    ``pz = ((1+pz) P_old - P_new)/P_new``, ``z`` unchanged. ``P_new - P_old`` is
    computed as ``dE_ref (2 E_old + dE_ref) / (P_new + P_old)`` (no cancellation)."""
    x, px, y, py, z, pz = six
    ratio = p_old / p_new
    dp = de_ref * (2.0 * e_old + de_ref) / (p_new + p_old)
    return (x, px * ratio, y, py * ratio, z, (pz * p_old - dp) / p_new)


# -- parameters ------------------------------------------------------------------------


def _parameters(element: str, particles: Particles, values: dict[str, Any]) -> dict[str, Any]:
    c = particles.coords
    try:
        return {name: as_parameter(v, c, name) for name, v in values.items()}
    except ParameterError as exc:
        raise ParameterError(f"{element}: {exc}") from exc


def _check_frequency(element: str, frequency: Any, voltage: Any) -> None:
    """Python-number checks (arrays are not inspected: that would break ``jax.jit``)."""
    if isinstance(frequency, numbers.Real) and not isinstance(frequency, bool):
        if not math.isfinite(frequency) or frequency < 0.0:
            raise ParameterError(
                f"{element}: parameter 'frequency' must be a finite number >= 0 [Hz], "
                f"got {frequency!r}"
            )
        if frequency == 0.0 and isinstance(voltage, numbers.Real) and voltage != 0.0:
            raise ParameterError(
                f"{element}: parameter 'frequency' is 0 with a nonzero voltage (Bmad: "
                "zero RF frequency); give the RF frequency in Hz"
            )


def _check_cavity_type(cavity_type: Any) -> bool:
    """``True`` for a standing wave, ``False`` for a traveling wave."""
    if cavity_type not in CAVITY_TYPES:
        raise ParameterError(
            f"lcavity: parameter 'cavity_type' must be one of {', '.join(CAVITY_TYPES)}, "
            f"got {cavity_type!r}"
        )
    return cavity_type == "standing_wave"


def _wavenumber(frequency: Any) -> Any:
    return TWO_PI * frequency / C_LIGHT


def _zero_orbit_jets(*params: Any) -> tuple[tuple[Any, ...], Any, Any]:
    """Seeded jets of the zero laboratory orbit with batch shape of ``params``,
    the params as constant per-particle jets, and an all-alive mask."""
    xp = _xp(params[0])
    total = params[0]
    for p in params[1:]:
        total = total + p
    col = (0.0 * total)[..., None]
    lab = jets.seed([col] * 6)
    const = tuple(jets.constant(per_particle(p + 0.0 * total)) for p in params)
    alive = xp.ones(col.shape, dtype=xp.bool, device=array_api_compat.device(col))
    return lab, const, alive


# -- rfcavity ----------------------------------------------------------------------------


def _rf_body(six: Six, alive: Any, voltage: Any, phi0: Any, k: Any, length: Any,
             num_steps: int, p0c: Any, mc2: Any) -> tuple[Six, Any]:
    n = num_steps

    def kick(scale: float) -> Op:
        def op(s: Six) -> tuple[Six, Any]:
            xp = _xp(s[0])
            phase = TWO_PI * phi0 + k * rf_time(s, p0c, mc2)
            return energy_kick(s, (scale * voltage) * xp.sin(phase), p0c, mc2)
        return op

    for i in range(n + 1):
        six, alive = _apply(kick((0.5 if i in (0, n) else 1.0) / n), six, alive)
        if i < n:
            six, alive = _apply(_drift(length / n, p0c, mc2), six, alive)
    return six, alive


def rfcavity_map(length: Any, voltage: Any, phi0: Any, frequency: Any, p0c: Any, mc2: Any,
                 x_offset: Any = 0.0, y_offset: Any = 0.0, tilt: Any = 0.0,
                 num_steps: int = 1) -> tuple[Any, Any]:
    """First-order map ``(R, c)`` of the "bmad" RF cavity about the laboratory
    reference orbit: ``R`` the exact Jacobian (forward-mode derivatives,
    :mod:`~beamtrack.tracking.jets`), ``c`` the "bmad" image of the zero orbit
    (nonzero ``pz`` when ``sin(2 pi phi0) != 0``). Arrays of one library; shapes
    ``(*batch, 6, 6)`` and ``(*batch, 6)``."""
    lab, const, alive = _zero_orbit_jets(length, voltage, phi0, frequency, p0c, mc2,
                                         *_offset_arrays(length, x_offset, y_offset, tilt))
    length_j, voltage_j, phi0_j, freq_j, p0c_j, mc2_j, *offsets = const
    body = to_element_frame(lab, *offsets)
    body, _ = _rf_body(body, alive, voltage_j, phi0_j, _wavenumber(freq_j), length_j,
                       num_steps, p0c_j, mc2_j)
    return jets.first_order_map(from_element_frame(body, *offsets))


def track_rfcavity(
    particles: Particles,
    *,
    length: Any,
    voltage: Any,
    phi0: Any = 0.0,
    frequency: Any,
    num_steps: int = 1,
    tilt: Any = 0.0,
    x_offset: Any = 0.0,
    y_offset: Any = 0.0,
    method: str = "bmad",
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
    tilt, x_offset, y_offset
        Misalignments [rad, m]. The model (pure energy kicks and drifts) is axially
        symmetric, so they change nothing but rounding; kept for a uniform interface.
    method
        ``"bmad"``: Bmad's kick-drift-kick model. ``"linear"``: its first-order Taylor
        map about the laboratory reference orbit (:func:`rfcavity_map`).

    Returns
    -------
    Particles
        Outgoing particles (same reference momentum), ``s`` advanced by ``length``.
    """
    element = "rfcavity"
    check_method(method, element)
    num_steps = check_num_steps(num_steps, element)
    _check_frequency(element, frequency, voltage)
    prm = _parameters(element, particles, dict(
        length=length, voltage=voltage, phi0=phi0, frequency=frequency, tilt=tilt,
        x_offset=x_offset, y_offset=y_offset))
    if method == "linear":
        r, const = rfcavity_map(prm["length"], prm["voltage"], prm["phi0"], prm["frequency"],
                                particles.p0c, particles.mc2, prm["x_offset"],
                                prm["y_offset"], prm["tilt"], num_steps)
        return apply_linear_map(particles, r, const, prm["length"])
    pp = {k: per_particle(v) for k, v in prm.items()}
    p0c, mc2 = per_particle(particles.p0c), per_particle(particles.mc2)
    offsets = (pp["x_offset"], pp["y_offset"], pp["tilt"])
    lab, entering, body = _enter(particles, offsets)
    body, alive = _rf_body(body, entering, pp["voltage"], pp["phi0"],
                           _wavenumber(pp["frequency"]), pp["length"], num_steps, p0c, mc2)
    out = freeze(particles.xp, entering, from_element_frame(body, *offsets), lab)
    return assemble(particles, out, alive, prm["length"])


def _offset_arrays(like: Any, *values: Any) -> tuple[Any, ...]:
    return tuple(v + 0.0 * like for v in values)


def _enter(particles: Particles, offsets: tuple[Any, Any, Any]) -> tuple[Six, Any, Six]:
    lab = particles.unpack()
    entering = particles.alive & ~unphysical_momentum(lab[1], lab[3], lab[5])
    return lab, entering, to_element_frame(lab, *offsets)


# -- crab cavity --------------------------------------------------------------------------


def _crab_body(six: Six, alive: Any, voltage: Any, phi0: Any, k: Any, length: Any,
               num_steps: int, p0c: Any, mc2: Any) -> tuple[Six, Any]:
    n = num_steps
    amplitude = voltage / n

    def kick(s: Six) -> tuple[Six, Any]:
        xp = _xp(s[0])
        phase = TWO_PI * phi0 + k * rf_time(s, p0c, mc2)
        x, px, y, py, z, pz = s
        px = px + (amplitude / p0c) * xp.sin(phase)
        de = amplitude * k * x * xp.cos(phase)
        return energy_kick((x, px, y, py, z, pz), de, p0c, mc2)

    six, alive = _apply(_drift(length / (2 * n), p0c, mc2), six, alive)
    for i in range(n):
        six, alive = _apply(kick, six, alive)
        if i < n - 1:
            six, alive = _apply(_drift(length / n, p0c, mc2), six, alive)
    return _apply(_drift(length / (2 * n), p0c, mc2), six, alive)


def crab_cavity_map(length: Any, voltage: Any, phi0: Any, frequency: Any, p0c: Any, mc2: Any,
                    x_offset: Any = 0.0, y_offset: Any = 0.0, tilt: Any = 0.0,
                    num_steps: int = 1) -> tuple[Any, Any]:
    """First-order map ``(R, c)`` of the "bmad" crab cavity about the laboratory
    reference orbit (exact Jacobian by forward-mode derivatives, and the image of the
    zero orbit: ``px = voltage sin(2 pi phi0)/P0`` in the thin limit)."""
    lab, const, alive = _zero_orbit_jets(length, voltage, phi0, frequency, p0c, mc2,
                                         *_offset_arrays(length, x_offset, y_offset, tilt))
    length_j, voltage_j, phi0_j, freq_j, p0c_j, mc2_j, *offsets = const
    body = to_element_frame(lab, *offsets)
    body, _ = _crab_body(body, alive, voltage_j, phi0_j, _wavenumber(freq_j), length_j,
                         num_steps, p0c_j, mc2_j)
    return jets.first_order_map(from_element_frame(body, *offsets))


def track_crab_cavity(
    particles: Particles,
    *,
    length: Any,
    voltage: Any,
    phi0: Any = 0.0,
    frequency: Any,
    num_steps: int = 1,
    tilt: Any = 0.0,
    x_offset: Any = 0.0,
    y_offset: Any = 0.0,
    method: str = "bmad",
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
    tilt
        Rotation about s [rad]: ``pi/2`` deflects in y.
    x_offset, y_offset
        Cavity offsets [m] (the energy kick grows with x in the cavity frame).
    method
        ``"bmad"`` or ``"linear"`` (first-order Taylor map of the "bmad" map about the
        laboratory reference orbit, :func:`crab_cavity_map`).

    Returns
    -------
    Particles
        Outgoing particles (same reference momentum), ``s`` advanced by ``length``.
    """
    element = "crab_cavity"
    check_method(method, element)
    num_steps = check_num_steps(num_steps, element)
    _check_frequency(element, frequency, voltage)
    prm = _parameters(element, particles, dict(
        length=length, voltage=voltage, phi0=phi0, frequency=frequency, tilt=tilt,
        x_offset=x_offset, y_offset=y_offset))
    if method == "linear":
        r, const = crab_cavity_map(prm["length"], prm["voltage"], prm["phi0"],
                                   prm["frequency"], particles.p0c, particles.mc2,
                                   prm["x_offset"], prm["y_offset"], prm["tilt"], num_steps)
        return apply_linear_map(particles, r, const, prm["length"])
    pp = {k: per_particle(v) for k, v in prm.items()}
    p0c, mc2 = per_particle(particles.p0c), per_particle(particles.mc2)
    offsets = (pp["x_offset"], pp["y_offset"], pp["tilt"])
    lab, entering, body = _enter(particles, offsets)
    body, alive = _crab_body(body, entering, pp["voltage"], pp["phi0"],
                             _wavenumber(pp["frequency"]), pp["length"], num_steps, p0c, mc2)
    out = freeze(particles.xp, entering, from_element_frame(body, *offsets), lab)
    return assemble(particles, out, alive, prm["length"])


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
    n = num_steps
    e0 = xp.sqrt(p0c * p0c + mc2 * mc2)
    kinetic0 = p0c * p0c / (e0 + mc2)
    gain = voltage * xp.cos(TWO_PI * phi0)
    ok = kinetic0 + gain > 0.0
    gain = xp.where(ok, gain, xp.zeros_like(gain + kinetic0))
    scales = [(0.5 if i in (0, n) else 1.0) / n for i in range(n + 1)]
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


def _lcavity_body(six: Six, alive: Any, voltage: Any, phi0: Any, k: Any, length: Any,
                  num_steps: int, refs: tuple[list[Any], list[Any], list[Any]],
                  mc2: Any, standing: bool = True) -> tuple[Six, Any]:
    xp = _xp(six[0])
    n = num_steps
    momenta, energies, gains = refs
    nonzero = xp.abs(length) > 0.0
    gradient = xp.where(nonzero, voltage / xp.where(nonzero, length, 1.0 + 0.0 * length),
                        0.0 * voltage)
    pondero = gradient * gradient * length / (16.0 * n)

    def phase(s: Six, p0c: Any) -> Any:
        return TWO_PI * phi0 - k * rf_time(s, p0c, mc2)

    def fringe(edge: float, p0c: Any) -> Op:
        def op(s: Six) -> tuple[Six, Any]:
            ph = phase(s, p0c)
            x, px, y, py, z, pz = s
            kick = (0.5 * edge) * gradient * xp.cos(ph) / p0c
            de = (-0.25 * edge) * gradient * k * xp.sin(ph) * (x * x + y * y)
            return energy_kick((x, px - kick * x, y, py - kick * y, z, pz), de, p0c, mc2)
        return op

    def ponderomotive(p0c: Any) -> Op:
        def op(s: Six) -> tuple[Six, Any]:
            x, px, y, py, z, pz = s
            rel_p = 1.0 + pz
            coef = pondero / (p0c * p0c * rel_p)
            z = z - 0.5 * coef * (x * x + y * y) / rel_p
            return (x, px - coef * x, y, py - coef * y, z, pz), rel_p > 0.0
        return op

    def kick(scale: float, p0c: Any) -> Op:
        def op(s: Six) -> tuple[Six, Any]:
            return energy_kick(s, (scale * voltage) * xp.cos(phase(s, p0c)), p0c, mc2)
        return op

    six, alive = _apply(fringe(1.0, momenta[0]), six, alive)
    for i in range(n + 1):
        if i > 0:
            six, alive = _apply(_drift(length / n, momenta[i], mc2), six, alive)
            if standing:
                six, alive = _apply(ponderomotive(momenta[i]), six, alive)
        six, alive = _apply(kick((0.5 if i in (0, n) else 1.0) / n, momenta[i]), six, alive)
        # All particles, lost ones too, are re-expressed in the new reference.
        six = _change_reference(six, momenta[i], momenta[i + 1], energies[i], gains[i])
        if i < n and standing:
            six, alive = _apply(ponderomotive(momenta[i + 1]), six, alive)
    return _apply(fringe(-1.0, momenta[n + 1]), six, alive)


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
    lab, const, alive = _zero_orbit_jets(length, voltage, phi0, frequency, p0c, mc2,
                                         *_offset_arrays(length, x_offset, y_offset, tilt))
    length_j, voltage_j, phi0_j, freq_j, p0c_j, mc2_j, *offsets = const
    refs = lcavity_reference(p0c_j, mc2_j, voltage_j, phi0_j, num_steps)
    body = to_element_frame(lab, *offsets)
    body, _ = _lcavity_body(body, alive & refs[4], voltage_j, phi0_j, _wavenumber(freq_j),
                            length_j, num_steps, refs[:3], mc2_j,
                            _check_cavity_type(cavity_type))
    r, c = jets.first_order_map(from_element_frame(body, *offsets))
    p_out = refs[0][-1].v[..., 0]
    return r, c, p_out


def track_lcavity(
    particles: Particles,
    *,
    length: Any,
    voltage: Any,
    phi0: Any = 0.0,
    frequency: Any,
    num_steps: int = 1,
    tilt: Any = 0.0,
    x_offset: Any = 0.0,
    y_offset: Any = 0.0,
    cavity_type: str = "standing_wave",
    method: str = "bmad",
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
    tilt, x_offset, y_offset
        Misalignments [rad, m]; offsets matter through the fringe and ponderomotive
        focusing, the axially symmetric model ignores the tilt.
    cavity_type
        ``"standing_wave"`` (Bmad's default) or ``"traveling_wave"``: a traveling wave
        co-moving with the particle has no ponderomotive focusing (Bmad drops those
        kicks); the edge kicks stay.
    method
        ``"bmad"``: the stair-step model (see the module documentation).
        ``"linear"``: first-order Taylor map of the "bmad" map about the laboratory
        reference orbit, in the exit reference's coordinates (:func:`lcavity_map`).

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
    element = "lcavity"
    check_method(method, element)
    num_steps = check_num_steps(num_steps, element)
    standing = _check_cavity_type(cavity_type)
    _check_frequency(element, frequency, voltage)
    prm = _parameters(element, particles, dict(
        length=length, voltage=voltage, phi0=phi0, frequency=frequency, tilt=tilt,
        x_offset=x_offset, y_offset=y_offset))
    xp = particles.xp
    if method == "linear":
        r, const, p_out = lcavity_map(prm["length"], prm["voltage"], prm["phi0"],
                                      prm["frequency"], particles.p0c, particles.mc2,
                                      prm["x_offset"], prm["y_offset"], prm["tilt"],
                                      num_steps, cavity_type)
        new = xp.matmul(r, particles.coords) + const[..., None]
        # Lost particles are frozen, their momenta re-expressed relative to the exit
        # reference; a reference below rest energy loses every particle.
        momenta, energies, _, gain, ref_ok = lcavity_reference(
            particles.p0c, particles.mc2, prm["voltage"], prm["phi0"], num_steps)
        lost = _change_reference(particles.unpack(), *(per_particle(v) for v in (
            momenta[0], momenta[-1], energies[0], gain)))
        lost = xp.stack(xp.broadcast_arrays(*lost), axis=-2)
        alive = particles.alive & per_particle(ref_ok)
        new, lost = xp.broadcast_arrays(new, lost)
        alive = xp.broadcast_to(alive, new.shape[:-2] + new.shape[-1:])
        new = xp.where(alive[..., None, :], new, lost)
        return Particles._from_fields(new, particles.s + prm["length"], p_out,
                                      particles.mc2, alive)

    pp = {k: per_particle(v) for k, v in prm.items()}
    p0c, mc2 = per_particle(particles.p0c), per_particle(particles.mc2)
    momenta, energies, gains, gain, ref_ok = lcavity_reference(
        p0c, mc2, pp["voltage"], pp["phi0"], num_steps)
    offsets = (pp["x_offset"], pp["y_offset"], pp["tilt"])
    lab, entering, body = _enter(particles, offsets)
    entering = entering & ref_ok
    body, alive = _lcavity_body(body, entering, pp["voltage"], pp["phi0"],
                                _wavenumber(pp["frequency"]), pp["length"], num_steps,
                                (momenta, energies, gains), mc2, standing)
    lab_out = _change_reference(lab, momenta[0], momenta[-1], energies[0], gain)
    out = freeze(xp, entering, from_element_frame(body, *offsets), lab_out)
    *parts, alive = xp.broadcast_arrays(*out, alive)
    return Particles._from_fields(xp.stack(parts, axis=-2), particles.s + prm["length"],
                                  momenta[-1][..., 0], particles.mc2, alive)
