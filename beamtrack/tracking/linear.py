"""First-order transfer maps: 6x6 matrices plus constant vectors.

A map ``(R, c)`` acts as ``coords -> R @ coords + c`` on the coordinate-major
``(*batch, 6, n)`` array, which is one batched matrix product. ``R`` has shape
``(*batch, 6, 6)`` and ``c`` shape ``(*batch, 6)``.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.parameters import as_parameter, broadcast_shape
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.stepping import apply_map, check_method


def matrix6(entries: dict[tuple[int, int], Any], like: Any) -> Any:
    """A ``(*batch, 6, 6)`` matrix: the identity with the given entries replaced.

    Built in a fixed handful of array operations whatever the number of entries (the
    entries stacked once, placed by one product with a constant 0/1 matrix, the rest
    of the identity added), which is what eager torch and its backward pass pay for.
    The entries are copied exactly (finite values).

    Parameters
    ----------
    entries
        ``{(row, column): value}`` with 0-based indices; values are arrays that
        broadcast to a common batch shape.
    like
        An array giving namespace, dtype and device.
    """
    xp = array_api_compat.array_namespace(like)
    device = array_api_compat.device(like)
    base = [[0.0 if (i, j) in entries else float(i == j) for j in range(6)] for i in range(6)]
    identity = xp.asarray(base, dtype=like.dtype, device=device)
    if not entries:
        return identity
    values = [v if hasattr(v, "shape") else xp.asarray(float(v), dtype=like.dtype,
                                                       device=device)
              for v in entries.values()]
    shape = broadcast_shape(*(tuple(v.shape) for v in values))
    values = [v if tuple(v.shape) == shape else xp.broadcast_to(v, shape) for v in values]
    place = [[0.0] * 36 for _ in entries]
    for k, (i, j) in enumerate(entries):
        place[k][6 * i + j] = 1.0
    placed = xp.stack(values, axis=-1) @ xp.asarray(place, dtype=like.dtype, device=device)
    return xp.reshape(placed, shape + (6, 6)) + identity


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
