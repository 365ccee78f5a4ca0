"""Solenoid: Bmad's "bmad_standard" hard-edge solenoid, solved exactly.

A uniform longitudinal field between two hard edges, normalised strength
``ks = Bs / (B rho)`` [1/m]. In the canonical coordinates the edges are the identity;
inside, the mechanical momenta ``mx = px + ks y/2``, ``my = py - ks x/2`` and
``ps = sqrt((1+pz)^2 - mx^2 - my^2)`` are constants of the motion and the body is the
solenoid matrix of the Larmor angle ``ks L / (2 ps)``, with the exact path length.
The ``"linear"`` and ``"second_order"`` maps are the Taylor maps of this body
(stepping framework).

Physics: docs/physics/solenoid.md (the exact body, the hard-edge fringe, Bmad manual
references).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import array_api_compat

from beamtrack.tracking import frames
from beamtrack.tracking.kinematics import (
    beta_ratio_minus_one,
    one_over_ps_minus_one,
    unphysical_momentum,
)
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.special import cos_sinc
from beamtrack.tracking.stepping import (
    Body,
    Build,
    Six,
    check_num_steps,
    prepare,
    safe,
    taylor_map,
    track_element,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from beamtrack.tracking.frames import Misalignment


def _mechanical_momenta(six: Six, ks: Any) -> tuple[Any, Any]:
    """Mechanical transverse momenta ``(px + ks y/2, py - ks x/2)`` inside the field."""
    x, px, y, py, _, _ = six
    half = 0.5 * ks
    return px + half * y, py - half * x


def _solenoid_slice(six: Six, ks: Any, length: Any, p0c: Any, mc2: Any) -> Six:
    """Exact hard-edge solenoid body of ``length`` [m] in the element frame.

    Canonical coordinates in and out (the fringe is the identity in them). The caller
    passes only particles with physical mechanical momenta, ``mx^2 + my^2 < (1+pz)^2``
    (see :func:`_mechanical_momenta`). Removable singularities at ``ks -> 0`` go through
    :func:`~beamtrack.tracking.special.cos_sinc`, so values and derivatives are exact
    at ``ks = 0`` (a drift with the exact path length).
    """
    xp = array_api_compat.array_namespace(six[0])
    x, px, y, py, z, pz = six
    rel_p = 1.0 + pz
    mx, my = _mechanical_momenta(six, ks)
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


def _solenoid_body(num_steps: int) -> Build:
    """The "bmad" solenoid as a :class:`~beamtrack.tracking.stepping.Body`:
    ``num_steps`` exact body slices, each losing first the particles whose mechanical
    momenta inside the field are unphysical (Bmad's loss check)."""

    def build(p: dict[str, Any], p0c: Any, mc2: Any) -> Body:
        ks, step_length = p["ks"], p["length"] / num_steps

        def step(six: Six) -> tuple[Six, Any]:
            xp = array_api_compat.array_namespace(six[0])
            mx, my = _mechanical_momenta(six, ks)
            ok = ~unphysical_momentum(mx, my, six[5])
            return _solenoid_slice(safe(xp, ok, six), ks, step_length, p0c, mc2), ok

        return Body([step] * num_steps, offsets=(p["x_offset"], p["y_offset"], p["tilt"]))

    return build


def solenoid_map(length: Any, ks: Any, p0c: Any, mc2: Any, x_offset: Any = 0.0,
                 y_offset: Any = 0.0, tilt: Any = 0.0, num_steps: int = 1) -> tuple[Any, Any]:
    """First-order map ``(R, c)`` of the "bmad" solenoid about the laboratory reference
    orbit (all coordinates zero).

    ``R`` (shape ``(*batch, 6, 6)``) is the exact Jacobian of the "bmad" map there,
    computed by forward-mode differentiation (the series of
    :func:`~beamtrack.tracking.stepping.taylor_map`), and ``c`` (shape ``(*batch, 6)``)
    the image of the orbit. For an aligned solenoid ``c = 0`` and ``R`` is the textbook
    solenoid matrix with ``theta = ks L / 2``, e.g. ``R11 = cos^2 theta``,
    ``R12 = sin(2 theta)/ks``, ``R13 = sin(2 theta)/2``, ``R14 = 2 sin^2 theta / ks``,
    and ``R56 = L / gamma0^2``. An offset solenoid puts the orbit off axis (a helix):
    its chromatic and path-length terms are included. All arguments are arrays of one
    library (``x_offset, y_offset, tilt`` may also be Python numbers).
    """
    zero = 0.0 * (length + ks + p0c + mc2)
    params = dict(length=length, ks=ks, x_offset=zero + x_offset, y_offset=zero + y_offset,
                  tilt=zero + tilt)
    r, c, _, _ = taylor_map(_solenoid_body(num_steps), params, p0c, mc2, order=1)
    return r, c


def track_solenoid(particles: Particles, *, length: Any, ks: Any, num_steps: int = 1,
                   method: str = "bmad", **misalignment: Unpack[Misalignment]) -> Particles:
    """Track through a solenoid (Bmad ``solenoid``, "bmad_standard" tracking).

    The body is solved exactly in the canonical coordinates (no paraxial expansion).

    Parameters
    ----------
    particles
        Incoming particles (any backend).
    length
        Length [m] of the field, between the hard edges.
    ks
        Normalised longitudinal field ``Bs / (B rho)`` [1/m] of the reference species
        (sign included, as Bmad's ``ks``). Any sign, and zero (a drift).
    num_steps
        Number of body slices (``"bmad"`` method). The body is exact per slice, so
        slicing changes nothing but rounding.
    method
        ``"bmad"``: exact hard-edge solenoid (see docs/physics/solenoid.md; particles
        whose mechanical momentum inside the field is unphysical are lost at the
        entrance, as in Bmad). ``"linear"``: the first-order Taylor map of the "bmad"
        map about the laboratory reference orbit (:func:`solenoid_map`).
        ``"second_order"``: its second-order Taylor map there.
    **misalignment
        ``tilt`` [rad], ``x_offset``, ``y_offset`` [m] of the solenoid axis
        (:class:`~beamtrack.tracking.frames.Misalignment`; 0 by default). The field is
        axially symmetric, so a tilt changes nothing (kept for a uniform interface and
        Bmad lattices).

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
    element = "solenoid"
    num_steps = check_num_steps(num_steps, element)
    p = prepare(particles, element, method, length=length, ks=ks,
                **frames.misalignment(misalignment, element))
    return track_element(particles, _solenoid_body(num_steps), p, length=p["length"],
                         method=method)
