"""Special functions with removable singularities, each implemented once.

Each function is exact (to float64 rounding) on both sides of its singular point and
has correct first and second derivatives there under torch and jax autodiff: near the
singular point a Taylor polynomial is used, elsewhere the closed form, selected with the
"double where" so that neither branch ever produces inf or NaN (which would poison
gradients).
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat

#: |u| below which the Taylor polynomials of :func:`cos_sinc` are used. The first
#: omitted term is below |u|^12 / 24! < 2e-24 there; above it the closed forms have no
#: cancellation, so values and first and second derivatives are accurate to rounding
#: on both sides of the switch.
_SERIES_LIMIT = 1.0
_SERIES_TERMS = 12


def sqrt1(x: Any) -> Any:
    """``sqrt(1 + x) - 1`` without cancellation for small ``x``.

    Computed as ``x / (sqrt(1 + x) + 1)``, which is smooth at ``x = 0``. Defined for
    ``x >= -1``.
    """
    xp = array_api_compat.array_namespace(x)
    return x / (xp.sqrt(1.0 + x) + 1.0)


def cos_sinc(u: Any) -> tuple[Any, Any]:
    """``(cos(sqrt(u)), sin(sqrt(u)) / sqrt(u))`` for real ``u`` of either sign.

    Both are entire functions of ``u``: for ``u < 0`` they are ``cosh(sqrt(-u))`` and
    ``sinh(sqrt(-u)) / sqrt(-u)``. With ``u = k L^2`` they give the transfer matrix of
    a focusing (``k > 0``) or defocusing (``k < 0``) quadrupole plane:
    ``C = cos_sinc(u)[0]`` and ``S = L * cos_sinc(u)[1]``.

    Parameters
    ----------
    u
        Array of real numbers (dimensionless).

    Returns
    -------
    tuple of arrays
        ``(C, s)`` with the shape of ``u``.
    """
    xp = array_api_compat.array_namespace(u)
    small = xp.abs(u) < _SERIES_LIMIT
    focusing = u >= _SERIES_LIMIT
    # Safe inputs: each branch only ever sees values for which it is finite.
    u_small = xp.where(small, u, xp.zeros_like(u))
    u_pos = xp.where(focusing, u, xp.full_like(u, _SERIES_LIMIT))
    u_neg = xp.where(u <= -_SERIES_LIMIT, -u, xp.full_like(u, _SERIES_LIMIT))

    # Taylor polynomials in Horner form: sum (-u)^n / (2n)! and sum (-u)^n / (2n+1)!.
    c_series = xp.zeros_like(u)
    s_series = xp.zeros_like(u)
    for n in range(_SERIES_TERMS - 1, -1, -1):
        c_series = c_series * (-u_small) + 1.0 / math.factorial(2 * n)
        s_series = s_series * (-u_small) + 1.0 / math.factorial(2 * n + 1)

    w_pos = xp.sqrt(u_pos)
    w_neg = xp.sqrt(u_neg)
    c_closed = xp.where(focusing, xp.cos(w_pos), xp.cosh(w_neg))
    s_closed = xp.where(focusing, xp.sin(w_pos) / w_pos, xp.sinh(w_neg) / w_neg)
    return xp.where(small, c_series, c_closed), xp.where(small, s_series, s_closed)


def sinc_derivative(u: Any) -> Any:
    """``d/du [sin(sqrt(u)) / sqrt(u)]`` for real ``u`` of either sign.

    Equal to ``(cos(sqrt(u)) - sin(sqrt(u))/sqrt(u)) / (2u)``, an entire function of
    ``u`` whose value at ``u = 0`` is ``-1/6``. Used for the chromatic derivatives of
    the quadrupole matrix.
    """
    xp = array_api_compat.array_namespace(u)
    small = xp.abs(u) < _SERIES_LIMIT
    u_small = xp.where(small, u, xp.zeros_like(u))
    u_safe = xp.where(small, xp.full_like(u, _SERIES_LIMIT), u)
    series = xp.zeros_like(u)
    for n in range(_SERIES_TERMS, 0, -1):
        series = series * u_small + (-1.0) ** n * n / math.factorial(2 * n + 1)
    c, s = cos_sinc(u_safe)
    return xp.where(small, series, (c - s) / (2.0 * u_safe))
