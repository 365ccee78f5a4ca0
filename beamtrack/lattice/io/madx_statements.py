"""MAD-X statements: the input split at ``;``, comments blanked, and where each starts.

MAD-X ends a statement with ``;`` only (newlines are blanks, so a statement may span
lines), has ``!``, ``//`` and ``/* ... */`` comments, is case-insensitive (the text is
lower-cased outside strings) and groups ``if``/``while``/``macro`` blocks in braces.
Comments are blanked rather than removed, so an offset into a statement's text counts
the same characters as the file from where the statement starts, and its line and
column follow from the newlines before it.

The Bmad and Elegant readers split their (line-oriented) files with
:mod:`beamtrack.lattice.io.statements` instead.
"""

from __future__ import annotations

import re
import warnings

from beamtrack.lattice.errors import LatticeFileError, LatticeFileWarning

#: A name as it stands in a statement's (lower-cased) text.
NAME = r"[a-z_$][a-z0-9_.$]*"

_BLOCK = re.compile(r"\s*(?:if|while|else|elseif)\b|\s*[a-z_$][a-z0-9_.$]*\s*:\s*macro\b")
_TOKENS = re.compile(r'"[^"]*"|\'[^\']*\'|/\*.*?\*/|//[^\n]*|![^\n]*|[;{}"\'/]|[^"\'/!;{}]+',
                     re.S)


class MadxStatement:
    """One statement: its text (comments blanked, lower-case outside strings) and
    where it starts."""

    __slots__ = ("text", "file", "line", "column")

    def __init__(self, text: str, file: str, line: int, column: int):
        self.text = text
        self.file = file
        self.line = line
        self.column = column

    def at(self, offset: int) -> tuple[int, int]:
        """Line and column of character ``offset`` of the statement."""
        if "\n" not in self.text[:offset]:
            return self.line, self.column + offset
        before = self.text[:offset]
        return self.line + before.count("\n"), offset - before.rfind("\n")

    def error(self, message: str, offset: int = 0) -> LatticeFileError:
        """A :class:`LatticeFileError` located at character ``offset``."""
        line, column = self.at(offset)
        return LatticeFileError(message, file=self.file, line=line, column=column)

    def warn(self, message: str, offset: int = 0) -> None:
        """Issue a :class:`LatticeFileWarning` with the location in its message."""
        line, column = self.at(offset)
        warnings.warn(f"{self.file}:{line}:{column}: {message}", LatticeFileWarning,
                      stacklevel=4)


def split_top_text(text: str, start: int = 0, separator: str = ",") -> list[tuple[str, int]]:
    """Split at ``separator`` outside brackets and quotes: ``[(piece, offset)]``."""
    pieces = []
    depth = 0
    quote = ""
    begin = start
    for i in range(start, len(text)):
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        elif c == separator and depth == 0:
            pieces.append((text[begin:i], begin))
            begin = i + 1
    pieces.append((text[begin:], begin))
    return pieces


def split_statements(text: str, file: str) -> list[MadxStatement]:
    """Split MAD-X text into statements, comments blanked (offsets kept)."""
    out: list[MadxStatement] = []
    parts: list[str] = []
    depth = 0
    line, column = 1, 1          # where the current statement starts
    cur_line, cur_column = 1, 1  # where the scan is
    started = False

    def advance(piece: str) -> None:
        nonlocal cur_line, cur_column
        newlines = piece.count("\n")
        if newlines:
            cur_line += newlines
            cur_column = len(piece) - piece.rfind("\n")
        else:
            cur_column += len(piece)

    for match in _TOKENS.finditer(text):
        piece = match.group()
        first = piece[0]
        if first in "\"'":
            if len(piece) == 1:
                raise LatticeFileError("unterminated string", file=file, line=cur_line,
                                       column=cur_column)
            kept = piece
        elif piece.startswith("/*"):
            kept = re.sub(r"[^\n]", " ", piece)
        elif piece.startswith("//") or first == "!":
            kept = " " * len(piece)
        elif piece == "/" and text.startswith("/*", match.start()):
            raise LatticeFileError("unterminated /* comment", file=file, line=cur_line,
                                   column=cur_column)
        else:
            kept = piece.lower()
        if not started and kept.strip():
            stripped = len(kept) - len(kept.lstrip())
            lead = kept[:stripped]
            advance(lead)
            line, column = cur_line, cur_column
            kept = kept[stripped:]
            started = True
        elif not started:
            advance(kept)
            continue
        if kept == "{":
            depth += 1
        elif kept == "}":
            depth -= 1
        if (kept == ";" and depth <= 0) or (kept == "}" and depth == 0 and _BLOCK.match(
                "".join(parts))):
            if kept == "}":
                parts.append(kept)
            out.append(MadxStatement("".join(parts), file, line, column))
            parts = []
            depth = 0
            started = False
            advance(kept)
            continue
        parts.append(kept)
        advance(kept)
    if started and "".join(parts).strip():
        out.append(MadxStatement("".join(parts), file, line, column))
    return out


__all__ = ["NAME", "MadxStatement", "split_statements", "split_top_text"]
