"""A safe arithmetic-expression parser shared by the MAD-X, Bmad and Elegant readers.

Lattice files write parameters as arithmetic: ``k1 = 0.5*kqf/brho``,
``angle := twopi/ncell``, ``l = q[l]*2``. :func:`parse` turns such text into an
:class:`Expression` (compiled to a small postfix program, never ``eval``) and
:meth:`Expression.evaluate` computes it with the caller's name lookup.

Grammar (standard precedence, lowest first)::

    expression := term (("+" | "-") term)*
    term       := unary (("*" | "/") unary)*
    unary      := ("+" | "-") unary | power
    power      := primary (("^" | "**") unary)?        right associative
    primary    := number | name | name "(" [expression ("," expression)*] ")"
                | "(" expression ")"

so ``-2^2 = -4``, ``2^3^2 = 512`` and ``2^-1 = 0.5``. Numbers are decimal
(``1``, ``1.``, ``.5``, ``1e-3``, ``2.5E+4``). What a *name* looks like is a
parameter of :func:`parse`, since formats differ (MAD-X ``qf->k1``, Bmad
``q[k1]``). Every failure raises
:class:`~beamtrack.lattice.errors.LatticeFileError` with the file, line and column
of the offending token.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from beamtrack.lattice.errors import LatticeFileError

#: Deepest nesting of parentheses, function calls, unary signs and powers.
MAX_DEPTH = 64
#: Longest expression text accepted [characters].
MAX_LENGTH = 100_000

#: Default identifier pattern: a letter or underscore, then letters, digits, ``_``, ``.``.
NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_.]*"

_NUMBER = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SPACE = re.compile(r"\s+")
_OPERATOR = re.compile(r"\*\*|[-+*/^(),]")
_PLAIN_NUMBER = re.compile(r"\s*[-+]?" + _NUMBER.pattern + r"\s*")


def _sinc(x: float) -> float:
    return 1.0 if x == 0 else math.sin(x) / x


def _round(x: float) -> float:
    """Round half away from zero (Fortran ``nint``, MAD-X ``round``)."""
    return math.copysign(math.floor(abs(x) + 0.5), x)


def _sign(x: float) -> float:
    return 0.0 if x == 0 else math.copysign(1.0, x)


def _min(*args: float) -> float:
    if not args:
        raise TypeError("min() needs at least one argument")
    return min(args)


def _max(*args: float) -> float:
    if not args:
        raise TypeError("max() needs at least one argument")
    return max(args)


#: Functions every format understands (a format adds its own to a copy).
MATH_FUNCTIONS: Mapping[str, Callable[..., float]] = {
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "atan2": math.atan2,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "tanh": math.tanh,
    "asinh": math.asinh,
    "acosh": math.acosh,
    "atanh": math.atanh,
    "sinc": _sinc,
    "abs": abs,
    "floor": lambda x: float(math.floor(x)),
    "ceil": lambda x: float(math.ceil(x)),
    "round": _round,
    "sign": _sign,
    "min": _min,
    "max": _max,
    "hypot": math.hypot,
    "erf": math.erf,
    "erfc": math.erfc,
}

#: Constants every format understands (SI units; a format adds its own).
MATH_CONSTANTS: Mapping[str, float] = {
    "pi": math.pi,
    "twopi": 2 * math.pi,
    "e": math.e,
    "clight": 299792458.0,
    "degrad": 180.0 / math.pi,
    "raddeg": math.pi / 180.0,
}

# Postfix opcodes.
_NUM, _NAME, _NEG, _ADD, _SUB, _MUL, _DIV, _POW, _CALL = range(9)
_BINARY = {"+": _ADD, "-": _SUB, "*": _MUL, "/": _DIV, "^": _POW, "**": _POW}


@dataclass(frozen=True)
class Expression:
    """A parsed arithmetic expression.

    Attributes
    ----------
    text
        The source text.
    names
        Identifiers the expression reads (function names excluded).
    source, line, column
        Where the text starts (file name, 1-based line and column).
    """

    text: str
    names: frozenset[str]
    source: str = "<string>"
    line: int = 1
    column: int = 1
    _code: tuple[tuple, ...] = field(default=(), repr=False, compare=False)

    @property
    def constant(self) -> float | None:
        """The value if the expression is a plain number, else ``None``."""
        if len(self._code) == 1 and self._code[0][0] == _NUM:
            return self._code[0][1]
        return None

    def evaluate(
        self,
        resolve: Callable[[str], float],
        functions: Mapping[str, Callable[..., float]] = MATH_FUNCTIONS,
    ) -> float:
        """The value of the expression.

        Parameters
        ----------
        resolve
            Called with each identifier read, returns its value. It may raise
            :class:`LatticeFileError` itself; a ``KeyError`` becomes an
            "unknown name" error at the identifier.
        functions
            Function names to callables (looked up as written, then lower-case).

        Raises
        ------
        LatticeFileError
            Unknown name or function, wrong number of arguments, a domain error
            (``sqrt(-1)``), division by zero, or a non-finite result; located at
            the offending token.
        """
        stack: list[float] = []
        push = stack.append
        pop = stack.pop
        for op in self._code:
            code = op[0]
            try:
                if code == _NUM:
                    push(op[1])
                    continue
                if code == _NAME:
                    try:
                        value = resolve(op[1])
                    except KeyError:
                        raise self._error(f"unknown name {op[1]!r}", op[2]) from None
                    value = float(value)
                elif code == _NEG:
                    value = -pop()
                elif code == _CALL:
                    name, nargs = op[1], op[2]
                    function = functions.get(name)
                    if function is None:
                        function = functions.get(name.lower())
                    if function is None:
                        raise self._error(f"unknown function {name!r}", op[3])
                    args = stack[len(stack) - nargs:] if nargs else []
                    del stack[len(stack) - nargs:]
                    try:
                        value = float(function(*args))
                    except TypeError:
                        raise self._error(f"function {name!r} cannot take {nargs} "
                                          f"argument{'s' if nargs != 1 else ''}", op[3]) from None
                    except ValueError:
                        raise self._error(f"{name}({', '.join(f'{a:g}' for a in args)}) is "
                                          "outside the function's domain", op[3]) from None
                else:
                    b = pop()
                    a = pop()
                    if code == _ADD:
                        value = a + b
                    elif code == _SUB:
                        value = a - b
                    elif code == _MUL:
                        value = a * b
                    elif code == _DIV:
                        if b == 0:
                            raise self._error("division by zero", op[1])
                        value = a / b
                    else:
                        if a == 0 and b < 0:
                            raise self._error("division by zero (0 to a negative power)", op[1])
                        try:
                            value = math.pow(a, b)
                        except ValueError:
                            raise self._error(f"{a:g}^{b:g} is not a real number", op[1]) from None
            except LatticeFileError:
                raise
            except OverflowError:
                raise self._error("arithmetic overflow", op[-1]) from None
            except ZeroDivisionError:
                raise self._error("division by zero", op[-1]) from None
            except (TypeError, ValueError) as exc:
                raise self._error(f"cannot evaluate: {exc}", op[-1]) from None
            if not math.isfinite(value):
                raise self._error("result is not a finite number (overflow)", op[-1])
            push(value)
        return stack[-1]

    def _error(self, message: str, offset: int) -> LatticeFileError:
        line, column = _locate(self.text, offset, self.line, self.column)
        return LatticeFileError(f"{message} in expression {_short(self.text)!r}",
                                file=self.source, line=line, column=column)


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _locate(text: str, offset: int, line: int, column: int) -> tuple[int, int]:
    """File line and column of character ``offset`` of ``text`` that starts at ``line:column``."""
    before = text[:offset]
    newlines = before.count("\n")
    if newlines == 0:
        return line, column + offset
    return line + newlines, offset - before.rfind("\n")


@lru_cache(maxsize=64)
def _name_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


class _Parser:
    """Recursive descent over a token list, emitting postfix code."""

    def __init__(self, text: str, source: str, line: int, column: int, name_re: re.Pattern[str]):
        self.text = text
        self.source = source
        self.line = line
        self.column = column
        self.tokens = self._tokenize(name_re)
        self.position = 0
        self.code: list[tuple] = []
        self.names: set[str] = set()
        self.depth = 0

    def error(self, message: str, offset: int) -> LatticeFileError:
        line, column = _locate(self.text, offset, self.line, self.column)
        return LatticeFileError(message, file=self.source, line=line, column=column)

    def _tokenize(self, name_re: re.Pattern[str]) -> list[tuple[str, str, int]]:
        text = self.text
        tokens: list[tuple[str, str, int]] = []
        i, n = 0, len(text)
        while i < n:
            match = _SPACE.match(text, i)
            if match:
                i = match.end()
                continue
            match = _NUMBER.match(text, i)
            if match:
                tokens.append(("num", match.group(), i))
                i = match.end()
                continue
            match = name_re.match(text, i)
            if match and match.end() > i:
                tokens.append(("name", match.group(), i))
                i = match.end()
                continue
            match = _OPERATOR.match(text, i)
            if match:
                tokens.append(("op", match.group(), i))
                i = match.end()
                continue
            raise self.error(f"unexpected character {text[i]!r} in expression "
                             f"{_short(text)!r}", i)
        tokens.append(("end", "", n))
        return tokens

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.position]

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def describe(self, token: tuple[str, str, int]) -> str:
        return "end of expression" if token[0] == "end" else repr(token[1])

    def enter(self, offset: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nested deeper than {MAX_DEPTH} levels", offset)

    def parse(self) -> None:
        if self.peek()[0] == "end":
            raise self.error("empty expression", 0)
        self.expression()
        token = self.peek()
        if token[0] != "end":
            raise self.error(f"unexpected {self.describe(token)} in expression "
                             f"{_short(self.text)!r}", token[2])

    def expression(self) -> None:
        self.term()
        while True:
            kind, value, offset = self.peek()
            if kind == "op" and value in ("+", "-"):
                self.take()
                self.term()
                self.code.append((_BINARY[value], offset))
            else:
                return

    def term(self) -> None:
        self.unary()
        while True:
            kind, value, offset = self.peek()
            if kind == "op" and value in ("*", "/"):
                self.take()
                self.unary()
                self.code.append((_BINARY[value], offset))
            else:
                return

    def unary(self) -> None:
        kind, value, offset = self.peek()
        if kind == "op" and value in ("+", "-"):
            self.take()
            self.enter(offset)
            self.unary()
            self.depth -= 1
            if value == "-":
                self.code.append((_NEG, offset))
            return
        self.power()

    def power(self) -> None:
        self.primary()
        kind, value, offset = self.peek()
        if kind == "op" and value in ("^", "**"):
            self.take()
            self.enter(offset)
            self.unary()
            self.depth -= 1
            self.code.append((_POW, offset))

    def primary(self) -> None:
        kind, value, offset = self.take()
        if kind == "num":
            number = float(value)
            if not math.isfinite(number):
                raise self.error(f"number {_short(value, 30)} is too large", offset)
            self.code.append((_NUM, number, offset))
            return
        if kind == "name":
            after = self.peek()
            if after[0] == "op" and after[1] == "(":
                self.take()
                self.enter(offset)
                nargs = 0
                if not (self.peek()[0] == "op" and self.peek()[1] == ")"):
                    while True:
                        self.expression()
                        nargs += 1
                        separator = self.take()
                        if separator[0] == "op" and separator[1] == ",":
                            continue
                        if separator[0] == "op" and separator[1] == ")":
                            break
                        raise self.error(f"expected ',' or ')' in the arguments of {value!r}, "
                                         f"got {self.describe(separator)}", separator[2])
                else:
                    self.take()
                self.depth -= 1
                self.code.append((_CALL, value, nargs, offset))
                return
            self.names.add(value)
            self.code.append((_NAME, value, offset))
            return
        if kind == "op" and value == "(":
            self.enter(offset)
            self.expression()
            closing = self.take()
            if not (closing[0] == "op" and closing[1] == ")"):
                raise self.error(f"expected ')' to close the '(' at column "
                                 f"{_locate(self.text, offset, self.line, self.column)[1]}, "
                                 f"got {self.describe(closing)}", closing[2])
            self.depth -= 1
            return
        raise self.error(f"expected a number, name or '(', got "
                         f"{'end of expression' if kind == 'end' else repr(value)} in expression "
                         f"{_short(self.text)!r}", offset)


def parse(
    text: str,
    *,
    source: str = "<string>",
    line: int = 1,
    column: int = 1,
    name_pattern: str = NAME_PATTERN,
) -> Expression:
    """Parse arithmetic text into an :class:`Expression`.

    Parameters
    ----------
    text
        The expression, e.g. ``"-2*kqf/(1 + dp)^2"``; may span lines.
    source
        File name for error messages.
    line, column
        1-based position of ``text`` in that file, so errors point into the file.
    name_pattern
        Regular expression of an identifier (a format passes its own: MAD-X
        ``qf->k1``, Bmad ``q[k1]``). It is matched after numbers, so it should
        start with a letter or underscore.

    Returns
    -------
    Expression
        Ready to :meth:`~Expression.evaluate`; ``.names`` lists the identifiers read.

    Raises
    ------
    LatticeFileError
        Syntax errors, numbers too large for a float, nesting deeper than
        :data:`MAX_DEPTH`, text longer than :data:`MAX_LENGTH`.

    Examples
    --------
    >>> from beamtrack.lattice.io.expressions import parse
    >>> parse("-2^2").evaluate(lambda name: 0.0)
    -4.0
    >>> e = parse("atan2(a, 2*b)")
    >>> sorted(e.names), e.evaluate({"a": 1.0, "b": 0.5}.__getitem__)
    (['a', 'b'], 0.7853981633974483)
    """
    if not isinstance(text, str):
        raise LatticeFileError(f"expected expression text, got {type(text).__name__}",
                               file=source, line=line, column=column)
    if len(text) > MAX_LENGTH:
        raise LatticeFileError(f"expression longer than {MAX_LENGTH} characters",
                               file=source, line=line, column=column)
    if _PLAIN_NUMBER.fullmatch(text):  # the common case, fast
        number = float(text)
        if math.isfinite(number):
            return Expression(text, frozenset(), source, line, column,
                              ((_NUM, number, 0),))
    parser = _Parser(text, source, line, column, _name_regex(name_pattern))
    parser.parse()
    return Expression(text, frozenset(parser.names), source, line, column, tuple(parser.code))


def evaluate(
    text: str,
    resolve: Callable[[str], float] | Mapping[str, float] = MATH_CONSTANTS,
    functions: Mapping[str, Callable[..., float]] = MATH_FUNCTIONS,
    **location: object,
) -> float:
    """Parse and evaluate in one step (``resolve`` may be a mapping of names to values).

    ``location`` takes :func:`parse`'s keywords (``source``, ``line``, ``column``,
    ``name_pattern``).

    Examples
    --------
    >>> from beamtrack.lattice.io.expressions import evaluate
    >>> evaluate("2*pi")
    6.283185307179586
    """
    lookup = resolve.__getitem__ if isinstance(resolve, Mapping) else resolve
    return parse(text, **location).evaluate(lookup, functions)  # type: ignore[arg-type]


__all__ = ["MATH_CONSTANTS", "MATH_FUNCTIONS", "MAX_DEPTH", "NAME_PATTERN", "Expression",
           "evaluate", "parse"]
