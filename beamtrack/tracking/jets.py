"""First-order jets: exact first derivatives of tracking code by forward-mode arithmetic.

A :class:`Jet` carries a value and its derivatives with respect to the six incoming
phase-space coordinates. Tracking code written against the Array API (``xp.sqrt``,
``xp.where``, arithmetic operators, ...) runs unchanged on jets, because a jet's
``__array_namespace__`` is a small namespace that applies the chain rule to each
elementary function. Running the ``"bmad"`` map of an element on jets seeded at the
reference orbit gives its exact first-order Taylor map ``(R, c)``: ``R`` is the
Jacobian (analytic derivatives, exact to rounding, no finite differences) and ``c``
the image of the orbit. This is how the ``"linear"`` maps of elements made of many
kicks and drifts (cavities, solenoids with misalignments) are built on every backend,
NumPy included; with torch or JAX arrays inside, the jets are differentiable too.

Only what the tracking code needs is implemented: ``+ - * / **`` (numeric exponent),
comparisons (on values, giving boolean masks), ``sqrt, sin, cos, sinh, cosh, exp,
abs, where, zeros_like, ones_like, full_like``. Any other attribute of the namespace is
taken from the underlying library and must not be called with jets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import array_api_compat

#: Number of independent variables (the six phase-space coordinates).
NVAR = 6


def _xp(a: Any) -> Any:
    return array_api_compat.array_namespace(a)


def _parts(a: Any) -> tuple[Any, Any]:
    """``(value, derivatives)`` of a jet, or ``(a, None)`` for a constant."""
    if isinstance(a, Jet):
        return a.v, a.d
    return a, None


def _scaled(d: Any, factor: Any) -> Any:
    """Derivatives ``d`` (shape ``(..., 6)``) times a value-shaped ``factor``."""
    if isinstance(factor, (int, float)):
        return d * factor
    return d * factor[..., None]


class Jet:
    """A value ``v`` with derivatives ``d`` (shape ``v.shape + (6,)``) w.r.t. the
    six incoming coordinates.

    Arithmetic with numbers and arrays of the same library treats those as
    constants. NumPy, torch and JAX arrays defer to the jet's reflected operators;
    array-api-strict arrays do not, so code that mixes them with jets must wrap them
    with :func:`constant` first (the ``"linear"`` map builders do).
    """

    __slots__ = ("v", "d")
    __array_ufunc__ = None  # NumPy: defer ``array op jet`` to the jet's operators
    __array_priority__ = 1000

    def __init__(self, v: Any, d: Any) -> None:
        self.v = v
        self.d = d

    # -- array-like surface ----------------------------------------------------
    def __array_namespace__(self, api_version: str | None = None) -> JetNamespace:
        return JetNamespace(_xp(self.v))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.v.shape)

    @property
    def dtype(self) -> Any:
        return self.v.dtype

    @property
    def ndim(self) -> int:
        return self.v.ndim

    # -- arithmetic ------------------------------------------------------------
    def __neg__(self) -> Jet:
        return Jet(-self.v, -self.d)

    def __pos__(self) -> Jet:
        return self

    def __add__(self, other: Any) -> Jet:
        ov, od = _parts(other)
        return Jet(self.v + ov, self.d if od is None else self.d + od)

    __radd__ = __add__

    def __sub__(self, other: Any) -> Jet:
        ov, od = _parts(other)
        return Jet(self.v - ov, self.d if od is None else self.d - od)

    def __rsub__(self, other: Any) -> Jet:
        return Jet(other - self.v, -self.d)

    def __mul__(self, other: Any) -> Jet:
        ov, od = _parts(other)
        d = _scaled(self.d, ov)
        if od is not None:
            d = d + _scaled(od, self.v)
        return Jet(self.v * ov, d)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Jet:
        ov, od = _parts(other)
        q = self.v / ov
        if od is None:
            return Jet(q, _scaled(self.d, 1.0 / ov))
        return Jet(q, _scaled(self.d - _scaled(od, q), 1.0 / ov))

    def __rtruediv__(self, other: Any) -> Jet:
        q = other / self.v
        return Jet(q, _scaled(self.d, -q / self.v))

    def __pow__(self, exponent: Any) -> Jet:
        if isinstance(exponent, Jet) or not isinstance(exponent, (int, float)):
            raise TypeError("Jet ** supports numeric exponents only")
        if exponent == 2:
            return self * self
        return Jet(self.v**exponent, _scaled(self.d, exponent * self.v ** (exponent - 1)))

    # -- comparisons act on values and give boolean masks -------------------------
    def __lt__(self, other: Any) -> Any:
        return self.v < _parts(other)[0]

    def __le__(self, other: Any) -> Any:
        return self.v <= _parts(other)[0]

    def __gt__(self, other: Any) -> Any:
        return self.v > _parts(other)[0]

    def __ge__(self, other: Any) -> Any:
        return self.v >= _parts(other)[0]

    def __repr__(self) -> str:
        return f"Jet(shape={self.shape})"


def _chain(x: Any, value: Any, derivative: Any) -> Jet:
    return Jet(value, _scaled(x.d, derivative))


class JetNamespace:
    """Array API namespace of :class:`Jet` objects (the chain rule for each function)."""

    def __init__(self, base: Any) -> None:
        self._base = base
        self.__name__ = f"beamtrack.jets[{base.__name__}]"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)

    def sqrt(self, x: Any) -> Any:
        if not isinstance(x, Jet):
            return self._base.sqrt(x)
        r = self._base.sqrt(x.v)
        return _chain(x, r, 0.5 / r)

    def sin(self, x: Any) -> Any:
        if not isinstance(x, Jet):
            return self._base.sin(x)
        return _chain(x, self._base.sin(x.v), self._base.cos(x.v))

    def cos(self, x: Any) -> Any:
        if not isinstance(x, Jet):
            return self._base.cos(x)
        return _chain(x, self._base.cos(x.v), -self._base.sin(x.v))

    def sinh(self, x: Any) -> Any:
        if not isinstance(x, Jet):
            return self._base.sinh(x)
        return _chain(x, self._base.sinh(x.v), self._base.cosh(x.v))

    def cosh(self, x: Any) -> Any:
        if not isinstance(x, Jet):
            return self._base.cosh(x)
        return _chain(x, self._base.cosh(x.v), self._base.sinh(x.v))

    def exp(self, x: Any) -> Any:
        if not isinstance(x, Jet):
            return self._base.exp(x)
        e = self._base.exp(x.v)
        return _chain(x, e, e)

    def abs(self, x: Any) -> Any:
        if not isinstance(x, Jet):
            return self._base.abs(x)
        xp = self._base
        sign = xp.where(x.v >= 0, xp.ones_like(x.v), -xp.ones_like(x.v))
        return _chain(x, self._base.abs(x.v), sign)

    def where(self, condition: Any, a: Any, b: Any) -> Any:
        if not isinstance(a, Jet) and not isinstance(b, Jet):
            return self._base.where(condition, a, b)
        xp = self._base
        av, ad = _parts(a)
        bv, bd = _parts(b)
        value = xp.where(condition, av, bv)
        like = ad if ad is not None else bd
        if ad is None:
            ad = xp.zeros_like(like)
        if bd is None:
            bd = xp.zeros_like(like)
        return Jet(value, xp.where(condition[..., None], ad, bd))

    def zeros_like(self, x: Any) -> Any:
        if not isinstance(x, Jet):
            return self._base.zeros_like(x)
        return Jet(self._base.zeros_like(x.v), self._base.zeros_like(x.d))

    def ones_like(self, x: Any) -> Any:
        if not isinstance(x, Jet):
            return self._base.ones_like(x)
        return Jet(self._base.ones_like(x.v), self._base.zeros_like(x.d))

    def full_like(self, x: Any, fill_value: Any) -> Any:
        if not isinstance(x, Jet):
            return self._base.full_like(x, fill_value)
        return Jet(self._base.full_like(x.v, fill_value), self._base.zeros_like(x.d))


def constant(a: Any) -> Jet:
    """A jet with value ``a`` (an array) and zero derivatives."""
    xp = _xp(a)
    zeros = xp.zeros(tuple(a.shape) + (NVAR,), dtype=a.dtype, device=array_api_compat.device(a))
    return Jet(a, zeros)


def seed(six: Sequence[Any]) -> tuple[Jet, ...]:
    """Jets of the six coordinates ``six`` (arrays of one shape): ``d six_i / d six_j =
    delta_ij``."""
    xp = _xp(six[0])
    eye = xp.eye(NVAR, dtype=six[0].dtype, device=array_api_compat.device(six[0]))
    return tuple(
        Jet(v, xp.zeros(tuple(v.shape) + (NVAR,), dtype=v.dtype,
                        device=array_api_compat.device(v)) + eye[i, :])
        for i, v in enumerate(six)
    )


def first_order_map(six: Sequence[Any]) -> tuple[Any, Any]:
    """``(R, c)`` from six output jets of one particle each (value shape ``(*batch, 1)``).

    ``R[..., i, j] = d out_i / d in_j`` has shape ``(*batch, 6, 6)`` and ``c`` (the
    output values) shape ``(*batch, 6)``.
    """
    jets = [j if isinstance(j, Jet) else constant(j) for j in six]
    xp = _xp(jets[0].v)
    values = xp.broadcast_arrays(*[j.v[..., 0] for j in jets])
    rows = xp.broadcast_arrays(*[j.d[..., 0, :] for j in jets])
    return xp.stack(rows, axis=-2), xp.stack(values, axis=-1)
