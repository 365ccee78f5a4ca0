"""Orbit correctors: Bmad's ``hkicker``, ``vkicker`` and ``kicker`` ("bmad_standard").

Conventions (Bmad ``multipole_ele_to_ab`` and ``track_a_thick_multipole``)
---------------------------------------------------------------------------
A kick is a change of transverse momentum, ``px += hkick`` and ``py += vkick``
(``px = P_x/P0``), the same for every particle: it is NOT divided by ``1 + pz``, so the
angle ``hkick / (1+pz)`` is chromatic, as a magnetic field gives. A positive ``hkick``
steers towards +x, a positive ``vkick`` towards +y. (Bmad stores them as the dipole
multipoles ``b0 = -hkick``, ``a0 = vkick``.)

A kicker with length ``L > 0`` is tracked like Bmad's other thick multipoles: a half
kick, ``num_steps`` times [exact drift of ``L / num_steps``, kick of
``1/num_steps``], the last kick again a half kick; so with ``num_steps = 1`` it is
kick/2 - drift L - kick/2 (not drift-kick-drift). Because the drift is exact, the
deflected orbit also gains path length: the reference particle leaves with
``x = hkick L / 2``, ``px = hkick`` and ``z = -L (1/sqrt(1 - (hkick/2)^2) - 1)``
(``num_steps = 1``). With ``L = 0`` the kicker is a thin kick. ``tilt`` rotates the
kick directions about s; offsets do not change a uniform kick but are accepted (as in
Bmad) for uniformity.

The ``"linear"`` method is the exact first-order map of this ``"bmad"`` map about the
laboratory reference orbit: its constant vector is the kicked reference orbit and its
matrix the Jacobian along it (the exact drift at ``px = hkick/2`` gives
``R12 = L (1 - vk^2/4) / ps^3``, ``R52 = -L hk / (2 ps^3)`` etc., with
``ps = sqrt(1 - (hk^2 + vk^2)/4)``).
"""

from __future__ import annotations

from typing import Any

from beamtrack.tracking.multipole import DipoleKick, prepare_parameters, track_thick_element
from beamtrack.tracking.particles import Particles


def _track_kicker(particles: Particles, element: str, method: str, num_steps: Any,
                  h_name: str | None, v_name: str | None, **params: Any) -> Particles:
    """Shared body of the correctors; ``h_name``/``v_name`` name the parameter that
    holds each kick (``None``: no kick in that plane)."""
    steps, p = prepare_parameters(particles, element, method, num_steps, **params)
    zero = 0.0 * p["length"]
    hk = p[h_name] if h_name else zero
    vk = p[v_name] if v_name else zero
    return track_thick_element(particles, method, steps,
                               lambda shape: DipoleKick(shape(hk), shape(vk)), p)


def track_hkicker(
    particles: Particles,
    *,
    length: Any = 0.0,
    kick: Any = 0.0,
    num_steps: int = 1,
    tilt: Any = 0.0,
    x_offset: Any = 0.0,
    y_offset: Any = 0.0,
    method: str = "bmad",
) -> Particles:
    """Track through a horizontal corrector (Bmad ``hkicker``).

    Parameters
    ----------
    particles
        Incoming particles (any backend).
    length
        Length [m]; zero gives a thin kick.
    kick
        Integrated kick: change of ``px = P_x/P0`` over the element (same for every
        particle, not divided by ``1 + pz``); positive steers towards +x.
    num_steps
        Number of kick-drift-kick slices.
    tilt
        Rotation about s [rad] of the kick direction (``pi/2`` kicks towards +y).
    x_offset, y_offset
        Offsets [m] (no effect on a uniform kick).
    method
        ``"bmad"``: kick/2, exact drift, kick/2 per slice (Bmad's
        ``track_a_thick_multipole``). ``"linear"``: its exact first-order map about the
        laboratory reference orbit (the constant vector is the kicked orbit).

    Returns
    -------
    Particles
        Outgoing particles, ``s`` advanced by ``length``. Parameters may have batch
        shape ``(*batch)``.
    """
    return _track_kicker(particles, "hkicker", method, num_steps, "kick", None, length=length,
                         kick=kick, tilt=tilt, x_offset=x_offset, y_offset=y_offset)


def track_vkicker(
    particles: Particles,
    *,
    length: Any = 0.0,
    kick: Any = 0.0,
    num_steps: int = 1,
    tilt: Any = 0.0,
    x_offset: Any = 0.0,
    y_offset: Any = 0.0,
    method: str = "bmad",
) -> Particles:
    """Track through a vertical corrector (Bmad ``vkicker``): ``py`` changes by ``kick``.

    Parameters are those of :func:`track_hkicker`, with ``kick`` the change of
    ``py = P_y/P0`` (positive steers towards +y).
    """
    return _track_kicker(particles, "vkicker", method, num_steps, None, "kick", length=length,
                         kick=kick, tilt=tilt, x_offset=x_offset, y_offset=y_offset)


def track_kicker(
    particles: Particles,
    *,
    length: Any = 0.0,
    hkick: Any = 0.0,
    vkick: Any = 0.0,
    num_steps: int = 1,
    tilt: Any = 0.0,
    x_offset: Any = 0.0,
    y_offset: Any = 0.0,
    method: str = "bmad",
) -> Particles:
    """Track through a combined horizontal and vertical corrector (Bmad ``kicker``).

    Parameters
    ----------
    particles
        Incoming particles (any backend).
    length
        Length [m]; zero gives a thin kick.
    hkick, vkick
        Integrated kicks: changes of ``px`` and ``py`` over the element (not divided by
        ``1 + pz``).
    num_steps, tilt, x_offset, y_offset, method
        As for :func:`track_hkicker`.

    Returns
    -------
    Particles
        Outgoing particles, ``s`` advanced by ``length``.
    """
    return _track_kicker(particles, "kicker", method, num_steps, "hkick", "vkick", length=length,
                         hkick=hkick, vkick=vkick, tilt=tilt, x_offset=x_offset,
                         y_offset=y_offset)
