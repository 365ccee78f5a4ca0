"""Solenoid: Bmad's "bmad_standard" hard-edge solenoid and its first-order map.

Model (Bmad ``solenoid_track_and_mat``; Bmad manual, "Solenoid Tracking"): a uniform
longitudinal field ``Bs`` between two hard edges, with the normalised strength
``ks = Bs / (B rho)`` [1/m] of the reference species. The body is solved **exactly**
(no small-angle approximation): with the canonical momenta ``px, py`` (normalised by
``P0``) the mechanical transverse momenta inside the field are

    ``mx = px + ks y / 2``,   ``my = py - ks x / 2``,

their magnitude and hence the longitudinal momentum
``ps = sqrt((1+pz)^2 - mx^2 - my^2)`` are constants of the motion, and the map is the
linear solenoid matrix of angle ``theta = ks L / (2 ps)`` (``ks / ps`` replaces the
paraxial ``ks / (1+pz)``; on axis ``ps = 1 + pz``). The path length is exact too:
``z += L (beta/beta0 - (1+pz)/ps)``, computed as
``L (beta/beta0 - 1) - L ((1+pz)/ps - 1)`` without cancellation.

Hard-edge fringe. Outside the solenoid the canonical and mechanical momenta coincide.
The radial field at each edge (``B_r = -(r/2) dBs/ds``) gives an impulsive kick that
is exactly the jump of the vector potential, so the canonical momenta are continuous
across the edges: in Bmad's (canonical) coordinates the fringe is the identity. In
mechanical terms the entrance kick is ``mx = px + ks y/2``, ``my = py - ks x/2``
(``mx, my`` the mechanical momenta just inside), and the exit kick is the inverse,
``px = mx - ks y/2``, ``py = my + ks x/2``.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from beamtrack.tracking import jets
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.frames import from_element_frame, to_element_frame
from beamtrack.tracking.kinematics import (
    beta_ratio_minus_one,
    one_over_ps_minus_one,
    unphysical_momentum,
)
from beamtrack.tracking.linear import apply_linear_map
from beamtrack.tracking.parameters import as_parameter, per_particle
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.special import cos_sinc
from beamtrack.tracking.stepping import (
    Six,
    assemble,
    check_method,
    check_num_steps,
    freeze,
    safe,
)

ELEMENT = "solenoid"


def mechanical_momenta(six: Six, ks: Any) -> tuple[Any, Any]:
    """Mechanical transverse momenta ``(px + ks y/2, py - ks x/2)`` inside the field."""
    x, px, y, py, _, _ = six
    half = 0.5 * ks
    return px + half * y, py - half * x


def solenoid_body(six: Six, ks: Any, length: Any, p0c: Any, mc2: Any) -> Six:
    """Exact hard-edge solenoid body of ``length`` [m] in the element frame.

    Canonical coordinates in and out (the fringe is the identity in them). The caller
    passes only particles with physical mechanical momenta, ``mx^2 + my^2 < (1+pz)^2``
    (see :func:`mechanical_momenta`). Removable singularities at ``ks -> 0`` go through
    :func:`~beamtrack.tracking.special.cos_sinc`, so values and derivatives are exact
    at ``ks = 0`` (a drift with the exact path length).
    """
    xp = array_api_compat.array_namespace(six[0])
    x, px, y, py, z, pz = six
    rel_p = 1.0 + pz
    mx, my = mechanical_momenta(six, ks)
    pxy2 = (mx * mx + my * my) / (rel_p * rel_p)
    ps = rel_p * xp.sqrt(1.0 - pxy2)
    k = 0.5 * ks  # the Larmor wave number ks/2 of the reference momentum [1/m]
    l_eff = length / ps
    theta = k * l_eff  # Larmor angle ks L / (2 ps)
    cos_t, sinc_t = cos_sinc(theta * theta)
    sin_t = theta * sinc_t
    c2 = cos_t * cos_t
    s2 = sin_t * sin_t
    cs = cos_t * sin_t
    cs_k = l_eff * cos_t * sinc_t  # cos sin / k
    s2_k = l_eff * sin_t * sinc_t  # sin^2 / k
    x_new = c2 * x + cs_k * px + cs * y + s2_k * py
    px_new = -k * cs * x + c2 * px - k * s2 * y + cs * py
    y_new = -cs * x - s2_k * px + c2 * y + cs_k * py
    py_new = k * s2 * x - cs * px - k * cs * y + c2 * py
    z_new = z + length * (beta_ratio_minus_one(pz, p0c, mc2) - one_over_ps_minus_one(pxy2))
    return (x_new, px_new, y_new, py_new, z_new, pz)


def _track_body(six: Six, alive: Any, ks: Any, step: Any, num_steps: int, p0c: Any,
                mc2: Any) -> tuple[Six, Any]:
    """``num_steps`` body slices with the loss check of Bmad (lost where the mechanical
    momenta inside the field are unphysical)."""
    xp = array_api_compat.array_namespace(six[0])
    for _ in range(num_steps):
        mx, my = mechanical_momenta(six, ks)
        alive = alive & ~unphysical_momentum(mx, my, six[5])
        new = solenoid_body(safe(xp, alive, six), ks, step, p0c, mc2)
        six = freeze(xp, alive, new, six)
    return six, alive


def solenoid_map(
    length: Any,
    ks: Any,
    p0c: Any,
    mc2: Any,
    x_offset: Any = 0.0,
    y_offset: Any = 0.0,
    tilt: Any = 0.0,
    num_steps: int = 1,
) -> tuple[Any, Any]:
    """First-order map ``(R, c)`` of the "bmad" solenoid about the laboratory reference
    orbit (all coordinates zero).

    ``R`` (shape ``(*batch, 6, 6)``) is the exact Jacobian of the "bmad" map there,
    computed by forward-mode differentiation (:mod:`~beamtrack.tracking.jets`), and
    ``c`` (shape ``(*batch, 6)``) the image of the orbit. For an aligned solenoid
    ``c = 0`` and ``R`` is the textbook solenoid matrix with ``theta = ks L / 2``,
    e.g. ``R11 = cos^2 theta``, ``R12 = sin(2 theta)/ks``, ``R13 = sin(2 theta)/2``,
    ``R14 = 2 sin^2 theta / ks``, and ``R56 = L / gamma0^2``. An offset solenoid puts
    the orbit off axis (a helix): its chromatic and path-length terms are included.
    All arguments are arrays of one library (``x_offset, y_offset, tilt`` may also be
    Python numbers).
    """
    xp = array_api_compat.array_namespace(ks)
    zero = 0.0 * (length + ks + p0c + mc2)
    x_offset, y_offset, tilt = (zero + v for v in (x_offset, y_offset, tilt))
    col = zero[..., None]
    const = [jets.constant(per_particle(v)) for v in (length, ks, p0c, mc2)]
    length_j, ks_j, p0c_j, mc2_j = const
    offsets = [jets.constant(per_particle(v)) for v in (x_offset, y_offset, tilt)]
    lab = jets.seed([col] * 6)
    body = to_element_frame(lab, *offsets)
    alive = xp.ones(col.shape, dtype=xp.bool, device=array_api_compat.device(col))
    body, _ = _track_body(body, alive, ks_j, length_j / num_steps, num_steps, p0c_j, mc2_j)
    return jets.first_order_map(from_element_frame(body, *offsets))


def track_solenoid(
    particles: Particles,
    *,
    length: Any,
    ks: Any,
    num_steps: int = 1,
    tilt: Any = 0.0,
    x_offset: Any = 0.0,
    y_offset: Any = 0.0,
    method: str = "bmad",
) -> Particles:
    """Track through a solenoid (Bmad ``solenoid``, "bmad_standard" tracking).

    Parameters
    ----------
    particles
        Incoming particles (any backend).
    length
        Length [m].
    ks
        Normalised longitudinal field ``Bs / (B rho)`` [1/m] of the reference species
        (sign included, as Bmad's ``ks``). Any sign, and zero (a drift).
    num_steps
        Number of body slices (``"bmad"`` method). The body is exact per slice, so
        slicing changes nothing but rounding.
    tilt
        Rotation about s [rad]. The field is axially symmetric, so a tilt changes
        nothing (kept for a uniform interface and Bmad lattices).
    x_offset, y_offset
        Offsets of the solenoid axis [m].
    method
        ``"bmad"``: exact hard-edge solenoid (see the module documentation; particles
        whose mechanical momentum inside the field is unphysical are lost at the
        entrance, as in Bmad). ``"linear"``: the first-order Taylor map of the "bmad"
        map about the laboratory reference orbit (:func:`solenoid_map`).

    Returns
    -------
    Particles
        Outgoing particles, ``s`` advanced by ``length``. Parameters may have batch
        shape ``(*batch)``, broadcast against particles of shape ``(*batch, n)``.

    Notes
    -----
    ``px, py`` are canonical momenta. Inside the field the mechanical momenta are
    ``px + ks y/2`` and ``py - ks x/2``; outside both coincide, so the edge kicks of
    the radial fringe field are implicit. The transverse plane turns by the Larmor angle
    ``ks L / (2 ps)`` and focuses with strength ``(ks / (2 ps))^2``,
    ``ps = sqrt((1+pz)^2 - mx^2 - my^2)`` (``= 1+pz`` on axis).
    """
    check_method(method, ELEMENT)
    num_steps = check_num_steps(num_steps, ELEMENT)
    c = particles.coords
    try:
        length = as_parameter(length, c, "length")
        ks = as_parameter(ks, c, "ks")
        tilt = as_parameter(tilt, c, "tilt")
        x_offset = as_parameter(x_offset, c, "x_offset")
        y_offset = as_parameter(y_offset, c, "y_offset")
    except ParameterError as exc:
        raise ParameterError(f"{ELEMENT}: {exc}") from exc
    if method == "linear":
        r, const = solenoid_map(length, ks, particles.p0c, particles.mc2, x_offset, y_offset,
                                tilt, num_steps)
        return apply_linear_map(particles, r, const, length)

    xp = array_api_compat.array_namespace(c)
    p0c, mc2 = per_particle(particles.p0c), per_particle(particles.mc2)
    offsets = (per_particle(x_offset), per_particle(y_offset), per_particle(tilt))
    lab = particles.unpack()
    entering = particles.alive & ~unphysical_momentum(lab[1], lab[3], lab[5])
    body = to_element_frame(lab, *offsets)
    body, alive = _track_body(body, entering, per_particle(ks), per_particle(length / num_steps),
                              num_steps, p0c, mc2)
    out = freeze(xp, entering, from_element_frame(body, *offsets), lab)
    return assemble(particles, out, alive, length)
