"""Entrance and exit frame transformations (misalignments), shared by every element.

Bmad's ``offset_particle`` without pitches or z offset: at the entrance the
coordinates are translated by ``(-x_offset, -y_offset)`` and then rotated by
``-tilt`` about the s axis into the element frame; at the exit the inverse is applied.
A positive ``tilt`` rotates the element counter-clockwise seen along +s: a normal
quadrupole with ``tilt = pi/4`` is a skew quadrupole.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from beamtrack.tracking.stepping import Six


def _rotate(six: Six, angle: Any) -> Six:
    """Rotate transverse positions and momenta by ``-angle`` (into a frame rotated by angle)."""
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
