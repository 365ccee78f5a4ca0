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


def per_particle(param: Any) -> Any:
    """Append an axis so that a ``(*batch)`` parameter broadcasts over ``(*batch, n)``."""
    return param[..., None]


def as_nonnegative_parameter(value: Any, like: Any, name: str,
                             element: str | None = None) -> Any:
    """:func:`as_parameter` for a parameter that must be ``>= 0`` (a negative Python
    number is refused; arrays are not inspected, which would break ``jax.jit``)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and value < 0:
        raise ParameterError(f"parameter {name!r} must be >= 0, got {value!r}", element=element)
    return as_parameter(value, like, name, element)
