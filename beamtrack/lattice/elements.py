"""Element records: immutable descriptions of beamline elements.

A record holds an element's name and physical parameters and knows which tracking
function serves it; it computes nothing itself. Parameters are Python numbers or
arrays of any backend (with optional batch dimensions), so a beamline is a
differentiable function of its parameters.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from typing import Any, ClassVar

import array_api_compat
import numpy as np

from beamtrack.backends import backend_of
from beamtrack.lattice.errors import UnknownParameterError
from beamtrack.tracking.drift import track_drift
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.quadrupole import track_quadrupole
from beamtrack.tracking.stepping import METHODS

#: Element kinds by name, filled by :func:`element_record`.
ELEMENT_KINDS: dict[str, type[Element]] = {}


def element_record(cls: type) -> type:
    """Make ``cls`` a frozen element dataclass with checked construction.

    ``name`` stays the one positional field; all parameters are keyword-only. An
    unknown keyword raises :class:`UnknownParameterError` naming the element and the
    parameter, and the kind is registered for lattice files.
    """
    cls = dataclasses.dataclass(frozen=True, kw_only=True, eq=False, repr=False)(cls)
    generated_init = cls.__init__
    valid = {f.name for f in dataclasses.fields(cls)}

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - valid)
        if unknown:
            name = kwargs.get("name", args[0] if args else "?")
            raise UnknownParameterError(
                f"{cls.__name__} {name!r}: unknown parameter(s) {', '.join(unknown)}; "
                f"valid parameters: {', '.join(sorted(valid - {'name'}))}"
            )
        if len(args) > 1:
            raise ParameterError(
                f"{cls.__name__} {args[0]!r}: only the name is positional; pass parameters "
                "by keyword, e.g. length=0.5"
            )
        generated_init(self, *args, **kwargs)

    __init__.__doc__ = generated_init.__doc__
    __init__.__signature__ = __import__("inspect").signature(generated_init)  # type: ignore[attr-defined]
    cls.__init__ = __init__
    ELEMENT_KINDS[cls.__name__] = cls
    return cls


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Element:
    """Base of all element records.

    Parameters
    ----------
    name
        Unique name of the element in its beamline.
    method
        Tracking method for this element (``"bmad"`` or ``"linear"``); ``None`` uses
        the beamline's choice.
    """

    name: str
    method: str | None = dataclasses.field(default=None, kw_only=True)

    #: Tracking function serving this kind; ``None`` for elements without a body.
    tracker: ClassVar[Callable[..., Particles] | None] = None
    #: Parameters that must be Python integers (they set loop lengths).
    integer_parameters: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        kind = type(self).__name__
        if not isinstance(self.name, str) or not self.name:
            raise ParameterError(f"{kind}: name must be a non-empty string, got {self.name!r}")
        if self.method is not None and self.method not in METHODS:
            raise ParameterError(
                f"{kind} {self.name!r}: parameter 'method' must be one of "
                f"{', '.join(METHODS)} or None, got {self.method!r}"
            )
        for key, value in self.parameters().items():
            _check_parameter(kind, self.name, key, value, key in self.integer_parameters)

    @property
    def kind(self) -> str:
        """Element kind (the class name, as in Bmad)."""
        return type(self).__name__

    def parameters(self) -> dict[str, Any]:
        """Physical parameters (everything except ``name`` and ``method``)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("name", "method")
        }

    @property
    def length(self) -> Any:
        """Length [m] (zero for elements without a ``length`` parameter)."""
        return self.parameters().get("length", 0.0)

    def track(self, particles: Particles, method: str = "bmad") -> Particles:
        """Track ``particles`` with this element's tracking function.

        ``method`` is used unless the element fixes its own ``method``.
        """
        if self.tracker is None:
            return particles
        try:
            return type(self).tracker(particles, **self.parameters(), method=self.method or method)
        except ParameterError as exc:
            raise ParameterError(f"{self.kind} {self.name!r}: {exc}") from exc

    def replace(self, **params: Any) -> Element:
        """A copy with some parameters replaced (validated like the constructor)."""
        unknown = sorted(set(params) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise UnknownParameterError(
                f"{self.kind} {self.name!r}: unknown parameter(s) {', '.join(unknown)}"
            )
        return dataclasses.replace(self, **params)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Element)
        if (self.name, self.method) != (other.name, other.method):
            return False
        mine, theirs = self.parameters(), other.parameters()
        return all(_values_equal(mine[k], theirs[k]) for k in mine)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = [repr(self.name)] + [f"{k}={_short(v)}" for k, v in self.parameters().items()]
        if self.method:
            parts.append(f"method={self.method!r}")
        return f"{self.kind}({', '.join(parts)})"


def _short(value: Any) -> str:
    if array_api_compat.is_array_api_obj(value):
        return f"<{type(value).__module__.split('.')[0]} array {tuple(value.shape)}>"
    return repr(value)


def _values_equal(a: Any, b: Any) -> bool:
    a_arr = array_api_compat.is_array_api_obj(a)
    b_arr = array_api_compat.is_array_api_obj(b)
    if not a_arr and not b_arr:
        return bool(a == b)
    to_np = [backend_of(v).to_numpy(v) if array_api_compat.is_array_api_obj(v) else np.asarray(v)
             for v in (a, b)]
    return to_np[0].shape == to_np[1].shape and bool(np.array_equal(to_np[0], to_np[1]))


def _check_parameter(kind: str, name: str, key: str, value: Any, integer: bool) -> None:
    where = f"{kind} {name!r}: parameter {key!r}"
    if integer:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ParameterError(f"{where} must be an integer >= 1, got {value!r}")
        return
    if isinstance(value, bool):
        raise ParameterError(f"{where} must be a number or an array, got a bool")
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise ParameterError(f"{where} must be finite, got {value!r}")
        return
    if not array_api_compat.is_array_api_obj(value):
        raise ParameterError(
            f"{where} must be a number or an array, got {type(value).__name__} {value!r}"
        )
    backend = backend_of(value)
    if not array_api_compat.array_namespace(value).isdtype(value.dtype, "real floating"):
        raise ParameterError(f"{where} must be a floating-point array, got dtype {value.dtype}")
    if not backend.is_traced(value) and not np.all(np.isfinite(backend.to_numpy(value))):
        raise ParameterError(f"{where} must be finite, got non-finite values")


@element_record
class Drift(Element):
    """Field-free drift (Bmad ``drift``).

    Parameters
    ----------
    name
        Element name.
    length
        Length [m].
    """

    length: Any = 0.0

    tracker = staticmethod(track_drift)


@element_record
class Quadrupole(Element):
    """Quadrupole magnet (Bmad ``quadrupole``, "bmad_standard" tracking).

    Parameters
    ----------
    name
        Element name.
    length
        Length [m].
    k1
        Normalised gradient [1/m^2]; positive focuses horizontally.
    num_steps
        Number of body slices.
    tilt
        Rotation about s [rad].
    x_offset, y_offset
        Magnet offsets [m].
    """

    length: Any = 0.0
    k1: Any = 0.0
    num_steps: int = 1
    tilt: Any = 0.0
    x_offset: Any = 0.0
    y_offset: Any = 0.0

    tracker = staticmethod(track_quadrupole)
    integer_parameters = ("num_steps",)


@element_record
class Marker(Element):
    """Zero-length marker: a named point of the beamline; particles pass unchanged."""
