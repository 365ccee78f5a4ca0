"""Validation of element parameters, shared by every element record.

Each check raises :class:`~beamtrack.tracking.errors.ParameterError` with a message that
names the element kind, the element and the parameter.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import array_api_compat
import numpy as np

from beamtrack.backends import backend_of
from beamtrack.tracking.errors import ParameterError


def short_repr(value: Any) -> str:
    if array_api_compat.is_array_api_obj(value):
        return f"<{type(value).__module__.split('.')[0]} array {tuple(value.shape)}>"
    return repr(value)


def values_equal(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) or isinstance(b, tuple):
        return (isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b)
                and all(values_equal(u, v) for u, v in zip(a, b)))
    a_arr = array_api_compat.is_array_api_obj(a)
    b_arr = array_api_compat.is_array_api_obj(b)
    if not a_arr and not b_arr:
        return bool(a == b)
    to_np = [backend_of(v).to_numpy(v) if array_api_compat.is_array_api_obj(v) else np.asarray(v)
             for v in (a, b)]
    return to_np[0].shape == to_np[1].shape and bool(np.array_equal(to_np[0], to_np[1]))


def check_parameter(
    kind: str, name: str, key: str, value: Any, integer: bool, nonnegative: bool = False
) -> None:
    where = f"{kind} {name!r}: parameter {key!r}"
    if integer:
        minimum = 0 if nonnegative else 1
        if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
                or value < minimum):
            raise ParameterError(f"{where} must be an integer >= {minimum}, got {value!r}")
        return
    if isinstance(value, bool):
        raise ParameterError(f"{where} must be a number or an array, got a bool")
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise ParameterError(f"{where} must be finite, got {value!r}")
        if nonnegative and value < 0:
            raise ParameterError(f"{where} must be >= 0, got {value!r}")
        return
    if not array_api_compat.is_array_api_obj(value):
        raise ParameterError(
            f"{where} must be a number or an array, got {type(value).__name__} {value!r}"
        )
    backend = backend_of(value)
    if not array_api_compat.array_namespace(value).isdtype(value.dtype, "real floating"):
        raise ParameterError(f"{where} must be a floating-point array, got dtype {value.dtype}")
    if not backend.is_traced(value):
        host = backend.to_numpy(value)
        if not np.all(np.isfinite(host)):
            raise ParameterError(f"{where} must be finite, got non-finite values")
        if nonnegative and np.any(host < 0):
            raise ParameterError(f"{where} must be >= 0, got negative values")


def check_choice(kind: str, name: str, key: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ParameterError(
            f"{kind} {name!r}: parameter {key!r} must be one of {', '.join(choices)}, "
            f"got {value!r}"
        )


def check_tuple(
    kind: str, name: str, key: str, value: Any, size: int, entry_type: type
) -> tuple[Any, ...]:
    """Validate a tuple of ``size`` positive Python numbers; returns it as a tuple."""
    what = "integers" if entry_type is int else "finite numbers"
    problem = f"{kind} {name!r}: parameter {key!r} must be {size} {what} > 0, got {value!r}"
    if not isinstance(value, (tuple, list)) or len(value) != size:
        raise ParameterError(problem)
    entries = []
    for entry in value:
        if isinstance(entry, bool):
            raise ParameterError(problem)
        if entry_type is int:
            if not isinstance(entry, numbers.Integral) or entry < 1:
                raise ParameterError(problem)
            entries.append(int(entry))
        else:
            if (not isinstance(entry, numbers.Real) or not math.isfinite(entry)
                    or entry <= 0):
                raise ParameterError(problem)
            entries.append(float(entry))
    return tuple(entries)


def check_sequence(kind: str, name: str, key: str, value: Any) -> Any:
    """Validate multipole strengths given order by order; lists become tuples."""
    if isinstance(value, (tuple, list)):
        for i, entry in enumerate(value):
            check_parameter(kind, name, f"{key}[{i}]", entry, False)
        return tuple(value)
    if array_api_compat.is_array_api_obj(value):
        check_parameter(kind, name, key, value, False)
        if value.ndim == 0:
            raise ParameterError(
                f"{kind} {name!r}: parameter {key!r} must have one entry per order (a tuple, "
                "or an array whose first axis runs over the orders), got a 0-d array"
            )
        return value
    raise ParameterError(
        f"{kind} {name!r}: parameter {key!r} must be a tuple of strengths, one per order "
        f"(e.g. (0.0, 0.0, 1.2)), or an array whose first axis runs over the orders; got "
        f"{type(value).__name__} {value!r}"
    )
