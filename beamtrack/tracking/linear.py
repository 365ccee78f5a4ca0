"""First-order transfer maps: 6x6 matrices plus constant vectors.

A map ``(R, c)`` acts as ``coords -> R @ coords + c`` on the coordinate-major
``(*batch, 6, n)`` array, which is one batched matrix product. ``R`` has shape
``(*batch, 6, 6)`` and ``c`` shape ``(*batch, 6)``.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.parameters import as_parameter
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.stepping import apply_map, check_method


def matrix6(entries: dict[tuple[int, int], Any], like: Any) -> Any:
    """A ``(*batch, 6, 6)`` matrix: the identity with the given entries replaced.

    Parameters
    ----------
    entries
        ``{(row, column): value}`` with 0-based indices; values are arrays that
        broadcast to a common batch shape.
    like
        An array giving namespace, dtype and device.
    """
    xp = array_api_compat.array_namespace(like)
    values = list(entries.values())
    shape = xp.broadcast_arrays(*values)[0].shape if values else ()
    device = array_api_compat.device(like)
    zero = xp.zeros(shape, dtype=like.dtype, device=device)
    one = xp.ones(shape, dtype=like.dtype, device=device)
    rows = []
    for i in range(6):
        row = [
            entries[(i, j)] + zero if (i, j) in entries else (one if i == j else zero)
            for j in range(6)
        ]
        rows.append(xp.stack(row, axis=-1))
    return xp.stack(rows, axis=-2)


def rotation_matrix(tilt: Any) -> Any:
    """Map of the rotation of transverse coordinates into a frame tilted by ``tilt`` [rad]."""
    xp = array_api_compat.array_namespace(tilt)
    c, s = xp.cos(tilt), xp.sin(tilt)
    return matrix6(
        {(0, 0): c, (0, 2): s, (2, 0): -s, (2, 2): c,
         (1, 1): c, (1, 3): s, (3, 1): -s, (3, 3): c},
        tilt,
    )


def apply_linear_map(particles: Particles, r: Any, c: Any, length: Any) -> Particles:
    """Track ``particles`` through the map ``(R, c)`` of an element of ``length`` [m].

    Lost particles keep their coordinates; a linear map never loses particles. (The
    first-order case of :func:`~beamtrack.tracking.stepping.apply_map`.)
    """
    return apply_map(particles, r, c, None, length)


def track_linear_map(
    particles: Particles, *, r: Any, c: Any = 0.0, length: Any = 0.0, method: str = "linear"
) -> Particles:
    """Track through a given first-order map ``coords -> R @ coords + c``.

    Parameters
    ----------
    particles
        Incoming particles.
    r
        Matrix of shape ``(*batch, 6, 6)`` (an array of the particles' library).
    c
        Constant vector of shape ``(*batch, 6)``, or 0.
    length
        Length [m] by which ``s`` advances.
    method
        Accepted for uniformity with the other elements; every method applies the map.
    """
    element = "linear map"
    check_method(method, element)
    coords = particles.coords
    r = as_parameter(r, coords, "r", element)
    c = as_parameter(c, coords, "c", element)
    if r.shape[-2:] != (6, 6):
        raise ParameterError(f"parameter 'r' must have shape (*batch, 6, 6), got "
                             f"{tuple(r.shape)}", element=element)
    xp = particles.xp
    if c.ndim == 0:
        c = xp.zeros(r.shape[:-1], dtype=coords.dtype, device=particles.device) + c
    length = as_parameter(length, coords, "length", element)
    return apply_map(particles, r, c, None, length)
