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

from beamtrack.tracking.jets import Jet

#: |u| below which the Taylor polynomials of :func:`cos_sinc` are used. The first
#: omitted term is below |u|^12 / 24! < 2e-24 there; above it the closed forms have no
#: cancellation, so values and first and second derivatives are accurate to rounding
#: on both sides of the switch.
_SERIES_LIMIT = 1.0
#: Largest ``-u`` of the hyperbolic side of :func:`cos_sinc` computed as such: beyond
#: ``sqrt(-u) = 200`` (amplitude growth e^200 ~ 7e86 in one slice; cosh overflows at
#: 710, and its square, which path lengths need, at 355) ``u`` is capped there, so
#: values and derivatives stay finite. Elements lose the particles of such slices
#: (:func:`hyperbolic_in_range`): their true coordinates are out of any float range.
HYPERBOLIC_LIMIT = 200.0**2
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

    For ``|u| < 1`` the Taylor polynomials ``sum_n (-u)^n / (2n)!`` and
    ``sum_n (-u)^n / (2n+1)!`` (12 terms) are used, elsewhere the closed forms, selected
    with the "double where". On plain arrays both polynomials are evaluated at once
    (stacked, few operations, which is what eager torch pays for); on jets
    (:mod:`~beamtrack.tracking.jets`), which cannot be stacked, one at a time. Both
    use Horner's rule with the same operations, so the values agree bit for bit.

    Parameters
    ----------
    u
        Array of real numbers (dimensionless).

    Returns
    -------
    tuple of arrays
        ``(C, s)`` with the shape of ``u``.
    """
    if isinstance(u, Jet):
        return _cos_sinc_horner(u)
    xp = array_api_compat.array_namespace(u)
    u = xp.where(u < -HYPERBOLIC_LIMIT, -HYPERBOLIC_LIMIT, u)
    a = xp.abs(u)
    small = a < _SERIES_LIMIT
    series = _power_series(xp, xp.where(small, -u, 0.0), _COS_SINC_COEFFICIENTS)
    # Closed forms on safe inputs: cos and sin take any w (1 on the series side);
    # cosh and sinh only the defocusing side's w (1 elsewhere), so they never overflow
    # where they are not selected (which would make gradients NaN).
    w = xp.sqrt(xp.where(small, 1.0, a))
    w_neg = xp.where(u <= -_SERIES_LIMIT, w, 1.0)
    focusing = u > 0.0
    c_closed = xp.where(focusing, xp.cos(w), xp.cosh(w_neg))
    s_closed = xp.where(focusing, xp.sin(w) / w, xp.sinh(w_neg) / w_neg)
    return (xp.where(small, series[0, ...], c_closed),
            xp.where(small, series[1, ...], s_closed))


#: Coefficients of ``t^n`` (rows n = 0..11, ``t = -u``) of the two series of
#: :func:`cos_sinc`: ``1/(2n)!`` and ``1/(2n+1)!``.
_COS_SINC_COEFFICIENTS = [[1.0 / math.factorial(2 * n), 1.0 / math.factorial(2 * n + 1)]
                          for n in range(_SERIES_TERMS)]


def _power_series(xp: Any, t: Any, coefficients: list[list[float]]) -> Any:
    """``sum_n coefficients[n][j] t^n`` for every column ``j``, stacked on a new first
    axis: shape ``(m,) + t.shape``.

    Horner's rule on the columns stacked (one product and one sum per term for all
    columns together, half the operations of one series at a time; the new axis
    leads, so element-wise loops stay contiguous for large arrays): the same
    floating-point operations per column as :func:`_cos_sinc_horner` on jets, so
    values agree bit for bit between the ``"bmad"`` model and its Taylor maps.
    """
    columns = len(coefficients[0])
    table = xp.reshape(
        xp.asarray(coefficients, dtype=t.dtype, device=array_api_compat.device(t)),
        (len(coefficients), columns) + (1,) * t.ndim)
    tt = xp.stack([t] * columns, axis=0)
    acc = table[-1, ...]
    for n in range(len(coefficients) - 2, -1, -1):
        acc = acc * tt + table[n, ...]
    return acc


def _cos_sinc_horner(u: Any) -> tuple[Any, Any]:
    """:func:`cos_sinc` by Horner's rule, for jets (element-wise operations only)."""
    xp = array_api_compat.array_namespace(u)
    u = xp.where(u < -HYPERBOLIC_LIMIT, xp.full_like(u, -HYPERBOLIC_LIMIT), u)
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


