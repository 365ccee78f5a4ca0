"""Truncated power series (jets): exact first and second derivatives of tracking code.

A :class:`Jet` carries a value, its first derivatives (gradient) and optionally its
second derivatives (Hessian) with respect to the six incoming phase-space coordinates.
Tracking code written against the Array API (``xp.sqrt``, ``xp.where``, arithmetic
operators, ...) runs unchanged on jets, because a jet's ``__array_namespace__`` is a
small namespace that applies the chain rule to each elementary function. Running the
``"bmad"`` map of an element on jets seeded at the reference orbit gives its Taylor map
about that orbit: the image ``c`` of the orbit, the Jacobian ``R`` and, with
``order=2``, the second-order coefficients ``T`` (analytic derivatives, exact to
rounding, no finite differences). This is how the ``"linear"`` and ``"second_order"``
methods are derived from the ``"bmad"`` model on every backend, NumPy included; with
torch or JAX arrays inside, the jets are differentiable too.

Only what the tracking code needs is implemented: ``+ - * / **`` (numeric exponent),
comparisons (on values, giving boolean masks), ``sqrt, sin, cos, sinh, cosh, exp,
abs, where, zeros_like, ones_like, full_like``, and :func:`elementary` for special
functions with known derivatives. Any other attribute of the namespace is taken from
the underlying library and must not be called with jets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import array_api_compat

#: Number of independent variables (the six phase-space coordinates).
NVAR = 6


def _xp(a: Any) -> Any:
    return array_api_compat.array_namespace(a)


def _parts(a: Any) -> tuple[Any, Any, Any]:
    """``(value, gradient, hessian)`` of a jet, or ``(a, None, None)`` for a constant."""
    if isinstance(a, Jet):
        return a.v, a.d, a.h
    return a, None, None


def _scaled(d: Any, factor: Any) -> Any:
    """Gradient ``d`` (shape ``(..., 6)``) times a value-shaped ``factor``."""
    if isinstance(factor, (int, float)):
        return d * factor
    return d * factor[..., None]


def _scaled2(h: Any, factor: Any) -> Any:
    """Hessian ``h`` (shape ``(..., 6, 6)``) times a value-shaped ``factor``."""
    if isinstance(factor, (int, float)):
        return h * factor
    return h * factor[..., None, None]


def _outer(a: Any, b: Any) -> Any:
    """``a_i b_j + b_i a_j`` of two gradients (the symmetric product rule term)."""
    return a[..., :, None] * b[..., None, :] + b[..., :, None] * a[..., None, :]


def _sum(*terms: Any) -> Any:
    """Sum of the terms that are not ``None`` (``None`` if all are)."""
    present = [t for t in terms if t is not None]
    if not present:
        return None
    total = present[0]
    for t in present[1:]:
        total = total + t
    return total


class Jet:
    """A value ``v`` with derivatives w.r.t. the six incoming coordinates.

    ``d`` has shape ``v.shape + (6,)``; ``h`` is ``None`` (a first-order jet) or has
    shape ``v.shape + (6, 6)`` (second order, symmetric). Arithmetic with numbers and
    arrays of the same library treats those as constants. NumPy, torch and JAX arrays
    defer to the jet's reflected operators; array-api-strict arrays do not, so code
    that mixes them with jets must wrap them with :func:`constant` first.
    """

    __slots__ = ("v", "d", "h")
    __array_ufunc__ = None  # NumPy: defer ``array op jet`` to the jet's operators
    __array_priority__ = 1000

    def __init__(self, v: Any, d: Any, h: Any = None) -> None:
        self.v = v
        self.d = d
        self.h = h

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
        return Jet(-self.v, -self.d, None if self.h is None else -self.h)

    def __pos__(self) -> Jet:
        return self

    def __add__(self, other: Any) -> Jet:
        ov, od, oh = _parts(other)
        return Jet(self.v + ov, self.d if od is None else self.d + od, _sum(self.h, oh))

    __radd__ = __add__

    def __sub__(self, other: Any) -> Jet:
        ov, od, oh = _parts(other)
        h = self.h if oh is None else _sum(self.h, -oh)
        return Jet(self.v - ov, self.d if od is None else self.d - od, h)

    def __rsub__(self, other: Any) -> Jet:
        return Jet(other - self.v, -self.d, None if self.h is None else -self.h)

    def __mul__(self, other: Any) -> Jet:
        ov, od, oh = _parts(other)
        d = _scaled(self.d, ov)
        if od is not None:
            d = d + _scaled(od, self.v)
        h = None
        if self.h is not None or oh is not None:
            h = _sum(None if self.h is None else _scaled2(self.h, ov),
                     None if oh is None else _scaled2(oh, self.v),
                     None if od is None else _outer(self.d, od))
        return Jet(self.v * ov, d, h)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Jet:
        ov, od, oh = _parts(other)
        q = self.v / ov
        if od is None:
            h = None if self.h is None else _scaled2(self.h, 1.0 / ov)
            return Jet(q, _scaled(self.d, 1.0 / ov), h)
        d = _scaled(self.d - _scaled(od, q), 1.0 / ov)
        h = None
        if self.h is not None or oh is not None:
            # a = q b  =>  h_a = b h_q + q h_b + d_q d_b^T + d_b d_q^T.
            h = _sum(self.h, None if oh is None else -_scaled2(oh, q), -_outer(d, od))
            h = _scaled2(h, 1.0 / ov)
        return Jet(q, d, h)

    def __rtruediv__(self, other: Any) -> Jet:
        q = other / self.v
        d = _scaled(self.d, -q / self.v)
        h = None
        if self.h is not None:
            h = _scaled2(_scaled2(self.h, q) + _outer(d, self.d), -1.0 / self.v)
        return Jet(q, d, h)

    def __pow__(self, exponent: Any) -> Jet:
        if isinstance(exponent, Jet) or not isinstance(exponent, (int, float)):
            raise TypeError("Jet ** supports numeric exponents only")
        if exponent == 2:
            return self * self
        return _chain(self, self.v**exponent, exponent * self.v ** (exponent - 1),
                      exponent * (exponent - 1) * self.v ** (exponent - 2))

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
        return f"Jet(shape={self.shape}, order={1 if self.h is None else 2})"


def _chain(x: Jet, value: Any, first: Any, second: Any) -> Jet:
    """``f(x)`` from ``f``'s value and first and second derivatives at ``x.v``."""
    h = None
    if x.h is not None:
        h = _scaled2(x.h, first) + _scaled2(x.d[..., :, None] * x.d[..., None, :], second)
    return Jet(value, _scaled(x.d, first), h)


