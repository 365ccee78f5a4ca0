"""Statements of MAD-like lattice files (Bmad, Elegant), with their file positions.

Both formats write one statement per line, ``!`` comments, ``&`` at the end of a line
to continue it, and ``label: kind, name = value, ...`` definitions. This module turns
file text into :class:`Statement` objects that remember the file, line and column of
every character, so that any error found later points into the file, and splits a
statement at its top-level separators (outside quotes and brackets).
It evaluates nothing (arithmetic is :mod:`beamtrack.lattice.io.expressions`).
"""

from __future__ import annotations

import bisect
import math
import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from beamtrack.lattice.errors import LatticeFileError, LatticeFileWarning

#: Opening and closing brackets that protect separators inside them.
_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {")", "]", "}"}
#: Longest statement accepted [characters] (a guard against runaway continuations).
MAX_STATEMENT = 50_000_000


@dataclass(frozen=True)
class Statement:
    """One logical statement: its text and where its characters came from.

    Attributes
    ----------
    text
        The statement with comments and continuation marks removed and continued
        lines joined by one space.
    source
        The file name (or ``"<string>"``).
    segments
        ``(offset in text, line, column)`` where each physical line's part of the text
        starts (1-based line and column), in increasing offset.
    """

    text: str
    source: str
    segments: tuple[tuple[int, int, int], ...]

    def at(self, offset: int) -> tuple[int, int]:
        """File ``(line, column)`` of character ``offset`` (clamped to the text)."""
        if not self.segments:
            return (1, 1)
        offset = max(0, min(offset, max(len(self.text) - 1, 0)))
        index = bisect.bisect_right(self.segments, (offset, math.inf, math.inf)) - 1
        start, line, column = self.segments[max(index, 0)]
        return line, column + max(offset - start, 0)

    def error(self, message: str, offset: int = 0) -> LatticeFileError:
        """A :class:`LatticeFileError` located at character ``offset``."""
        line, column = self.at(offset)
        return LatticeFileError(message, file=self.source, line=line, column=column)

    def warn(self, message: str, offset: int = 0) -> None:
        """Issue a :class:`LatticeFileWarning` with the location in its message."""
        line, column = self.at(offset)
        warnings.warn(f"{self.source}:{line}:{column}: {message}", LatticeFileWarning,
                      stacklevel=3)


@dataclass(frozen=True)
class Piece:
    """A stripped part of a statement and its offset in the statement's text."""

    text: str
    offset: int


