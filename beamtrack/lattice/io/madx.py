"""MAD-X lattice files: a reader and a writer.

The reader understands the part of the MAD-X language that describes a machine:
variables (``=`` evaluated at once, ``:=`` deferred to the end of the file), element
definitions and inheritance (``qf1: qf, k1=...``), attribute changes (``qf, k1=...``,
``qf->k1 = ...``), ``line = (...)`` with repetition and reflection, ``sequence ...
endsequence`` with ``at``/``from``/``refer``, ``beam``, ``use``, ``call`` and
``option, rbarc``. Everything else (``twiss``, ``match``, macros, ...) is skipped
with a :class:`~beamtrack.lattice.errors.LatticeFileWarning`. Names are
case-insensitive: beamtrack names are the lower-case MAD-X names. See
``docs/formats/madx.md`` for the conventions converted.

The writer emits a ``beam``, one definition per element name and one ``sequence``
with ``refer=entry``.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from beamtrack.lattice.beamline import Beamline
from beamtrack.lattice.elements import ELEMENT_KINDS, Element
from beamtrack.lattice.errors import LatticeError, LatticeFileError, LatticeFileWarning
from beamtrack.lattice.io.expressions import MATH_FUNCTIONS, Expression, parse
from beamtrack.lattice.reference import Reference
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.species import SPECIES, Species

#: Identifiers in MAD-X expressions, including element attributes ``qf->k1``.
NAME_PATTERN = r"[A-Za-z_$][A-Za-z0-9_.$]*(?:->[A-Za-z_][A-Za-z0-9_]*)?"

#: MAD-X's built-in constants (MAD-X 5.x, masses in GeV).
MADX_CONSTANTS: dict[str, float] = {
    "pi": math.pi,
    "twopi": 2 * math.pi,
    "degrad": 180.0 / math.pi,
    "raddeg": math.pi / 180.0,
    "e": math.e,
    "emass": 0.51099895000e-3,
    "pmass": 0.93827208816,
    "nmass": 0.93956542052,
    "umass": 0.93149410242,
    "mumass": 0.1056583755,
    "clight": 299792458.0,
    "qelect": 1.602176634e-19,
    "hbar": 6.582119569e-25,
    "erad": 2.8179403262e-15,
    "prad": 2.8179403262e-15 * 0.51099895000e-3 / 0.93827208816,
}

#: MAD-X's functions (the random ones, ``ranf`` and ``gauss``, are not supported).
MADX_FUNCTIONS: dict[str, Callable[..., float]] = {
    **MATH_FUNCTIONS,
    "frac": lambda x: math.fmod(x, 1.0),
}

#: Statements skipped with a warning (the rest of the MAD-X command language).
#: Words that are neither these, nor known statements, nor element names are
#: skipped with a warning too.
_STOP_WORDS = ("stop", "exit", "quit")
_BLOCK_WORDS = ("if", "else", "elseif", "while", "macro")

_NAME = r"[a-z_$][a-z0-9_.$]*"
_ASSIGN = re.compile(rf"\s*(?:(?:const|real|int|shared)\s+)*({_NAME}(?:->[a-z_][a-z0-9_]*)?)"
                     r"\s*(:=|=)(.*)", re.S)
_BLOCK = re.compile(r"\s*(?:if|while|else|elseif)\b|\s*[a-z_$][a-z0-9_.$]*\s*:\s*macro\b")
_LABEL = re.compile(rf"\s*({_NAME})\s*:(?!=)(.*)", re.S)
_LINE = re.compile(r"\s*line\s*=\s*\((.*)\)\s*", re.S)
_WORD = re.compile(rf"\s*({_NAME})\s*", re.S)
_KEY = re.compile(r"\s*(-?)\s*([a-z_][a-z0-9_]*)\s*(?:(:=|=)(.*))?", re.S)
_TOKENS = re.compile(r'"[^"]*"|\'[^\']*\'|/\*.*?\*/|//[^\n]*|![^\n]*|[;{}"\'/]|[^"\'/!;{}]+',
                     re.S)

#: Deepest nesting of lines, sequences and calls.
MAX_NESTING = 50
#: Most elements a line may expand to.
MAX_ELEMENTS = 5_000_000
#: Overlap [m] between consecutive sequence elements still accepted (rounding).
OVERLAP_TOLERANCE = 1e-6
#: Gaps [m] up to this are not filled with a drift, as in MAD-X (which then shortens the
#: line by the gap; checked with cpymad 1.20, MAD-X 5.09).
GAP_TOLERANCE = 1e-6

_THIN_DEFAULT_LENGTH = {"multipole", "marker", "dipedge", "srotation", "xrotation",
                        "yrotation", "changeref", "translation", "beambeam"}

_PARTICLES = {
    "electron": "electron", "positron": "positron", "proton": "proton",
    "antiproton": "antiproton", "posmuon": "antimuon", "negmuon": "muon",
    "deuteron": "deuteron",
}
_MADX_PARTICLE = {"electron": "electron", "positron": "positron", "proton": "proton",
                  "antiproton": "antiproton", "antimuon": "posmuon", "muon": "negmuon"}


# --------------------------------------------------------------------------- values
@dataclass
class _Value:
    """An attribute or variable value: a number, a deferred expression, an array of
    them, or a word/string."""

    kind: str                    # "number", "deferred", "array", "word"
    payload: Any                 # float | Expression | list[_Value] | str
    line: int = 0
    column: int = 0


@dataclass
class _Definition:
    name: str
    parent: str | None           # a MAD-X class or an element name
    attrs: dict[str, _Value]
    line: int
    column: int
    file: str


@dataclass
class _Entry:
    name: str
    at: _Value | None
    origin: str | None
    line: int
    column: int
    file: str


@dataclass
class _Sequence:
    name: str
    attrs: dict[str, _Value]
    entries: list[_Entry] = field(default_factory=list)
    line: int = 0
    column: int = 0
    file: str = ""


@dataclass
class _LineDef:
    name: str
    body: str
    offset: tuple[str, int, int]


class _Statement:
    """One statement: its text (comments blanked, lower-case outside strings) and
    where it starts."""

    __slots__ = ("text", "file", "line", "column", "starts")

    def __init__(self, text: str, file: str, line: int, column: int):
        self.text = text
        self.file = file
        self.line = line
        self.column = column
        self.starts: list[int] | None = None

    def where(self, offset: int) -> tuple[int, int]:
        """Line and column of character ``offset`` of the statement."""
        if "\n" not in self.text[:offset]:
            return self.line, self.column + offset
        before = self.text[:offset]
        return self.line + before.count("\n"), offset - before.rfind("\n")

    def error(self, message: str, offset: int = 0) -> LatticeFileError:
        line, column = self.where(offset)
        return LatticeFileError(message, file=self.file, line=line, column=column)

    def warn(self, message: str, offset: int = 0) -> None:
        line, column = self.where(offset)
        warnings.warn(f"{self.file}:{line}:{column}: {message}", LatticeFileWarning,
                      stacklevel=4)


def _split_top(text: str, start: int = 0, separator: str = ",") -> list[tuple[str, int]]:
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


def _statements(text: str, file: str) -> list[_Statement]:
    """Split MAD-X text into statements, comments blanked (offsets kept)."""
    out: list[_Statement] = []
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
            out.append(_Statement("".join(parts), file, line, column))
            parts = []
            depth = 0
            started = False
            advance(kept)
            continue
        parts.append(kept)
        advance(kept)
    if started and "".join(parts).strip():
        out.append(_Statement("".join(parts), file, line, column))
    return out


# --------------------------------------------------------------------------- reader
class _Reader:
    def __init__(self, root: str | None):
        self.root = os.path.realpath(root) if root is not None else None
        self.variables: dict[str, _Value] = {}
        self.elements: dict[str, _Definition] = {}
        self.sequences: dict[str, _Sequence] = {}
        self.lines: dict[str, _LineDef] = {}
        self.order: list[str] = []          # sequences and lines in definition order
        self.used: str | None = None
        self.beams: dict[str | None, dict[str, _Value]] = {}
        self.beam_location: dict[str | None, tuple[str, int, int]] = {}
        self.rbarc = True
        self.current: _Sequence | None = None
        self.evaluating: set[str] = set()
        self.undefined_warned: set[str] = set()
        self.stopped = False
        self.call_depth = 0
        self.top_folder: str | None = None
        self.skipping_edit: _Statement | None = None
        # thick solenoids whose ks MAD-X froze at definition: name -> (deferred, value)
        self.frozen_ks: dict[str, tuple[_Value, _Value]] = {}

    # -- values ---------------------------------------------------------------------
    def expression(self, text: str, statement: _Statement, offset: int) -> Expression:
        line, column = statement.where(offset)
        try:
            return parse(text, source=statement.file, line=line, column=column,
                         name_pattern=NAME_PATTERN)
        except LatticeFileError:
            # MAD-X ignores blanks inside expressions (numbers broken over lines: 1.5e\n-05)
            compact = re.sub(r"\s+", "", text)
            if compact == text.strip() or not compact:
                raise
            try:
                return parse(compact, source=statement.file, line=line, column=column,
                             name_pattern=NAME_PATTERN)
            except LatticeFileError:
                pass
            raise

    def evaluate(self, expression: Expression) -> float:
        try:
            return expression.evaluate(self.resolve, MADX_FUNCTIONS)
        except LatticeFileError as exc:
            if not exc.message.startswith("division by zero"):
                raise
            warnings.warn(f"{exc}; the expression is taken as 0, as MAD-X does",
                          LatticeFileWarning, stacklevel=2)
            return 0.0

    def number(self, value: _Value, what: str) -> float:
        if value.kind == "number":
            return value.payload
        if value.kind == "deferred":
            return self.evaluate(value.payload)
        raise LatticeFileError(f"{what} must be a number", file=self.source,
                               line=value.line, column=value.column)

    def resolve(self, name: str) -> float:
        if "->" in name:
            element, attr = name.split("->", 1)
            return self.element_attr(element, attr, name)
        if name in MADX_CONSTANTS:
            return MADX_CONSTANTS[name]
        value = self.variables.get(name)
        if value is None:
            if name not in self.undefined_warned:
                self.undefined_warned.add(name)
                warnings.warn(f"{self.source}: variable {name!r} is used but never defined; "
                              "taken as 0, as MAD-X does", LatticeFileWarning, stacklevel=2)
            return 0.0
        if value.kind == "number":
            return value.payload
        if name in self.evaluating:
            raise LatticeFileError(f"variable {name!r} is defined in terms of itself",
                                   file=value.payload.source, line=value.line,
                                   column=value.column)
        self.evaluating.add(name)
        try:
            return self.number(value, f"variable {name!r}")
        finally:
            self.evaluating.discard(name)

    def element_attr(self, element: str, attr: str, label: str) -> float:
        value = self.lookup_attr(element, attr)
        if value is None:
            if element in self.sequences and attr == "l":
                value = self.sequences[element].attrs.get("l")
            if value is None:
                return 0.0
        key = f"{element}->{attr}"
        if key in self.evaluating:
            raise LatticeFileError(f"{label} is defined in terms of itself",
                                   file=self.source, line=value.line, column=value.column)
        self.evaluating.add(key)
        try:
            return self.number(value, label)
        finally:
            self.evaluating.discard(key)

    def lookup_attr(self, name: str, attr: str) -> _Value | None:
        seen = 0
        while name in self.elements and seen < MAX_NESTING:
            definition = self.elements[name]
            if attr in definition.attrs:
                return definition.attrs[attr]
            name = definition.parent or ""
            seen += 1
        return None

    def base_class(self, name: str) -> str:
        seen = 0
        while name in self.elements and seen < MAX_NESTING:
            name = self.elements[name].parent or ""
            seen += 1
        return name

    def value_of(self, text: str, operator: str, statement: _Statement, offset: int,
                 *, word: bool = False) -> _Value:
        """Parse the right-hand side of ``key = text``."""
        stripped = text.strip()
        lead = offset + len(text) - len(text.lstrip())
        line, column = statement.where(lead)
        if not stripped:
            raise statement.error("missing value after '='", offset)
        if stripped[0] in "\"'":
            if len(stripped) < 2 or stripped[-1] != stripped[0]:
                raise statement.error("malformed string", lead)
            return _Value("word", stripped[1:-1], line, column)
        if stripped[0] == "{":
            if stripped[-1] != "}":
                raise statement.error("'{' without its '}'", lead)
            inner = text[text.index("{") + 1:text.rindex("}")]
            base = offset + text.index("{") + 1
            items = []
            if inner.strip():
                for piece, where in _split_top(inner):
                    items.append(self.value_of(piece, operator, statement, base + where))
            return _Value("array", items, line, column)
        if word and re.fullmatch(r"[a-z_$][a-z0-9_.$#]*", stripped):
            return _Value("word", stripped, line, column)
        if stripped in ("true", "false"):
            return _Value("number", 1.0 if stripped == "true" else 0.0, line, column)
        expression = self.expression(stripped, statement, lead)
        if operator == ":=" and expression.constant is None:
            return _Value("deferred", expression, line, column)
        return _Value("number", self.evaluate(expression), line, column)

    def arguments(self, statement: _Statement, pieces: list[tuple[str, int]],
                  words: tuple[str, ...] = ()) -> dict[str, _Value]:
        """``key=value`` pairs of a statement; flags (``key``, ``-key``) become 1/0."""
        out: dict[str, _Value] = {}
        for piece, offset in pieces:
            if not piece.strip():
                raise statement.error("empty argument", offset)
            match = _KEY.fullmatch(piece)
            if match is None:
                raise statement.error(f"expected 'name = value', got {piece.strip()!r}",
                                      offset + len(piece) - len(piece.lstrip()))
            minus, key, operator, text = match.groups()
            line, column = statement.where(offset + match.start(2))
            if operator is None:
                out[key] = _Value("number", 0.0 if minus else 1.0, line, column)
                continue
            if minus:
                raise statement.error(f"unexpected '-' before {key!r}", offset)
            out[key] = self.value_of(text, operator, statement, offset + match.start(4),
                                     word=key in words)
        return out

    # -- statements -----------------------------------------------------------------
    def read(self, text: str, source: str) -> None:
        previous = getattr(self, "source", source)
        self.source = source
        try:
            for statement in _statements(text, source):
                if self.stopped:
                    return
                if self.statement(statement) == "return":
                    break
        finally:
            self.source = previous

    def statement(self, statement: _Statement) -> str | None:
        text = statement.text
        if not text.strip():
            return None
        if self.skipping_edit is not None:
            if re.fullmatch(r"\s*endedit\s*", text):
                self.skipping_edit = None
            return None
        head_word = _WORD.match(text)
        word = head_word.group(1) if head_word else ""
        if "{" in text and word in _BLOCK_WORDS or re.match(rf"\s*{_NAME}\s*:\s*macro\b", text):
            statement.warn(f"{word or 'macro'} block skipped (beamtrack does not run "
                           "MAD-X programs)")
            return None
        if "{" in text and "}" in text and re.match(r"\s*(if|while|else)\b", text):
            statement.warn(f"{word} block skipped")
            return None
        assign = _ASSIGN.fullmatch(text)
        if assign and "," not in assign.group(1):
            self.assignment(statement, assign)
            return None
        label = _LABEL.fullmatch(text)
        if label:
            self.labelled(statement, label.group(1), label.group(2), label.start(2))
            return None
        pieces = _split_top(text)
        head, head_offset = pieces[0]
        match = _WORD.fullmatch(head)
        if match is None:
            raise statement.error(f"cannot read statement {_short(text)!r}",
                                  len(text) - len(text.lstrip()))
        word = match.group(1)
        rest = pieces[1:]
        if word == "endsequence":
            if self.current is None:
                raise statement.error("endsequence without a sequence")
            self.current = None
            return None
        if self.current is not None:
            self.place(statement, word, rest, match.start(1))
            return None
        if word == "beam":
            args = self.arguments(statement, rest, words=("particle", "sequence"))
            sequence = args.pop("sequence", None)
            key = sequence.payload if sequence is not None else None
            self.beams.setdefault(key, {}).update(args)
            self.beam_location[key] = (statement.file, statement.line, statement.column)
            return None
        if word == "use":
            self.use(statement, rest)
            return None
        if word == "call":
            self.call(statement, rest)
            return None
        if word == "option":
            self.option(statement, rest)
            return None
        if word == "return":
            return "return"
        if word in _STOP_WORDS:
            self.stopped = True
            return "return"
        if word == "seqedit":
            statement.warn("seqedit ... endedit skipped (sequence editing is not supported)")
            self.skipping_edit = statement
            return None
        if word in self.elements and word not in ("title",):
            args = self.arguments(statement, rest, words=_WORD_ATTRIBUTES)
            self.elements[word].attrs.update(args)
            return None
        statement.warn(f"statement {word!r} skipped (not part of a lattice description)")
        return None

    def assignment(self, statement: _Statement, match: re.Match[str]) -> None:
        name, operator, text = match.groups()
        value = self.value_of(text, operator, statement, match.start(3))
        if value.kind in ("array", "word"):
            raise statement.error(f"{name!r} must be given a number", match.start(3))
        if "->" in name:
            element, attr = name.split("->", 1)
            if element not in self.elements:
                raise statement.error(f"no element {element!r} to set {attr!r} of",
                                      match.start(1))
            self.elements[element].attrs[attr] = value
            return
        if name in MADX_CONSTANTS:
            raise statement.error(f"{name!r} is a MAD-X constant and cannot be assigned",
                                  match.start(1))
        self.variables[name] = value

    def labelled(self, statement: _Statement, name: str, rest: str, offset: int) -> None:
        line_match = _LINE.fullmatch(rest)
        if line_match:
            if self.current is not None:
                raise statement.error("a line cannot be defined inside a sequence", offset)
            where = statement.where(offset + line_match.start(1))
            self.lines[name] = _LineDef(name, line_match.group(1), (statement.file, *where))
            self._defined(name)
            return
        pieces = _split_top(rest, 0)
        head, head_offset = pieces[0]
        match = _WORD.fullmatch(head)
        if match is None:
            raise statement.error(f"expected an element class after '{name}:', got "
                                  f"{head.strip()!r}", offset + head_offset)
        parent = match.group(1)
        pieces = [(p, offset + o) for p, o in pieces[1:]]
        if parent == "sequence":
            if self.current is not None:
                raise statement.error("sequence inside a sequence", offset)
            args = self.arguments(statement, pieces, words=("refer", "refpos"))
            self.current = _Sequence(name, args, line=statement.line, column=statement.column,
                                     file=statement.file)
            self.sequences[name] = self.current
            self._defined(name)
            return
        if parent in ("macro", "line"):
            statement.warn(f"{parent} {name!r} skipped (not supported in this form)")
            return
        if parent not in ELEMENT_CLASSES and parent not in self.elements:
            raise statement.error(f"unknown element class or element {parent!r}",
                                  offset + head_offset + match.start(1))
        if parent == name:
            if self.current is not None and name in self.elements:
                self.place(statement, name, pieces, offset + head_offset)
                return
            raise statement.error(f"element {name!r} cannot inherit from itself",
                                  offset + head_offset)
        args = self.arguments(statement, pieces, words=_WORD_ATTRIBUTES)
        at = args.pop("at", None)
        origin = args.pop("from", None)
        line, column = statement.line, statement.column
        self.elements[name] = _Definition(name, parent, args, line, column, statement.file)
        if self.base_class(name) == "solenoid":
            self._freeze_solenoid_ks(name)
        if self.current is not None:
            self.current.entries.append(_Entry(
                name, at, origin.payload if origin is not None else None, line, column,
                statement.file))

    def _freeze_solenoid_ks(self, name: str) -> None:
        """MAD-X (5.09) evaluates the ``ks`` of a thick solenoid once, when the element
        definition is read, even when it was given with ``:=`` (an ``ks := expr`` in a
        later attribute change, ``sol, ks := expr;``, stays deferred). Checked with
        cpymad: ``s: solenoid, l=0.4, ks := k; k = 0.3;`` has ``ks = 0`` in MAD-X, and
        LEIR's compensation solenoids are off in MAD-X for this reason."""
        length_value = self.lookup_attr(name, "l")
        if length_value is None or self.number(length_value, f"{name}->l") == 0.0:
            return
        ks_value = self.lookup_attr(name, "ks")
        if ks_value is None or ks_value.kind != "deferred":
            return
        frozen = _Value("number", self.number(ks_value, f"{name}->ks"), ks_value.line,
                        ks_value.column)
        self.elements[name].attrs["ks"] = frozen
        self.frozen_ks[name] = (ks_value, frozen)

    def _defined(self, name: str) -> None:
        if name in self.order:
            self.order.remove(name)
        self.order.append(name)

    def place(self, statement: _Statement, word: str, rest: list[tuple[str, int]],
              offset: int) -> None:
        if word not in self.elements and word not in self.sequences:
            raise statement.error(f"unknown element {word!r} in sequence "
                                  f"{self.current.name!r}", offset)
        args = self.arguments(statement, rest, words=_WORD_ATTRIBUTES)
        at = args.pop("at", None)
        origin = args.pop("from", None)
        if args and word in self.elements:
            self.elements[word].attrs.update(args)
        self.current.entries.append(_Entry(
            word, at, origin.payload if origin is not None else None, statement.line,
            statement.column, statement.file))

    def use(self, statement: _Statement, rest: list[tuple[str, int]]) -> None:
        if len(rest) == 1 and _WORD.fullmatch(rest[0][0]) and "=" not in rest[0][0]:
            self.used = _WORD.fullmatch(rest[0][0]).group(1)
            return
        args = self.arguments(statement, rest, words=("sequence", "period", "range"))
        chosen = args.get("sequence") or args.get("period")
        if chosen is None:
            raise statement.error("use needs sequence= or period=")
        if chosen.kind != "word":
            raise statement.error("use: sequence= must name a sequence or line")
        self.used = chosen.payload.lower()

    def option(self, statement: _Statement, rest: list[tuple[str, int]]) -> None:
        args = self.arguments(statement, rest)
        if "rbarc" in args:
            self.rbarc = bool(self.number(args.pop("rbarc"), "rbarc"))
        ignored = set(args) - {"echo", "info", "warn", "verify", "debug", "verbose", "trace",
                               "echomacro"}
        if ignored:
            statement.warn(f"option {', '.join(sorted(ignored))} skipped")

    def call(self, statement: _Statement, rest: list[tuple[str, int]]) -> None:
        args = self.arguments(statement, rest, words=("file",))
        target = args.get("file")
        if target is None or target.kind != "word":
            raise statement.error("call needs file=\"...\"")
        if self.call_depth >= MAX_NESTING:
            raise statement.error(f"calls nested deeper than {MAX_NESTING}")
        name = target.payload
        if self.root is None:
            raise statement.error(f"call of {name!r}: no folder to read it from (give root= "
                                  "or load the file from a path)")
        folders = []
        if os.path.isfile(statement.file):
            folders.append(os.path.dirname(os.path.abspath(statement.file)))
        if self.top_folder is not None:
            folders.append(self.top_folder)
        path = None
        for folder in [*folders, self.root]:
            candidate = os.path.realpath(os.path.join(folder, name))
            if os.path.commonpath([candidate, self.root]) != self.root:
                raise statement.error(f"call of {name!r} refused: it lies outside the allowed "
                                      f"folder {self.root}")
            if os.path.isfile(candidate):
                path = candidate
                break
        if path is None:
            raise statement.error(f"call of {name!r}: no such file")
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError as exc:
            raise statement.error(f"call of {name!r}: {exc.strerror or exc}") from None
        self.call_depth += 1
        try:
            self.read(text, path)
        finally:
            self.call_depth -= 1

    # -- building -------------------------------------------------------------------
    def reference(self, target: str) -> Reference | None:
        key = target if target in self.beams else None
        if key not in self.beams:
            return None
        args = self.beams[key]
        file, line, column = self.beam_location[key]
        try:
            return _beam_reference(args, self.number)
        except (ParameterError, ValueError, TypeError, OverflowError, ZeroDivisionError) as exc:
            if isinstance(exc, LatticeFileError):
                raise
            raise LatticeFileError(f"beam: {exc}", file=file, line=line, column=column) from None

    def build(self, target: str | None) -> Beamline:
        if target is None:
            target = self.used
        if target is None:
            if not self.order:
                raise LatticeFileError("the file defines no sequence or line", file=self.source)
            target = self.order[-1]
        target = target.lower()
        if target not in self.sequences and target not in self.lines:
            raise LatticeFileError(f"no sequence or line named {target!r}; defined: "
                                   f"{', '.join(self.order) or 'none'}", file=self.source)
        if self.current is not None:
            raise LatticeFileError(f"sequence {self.current.name!r} has no endsequence",
                                   file=self.current.file, line=self.current.line,
                                   column=self.current.column)
        self.built: dict[str, Element] = {}
        self.drifts: dict[float, Element] = {}
        self.drift_names = set(self.elements) | set(self.sequences) | set(self.lines)
        items = self.expand(target, 0)
        reference = self.reference(target)
        try:
            return Beamline(items, name=target, reference=reference)
        except (LatticeError, ParameterError, ValueError, TypeError) as exc:
            raise LatticeFileError(f"cannot build {target!r}: {exc}",
                                   file=self.source) from None

    def expand(self, name: str, depth: int) -> list[Element]:
        if depth > MAX_NESTING:
            raise LatticeFileError(f"lines and sequences nested deeper than {MAX_NESTING} "
                                   f"(or {name!r} contains itself)", file=self.source)
        if name in self.sequences:
            return self.expand_sequence(self.sequences[name], depth)
        if name in self.lines:
            return self.expand_line(self.lines[name], depth)
        return [self.element(name)]

    def expand_line(self, definition: _LineDef, depth: int) -> list[Element]:
        file, line, column = definition.offset
        statement = _Statement(definition.body, file, line, column)
        out = self._line_items(statement, 0, len(definition.body), depth, 0)
        return out

    def _line_items(self, statement: _Statement, start: int, end: int, depth: int,
                    nest: int) -> list[Element]:
        if nest > MAX_NESTING:
            raise statement.error("line nested too deeply", start)
        out: list[Element] = []
        text = statement.text[:end]
        for piece, offset in _split_top(text, start):
            match = re.fullmatch(r"\s*(-)?\s*(?:([0-9]+)\s*\*\s*)?(-)?\s*(?:(" + _NAME
                                 + r")|\((.*)\))\s*", piece, re.S)
            if match is None:
                raise statement.error(f"cannot read line item {piece.strip()!r}", offset)
            minus1, count, minus2, name, inner = match.groups()
            if name is not None:
                if name not in self.elements and name not in self.lines \
                        and name not in self.sequences:
                    raise statement.error(f"unknown element or line {name!r}",
                                          offset + match.start(4))
                items = self.expand(name, depth + 1)
            else:
                inner_start = offset + match.start(5)
                items = self._line_items(statement, inner_start, offset + match.end(5),
                                         depth, nest + 1)
            if (minus1 is not None) != (minus2 is not None):
                items = items[::-1]
            repeat = int(count) if count is not None else 1
            if len(items) * repeat + len(out) > MAX_ELEMENTS:
                raise statement.error(f"line expands to more than {MAX_ELEMENTS} elements",
                                      offset)
            out.extend(items * repeat)
        return out

    def expand_sequence(self, sequence: _Sequence, depth: int) -> list[Element]:
        def located(value: _Value | None, what: str, entry: _Entry | None) -> float:
            if value is None:
                return 0.0
            try:
                return self.number(value, what)
            except LatticeFileError as exc:
                if exc.line is None and entry is not None:
                    raise LatticeFileError(exc.message, file=entry.file, line=entry.line,
                                           column=entry.column) from None
                raise

        length = located(sequence.attrs.get("l"), f"sequence {sequence.name!r} l", None)
        refer_value = sequence.attrs.get("refer")
        refer = refer_value.payload if refer_value is not None else "centre"
        if refer == "center":
            refer = "centre"
        if refer not in ("centre", "entry", "exit"):
            raise LatticeFileError(f"sequence {sequence.name!r}: refer must be entry, centre "
                                   f"or exit, got {refer!r}", file=sequence.file,
                                   line=sequence.line, column=sequence.column)
        shift = {"centre": 0.0, "entry": 0.5, "exit": -0.5}[refer]
        positions: dict[str, float] = {}
        placed: list[tuple[float, float, _Entry, list[Element]]] = []
        for entry in sequence.entries:
            at = located(entry.at, f"{entry.name!r} at", entry)
            if entry.origin is not None:
                if entry.origin not in positions:
                    raise LatticeFileError(f"{entry.name!r}: from={entry.origin!r} names no "
                                           "element placed before it in this sequence",
                                           file=entry.file, line=entry.line, column=entry.column)
                at += positions[entry.origin]
            positions.setdefault(entry.name, at)
            if entry.name in self.sequences:
                sub = self.sequences[entry.name]
                sub_length = located(sub.attrs.get("l"), f"sequence {sub.name!r} l", entry)
                refpos = sub.attrs.get("refpos")
                items = self.expand(entry.name, depth + 1)
                if refpos is not None and refpos.kind == "word":
                    start = at - self._refpos(sub, refpos.payload, entry)
                else:  # the outer sequence's refer places the sub-sequence
                    start = at + (shift - 0.5) * sub_length
                placed.append((start, start + sub_length, entry, items))
                continue
            element = self.element(entry.name, entry)
            body = self.madx_length(entry.name)
            start = at + (shift - 0.5) * body
            placed.append((start, start + body, entry, [element]))
        out: list[Element] = []
        end = 0.0
        previous: _Entry | None = None
        for start, stop, entry, items in placed:
            gap = start - end
            if gap < -OVERLAP_TOLERANCE:
                before = f"{previous.name!r} (ends at s = {end:.9g} m)" if previous else \
                    "the sequence start"
                raise LatticeFileError(
                    f"sequence {sequence.name!r}: {entry.name!r} (starts at s = {start:.9g} m) "
                    f"overlaps {before} by {-gap:.3g} m (negative drift)",
                    file=entry.file, line=entry.line, column=entry.column)
            if gap > GAP_TOLERANCE:
                out.append(self.drift(gap))
            out.extend(items)
            end = max(end, stop)
            previous = entry
        gap = length - end
        if gap < -OVERLAP_TOLERANCE:
            raise LatticeFileError(
                f"sequence {sequence.name!r}: its last element {previous.name!r} ends at "
                f"s = {end:.9g} m, beyond its length l = {length:.9g} m",
                file=sequence.file, line=sequence.line, column=sequence.column)
        if gap > GAP_TOLERANCE:
            out.append(self.drift(gap))
        if len(out) > MAX_ELEMENTS:
            raise LatticeFileError(f"sequence {sequence.name!r} expands to more than "
                                   f"{MAX_ELEMENTS} elements", file=sequence.file,
                                   line=sequence.line)
        return out

    def _refpos(self, sub: _Sequence, name: str, entry: _Entry) -> float:
        """Distance from the start of ``sub`` to the centre of its element ``name``."""
        s = 0.0
        for element in self.expand_sequence(sub, 0):
            length = float(getattr(element, "path_length", element.length)) \
                if hasattr(element, "length") else 0.0
            if element.name == name:
                return s + 0.5 * length
            s += length
        raise LatticeFileError(f"refpos={name!r} is not in sequence {sub.name!r}",
                               file=entry.file, line=entry.line, column=entry.column)

    def drift(self, length: float) -> Element:
        element = self.drifts.get(length)
        if element is None:
            index = len(self.drifts)
            name = f"drift_{index}"
            while name in self.drift_names:
                index += 1
                name = f"drift_{index}"
            self.drift_names.add(name)
            element = ELEMENT_KINDS["Drift"](name, length=length)
            self.drifts[length] = element
        return element

    def madx_length(self, name: str) -> float:
        """The length MAD-X gives ``name`` in a sequence (an rbend's arc with rbarc)."""
        value = self.lookup_attr(name, "l")
        length = self.number(value, f"{name!r} l") if value is not None else 0.0
        if self.base_class(name) == "rbend" and self.rbarc:
            angle_value = self.lookup_attr(name, "angle")
            angle = self.number(angle_value, f"{name!r} angle") if angle_value else 0.0
            if angle != 0 and length != 0:
                length = length * (0.5 * angle) / math.sin(0.5 * angle)
        return length

    def element(self, name: str, entry: _Entry | None = None) -> Element:
        cached = self.built.get(name)
        if cached is not None:
            return cached
        definition = self.elements.get(name)
        if definition is None:
            raise LatticeFileError(f"unknown element {name!r}", file=self.source,
                                   line=entry.line if entry else None,
                                   column=entry.column if entry else None)
        cls = self.base_class(name)
        where = {"file": definition.file, "line": definition.line, "column": definition.column}

        def get(attr: str, default: float = 0.0) -> float:
            value = self.lookup_attr(name, attr)
            if value is None:
                return default
            try:
                return self.number(value, f"{name}->{attr}")
            except LatticeFileError as exc:
                if exc.line is None:
                    raise LatticeFileError(exc.message, **where) from None
                raise

        def has(attr: str) -> bool:
            return self.lookup_attr(name, attr) is not None

        def array(attr: str) -> list[float]:
            value = self.lookup_attr(name, attr)
            if value is None:
                return []
            if value.kind != "array":
                return [self.number(value, f"{name}->{attr}")]
            return [self.number(v, f"{name}->{attr}") for v in value.payload]

        def word(attr: str, default: str) -> str:
            value = self.lookup_attr(name, attr)
            if value is None:
                return default
            return value.payload.lower() if value.kind == "word" else default

        try:
            kind, params = _convert(cls, name, get, has, array, word, self.rbarc,
                                    self.length_for_harmon, self.beta_for_harmon)
            element = ELEMENT_KINDS[kind](name, **params)
        except LatticeFileError as exc:
            if exc.line is None:
                raise LatticeFileError(exc.message, **where) from None
            raise
        except (ParameterError, LatticeError, ValueError, TypeError, OverflowError,
                ZeroDivisionError, NotImplementedError) as exc:
            raise LatticeFileError(f"element {name!r} ({cls}): {exc}", **where) from None
        if cls == "solenoid":
            self._warn_frozen_ks(name)
        self.built[name] = element
        return element

    def _warn_frozen_ks(self, name: str) -> None:
        """Warn where a solenoid's ``ks`` frozen at definition differs from the value
        its ``:=`` expression has at the end of the input."""
        holder, seen = name, 0
        while holder in self.elements and seen < MAX_NESTING:
            if "ks" in self.elements[holder].attrs:
                break
            holder = self.elements[holder].parent or ""
            seen += 1
        if holder not in self.frozen_ks:
            return
        deferred, frozen = self.frozen_ks[holder]
        if self.elements[holder].attrs["ks"] is not frozen:
            return  # changed later by an attribute statement
        final = self.number(deferred, f"{holder}->ks")
        if final != frozen.payload:
            warnings.warn(f"{self.source}: solenoid {name!r}: ks := ... is evaluated when "
                          f"{holder!r} is defined (ks = {frozen.payload:g}), as MAD-X does "
                          "for thick "
                          f"solenoids; at the end of the input it would be {final:g}",
                          LatticeFileWarning, stacklevel=3)

    # harmon needs the ring: set by load() before building
    length_for_harmon: Callable[[], float] | None = None
    beta_for_harmon: Callable[[], float] | None = None