def elementary(x: Any, value: Any, first: Any, second: Any) -> Any:
    """A special function applied to ``x``, given its value and derivatives at ``x``.

    For an array ``x`` this is ``value`` itself; for a jet it applies the chain rule
    with ``first = f'(x)`` and ``second = f''(x)`` (arrays of the value's shape;
    ``second`` is only used by second-order jets and may be ``None`` for first order).
    Functions computed here (``atanc`` in the bend, say) call it with ``x.v``.
    """
    if not isinstance(x, Jet):
        return value
    if x.h is not None and second is None:
        raise TypeError("second-order jet needs the second derivative of the function")
    return _chain(x, value, first, second)


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
        first = 0.5 / r
        return _chain(x, r, first, -0.5 * first / x.v if x.h is not None else None)

    def sin(self, x: Any) -> Any:
        if not isinstance(x, Jet):
            return self._base.sin(x)
        s = self._base.sin(x.v)
        return _chain(x, s, self._base.cos(x.v), -s)

    def cos(self, x: Any) -> Any:
        if not isinstance(x, Jet):
            return self._base.cos(x)
        c = self._base.cos(x.v)
        return _chain(x, c, -self._base.sin(x.v), -c)

    def sinh(self, x: Any) -> Any:
        if not isinstance(x, Jet):
            return self._base.sinh(x)
        s = self._base.sinh(x.v)
        return _chain(x, s, self._base.cosh(x.v), s)

    def cosh(self, x: Any) -> Any:
        if not isinstance(x, Jet):
            return self._base.cosh(x)
        c = self._base.cosh(x.v)
        return _chain(x, c, self._base.sinh(x.v), c)

    def exp(self, x: Any) -> Any:
        if not isinstance(x, Jet):
            return self._base.exp(x)
        e = self._base.exp(x.v)
        return _chain(x, e, e, e)

    def abs(self, x: Any) -> Any:
        if not isinstance(x, Jet):
            return self._base.abs(x)
        xp = self._base
        sign = xp.where(x.v >= 0, xp.ones_like(x.v), -xp.ones_like(x.v))
        return _chain(x, self._base.abs(x.v), sign, xp.zeros_like(x.v))

    def where(self, condition: Any, a: Any, b: Any) -> Any:
        if not isinstance(a, Jet) and not isinstance(b, Jet):
            return self._base.where(condition, a, b)
        xp = self._base
        av, ad, ah = _parts(a)
        bv, bd, bh = _parts(b)
        value = xp.where(condition, av, bv)
        like = ad if ad is not None else bd
        ad = xp.zeros_like(like) if ad is None else ad
        bd = xp.zeros_like(like) if bd is None else bd
        h = None
        if ah is not None or bh is not None:
            like_h = ah if ah is not None else bh
            ah = xp.zeros_like(like_h) if ah is None else ah
            bh = xp.zeros_like(like_h) if bh is None else bh
            h = xp.where(condition[..., None, None], ah, bh)
        return Jet(value, xp.where(condition[..., None], ad, bd), h)

    def zeros_like(self, x: Any) -> Any:
        if not isinstance(x, Jet):
            return self._base.zeros_like(x)
        return Jet(self._base.zeros_like(x.v), self._base.zeros_like(x.d),
                   None if x.h is None else self._base.zeros_like(x.h))

    def ones_like(self, x: Any) -> Any:
        if not isinstance(x, Jet):
            return self._base.ones_like(x)
        return Jet(self._base.ones_like(x.v), self._base.zeros_like(x.d),
                   None if x.h is None else self._base.zeros_like(x.h))

    def full_like(self, x: Any, fill_value: Any) -> Any:
        if not isinstance(x, Jet):
            return self._base.full_like(x, fill_value)
        return Jet(self._base.full_like(x.v, fill_value), self._base.zeros_like(x.d),
                   None if x.h is None else self._base.zeros_like(x.h))


