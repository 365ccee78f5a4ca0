"""Orbit correctors: Bmad's ``hkicker``, ``vkicker`` and ``kicker`` ("bmad_standard").

A kick is a change of transverse momentum, ``px += hkick`` and ``py += vkick``, the
same for every particle (not divided by ``1 + pz``). A corrector with a length is
tracked with the kick-drift-kick body of the multipoles
(:func:`~beamtrack.tracking.multipole.kick_drift_kick_body`); with ``L = 0`` it is a
thin kick. Physics: docs/physics/multipoles.md (section "Correctors").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from beamtrack.tracking.multipole import Kick, KickOf, track_kick_drift_kick
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.stepping import Six

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from beamtrack.tracking.frames import Misalignment


def _uniform(h_name: str | None, v_name: str | None) -> KickOf:
    """Kick ``px += weight * p[h_name]``, ``py += weight * p[v_name]`` (``None``: no
    kick in that plane)."""

    def kick_of(p: dict[str, Any]) -> Kick:
        def kick(six: Six, weight: float) -> Six:
            x, px, y, py, z, pz = six
            if h_name is not None:
                px = px + weight * p[h_name]
            if v_name is not None:
                py = py + weight * p[v_name]
            return (x, px, y, py, z, pz)

        return kick

    return kick_of


def track_hkicker(particles: Particles, *, length: Any = 0.0, kick: Any = 0.0,
                  num_steps: int = 1, method: str = "bmad",
                  **misalignment: Unpack[Misalignment]) -> Particles:
    """Track through a horizontal corrector (Bmad ``hkicker``).

    A uniform kick: every particle gets the same change of ``px``, wherever it is.

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
    method
        ``"bmad"``: kick/2, exact drift, kick/2 per slice (Bmad's
        ``track_a_thick_multipole``). ``"linear"``: its exact first-order map about the
        laboratory reference orbit (the constant vector is the kicked orbit).
        ``"second_order"``: its second-order Taylor map there.
    **misalignment
        ``tilt`` [rad], ``x_offset``, ``y_offset`` [m] of the corrector
        (:class:`~beamtrack.tracking.frames.Misalignment`; 0 by default). ``tilt``
        rotates the kick direction (``pi/2`` kicks towards +y); offsets have no effect
        on a uniform kick.

    Returns
    -------
    Particles
        Outgoing particles, ``s`` advanced by ``length``. Parameters may have batch
        shape ``(*batch)``.
    """
    return track_kick_drift_kick(particles, "hkicker", method, num_steps, _uniform("kick", None),
                                 misalignment, length=length, kick=kick)


def track_vkicker(particles: Particles, *, length: Any = 0.0, kick: Any = 0.0,
                  num_steps: int = 1, method: str = "bmad",
                  **misalignment: Unpack[Misalignment]) -> Particles:
    """Track through a vertical corrector (Bmad ``vkicker``): ``py`` changes by ``kick``.

    Parameters are those of :func:`track_hkicker`, with ``kick`` the change of
    ``py = P_y/P0`` (positive steers towards +y).
    """
    return track_kick_drift_kick(particles, "vkicker", method, num_steps, _uniform(None, "kick"),
                                 misalignment, length=length, kick=kick)


def track_kicker(particles: Particles, *, length: Any = 0.0, hkick: Any = 0.0,
                 vkick: Any = 0.0, num_steps: int = 1, method: str = "bmad",
                 **misalignment: Unpack[Misalignment]) -> Particles:
    """Track through a combined horizontal and vertical corrector (Bmad ``kicker``).

    Parameters
    ----------
    particles
        Incoming particles (any backend).
    hkick, vkick
        Integrated kicks: changes of ``px`` and ``py`` over the element (not divided by
        ``1 + pz``).
    length, num_steps, method
        As for :func:`track_hkicker` (``length`` [m]; zero gives a thin kick).
    **misalignment
        ``tilt`` [rad], ``x_offset``, ``y_offset`` [m] of the corrector
        (:class:`~beamtrack.tracking.frames.Misalignment`; 0 by default), as for
        :func:`track_hkicker`.

    Returns
    -------
    Particles
        Outgoing particles, ``s`` advanced by ``length``.
    """
    return track_kick_drift_kick(particles, "kicker", method, num_steps,
                                 _uniform("hkick", "vkick"), misalignment, length=length,
                                 hkick=hkick, vkick=vkick)