_WORD_ATTRIBUTES = ("apertype", "from", "type", "refpos", "slot_id", "assembly_id", "mech_sep",
                    "refer", "kind", "model", "method", "fringe", "polarity", "calib")


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


# --------------------------------------------------------------------------- conversion
#: MAD-X element classes beamtrack converts, and those it turns into drifts.
ELEMENT_CLASSES = {
    "drift", "quadrupole", "sextupole", "octupole", "sbend", "rbend", "dipedge", "multipole",
    "hkicker", "vkicker", "kicker", "tkicker", "solenoid", "rfcavity", "marker", "monitor",
    "hmonitor", "vmonitor", "instrument", "rcollimator", "ecollimator", "collimator",
    "placeholder",
    # drifts with a warning:
    "crabcavity", "elseparator", "srotation", "xrotation", "yrotation", "translation",
    "changeref", "beambeam", "matrix", "nllens", "rfmultipole", "wire", "twcavity",
}


def _warn_unsupported(name: str, cls: str, what: str, value: float) -> None:
    warnings.warn(f"{cls} {name!r}: {what} = {value:g} is not supported and is ignored",
                  LatticeFileWarning, stacklevel=4)


def _skew_rotation(normal: float, skew: float, order: int) -> tuple[float, float]:
    """Strength and roll of a normal multipole equal to ``normal + i skew`` of
    ``order`` (1: quadrupole). MAD-X and Bmad: a roll by ``theta`` turns strength
    ``K`` into ``kn = K cos((n+1) theta)``, ``ks = -K sin((n+1) theta)``."""
    strength = math.hypot(normal, skew)
    return strength, -math.atan2(skew, normal) / (order + 1)