def hyperbolic_in_range(u: Any) -> Any:
    """Mask of ``|u| <= HYPERBOLIC_LIMIT``: where :func:`cos_sinc` of ``u`` and of
    ``-u`` (both planes of a quadrupole) are exact, not capped."""
    xp = array_api_compat.array_namespace(u)
    return xp.abs(u) <= HYPERBOLIC_LIMIT


def cos_sinc_pair(u: Any) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """:func:`cos_sinc` of ``u`` and of ``-u`` (the two planes of a quadrupole), in one
    evaluation on plain arrays (stacked), two on jets."""
    if isinstance(u, Jet):
        return cos_sinc(u), cos_sinc(-u)
    xp = array_api_compat.array_namespace(u)
    c, s = cos_sinc(xp.stack([u, -u]))
    return (c[0, ...], s[0, ...]), (c[1, ...], s[1, ...])


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


def cos_sinc_ratios(u: Any) -> tuple[Any, Any, Any, Any]:
    """``(C, S, D, F)``: :func:`cos_sinc` and the two next ratios, for real ``u``.

    ``C = cos(sqrt(u))``, ``S = sin(sqrt(u))/sqrt(u)``, ``D = (1 - C)/u`` (``1/2`` at
    ``u = 0``) and ``F = (1 - S)/u`` (``1/6`` at ``u = 0``); all entire functions of
    ``u`` (hyperbolic for ``u < 0``). ``D`` and ``F`` use their Taylor series
    ``sum_n (-u)^n/(2n+2)!`` and ``sum_n (-u)^n/(2n+3)!`` for ``|u| < 1`` (first omitted
    terms below ``|u|^12/26! < 3e-27``) and the closed forms elsewhere, where
    ``1 - C`` and ``1 - S`` have no cancellation. With ``u = theta^2``, ``D`` is Bmad's
    ``cosc(theta) = (1 - cos theta)/theta^2``; with ``u = K L^2`` they give the
    dispersion and path-length integrals of a combined-function bend.
    """
    xp = array_api_compat.array_namespace(u)
    c, s = cos_sinc(u)
    small = xp.abs(u) < _SERIES_LIMIT
    u_small = xp.where(small, u, xp.zeros_like(u))
    u_safe = xp.where(small, xp.full_like(u, _SERIES_LIMIT), u)
    d_series = xp.zeros_like(u)
    f_series = xp.zeros_like(u)
    for n in range(_SERIES_TERMS - 1, -1, -1):
        d_series = d_series * (-u_small) + 1.0 / math.factorial(2 * n + 2)
        f_series = f_series * (-u_small) + 1.0 / math.factorial(2 * n + 3)
    d = xp.where(small, d_series, (1.0 - c) / u_safe)
    f = xp.where(small, f_series, (1.0 - s) / u_safe)
    return c, s, d, f


def one_minus_cos_ratio(u: Any) -> Any:
    """``(1 - cos(sqrt(u))) / u`` for real ``u``; ``1/2`` at ``u = 0`` (see
    :func:`cos_sinc_ratios`)."""
    return cos_sinc_ratios(u)[2]


def one_minus_sinc_ratio(u: Any) -> Any:
    """``(1 - sin(sqrt(u))/sqrt(u)) / u`` for real ``u``; ``1/6`` at ``u = 0`` (see
    :func:`cos_sinc_ratios`)."""
    return cos_sinc_ratios(u)[3]

