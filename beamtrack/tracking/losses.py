"""Why a particle was lost: the loss reason codes, and how tracking reports them.

A particle is either tracked correctly or lost with its coordinates frozen; it never
turns into NaN. Every way of failing is a loss with one of the codes of
:class:`LossReason` (the table of ``docs/failure-modes.md``), in the spirit of Xsuite's
particle ``state`` and Bmad's lost states.

The codes are not stored in :class:`~beamtrack.tracking.particles.Particles` (which
keeps only the boolean ``alive``, so plain tracking pays nothing for them):
``Beamline.observe`` asks for them. While :func:`collecting` is active, the stepping
framework reports every mask of particles it loses together with the reason
(:func:`report`); outside it, :func:`report` does nothing. The collection happens in
Python while tracking code runs, so it works eagerly and while ``jax.jit`` or
``torch.compile`` trace that code (the masks are then traced values too).
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator
from typing import Any

import array_api_compat

from beamtrack.tracking.jets import Jet


class LossReason(enum.IntEnum):
    """Why a particle was lost (the ``lost_reason`` of ``Observation``).

    ``0`` means not lost (in the observed beamline).
    """

    #: Not lost in the observed beamline (alive, or lost before it).
    NOT_LOST = 0
    #: Outside an aperture or collimator.
    APERTURE = 1
    #: Unphysical momentum: ``px^2 + py^2 >= (1+pz)^2`` or ``pz <= -1`` (cannot move
    #: forward), at the entrance of an element or after one of its steps.
    UNPHYSICAL_MOMENTUM = 2
    #: Energy below the rest energy: an accelerating element whose exit reference
    #: would fall below rest energy admits no particle.
    BELOW_REST_ENERGY = 3
    #: Arithmetic overflow or another non-finite result inside an element.
    NON_FINITE = 4
    #: Entered the element with a NaN or infinite coordinate.
    NON_FINITE_ENTRY = 5
    #: Lost by an element that gives no reason (a user's custom element).
    OTHER = 6


#: The active collectors, innermost last. A plain module-level list, not a ContextVar:
#: torch.compile traces reads of it (it cannot trace ``ContextVar.get``). Collection
#: is therefore per process, not per thread: observe from one thread at a time.
_COLLECTORS: list[list[tuple[Any, Any]]] = []


@contextlib.contextmanager
def collecting() -> Iterator[list[tuple[Any, Any]]]:
    """Collect the losses that tracking reports while the block runs.

    Yields a list that fills with ``(mask, reason)`` pairs in the order the losses
    happen: ``mask`` a boolean array of the particles lost, ``reason`` a
    :class:`LossReason` or an integer array of codes of the same shape.
    """
    found: list[tuple[Any, Any]] = []
    _COLLECTORS.append(found)
    try:
        yield found
    finally:
        _COLLECTORS.pop()


def active() -> bool:
    """Whether losses are being collected (the caller may then compute reasons)."""
    return bool(_COLLECTORS)


def report(mask: Any, reason: Any) -> None:
    """Report particles ``mask`` lost for ``reason`` (no-op unless :func:`collecting`)."""
    if _COLLECTORS:
        _COLLECTORS[-1].append((mask, reason))


def finite(coords: Any) -> Any:
    """Mask ``(*batch, n)`` of particles whose coordinates ``(*batch, 6, n)`` are all
    finite: one sum over the six rows and one ``isfinite`` (a NaN or an infinity in any
    row makes the sum non-finite; coordinates so large that their sum overflows,
    beyond 1e307, count as non-finite too)."""
    xp = array_api_compat.array_namespace(coords)
    return xp.isfinite(xp.sum(coords, axis=-2))


def finite_six(xp: Any, six: tuple[Any, ...]) -> Any:
    """:func:`finite` of six coordinate arrays (summed, then one ``isfinite``)."""
    total = six[0] + six[1]
    for value in six[2:]:
        total = total + value
    return xp.isfinite(total)


def step_reason(xp: Any, new: tuple[Any, ...]) -> Any:
    """Codes for particles a step lost with coordinates ``new`` after it:
    :attr:`LossReason.NON_FINITE` where a coordinate is not finite, else
    :attr:`LossReason.UNPHYSICAL_MOMENTUM`."""
    total = new[0]
    for value in new[1:]:
        total = total + value
    ok = xp.isfinite(total)
    one = xp.ones_like(total, dtype=xp.int32)
    return xp.where(ok, one * int(LossReason.UNPHYSICAL_MOMENTUM),
                    one * int(LossReason.NON_FINITE))


def report_overflow(in_range: Any, six: tuple[Any, ...]) -> None:
    """For an element step: report the particles outside ``in_range`` (a slice whose
    arithmetic would overflow) as :attr:`LossReason.NON_FINITE`, before the stepping
    framework reports the step's losses (the first report of a particle wins). Not
    on truncated power series (``six`` of jets: Taylor maps lose nothing here)."""
    if _COLLECTORS and not isinstance(six[0], Jet):
        report(~in_range, LossReason.NON_FINITE)