def _zeros(a: Any, extra: tuple[int, ...]) -> Any:
    xp = _xp(a)
    return xp.zeros(tuple(a.shape) + extra, dtype=a.dtype, device=array_api_compat.device(a))


def constant(a: Any, order: int = 1) -> Jet:
    """A jet with value ``a`` (an array) and zero derivatives up to ``order``."""
    return Jet(a, _zeros(a, (NVAR,)), _zeros(a, (NVAR, NVAR)) if order == 2 else None)


def seed(six: Sequence[Any], order: int = 1) -> tuple[Jet, ...]:
    """Jets of the six coordinates ``six`` (arrays of one shape): ``d six_i / d six_j =
    delta_ij`` and, for ``order=2``, zero second derivatives."""
    xp = _xp(six[0])
    eye = xp.eye(NVAR, dtype=six[0].dtype, device=array_api_compat.device(six[0]))
    return tuple(
        Jet(v, _zeros(v, (NVAR,)) + eye[i, :],
            _zeros(v, (NVAR, NVAR)) if order == 2 else None)
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


def second_order_map(six: Sequence[Any]) -> tuple[Any, Any, Any]:
    """``(R, c, T)`` from six second-order output jets of one particle each.

    ``T[..., i, j, k] = d^2 out_i / (d in_j d in_k)`` has shape ``(*batch, 6, 6, 6)``
    (symmetric in ``j, k``), so the second-order Taylor map is
    ``out_i = c_i + R_ij x_j + T_ijk x_j x_k / 2``.
    """
    jets = [j if isinstance(j, Jet) else constant(j, order=2) for j in six]
    r, c = first_order_map(jets)
    xp = _xp(jets[0].v)
    hessians = [j.h if j.h is not None else _zeros(j.v, (NVAR, NVAR)) for j in jets]
    t = xp.broadcast_arrays(*[h[..., 0, :, :] for h in hessians])
    t = xp.stack(xp.broadcast_arrays(*t), axis=-3)
    return r, c, t