#: |t| below which the Taylor polynomials of :func:`atanc` and :func:`atanc_derivative`
#: are used (first omitted terms below 0.1^18 / 19 < 1e-19 relative).
_ATAN_SERIES_LIMIT = 0.1
_ATAN_SERIES_TERMS = 9


def _atan_branches(t: Any) -> tuple[Any, Any, Any, Any]:
    """``(xp, small, t_small, t_safe)``: the mask of the series branch and the inputs
    of the two branches, each safe for its own formula (the "double where")."""
    xp = array_api_compat.array_namespace(t)
    small = xp.abs(t) < _ATAN_SERIES_LIMIT
    t_small = xp.where(small, t, xp.zeros_like(t))
    t_safe = xp.where(small, xp.full_like(t, _ATAN_SERIES_LIMIT), t)
    return xp, small, t_small, t_safe


def _even_series(t: Any, coefficients: list[float]) -> Any:
    """``sum_k coefficients[k] t^(2k)`` by Horner's rule in ``t^2``."""
    t2 = t * t
    series = 0.0 * t
    for c in reversed(coefficients):
        series = series * t2 + c
    return series


def atanc(t: Any) -> Any:
    """``atan(t) / t`` for real ``t``; ``1`` at ``t = 0``.

    Taylor series ``sum_n (-t^2)^n / (2n+1)`` for ``|t| < 0.1``, ``atan(t) / t``
    elsewhere (no cancellation there). Derivatives: see :func:`atanc_derivative`.
    """
    xp, small, t_small, t_safe = _atan_branches(t)
    series = _even_series(t_small, [(-1.0) ** n / (2 * n + 1)
                                    for n in range(_ATAN_SERIES_TERMS)])
    return xp.where(small, series, xp.atan(t_safe) / t_safe)


def atanc_derivative(t: Any) -> Any:
    """``d/dt [atan(t) / t] = (1/(1+t^2) - atan(t)/t) / t``; ``0`` at ``t = 0``.

    Taylor series ``sum_{n>=1} (-1)^n 2n t^(2n-1) / (2n+1)`` for ``|t| < 0.1``, the
    closed form elsewhere (relative rounding error below ``1e-13`` there; only the
    series side matters for first-order maps about the reference orbit).
    """
    xp, small, t_small, t_safe = _atan_branches(t)
    series = _even_series(t_small, [(-1.0) ** n * 2.0 * n / (2 * n + 1)
                                    for n in range(1, _ATAN_SERIES_TERMS + 1)])
    closed = (1.0 / (1.0 + t_safe * t_safe) - xp.atan(t_safe) / t_safe) / t_safe
    return xp.where(small, series * t_small, closed)


def atanc_second_derivative(t: Any) -> Any:
    """``d^2/dt^2 [atan(t) / t] = -2/(1+t^2)^2 - 2 f'(t)/t``; ``-2/3`` at ``t = 0``.

    ``f'`` is :func:`atanc_derivative`. Taylor series
    ``sum_{n>=1} (-1)^n 2n (2n-1) t^(2n-2) / (2n+1)`` for ``|t| < 0.1`` (first omitted
    term below ``2e-17`` relative), the closed form elsewhere (relative rounding error
    below ``1e-12`` there). Second-order jets of :func:`atanc` use it.
    """
    xp = array_api_compat.array_namespace(t)
    small = xp.abs(t) < _ATAN_SERIES_LIMIT
    t_big = xp.where(small, xp.ones_like(t), t)
    t2 = xp.where(small, t * t, xp.zeros_like(t))
    series = xp.zeros_like(t)
    for n in range(_ATAN_SERIES_TERMS, 0, -1):
        series = series * t2 + (-1.0) ** n * 2.0 * n * (2 * n - 1) / (2 * n + 1)
    q = 1.0 / (1.0 + t_big * t_big)
    return xp.where(small, series, -2.0 * q * q - 2.0 * atanc_derivative(t_big) / t_big)
