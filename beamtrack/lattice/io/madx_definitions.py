"""What a MAD-X file defines, as the MAD-X reader records it.

Values (numbers, deferred ``:=`` expressions, arrays, words), element definitions with
their parent class or element, sequences with the entries placed in them, and lines
(kept as text until expanded). Positions (file, line, column) travel with each record
so that errors found when the beamline is built point into the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Deepest nesting of lines, sequences, calls and element inheritance.
MAX_NESTING = 50


@dataclass
class Value:
    """An attribute or variable value: a number, a deferred expression, an array of
    them, or a word/string."""

    kind: str                    # "number", "deferred", "array", "word"
    payload: Any                 # float | Expression | list[Value] | str
    line: int = 0
    column: int = 0


@dataclass
class ElementDef:
    """``name: parent, attr=value, ...``: an element class or element and the
    attributes set on top of it."""

    name: str
    parent: str | None           # a MAD-X class or an element name
    attrs: dict[str, Value]
    line: int
    column: int
    file: str


@dataclass
class SequenceEntry:
    """An element or sequence placed in a sequence: ``at`` and ``from``."""

    name: str
    at: Value | None
    origin: str | None
    line: int
    column: int
    file: str


@dataclass
class SequenceDef:
    """``name: sequence, l=..., refer=...`` and its entries up to ``endsequence``."""

    name: str
    attrs: dict[str, Value]
    entries: list[SequenceEntry] = field(default_factory=list)
    line: int = 0
    column: int = 0
    file: str = ""


@dataclass
class LineDef:
    """``name: line = (...)``: the body text and where it starts (file, line, column)."""

    name: str
    body: str
    offset: tuple[str, int, int]


__all__ = ["MAX_NESTING", "ElementDef", "LineDef", "SequenceDef", "SequenceEntry", "Value"]
