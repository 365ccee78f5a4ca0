"""Shared bookkeeping of element tracking: survival, freezing and the new record."""

from __future__ import annotations

from typing import Any

from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.particles import Particles

Six = tuple[Any, Any, Any, Any, Any, Any]

#: Tracking methods every element with a body provides.
METHODS = ("bmad", "linear")


def check_method(method: str, element: str) -> str:
    """Validate a tracking method name."""
    if method not in METHODS:
        raise ParameterError(
            f"{element}: unknown tracking method {method!r}; choose one of {', '.join(METHODS)}"
        )
    return method


def check_num_steps(num_steps: Any, element: str) -> int:
    """Validate ``num_steps`` (a Python integer >= 1: it sets the loop length)."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ParameterError(
            f"{element}: num_steps must be an integer >= 1, got {num_steps!r}"
        )
    return num_steps


def freeze(xp: Any, alive: Any, new: Six, old: Six) -> Six:
    """Take ``new`` coordinates where ``alive``, keep ``old`` ones elsewhere.

    This is how lost particles keep the coordinates they had at the point of loss.
    """
    return tuple(xp.where(alive, n, o) for n, o in zip(new, old))  # type: ignore[return-value]


def safe(xp: Any, alive: Any, coords: Six) -> Six:
    """Coordinates with lost particles replaced by the reference orbit (all zero).

    Tracking computes on these so that a lost particle's unphysical momentum never
    produces inf or NaN, not even in the branch that :func:`freeze` discards (which
    would turn gradients into NaN).
    """
    zero = xp.zeros_like(coords[0])
    return tuple(xp.where(alive, c, zero) for c in coords)  # type: ignore[return-value]


def assemble(particles: Particles, coords: Six, alive: Any, length: Any) -> Particles:
    """Stack tracked coordinates into a new record, advanced by ``length`` in ``s``."""
    xp = particles.xp
    *parts, alive = xp.broadcast_arrays(*coords, alive)
    return Particles._from_fields(
        xp.stack(parts, axis=-2),
        particles.s + length,
        particles.p0c,
        particles.mc2,
        alive,
    )
