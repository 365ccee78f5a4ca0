"""The shared arithmetic-expression parser of the lattice readers.

Expected values are plain arithmetic (Python's own operators and ``math``), the
precedence rules of Fortran/MAD-X/Bmad (``-2^2 = -4``, ``2^3^2 = 512``).
"""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beamtrack.lattice.errors import LatticeFileError
from beamtrack.lattice.io.expressions import (
    MATH_CONSTANTS,
    MATH_FUNCTIONS,
    MAX_DEPTH,
    evaluate,
    parse,
)

VALUES = {"a": 3.0, "b": -0.5, "kqf": 0.25, "l.q": 2.0}


def value(text: str, **kw) -> float:
    lookup = {**MATH_CONSTANTS, **VALUES}
    return parse(text, **kw).evaluate(lookup.__getitem__)


@pytest.mark.parametrize("text, expected", [
    ("1", 1.0), ("1.", 1.0), (".5", 0.5), ("1e-3", 1e-3), ("2.5E+4", 2.5e4), ("  7  ", 7.0),
    ("-2^2", -4.0), ("2^3^2", 512.0), ("2**3**2", 512.0), ("(-2)^2", 4.0), ("2^-1", 0.5),
    ("-2**2", -4.0), ("--3", 3.0), ("+-+3", -3.0), ("1-2-3", -4.0), ("8/4/2", 1.0),
    ("2*3+4*5", 26.0), ("2*(3+4)*5", 70.0), ("1 - -1", 2.0), ("2*-3", -6.0),
    ("a*b", -1.5), ("l.q/2", 1.0), ("-a^2", -9.0), ("a^b", 3.0 ** -0.5),
    ("atan2(1, 2)", math.atan2(1, 2)), ("max(1, a, 2)", 3.0), ("min(a,b)", -0.5),
    ("sqrt(a*a + 16)", 5.0), ("twopi/4", math.pi / 2), ("SIN(pi/2)", 1.0),
    ("round(2.5)", 3.0), ("round(-2.5)", -3.0), ("floor(-0.5)", -1.0), ("abs(b)", 0.5),
    ("exp(log(a))", math.exp(math.log(3.0))), ("1\n+\n2", 3.0), ("sinc(0)", 1.0),
])
def test_values(text: str, expected: float) -> None:
    assert value(text) == pytest.approx(expected, rel=1e-15, abs=0)


def test_names_and_text() -> None:
    expression = parse("kqf * sqrt(a) + f(b, kqf)")
    assert expression.names == {"kqf", "a", "b"}
    assert expression.text == "kqf * sqrt(a) + f(b, kqf)"
    assert parse("1.5").constant == 1.5
    assert parse("a").constant is None


def test_name_pattern_of_a_format() -> None:
    madx = r"[A-Za-z_][A-Za-z0-9_.]*(?:->[A-Za-z_][A-Za-z0-9_]*)?"
    expression = parse("qf->k1 - 2", name_pattern=madx)
    assert expression.names == {"qf->k1"}
    assert expression.evaluate({"qf->k1": 5.0}.__getitem__) == 3.0
    bmad = r"[A-Za-z_][A-Za-z0-9_.]*(?:\[[A-Za-z_][A-Za-z0-9_]*\])?"
    expression = parse("2*q1[k1]", name_pattern=bmad)
    assert expression.names == {"q1[k1]"}


def test_custom_functions() -> None:
    functions = {**MATH_FUNCTIONS, "twice": lambda x: 2 * x}
    assert parse("twice(a)").evaluate(VALUES.__getitem__, functions) == 6.0


def test_evaluation_uses_the_current_values() -> None:
    expression = parse("a + 1")
    assert expression.evaluate(lambda name: 1.0) == 2.0
    assert expression.evaluate(lambda name: 2.0) == 3.0


