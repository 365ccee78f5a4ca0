"""Beam statistics recorded along a beamline while tracking."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from beamtrack.lattice.beamline import Beamline
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.statistics import beam_statistics


@dataclass(frozen=True)
class Record:
    """Statistics at the start and after chosen elements.

    Attributes
    ----------
    names
        ``"(start)"`` followed by the names of the recorded elements.
    s
        Positions [m], shape ``(*batch, n_points)``.
    values
        ``{statistic: array of shape (*batch, n_points)}`` (keys of
        :func:`~beamtrack.tracking.statistics.beam_statistics` by default).
    particles
        The particles at the end of the line.
    """

    names: tuple[str, ...]
    s: Any
    values: dict[str, Any]
    particles: Particles

    def __getitem__(self, key: str) -> Any:
        return self.values[key]


def track_along(
    line: Beamline,
    particles: Particles,
    method: str | None = None,
    at: Iterable[str] | None = None,
    statistics: Callable[[Particles], dict[str, Any]] = beam_statistics,
) -> Record:
    """Track ``particles`` and record ``statistics`` after every element (or those in ``at``).

    Only the statistics are kept, not copies of the particles, so memory grows with the
    number of recorded points times the number of statistics.

    Parameters
    ----------
    line
        The beamline.
    particles
        Incoming particles (any backend).
    method
        Tracking method, as in :meth:`Beamline.track`.
    at
        Names of the elements after which to record; all elements when ``None``.
    statistics
        Function of the particles returning a dictionary of arrays.
    """
    wanted = None if at is None else set(at)
    if wanted is not None:
        unknown = wanted - set(line.names())
        if unknown:
            raise ParameterError(
                f"Beamline {line.name!r}: no element(s) {', '.join(sorted(unknown))} to record at"
            )
    names = ["(start)"]
    rows = [statistics(particles)]
    positions = [particles.s]
    for element, particles in line.track_each(particles, method):  # noqa: B020
        if wanted is None or element.name in wanted:
            names.append(element.name)
            rows.append(statistics(particles))
            positions.append(particles.s)
    xp = particles.xp
    values = {
        key: xp.stack(xp.broadcast_arrays(*[row[key] for row in rows]), axis=-1)
        for key in rows[0]
    }
    s = xp.stack(xp.broadcast_arrays(*positions), axis=-1)
    return Record(tuple(names), s, values, particles)