def _strip_comment(line: str, comment_chars: str) -> str:
    """``line`` up to its first comment character outside quotes."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in comment_chars:
            return line[:i]
    return line


def split_statements(
    text: str,
    source: str = "<string>",
    *,
    comment_chars: str = "!",
    hash_comment_lines: bool = False,
    semicolons: bool = True,
    implicit_continuation: bool = False,
) -> list[Statement]:
    """Split lattice-file text into logical statements.

    Parameters
    ----------
    text
        The file's text.
    source
        File name used in locations.
    comment_chars
        Characters that start a comment running to the end of the line (outside
        quotes).
    hash_comment_lines
        Whether a line whose first non-blank character is ``#`` is a comment
        (Elegant), except ``#include``, which is kept as a statement.
    semicolons
        Whether ``;`` separates statements on one line (Bmad).
    implicit_continuation
        Bmad's rule: a line ending in one of ``, ( { [ =`` continues on the next,
        and a line starting with one of ``, ) } ] =`` continues the previous one.

    Returns
    -------
    list of Statement
        Non-empty statements in file order.
    """
    statements: list[Statement] = []
    parts: list[str] = []
    segments: list[tuple[int, int, int]] = []
    size = 0
    continuing = False
    last_closed_by_newline = False

    def add(chunk: str, line: int, column: int) -> None:
        nonlocal size
        if chunk:
            segments.append((size, line, column))
            parts.append(chunk)
            size += len(chunk)

    def finish() -> None:
        nonlocal parts, segments, size
        joined = "".join(parts)
        start = len(joined) - len(joined.lstrip())
        end = len(joined.rstrip())
        if end > start:
            shifted = [(max(o - start, 0), line, column + max(start - o, 0))
                       for o, line, column in segments if o < end]
            keep = [seg for i, seg in enumerate(shifted)
                    if i + 1 == len(shifted) or shifted[i + 1][0] > seg[0]]
            statements.append(Statement(joined[start:end], source, tuple(keep)))
        parts, segments, size = [], [], 0

    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.lstrip()
        if hash_comment_lines and stripped.startswith("#") and not (
                stripped[:8].lower() == "#include"):
            if not continuing:
                continue
            raw = ""
        if stripped[:8].lower() == "#include":
            lead = len(raw) - len(stripped) + 1
            body = (raw[:lead] + _strip_comment(raw[lead:], comment_chars)).rstrip()
        else:
            body = _strip_comment(raw, comment_chars).rstrip()
        if not continuing and implicit_continuation and statements and last_closed_by_newline:
            first = body.lstrip()[:1]
            if first and first in ",)}]=":
                # Reopen the previous statement: this line continues it.
                previous = statements.pop()
                parts = [previous.text]
                segments = list(previous.segments)
                size = len(previous.text)
                add(" ", number, 1)
        continuing = False
        if body.endswith("&"):
            body = body[:-1]
            continuing = True
        elif implicit_continuation and body and body[-1] in ",({[=":
            continuing = True
        begin = 0
        if semicolons and ";" in body:
            quote = ""
            for column, char in enumerate(body):
                if quote:
                    if char == quote:
                        quote = ""
                elif char in "\"'":
                    quote = char
                elif char == ";":
                    add(body[begin:column], number, begin + 1)
                    finish()
                    begin = column + 1
        add(body[begin:], number, begin + 1)
        if size > MAX_STATEMENT:
            raise LatticeFileError(f"statement longer than {MAX_STATEMENT} characters",
                                   file=source, line=number, column=1)
        if continuing:
            add(" ", number, len(body) + 1)
            last_closed_by_newline = False
        else:
            finish()
            last_closed_by_newline = True
    finish()
    return statements


def split_top(statement: Statement, separator: str = ",", start: int = 0,
              end: int | None = None) -> list[Piece]:
    """Split ``statement.text[start:end]`` at ``separator`` outside quotes and brackets.

    Raises
    ------
    LatticeFileError
        Unbalanced brackets or an unclosed quote.
    """
    text = statement.text
    end = len(text) if end is None else end
    pieces: list[Piece] = []
    stack: list[tuple[str, int]] = []
    quote = ""
    quote_at = 0
    begin = start
    for i in range(start, end):
        char = text[i]
        if quote:
            if char == quote:
                quote = ""
            continue
        if char in "\"'":
            quote, quote_at = char, i
        elif char in _OPEN:
            stack.append((_OPEN[char], i))
        elif char in _CLOSE:
            if not stack or stack[-1][0] != char:
                raise statement.error(f"unbalanced {char!r}", i)
            stack.pop()
        elif char == separator and not stack:
            pieces.append(_piece(text, begin, i))
            begin = i + 1
    if quote:
        raise statement.error("unclosed quote", quote_at)
    if stack:
        raise statement.error(f"{text[stack[-1][1]]!r} is never closed", stack[-1][1])
    pieces.append(_piece(text, begin, end))
    return pieces


def _piece(text: str, begin: int, end: int) -> Piece:
    chunk = text[begin:end]
    lead = len(chunk) - len(chunk.lstrip())
    return Piece(chunk.strip(), begin + lead)


def find_top(statement: Statement, char: str, start: int = 0) -> int:
    """Offset of the first ``char`` outside quotes and brackets, or -1."""
    text = statement.text
    depth = 0
    quote = ""
    for i in range(start, len(text)):
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif c == char and depth == 0:
            return i
    return -1


def unquote(text: str) -> str:
    """``text`` without one pair of surrounding quotes."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def included_path(name: str, current: str, root: str, statement: Statement,
                  offset: int) -> str:
    """The file an include statement names, resolved against the including file.

    Raises
    ------
    LatticeFileError
        The file lies outside ``root`` (after resolving links) or does not exist.
    """
    base = os.path.dirname(os.path.abspath(current)) if current != "<string>" else root
    path = os.path.realpath(os.path.join(base, name))
    root_real = os.path.realpath(root)
    if os.path.commonpath([path, root_real]) != root_real:
        raise statement.error(f"refusing to read {name!r}: it lies outside the allowed folder "
                              f"{root_real!r} (pass root= to allow another folder)", offset)
    if not os.path.isfile(path):
        raise statement.error(f"included file {name!r} not found (looked for {path!r})", offset)
    return path


