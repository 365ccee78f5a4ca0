"""Turning element parameters into arrays of the particles' backend."""

from __future__ import annotations

import numbers
from typing import Any

import array_api_compat

from beamtrack.tracking.errors import ParameterError


def as_parameter(value: Any, like: Any, name: str, element: str | None = None) -> Any:
    """Return ``value`` as an array with the dtype and device of ``like``.

    Parameters
    ----------
    value
        A Python number or an array of the same library as ``like``.
    like
        An array of the particles (gives namespace, dtype and device).
    name
        Parameter name, for error messages.
    element
        Label of the element or tracking function, for error messages.

    Raises
    ------
    ParameterError
        If ``value`` is neither a real number nor an array of ``like``'s library
        (beamtrack never moves data between libraries silently).
    """
    xp = array_api_compat.array_namespace(like)
    dtype = like.dtype
    device = array_api_compat.device(like)
    if isinstance(value, bool):
        raise ParameterError(f"parameter {name!r} must be a number or an array, got a bool",
                             element=element)
    if isinstance(value, numbers.Real):
        return xp.asarray(float(value), dtype=dtype, device=device)
    if not array_api_compat.is_array_api_obj(value):
        raise ParameterError(
            f"parameter {name!r} must be a number or an array, got {type(value).__name__}",
            element=element,
        )
    try:
        value_xp = array_api_compat.array_namespace(value, like)
    except TypeError:
        value_xp = None
    if value_xp is not xp:
        raise ParameterError(
            f"parameter {name!r} is a {type(value).__module__.split('.')[0]} array but the "
            f"particles are {type(like).__module__.split('.')[0]} arrays; move one of them "
            "(Particles.to_backend) so that both live in the same library",
            element=element,
        )
    if value.dtype != dtype:
        value = xp.astype(value, dtype)
    return value


def is_number(value: Any) -> bool:
    """Whether ``value`` is a plain Python ``int`` or ``float`` (not a bool, not a NumPy
    scalar, not an array): a parameter known before any tracing."""
    return type(value) is float or type(value) is int


def as_number(value: Any, name: str, element: str | None = None) -> float:
    """A Python real number (not a bool) as a float; :func:`as_parameter`'s check for
    parameters that stay numbers."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"parameter {name!r} must be a number or an array, got "
                             f"{type(value).__name__}", element=element)
    return float(value)


def per_particle(param: Any) -> Any:
    """Append an axis so that a ``(*batch)`` parameter broadcasts over ``(*batch, n)``
    (Python numbers broadcast as they are)."""
    if is_number(param):
        return param
    return param[..., None]


def as_nonnegative_parameter(value: Any, like: Any, name: str,
                             element: str | None = None) -> Any:
    """:func:`as_parameter` for a parameter that must be ``>= 0`` (a negative Python
    number is refused; arrays are not inspected, which would break ``jax.jit``)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and value < 0:
        raise ParameterError(f"parameter {name!r} must be >= 0, got {value!r}", element=element)
    return as_parameter(value, like, name, element)


def broadcast_shape(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """The broadcast of array shapes (plain Python: the libraries' own helpers cost
    tens of microseconds per call in eager torch)."""
    ndim = 0
    for shape in shapes:  # plain loops: torch.compile traces them
        if len(shape) > ndim:
            ndim = len(shape)
    out = [1] * ndim
    for shape in shapes:
        offset = ndim - len(shape)
        for i in range(len(shape)):
            n = shape[i]
            if n != 1:
                if out[offset + i] != 1 and out[offset + i] != n:
                    raise ValueError(f"shapes {shapes} do not broadcast")
                out[offset + i] = n
    return tuple(out)