@pytest.mark.parametrize("text, column, message", [
    ("1 +", 4, "expected a number"),
    ("(1 + 2", 7, "expected ')'"),
    ("1 + 2)", 6, "unexpected ')'"),
    ("a b", 3, "unexpected 'b'"),
    ("2 $ 3", 3, "unexpected character '$'"),
    ("", 1, "empty expression"),
    ("1 / (a - 3)", 3, "division by zero"),
    ("nope + 1", 1, "unknown name 'nope'"),
    ("1 + frob(2)", 5, "unknown function 'frob'"),
    ("sin(1, 2)", 1, "cannot take 2 arguments"),
    ("atan2(1)", 1, "cannot take 1 argument"),
    ("sqrt(b)", 1, "domain"),
    ("log(0)", 1, "domain"),
    ("b^0.5", 2, "not a real number"),
    ("10^400", 3, "overflow"),
    ("1e300*1e300", 6, "overflow"),
    ("exp(1000)", 1, "overflow"),
    ("1e400", 1, "too large"),
    ("9" * 400, 1, "too large"),
    ("0^-1", 2, "division by zero"),
    ("atan2(1 2)", 9, "expected ',' or ')'"),
])
def test_errors_carry_location(text: str, column: int, message: str) -> None:
    with pytest.raises(LatticeFileError, match=re.escape(message)) as info:
        value(text, source="ring.madx", line=7, column=1)
    error = info.value
    assert (error.file, error.line, error.column) == ("ring.madx", 7, column)


def test_error_location_on_a_later_line_and_offset_column() -> None:
    with pytest.raises(LatticeFileError) as info:
        value("1 +\n  2 * nope", source="f", line=10, column=20)
    assert (info.value.line, info.value.column) == (11, 7)
    with pytest.raises(LatticeFileError) as info:
        value("a + nope", source="f", line=10, column=20)
    assert (info.value.line, info.value.column) == (10, 24)


@pytest.mark.parametrize("text", [
    "(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1),
    "-" * 10_000 + "1",
    "2^" * 10_000 + "2",
    "sin(" * 5_000 + "1" + ")" * 5_000,
])
def test_deep_nesting_is_a_file_error_not_recursion(text: str) -> None:
    with pytest.raises(LatticeFileError, match="nested deeper"):
        parse(text)


def test_long_flat_expressions_are_fine() -> None:
    assert value("+".join(["1"] * 20_000)) == 20_000.0
    assert value("(" * MAX_DEPTH + "1" + ")" * MAX_DEPTH) == 1.0


def test_resolver_errors_pass_through() -> None:
    def resolve(name: str) -> float:
        raise LatticeFileError("cyclic definition", file="x", line=1, column=1)

    with pytest.raises(LatticeFileError, match="cyclic"):
        parse("a").evaluate(resolve)


def test_non_numeric_values_are_file_errors() -> None:
    with pytest.raises(LatticeFileError):
        parse("a + 1").evaluate(lambda name: "text")
    with pytest.raises(LatticeFileError, match="finite"):
        parse("a").evaluate(lambda name: math.inf)


def test_evaluate_shortcut() -> None:
    assert evaluate("2*pi") == 2 * math.pi
    assert evaluate("x + 1", {"x": 1.0}) == 2.0


ALPHABET = "0123456789.eE+-*/^(), \n\tabcxyz_[]>$#!;=:\"'"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=60) | st.text(max_size=40))
def test_random_text_raises_only_file_errors(text: str) -> None:
    try:
        result = parse(text, source="fuzz").evaluate(lambda name: 1.5)
    except LatticeFileError as error:
        assert error.file == "fuzz" and error.line >= 1 and error.column >= 1
    else:
        assert math.isfinite(result)


@settings(max_examples=200, deadline=None)
@given(st.recursive(
    st.sampled_from(["1", "2.5", ".5", "3e2", "a", "b"]),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "^"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda t: f"-{t}"),
        inner.map(lambda t: f"abs({t})"),
    ),
    max_leaves=20,
))
def test_random_valid_expressions_match_python(text: str) -> None:
    values = {"a": 1.25, "b": 0.75}
    python = text.replace("^", "**")
    try:
        expected = eval(python, {"__builtins__": {}, "abs": abs}, values)  # noqa: S307 - test only
    except (ZeroDivisionError, OverflowError):
        expected = None
    if isinstance(expected, complex) or (expected is not None and not math.isfinite(expected)):
        expected = None
    try:
        got = parse(text).evaluate(values.__getitem__)
    except LatticeFileError:
        assert expected is None
        return
    assert expected is not None
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-300)