def read_text(path: str, statement: Statement | None = None, offset: int = 0) -> str:
    """The text of a lattice file (UTF-8, undecodable bytes replaced)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError as exc:
        if statement is not None:
            raise statement.error(f"cannot read {path!r}: {exc.strerror}", offset) from None
        raise LatticeFileError(f"cannot read the file: {exc.strerror}", file=path) from None


def iter_pieces(pieces: list[Piece]) -> Iterator[tuple[str, str | None, int, int]]:
    """``(name, value or None, name offset, value offset)`` of ``name = value`` pieces."""
    for piece in pieces:
        equals = piece.text.find("=")
        if equals < 0:
            yield piece.text, None, piece.offset, piece.offset
            continue
        name = piece.text[:equals].rstrip()
        rest = piece.text[equals + 1:]
        lead = len(rest) - len(rest.lstrip())
        yield name, rest.strip(), piece.offset, piece.offset + equals + 1 + lead


@dataclass
class LineEntry:
    """A member of a line: a name (or a parenthesised group), repeated and/or reflected."""

    name: str
    repeat: int
    reflect: bool
    statement: Statement
    offset: int
    group: list[LineEntry] | None = None


def parse_members(statement: Statement, start: int, end: int, name_re: re.Pattern[str],
                  *, reversal: bool = False) -> list[LineEntry]:
    """The members of ``statement.text[start:end]``: ``a, 2*b, -c, 3*(d, e), -2*f``.

    ``reversal``: whether ``--name`` (Bmad's element reversal) is recognised, to
    reject it with a clear message.
    """
    entries: list[LineEntry] = []
    if not statement.text[start:end].strip():
        return entries
    for piece in split_top(statement, ",", start, end):
        item = piece.text
        offset = piece.offset
        if not item:
            raise statement.error("empty line member", offset)
        reflect = False
        if item.startswith("--") and reversal:
            raise statement.error("element reversal ('--') is not supported", offset)
        if item.startswith("-"):
            reflect = True
            item = item[1:].lstrip()
        repeat = 1
        star = item.find("*")
        if star > 0 and "(" not in item[:star]:
            count = item[:star].strip()
            if not count.isdigit() or len(count) > 7:
                raise statement.error(f"repeat count {count!r} is not a whole number "
                                      "below 10^7", offset)
            repeat = int(count)
            item = item[star + 1:].lstrip()
            if item.startswith("-"):
                reflect = not reflect
                item = item[1:].lstrip()
        inner = statement.text.find(item, offset) if item else offset
        if item.startswith("(") and item.endswith(")"):
            group = parse_members(statement, inner + 1, inner + len(item) - 1, name_re,
                                  reversal=reversal)
            entries.append(LineEntry("", repeat, reflect, statement, offset, group))
            continue
        name = unquote(item)
        if not name_re.fullmatch(name):
            raise statement.error(f"invalid line member {item!r}", offset)
        entries.append(LineEntry(name.lower(), repeat, reflect, statement, offset))
    return entries


#: Longest expanded line accepted [elements].
MAX_EXPANDED = 10_000_000


def expand_members(entries: list[LineEntry], lines: Mapping[str, list[LineEntry]],
                   is_element: Callable[[str], bool], out: list[str],
                   active: frozenset[str] = frozenset(), reflect: bool = False) -> None:
    """Append the element names of ``entries`` to ``out``, expanding nested lines
    (a reflected member is taken in reverse order, recursively).

    Raises
    ------
    LatticeFileError
        A line that contains itself, an unknown name, or an expansion over
        :data:`MAX_EXPANDED` elements.
    """
    for entry in (reversed(entries) if reflect else entries):
        flip = reflect != entry.reflect
        for _ in range(entry.repeat):
            if entry.group is not None:
                expand_members(entry.group, lines, is_element, out, active, flip)
            elif entry.name in lines:
                if entry.name in active:
                    raise entry.statement.error(f"line {entry.name!r} contains itself",
                                                entry.offset)
                expand_members(lines[entry.name], lines, is_element, out,
                               active | {entry.name}, flip)
            elif is_element(entry.name):
                out.append(entry.name)
            else:
                raise entry.statement.error(f"no element or line named {entry.name!r}",
                                            entry.offset)
            if len(out) > MAX_EXPANDED:
                raise entry.statement.error("the expanded line is too long", entry.offset)


__all__ = ["LineEntry", "Piece", "Statement", "expand_members", "find_top", "included_path",
           "iter_pieces", "parse_members", "read_text", "split_statements", "split_top",
           "unquote"]


def expand_chosen(lines: Mapping[str, list[LineEntry]], line_order: list[str],
                  use: tuple[str, Statement, int] | None, is_element: Callable[[str], bool],
                  sequence: str | None, source: str, keyword: str = "line"
                  ) -> tuple[str, list[str]]:
    """The line to expand and its element names: ``sequence`` if given, else the one
    the file's ``use`` names, else the last line defined.

    Parameters
    ----------
    lines, line_order
        The file's lines by (lowercase) name, and their names in file order.
    use
        ``(name, statement, offset)`` of the file's ``use`` statement, or ``None``.
    is_element
        Whether a name is an element definition.
    sequence
        The line asked for by the caller (any case), or ``None``.
    source
        The file, for errors.
    keyword
        How the format spells "line" (``"line"``, ``"LINE"``), for messages.

    Raises
    ------
    LatticeFileError
        No such line, or the file defines none.
    """
    if sequence is not None:
        chosen = sequence.lower()
        if chosen not in lines:
            raise LatticeFileError(f"no {keyword} named {sequence!r}; {keyword}s: "
                                   f"{', '.join(line_order) or 'none'}", file=source)
    elif use is not None:
        chosen, statement, offset = use
        if chosen not in lines:
            raise statement.error(f"use: no {keyword} named {chosen!r}", offset)
    elif line_order:
        chosen = line_order[-1]
    else:
        raise LatticeFileError(f"the file defines no {keyword}", file=source)
    names: list[str] = []
    expand_members(lines[chosen], lines, is_element, names, frozenset({chosen}))
    return chosen, names


def build_line(items: list[Any], name: str, source: str, reference: Any = None) -> Any:
    """The :class:`~beamtrack.lattice.beamline.Beamline` of a reader's expanded
    ``items``; a line that cannot be built (two definitions under one name, say) is a
    :class:`LatticeFileError` naming the file."""
    from beamtrack.lattice.beamline import Beamline
    from beamtrack.lattice.errors import LatticeError
    from beamtrack.tracking.errors import ParameterError

    try:
        return Beamline(items, name=name, reference=reference)
    except (LatticeError, ParameterError) as exc:
        if isinstance(exc, LatticeFileError):
            raise
        raise LatticeFileError(f"line {name!r}: {exc}", file=source) from None
