"""Validation of element parameters by their declared rule.

:func:`check_value` applies a :class:`~beamtrack.lattice.parameters.Parameter`'s role
and rule to a value. Its errors name the parameter only
(``"parameter 'k2' must be finite, got inf"``); the element record that calls it labels
them with the element once (``"Sextupole 's1': parameter 'k2' ..."``).
"""

from __future__ import annotations

import keyword
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import array_api_compat
import numpy as np

from beamtrack.backends import backend_of
from beamtrack.lattice.parameters import Parameter
from beamtrack.tracking.errors import ParameterError


def check_value(spec: Parameter, key: str, value: Any,
                reserved: frozenset[str] = frozenset()) -> Any:
    """Validate ``value`` of parameter ``key`` against its declaration ``spec``.

    Parameters
    ----------
    spec
        The parameter's declaration.
    key
        The parameter's name (for messages).
    value
        The value given.
    reserved
        Names that entries of a ``"mapping"`` may not take (the kind's field names).

    Returns
    -------
    Any
        The value, normalised: lists of a ``"tuple"`` or ``"orders"`` become tuples,
        a ``"mapping"`` becomes a ``dict``, tuple entries Python ``int``/``float``.

    Raises
    ------
    ParameterError
        If the value breaks the rule; the message names ``key``.
    NotImplementedError
        For a known but unsupported choice.
    """
    if spec.role == "mapping":
        return _check_mapping(key, value, reserved)
    if spec.role == "optional" and value is None:
        return None
    return _CHECKS[spec.role](spec, key, value)


def _check_number(spec: Parameter, key: str, value: Any) -> Any:
    where = f"parameter {key!r}"
    if isinstance(value, bool):
        raise ParameterError(f"{where} must be a number or an array, got a bool")
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise ParameterError(f"{where} must be finite, got {value!r}")
        if spec.nonnegative and value < 0:
            raise ParameterError(f"{where} must be >= 0, got {value!r}")
        return value
    if not array_api_compat.is_array_api_obj(value):
        raise ParameterError(
            f"{where} must be a number or an array, got {type(value).__name__} {value!r}")
    backend = backend_of(value)
    if not array_api_compat.array_namespace(value).isdtype(value.dtype, "real floating"):
        raise ParameterError(f"{where} must be a floating-point array, got dtype {value.dtype}")
    if not backend.is_traced(value):
        host = backend.to_numpy(value)
        if not np.all(np.isfinite(host)):
            raise ParameterError(f"{where} must be finite, got non-finite values")
        if spec.nonnegative and np.any(host < 0):
            raise ParameterError(f"{where} must be >= 0, got negative values")
    return value


def _check_integer(spec: Parameter, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < spec.minimum:
        raise ParameterError(
            f"parameter {key!r} must be an integer >= {spec.minimum}, got {value!r}")
    return value


def _check_choice(spec: Parameter, key: str, value: Any) -> str:
    if value in spec.unsupported:
        raise NotImplementedError(
            f"parameter {key!r}: {value!r} is not implemented; use one of "
            f"{', '.join(spec.choices)}")
    if not isinstance(value, str) or value not in spec.choices:
        raise ParameterError(
            f"parameter {key!r} must be one of {', '.join(spec.choices)}, got {value!r}")
    return value


def _check_tuple(spec: Parameter, key: str, value: Any) -> tuple[Any, ...]:
    what = "integers" if spec.entry is int else "finite numbers"
    problem = ParameterError(f"parameter {key!r} must be {spec.size} {what} > 0, got {value!r}")
    if not isinstance(value, (tuple, list)) or len(value) != spec.size:
        raise problem
    for entry in value:
        if isinstance(entry, bool) or not isinstance(entry, numbers.Real):
            raise problem
        if spec.entry is int and not isinstance(entry, numbers.Integral):
            raise problem
        if not math.isfinite(entry) or entry <= 0:
            raise problem
    return tuple(spec.entry(entry) for entry in value)


def _check_orders(spec: Parameter, key: str, value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        for i, entry in enumerate(value):
            _check_number(spec, f"{key}[{i}]", entry)
        return tuple(value)
    if array_api_compat.is_array_api_obj(value):
        _check_number(spec, key, value)
        if value.ndim == 0:
            raise ParameterError(
                f"parameter {key!r} must have one entry per order (a tuple, or an array "
                "whose first axis runs over the orders), got a 0-d array")
        return value
    raise ParameterError(
        f"parameter {key!r} must be a tuple of strengths, one per order (e.g. "
        "(0.0, 0.0, 1.2)), or an array whose first axis runs over the orders; got "
        f"{type(value).__name__} {value!r}")


def _check_callable(spec: Parameter, key: str, value: Any) -> Any:
    if not callable(value):
        raise ParameterError(f"parameter {key!r} must be callable, got {type(value).__name__}")
    return value


def _check_mapping(key: str, value: Any, reserved: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ParameterError(f"parameter {key!r} must be a mapping of names to numbers or "
                             f"arrays, got {type(value).__name__}")
    entry_spec = Parameter(0.0, "", "")
    for name, entry in value.items():
        if (not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name)
                or name in reserved):
            raise ParameterError(
                f"custom parameter name {name!r} must be a Python identifier other than "
                f"{', '.join(sorted(reserved))}")
        _check_number(entry_spec, name, entry)
    return dict(value)


_CHECKS: dict[str, Callable[[Parameter, str, Any], Any]] = {
    "number": _check_number,
    "optional": _check_number,
    "orders": _check_orders,
    "integer": _check_integer,
    "choice": _check_choice,
    "tuple": _check_tuple,
    "callable": _check_callable,
}
