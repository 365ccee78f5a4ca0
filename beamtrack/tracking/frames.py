"""Entrance and exit frame transformations (misalignments), shared by every element.

Bmad's ``offset_particle`` without pitches or z offset: at the entrance the
coordinates are translated by ``(-x_offset, -y_offset)`` and then rotated by
``-tilt`` about the s axis into the element frame; at the exit the inverse is applied.
A positive ``tilt`` rotates the element counter-clockwise seen along +s: a normal
quadrupole with ``tilt = pi/4`` is a skew quadrupole.

The misalignment keywords themselves are declared once, by :class:`Misalignment`:
tracking functions take them as ``**misalignment: Unpack[Misalignment]`` and read them
with :func:`misalignment`, which refuses any other keyword.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypedDict

import array_api_compat

from beamtrack.tracking.parameters import as_parameter, is_number, per_particle

#: The six coordinates ``(x, px, y, py, z, pz)`` as a tuple of arrays.
Six = tuple[Any, Any, Any, Any, Any, Any]


class Misalignment(TypedDict, total=False):
    """The misalignment keywords of a tracking function, each 0 by default.

    ``tilt`` [rad] is a rotation of the element about s, counter-clockwise seen along
    +s; ``x_offset`` and ``y_offset`` [m] are the offsets of the element. Each is a
    Python number or an array of the particles' library (batch shape ``(*batch)``).
    Tracking functions declare them as ``**misalignment: Unpack[Misalignment]`` and
    read them with :func:`misalignment`.
    """

    tilt: Any
    """Rotation about s [rad], counter-clockwise seen along +s."""
    x_offset: Any
    """Horizontal offset of the element [m]."""
    y_offset: Any
    """Vertical offset of the element [m]."""


#: Names of the misalignment keywords, in the order of :class:`Misalignment`.
MISALIGNMENT_KEYS: tuple[str, ...] = tuple(Misalignment.__annotations__)


def misalignment(given: Mapping[str, Any], element: str) -> dict[str, Any]:
    """The misalignment keywords ``given`` to a tracking function, defaults filled in.

    Parameters
    ----------
    given
        The keywords collected by ``**misalignment`` (see :class:`Misalignment`).
    element
        Label of the element or tracking function, for the error message.

    Returns
    -------
    dict
        ``{"tilt": ..., "x_offset": ..., "y_offset": ...}``, 0.0 for those not given.

    Raises
    ------
    TypeError
        If ``given`` has any other key: a misspelled keyword is never ignored.
    """
    unknown = [key for key in given if key not in MISALIGNMENT_KEYS]
    if unknown:
        raise TypeError(
            f"{element}: unexpected keyword argument(s) {', '.join(map(repr, unknown))}; "
            f"valid ones (besides the named parameters): "
            f"{', '.join(map(repr, MISALIGNMENT_KEYS))}"
        )
    return {key: given.get(key, 0.0) for key in MISALIGNMENT_KEYS}


def aligned(x_offset: Any, y_offset: Any, tilt: Any) -> bool:
    """Whether offsets and tilt are all Python zeros, known before any tracing: the
    element frame is then the laboratory frame and no frame change is needed. Arrays
    (even of zeros) are never treated so: they may be traced or differentiated."""
    return all(is_number(v) and v == 0.0
               for v in (x_offset, y_offset, tilt))


def offsets(p: Mapping[str, Any]) -> tuple[Any, Any, Any] | None:
    """``(x_offset, y_offset, tilt)`` of prepared parameters ``p``, or ``None`` when
    they are all Python zeros (:func:`aligned`): the ``offsets`` of a
    :class:`~beamtrack.tracking.stepping.Body`."""
    values = (p["x_offset"], p["y_offset"], p["tilt"])
    return None if aligned(*values) else values


def _rotate(six: Six, angle: Any) -> Six:
    """Rotate transverse positions and momenta by ``-angle`` (into a frame rotated by angle)."""
    if is_number(angle):
        c, s = math.cos(angle), math.sin(angle)
    else:
        xp = array_api_compat.array_namespace(six[0])
        c, s = xp.cos(angle), xp.sin(angle)
    x, px, y, py, z, pz = six
    return (c * x + s * y, c * px + s * py, -s * x + c * y, -s * px + c * py, z, pz)


def to_element_frame(six: Six, x_offset: Any, y_offset: Any, tilt: Any) -> Six:
    """Laboratory coordinates -> element body coordinates (offsets [m], tilt [rad])."""
    x, px, y, py, z, pz = six
    return _rotate((x - x_offset, px, y - y_offset, py, z, pz), tilt)


def from_element_frame(six: Six, x_offset: Any, y_offset: Any, tilt: Any) -> Six:
    """Element body coordinates -> laboratory coordinates (inverse of the above)."""
    x, px, y, py, z, pz = _rotate(six, -tilt)
    return (x + x_offset, px, y + y_offset, py, z, pz)


def change_frame(six: Six, rotation: Any, origin: Any) -> tuple[Six, Any]:
    """Express particles in another frame and move them to its ``s = 0`` plane.

    The new frame has its origin at ``origin = (X, Y, S)`` [m] and its axes along the
    columns of the 3x3 ``rotation`` (``rotation[i][j]``: row ``i``, column ``j``), both
    given in the current frame, at whose ``s = 0`` plane the particles are. A
    particle at ``P = (x, y, 0)`` with momentum ``(px, py, ps)``,
    ``ps = sqrt((1+pz)^2 - px^2 - py^2)``, gets the position ``rotation^T (P - origin)``
    and the momentum ``rotation^T (px, py, ps)``, and is then drifted exactly (a
    straight line) to the new frame's ``s = 0`` plane; ``z`` changes by minus the
    path length of that drift (Bmad's ``offset_particle`` with
    ``track_a_drift(..., include_ref_motion = .false.)``: the reference particle does
    not move). Entries are arrays (or jets) that broadcast against the coordinates.
    Pass only physical momenta (see :func:`~beamtrack.tracking.stepping.safe`).

    Returns
    -------
    (six, lost)
        New coordinates and the mask of particles that do not move forward in the new
        frame (their new longitudinal momentum is not positive). With the identity
        rotation and a zero origin the coordinates come back unchanged, bit for bit.
    """
    xp = array_api_compat.array_namespace(six[0])
    x, px, y, py, z, pz = six
    rel_p = 1.0 + pz
    ps2 = rel_p * rel_p - px * px - py * py
    ps = xp.sqrt(xp.where(ps2 > 0.0, ps2, xp.ones_like(ps2)))
    d = (x - origin[0], y - origin[1], -origin[2])
    r = rotation
    q = [r[0][i] * d[0] + r[1][i] * d[1] + r[2][i] * d[2] for i in range(3)]
    p = [r[0][i] * px + r[1][i] * py + r[2][i] * ps for i in range(3)]
    forward = p[2] > 0.0
    p_s = xp.where(forward, p[2], xp.ones_like(p[2]))
    step = -q[2] / p_s  # path length over total momentum, times the momentum ratio
    x_new = q[0] + step * p[0]
    y_new = q[1] + step * p[1]
    z_new = z - step * rel_p
    return (x_new, p[0], y_new, p[1], z_new, pz), ~forward


def frame_positions(particles: Any, x_offset: Any, y_offset: Any, tilt: Any,
                    element: str | None = None) -> tuple[Any, Any]:
    """Positions ``(x, y)`` [m] of ``particles`` in the frame of a zero-length element
    (aperture, monitor, screen) at offsets [m] and tilt [rad]; shape ``(*batch, n)``."""
    c = particles.coords
    offsets = [per_particle(as_parameter(v, c, k, element)) for k, v in
               (("x_offset", x_offset), ("y_offset", y_offset), ("tilt", tilt))]
    six = to_element_frame(particles.unpack(), *offsets)
    return six[0], six[2]
