"""MAD-X values: the language's constants and functions, and their evaluation.

:class:`Values` holds what values refer to (variables, element definitions and
sequences, as the reader collects them) and turns the right-hand side of ``=`` or
``:=`` into a :class:`~beamtrack.lattice.io.madx_definitions.Value`: a number
(``=``, evaluated at once), a deferred expression (``:=``, evaluated when the beamline
is built), an array ``{...}`` or a word/string. It follows MAD-X where it is lenient:
an undefined variable is 0 (with a warning), so is a division by zero, and blanks
inside an expression are ignored.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable

from beamtrack.lattice.errors import LatticeFileError, LatticeFileWarning
from beamtrack.lattice.io.expressions import MATH_FUNCTIONS, Expression, parse
from beamtrack.lattice.io.madx_definitions import MAX_NESTING, ElementDef, SequenceDef, Value
from beamtrack.lattice.io.madx_statements import MadxStatement, split_top_text

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


_KEY = re.compile(r"\s*(-?)\s*([a-z_][a-z0-9_]*)\s*(?:(:=|=)(.*))?", re.S)


class Values:
    """The variables and definitions values refer to, and the parsing and evaluation
    of values against them."""

    #: The file being read (for messages); set by the reader.
    source: str

    def __init__(self) -> None:
        self.variables: dict[str, Value] = {}
        self.elements: dict[str, ElementDef] = {}
        self.sequences: dict[str, SequenceDef] = {}
        self.evaluating: set[str] = set()
        self.undefined_warned: set[str] = set()

    def expression(self, text: str, statement: MadxStatement, offset: int) -> Expression:
        line, column = statement.at(offset)
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

    def number(self, value: Value, what: str) -> float:
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

    def lookup_attr(self, name: str, attr: str) -> Value | None:
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

    def value_of(self, text: str, operator: str, statement: MadxStatement, offset: int,
                 *, word: bool = False) -> Value:
        """Parse the right-hand side of ``key = text``."""
        stripped = text.strip()
        lead = offset + len(text) - len(text.lstrip())
        line, column = statement.at(lead)
        if not stripped:
            raise statement.error("missing value after '='", offset)
        if stripped[0] in "\"'":
            if len(stripped) < 2 or stripped[-1] != stripped[0]:
                raise statement.error("malformed string", lead)
            return Value("word", stripped[1:-1], line, column)
        if stripped[0] == "{":
            if stripped[-1] != "}":
                raise statement.error("'{' without its '}'", lead)
            inner = text[text.index("{") + 1:text.rindex("}")]
            base = offset + text.index("{") + 1
            items = []
            if inner.strip():
                for piece, where in split_top_text(inner):
                    items.append(self.value_of(piece, operator, statement, base + where))
            return Value("array", items, line, column)
        if word and re.fullmatch(r"[a-z_$][a-z0-9_.$#]*", stripped):
            return Value("word", stripped, line, column)
        if stripped in ("true", "false"):
            return Value("number", 1.0 if stripped == "true" else 0.0, line, column)
        expression = self.expression(stripped, statement, lead)
        if operator == ":=" and expression.constant is None:
            return Value("deferred", expression, line, column)
        return Value("number", self.evaluate(expression), line, column)

    def arguments(self, statement: MadxStatement, pieces: list[tuple[str, int]],
                  words: tuple[str, ...] = ()) -> dict[str, Value]:
        """``key=value`` pairs of a statement; flags (``key``, ``-key``) become 1/0."""
        out: dict[str, Value] = {}
        for piece, offset in pieces:
            if not piece.strip():
                raise statement.error("empty argument", offset)
            match = _KEY.fullmatch(piece)
            if match is None:
                raise statement.error(f"expected 'name = value', got {piece.strip()!r}",
                                      offset + len(piece) - len(piece.lstrip()))
            minus, key, operator, text = match.groups()
            line, column = statement.at(offset + match.start(2))
            if operator is None:
                out[key] = Value("number", 0.0 if minus else 1.0, line, column)
                continue
            if minus:
                raise statement.error(f"unexpected '-' before {key!r}", offset)
            out[key] = self.value_of(text, operator, statement, offset + match.start(4),
                                     word=key in words)
        return out


__all__ = ["MADX_CONSTANTS", "MADX_FUNCTIONS", "NAME_PATTERN", "Values"]