def _rotated_orders(knl: list[float], ksl: list[float],
                    tilt: float) -> dict[str, tuple[float, ...]]:
    """``knl``, ``ksl`` of a multipole rolled by ``tilt``, as untilted strengths.

    Rolling order ``n`` by ``tilt`` multiplies ``K_nL + i K_nSL`` by
    ``exp(-i (n+1) tilt)`` (MAD-X and Bmad: a quadrupole rolled by pi/4 is a negative
    skew quadrupole).
    """
    if tilt == 0:
        return {"knl": tuple(knl), "ksl": tuple(ksl)}
    orders = max(len(knl), len(ksl))
    normal, skew = [], []
    for n in range(orders):
        a = knl[n] if n < len(knl) else 0.0
        b = ksl[n] if n < len(ksl) else 0.0
        c, s = math.cos((n + 1) * tilt), math.sin((n + 1) * tilt)
        normal.append(a * c + b * s)
        skew.append(b * c - a * s)
    return {"knl": tuple(normal), "ksl": tuple(skew)}


def _convert(cls: str, name: str, get: Callable[..., float], has: Callable[[str], bool],
             array: Callable[[str], list[float]], word: Callable[[str, str], str], rbarc: bool,
             ring_length: Callable[[], float] | None,
             ring_beta: Callable[[], float] | None) -> tuple[str, dict[str, Any]]:
    length = get("l")
    tilt = get("tilt")
    if cls in ("drift", "placeholder"):
        return "Drift", {"length": length}
    if cls == "marker":
        return "Marker", {}
    if cls in ("monitor", "hmonitor", "vmonitor", "instrument"):
        if length != 0:
            return "Drift", {"length": length}
        return "Monitor", {}
    if cls == "quadrupole":
        k1, k1s = get("k1"), get("k1s")
        if k1s != 0:
            k1, roll = _skew_rotation(k1, k1s, 1)
            tilt += roll
        return "Quadrupole", {"length": length, "k1": k1, "tilt": tilt}
    if cls in ("sextupole", "octupole"):
        order = 2 if cls == "sextupole" else 3
        k, ks = get(f"k{order}"), get(f"k{order}s")
        if ks != 0:
            k, roll = _skew_rotation(k, ks, order)
            tilt += roll
        return cls.capitalize(), {"length": length, f"k{order}": k, "tilt": tilt}
    if cls in ("sbend", "rbend"):
        angle = get("angle")
        params: dict[str, Any] = {
            "angle": angle, "e1": get("e1"), "e2": get("e2"), "k1": get("k1"),
            "fint": get("fint"), "hgap": get("hgap"), "ref_tilt": tilt,
        }
        if has("fintx") and get("fintx") >= 0:
            params["fint_exit"] = get("fintx")
        if cls == "rbend" and not rbarc and angle != 0:
            length = length * math.sin(0.5 * angle) / (0.5 * angle)
        params["length"] = length
        arc = length if cls == "sbend" or angle == 0 else \
            length * (0.5 * angle) / math.sin(0.5 * angle)
        if has("k0"):
            k0 = get("k0")
            h = angle / arc if arc else 0.0
            if abs(k0 - h) > 1e-15 * max(abs(h), 1.0):
                if "dg" in ELEMENT_KINDS["SBend"].declaration():
                    params["dg"] = k0 - h
                else:
                    raise LatticeFileError(f"{cls} {name!r}: k0 different from angle/l needs "
                                           "the bend's dg parameter, which this beamtrack "
                                           "lacks")
        for unsupported in ("k1s", "k2", "k2s", "h1", "h2", "k3"):
            value = get(unsupported)
            if value != 0:
                _warn_unsupported(name, cls, unsupported, value)
        return ("SBend" if cls == "sbend" else "RBend"), params
    if cls == "dipedge":
        if "DipoleEdge" not in ELEMENT_KINDS:
            raise LatticeFileError(f"dipedge {name!r}: this beamtrack has no DipoleEdge "
                                   "element kind to map it to")
        return "DipoleEdge", {"h": get("h"), "e1": get("e1"), "fint": get("fint"),
                              "hgap": get("hgap"), "tilt": tilt}
    if cls == "multipole":
        knl, ksl = array("knl"), array("ksl")
        params = {"knl": tuple(knl), "ksl": tuple(ksl), "tilt": tilt}
        lrad = get("lrad")
        if lrad > 0 and any(v != 0 for v in (knl or [0.0])[:1] + (ksl or [0.0])[:1]):
            # a slice of a bend (MAKETHIN): MAD-X adds the weak focusing -knl[0]^2/lrad
            # (and -ksl[0]^2/lrad vertically), computed from the strengths after the tilt
            # rotated them; so rotate them here and leave no tilt (checked against RMATRIX)
            params.update(_rotated_orders(knl, ksl, tilt), tilt=0.0, ref_length=lrad)
        return "Multipole", params
    if cls in ("hkicker", "vkicker"):
        kick = get("kick")
        if kick == 0:
            kick = get("hkick" if cls == "hkicker" else "vkick")
        return ("HKicker" if cls == "hkicker" else "VKicker"), {
            "length": length, "kick": kick, "tilt": tilt}
    if cls in ("kicker", "tkicker"):
        return "Kicker", {"length": length, "hkick": get("hkick"), "vkick": get("vkick"),
                          "tilt": tilt}
    if cls == "solenoid":
        if get("ksi") != 0 and length == 0:
            raise LatticeFileError(f"solenoid {name!r}: thin solenoids (ksi) are not "
                                   "supported")
        return "Solenoid", {"length": length, "ks": get("ks")}
    if cls == "rfcavity":
        frequency = get("freq") * 1e6
        harmon = get("harmon")
        if frequency == 0 and harmon != 0:
            if ring_length is None or ring_beta is None:
                raise LatticeFileError(f"rfcavity {name!r}: harmon needs the ring length "
                                       "and a beam")
            frequency = harmon * ring_beta() * 299792458.0 / ring_length()
        return "RFCavity", {"length": length, "voltage": get("volt") * 1e6,
                            "phi0": _lag_to_phi0(get("lag")), "frequency": frequency}
    if cls in ("rcollimator", "ecollimator", "collimator"):
        apertype = word("apertype", "ellipse" if cls == "ecollimator" else "rectangle")
        limits = array("aperture")
        if not limits:
            limits = [get("xsize"), get("ysize")]
        x_limit = limits[0] if limits else 0.0
        y_limit = limits[1] if len(limits) > 1 else x_limit
        shapes = {"rectangle": "rectangular", "ellipse": "elliptical", "circle": "elliptical"}
        if apertype not in shapes:
            raise LatticeFileError(f"{cls} {name!r}: apertype {apertype!r} is not supported "
                                   f"(only {', '.join(shapes)})")
        return "Collimator", {"length": length, "shape": shapes[apertype], "x_limit": x_limit,
                              "y_limit": y_limit}
    warnings.warn(f"{cls} {name!r} is not supported by beamtrack and becomes a drift of "
                  f"length {length:g} m", LatticeFileWarning, stacklevel=4)
    return "Drift", {"length": length}


