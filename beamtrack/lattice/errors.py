"""Errors and warnings raised for bad lattice input."""

from __future__ import annotations

import warnings

from beamtrack.backends.errors import BeamtrackError
from beamtrack.tracking.errors import ParameterError


class LatticeError(BeamtrackError, ValueError):
    """A beamline is inconsistent (two definitions under one name, unknown element,
    bad nesting)."""


class UnknownParameterError(ParameterError, TypeError):
    """An element was given a parameter its kind does not have."""


class LatticeFileError(LatticeError):
    """A lattice file cannot be read (syntax, format version, unknown element kind).

    Parameters
    ----------
    message
        What is wrong, without the location.
    file
        Path (or ``"<string>"``) of the file being read.
    line, column
        1-based position of the offending text, where known.

    Notes
    -----
    ``str(error)`` is ``"file:line:column: message"`` (the parts that are known), the
    form compilers and editors understand. The parts are kept as attributes.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        location = ":".join(str(part) for part in (file, line, column) if part is not None)
        super().__init__(f"{location}: {message}" if location else message)


class LatticeFileWarning(UserWarning):
    """A lattice file holds something beamtrack skips or approximates (an unsupported
    statement, element kind or parameter); the message names it and its location."""


class OnceWarner:
    """Issues a :class:`LatticeFileWarning` once per ``(kind, topic)``, for one
    conversion (so a line of 1000 quadrupoles warns once, not 1000 times).

    Parameters
    ----------
    direction
        What is being converted (``"from_xsuite"``), the start of every message.
    """

    def __init__(self, direction: str) -> None:
        self.direction = direction
        self.seen: set[tuple[str, str]] = set()

    def __call__(self, kind: str, topic: str, message: str) -> None:
        """Warn ``message`` about element ``kind`` unless ``(kind, topic)`` warned."""
        if (kind, topic) not in self.seen:
            self.seen.add((kind, topic))
            warnings.warn(f"{self.direction}: {kind}: {message}", LatticeFileWarning,
                          stacklevel=4)