def _lag_to_phi0(lag: float) -> float:
    """Bmad's ``phi0`` [rad/2pi] of a MAD-X ``lag`` [rad/2pi].

    MAD-X gives ``pt += (q V / P0c) sin(2 pi lag - k t)``, Bmad
    ``dE = q V sin(2 pi phi0 + k z/beta)``; both are sine-like and share the sign of
    the time coordinate, which enters with opposite signs, so
    ``phi0 = 1/2 - lag`` (checked by tracking in tests/test_io_madx.py).
    """
    return 0.5 - lag


def _phi0_to_lag(phi0: float) -> float:
    return 0.5 - phi0


def _beam_reference(args: dict[str, _Value], number: Callable[[_Value, str], float]) -> Reference:
    particle_value = args.get("particle")
    particle = particle_value.payload.lower() if particle_value is not None and \
        particle_value.kind == "word" else "positron"
    mass = number(args["mass"], "mass") * 1e9 if "mass" in args else None
    charge = number(args["charge"], "charge") if "charge" in args else None
    if particle in _PARTICLES and mass is None and charge is None:
        chosen = SPECIES[_PARTICLES[particle]]
    elif particle in _PARTICLES:
        base = SPECIES[_PARTICLES[particle]]
        chosen = Species(particle, mass if mass is not None else base.mc2,
                         charge if charge is not None else base.charge)
    else:
        if mass is None:
            raise ValueError(f"particle {particle!r} needs mass= (GeV)")
        chosen = Species(particle, mass, charge if charge is not None else 1.0)
    if "pc" in args:
        return Reference.from_energy(chosen, p0c=number(args["pc"], "pc") * 1e9)
    if "energy" in args:
        return Reference.from_energy(chosen, e_tot=number(args["energy"], "energy") * 1e9)
    if "gamma" in args:
        return Reference.from_energy(chosen, gamma=number(args["gamma"], "gamma"))
    if "beta" in args:
        beta = number(args["beta"], "beta")
        if not 0 < beta < 1:
            raise ValueError(f"beta must lie in (0, 1), got {beta!r}")
        return Reference.from_energy(chosen, gamma=1.0 / math.sqrt(1.0 - beta * beta))
    if "brho" in args:
        return Reference.from_energy(
            chosen, p0c=number(args["brho"], "brho") * 299792458.0 * abs(chosen.charge))
    return Reference.from_energy(chosen, e_tot=1e9)  # MAD-X's default: 1 GeV


# --------------------------------------------------------------------------- public
def loads(text: str, *, source: str = "<string>", sequence: str | None = None,
          root: str | os.PathLike[str] | None = None) -> Beamline:
    """Read a beamline from MAD-X text.

    Parameters
    ----------
    text
        MAD-X input.
    source
        File name for messages; the folder ``call`` statements are read relative to
        when it is a path.
    sequence
        The sequence or line to expand; default: the one ``use`` names, else the last
        one defined.
    root
        Folder that called files must lie in; default: the folder of ``source`` (no
        ``call`` is allowed for text without either).

    Returns
    -------
    Beamline
        Named after the sequence; ``reference`` from ``beam`` (``None`` without one).

    Raises
    ------
    LatticeFileError
        Anything malformed, with file, line and column.
    """
    if not isinstance(text, str):
        raise LatticeFileError(f"expected MAD-X text, got {type(text).__name__}", file=source)
    if root is None and os.path.isfile(source):
        root = os.path.dirname(os.path.abspath(source))
    reader = _Reader(os.fspath(root) if root is not None else None)
    if os.path.isfile(source):
        reader.top_folder = os.path.dirname(os.path.abspath(source))
    reader.source = source
    try:
        reader.read(text, source)
        target = sequence.lower() if sequence is not None else None
        chosen = target or reader.used or (reader.order[-1] if reader.order else None)

        def ring_length() -> float:
            seq = reader.sequences.get(chosen or "")
            if seq is not None and "l" in seq.attrs:
                return reader.number(seq.attrs["l"], "sequence l")
            raise LatticeFileError("harmon needs the ring length (a sequence's l)")

        def ring_beta() -> float:
            ref = reader.reference(chosen or "")
            if ref is None:
                raise LatticeFileError("harmon needs a beam (for the particles' speed)")
            return ref.p0c / ref.e_tot

        reader.length_for_harmon = ring_length
        reader.beta_for_harmon = ring_beta
        return reader.build(target)
    except RecursionError:
        raise LatticeFileError("input nested too deeply", file=source) from None


def load(path: str | os.PathLike[str], *, sequence: str | None = None,
         root: str | os.PathLike[str] | None = None) -> Beamline:
    """Read a beamline from a MAD-X file (see :func:`loads`); ``call`` statements are
    read relative to the calling file and must stay inside ``root`` (default: the
    folder of ``path``)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError as exc:
        raise LatticeFileError(f"cannot read: {exc.strerror or exc}", file=path) from None
    if root is None:
        root = os.path.dirname(os.path.abspath(path))
    return loads(text, source=path, sequence=sequence, root=root)


# --------------------------------------------------------------------------- writer
def _number(value: Any, what: str) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise LatticeFileError(f"{what}: only numbers can be written to MAD-X, got "
                               f"{type(value).__name__}") from None
    if not math.isfinite(number):
        raise LatticeFileError(f"{what}: {number} cannot be written")
    return repr(number)


def _definition(element: Element) -> tuple[str, float]:
    """MAD-X definition of one element and the length it occupies in a sequence."""
    kind = element.kind
    name = element.name
    p = element.parameters() if hasattr(element, "parameters") else {}

    def value(key: str) -> Any:
        return getattr(element, key)

    def num(key: str) -> str:
        return _number(value(key), f"{kind} {name!r}: {key}")

    def zero(key: str) -> bool:
        try:
            return float(value(key)) == 0.0
        except (TypeError, ValueError):
            return False

    del p
    for offset in ("x_offset", "y_offset"):
        if hasattr(element, offset) and not zero(offset):
            raise LatticeFileError(f"{kind} {name!r}: {offset} (a misalignment) cannot be "
                                   "written in a MAD-X element definition")
    length = float(value("length")) if hasattr(element, "length") else 0.0
    parts: list[str]
    if kind == "Quadrupole":
        parts = ["quadrupole", f"l={num('length')}", f"k1={num('k1')}", f"tilt={num('tilt')}"]
    elif kind in ("Sextupole", "Octupole"):
        k = "k2" if kind == "Sextupole" else "k3"
        parts = [kind.lower(), f"l={num('length')}", f"{k}={num(k)}", f"tilt={num('tilt')}"]
    elif kind in ("SBend", "RBend"):
        if not zero("tilt"):
            raise LatticeFileError(f"{kind} {name!r}: tilt (a roll of the magnet about its "
                                   "chord) has no MAD-X attribute; MAD-X's tilt is ref_tilt")
        extra = []
        if "dg" in element.declaration() and not zero("dg"):
            # MAD-X's k0 is the field; the reader takes dg = k0 - angle/arc back
            arc = float(value("length")) if kind == "SBend" else float(element.path_length)
            if arc == 0:
                raise LatticeFileError(f"{kind} {name!r}: dg of a zero-length bend")
            extra.append(f"k0={_number(float(value('angle')) / arc + float(value('dg')), name)}")
        if value("fringe_type") != "linear_edge":
            warnings.warn(f"{kind} {name!r}: fringe_type {value('fringe_type')!r} is written "
                          "as MAD-X's default linear edge model", LatticeFileWarning,
                          stacklevel=3)
        parts = [kind.lower(), f"l={num('length')}", f"angle={num('angle')}",
                 f"k1={num('k1')}", f"e1={num('e1')}", f"e2={num('e2')}",
                 f"fint={num('fint')}", f"hgap={num('hgap')}", f"tilt={num('ref_tilt')}",
                 *extra]
        if value("fint_exit") is not None:
            parts.append(f"fintx={num('fint_exit')}")
        if value("hgap_exit") is not None and float(value("hgap_exit")) != float(value("hgap")):
            raise LatticeFileError(f"{kind} {name!r}: MAD-X has one hgap for both edges")
        if kind == "RBend":
            length = float(element.path_length)
    elif kind == "Multipole":
        knl = ", ".join(_number(v, f"{name!r} knl") for v in value("knl"))
        ksl = ", ".join(_number(v, f"{name!r} ksl") for v in value("ksl"))
        parts = ["multipole", f"knl={{{knl}}}", f"ksl={{{ksl}}}", f"tilt={num('tilt')}"]
        if not zero("ref_length"):
            dipoles = [v for v in (value("knl")[:1], value("ksl")[:1]) for v in v]
            if not zero("tilt") and any(float(v) != 0 for v in dipoles):
                raise LatticeFileError(
                    f"Multipole {name!r}: a rolled curved reference (ref_length with tilt "
                    "and K0L or K0SL) cannot be written: MAD-X's lrad weak focusing uses "
                    "the rolled strengths plane by plane")
            parts.append(f"lrad={num('ref_length')}")
    elif kind in ("HKicker", "VKicker"):
        parts = [kind.lower(), f"l={num('length')}", f"kick={num('kick')}",
                 f"tilt={num('tilt')}"]
    elif kind == "Kicker":
        parts = ["kicker", f"l={num('length')}", f"hkick={num('hkick')}",
                 f"vkick={num('vkick')}", f"tilt={num('tilt')}"]
    elif kind == "Solenoid":
        if not zero("tilt"):
            raise LatticeFileError(f"Solenoid {name!r}: MAD-X solenoids have no tilt")
        parts = ["solenoid", f"l={num('length')}", f"ks={num('ks')}"]
    elif kind == "RFCavity":
        if not zero("tilt"):
            raise LatticeFileError(f"RFCavity {name!r}: MAD-X cavities have no tilt")
        parts = ["rfcavity", f"l={num('length')}",
                 f"volt={_number(float(value('voltage')) * 1e-6, name)}",
                 f"lag={_number(_phi0_to_lag(float(value('phi0'))), name)}",
                 f"freq={_number(float(value('frequency')) * 1e-6, name)}"]
    elif kind == "Marker":
        parts = ["marker"]
    elif kind in ("Monitor", "Screen"):
        if not zero("tilt"):
            raise LatticeFileError(f"{kind} {name!r}: tilt cannot be written to MAD-X")
        if kind == "Screen":
            warnings.warn(f"Screen {name!r} is written as a MAD-X instrument (its pixels are "
                          "lost)", LatticeFileWarning, stacklevel=3)
            parts = ["instrument"]
        else:
            parts = ["monitor"]
    elif kind in ("Aperture", "Collimator"):
        if not zero("tilt"):
            raise LatticeFileError(f"{kind} {name!r}: tilt cannot be written to MAD-X")
        shape = {"rectangular": "rectangle", "elliptical": "ellipse"}[value("shape")]
        if kind == "Aperture":
            if "smooth" in element.declaration() and not zero("smooth"):
                raise LatticeFileError(f"Aperture {name!r}: smooth edges cannot be written")
            parts = ["marker"]
        else:
            parts = ["rcollimator" if shape == "rectangle" else "ecollimator",
                     f"l={num('length')}"]
        parts += [f"apertype={shape}", f"aperture={{{num('x_limit')}, {num('y_limit')}}}"]
    elif kind == "DipoleEdge":
        parts = ["dipedge", f"h={num('h')}", f"e1={num('e1')}", f"fint={num('fint')}",
                 f"hgap={num('hgap')}", f"tilt={num('tilt')}"]
    else:
        raise LatticeFileError(f"{kind} {name!r} cannot be represented in MAD-X")
    return f"{name}: {', '.join(parts)};", length


def dumps(line: Beamline) -> str:
    """MAD-X text of ``line``: a ``beam`` (from ``line.reference``), one definition per
    element name and one ``sequence`` with ``refer=entry`` (nested lines flattened,
    drifts turned into gaps).

    Raises
    ------
    LatticeFileError
        An element MAD-X cannot represent (named), or array-valued parameters.
    """
    if not isinstance(line, Beamline):
        raise LatticeFileError(f"expected a Beamline, got {type(line).__name__}")
    name = re.sub(r"[^a-z0-9_.]", "_", line.name.lower()) or "line"
    if not re.match(r"[a-z]", name):
        name = "l_" + name
    out = [f"! {name}: written by beamtrack", ""]
    reference = line.reference
    if reference is not None:
        species = reference.species
        particle = _MADX_PARTICLE.get(species.name)
        if particle is not None and SPECIES.get(species.name) == species:
            out.append(f"beam, particle={particle}, pc={reference.p0c * 1e-9!r};")
        else:
            safe = re.sub(r"[^a-z0-9_]", "_", species.name.lower()) or "ion"
            out.append(f"beam, particle={safe}, mass={species.mc2 * 1e-9!r}, "
                       f"charge={species.charge!r}, pc={reference.p0c * 1e-9!r};")
        out.append("")
    definitions: dict[str, tuple[str, float]] = {}
    placements: list[tuple[str, float]] = []
    s = 0.0
    used = set()
    for element in line:
        lowered = element.name.lower()
        if not re.fullmatch(r"[a-z][a-z0-9_.$]*", lowered):
            raise LatticeFileError(f"element name {element.name!r} is not a MAD-X name")
        if element.kind == "Drift":
            s += float(element.length)
            continue
        if lowered in used and lowered not in definitions:
            raise LatticeFileError(f"two elements named {element.name!r} (MAD-X names are "
                                   "case-insensitive)")
        if lowered not in definitions:
            definitions[lowered] = _definition(element)
            definitions[lowered] = (definitions[lowered][0].replace(
                f"{element.name}:", f"{lowered}:", 1), definitions[lowered][1])
        used.add(lowered)
        placements.append((lowered, s))
        s += definitions[lowered][1]
    out.extend(text for text, _ in definitions.values())
    out.append("")
    out.append(f"{name}: sequence, l={s!r}, refer=entry;")
    out.extend(f"  {element}, at={position!r};" for element, position in placements)
    out.append("endsequence;")
    out.append(f"use, sequence={name};")
    return "\n".join(out) + "\n"


def save(line: Beamline, path: str | os.PathLike[str]) -> None:
    """Write ``line`` to a MAD-X file (see :func:`dumps`)."""
    text = dumps(line)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


__all__ = ["MADX_CONSTANTS", "MADX_FUNCTIONS", "NAME_PATTERN", "dumps", "load", "loads",
           "save"]
