"""Linear optics from first-order transfer matrices: Twiss propagation and periodic Twiss.

Conventions (Bmad): phase-space ``(x, px, y, py, z, pz)`` with ``px = P_x/P0``;
dispersion is ``D = dx/dpz`` [m] and ``D' = dpx/dpz``; phase advance in radians.

Linear x-y coupling (skew quadrupoles, rolled quadrupoles, solenoids) is treated with
the Edwards-Teng parametrisation, as MAD-X TWISS does (D. A. Edwards and L. C. Teng,
IEEE Trans. Nucl. Sci. 20 (1973) 885; the algorithm of D. Sagan and D. Rubin,
Phys. Rev. ST Accel. Beams 2, 074001 (1999)). The transverse 4x4 matrix ``T`` of a
point is decomposed as ``T = V U V^-1`` with

    V = [[g I, C], [-C^+, g I]],   U = [[A, 0], [0, B]],   g^2 + det C = 1,

where ``C^+ = [[c22, -c12], [-c21, c11]]`` is the symplectic conjugate of the 2x2
matrix ``C``. The Twiss functions ``beta_x, alpha_x, mu_x`` are those of the normal
mode ``A`` (the x-like mode, ``g >= 1/sqrt(2)`` at the start of a periodic solution),
``beta_y, alpha_y, mu_y`` those of ``B``. The coupling matrix is MAD-X's
``R = [[r11, r12], [r21, r22]] = C^+ / g``, so that ``V = [[I, R^+], [-R, I]] / sqrt(1 +
det R)``; ``R = 0`` (``g = 1``, ``C = 0``) for an uncoupled line, where all functions
reduce exactly to those of the 2x2 diagonal blocks. Dispersion uses the full 4x4
matrices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import array_api_compat

from beamtrack.backends import backend_of
from beamtrack.tracking.errors import ParameterError

#: Names of the per-plane Twiss quantities, in table order.
TWISS_FIELDS = ("beta_x", "alpha_x", "mu_x", "dx", "dpx", "beta_y", "alpha_y", "mu_y", "dy", "dpy")

#: Names of the elements of the Edwards-Teng coupling matrix ``R`` (as MAD-X's TWISS).
COUPLING_FIELDS = ("r11", "r12", "r21", "r22")


@dataclass(frozen=True)
class TwissInit:
    """Initial Twiss parameters of a single-pass optics calculation.

    Values are numbers or arrays of one backend (with optional batch dimensions), so
    the optics are differentiable with respect to them.

    Parameters
    ----------
    beta_x, beta_y
        Beta functions [m] of the two normal modes (of x and y when uncoupled).
    alpha_x, alpha_y
        Alpha functions.
    dx, dpx, dy, dpy
        Dispersion ``dx/dpz`` [m] and its derivative.
    mu_x, mu_y
        Initial phase advances [rad].
    r11, r12, r21, r22
        Edwards-Teng coupling matrix ``R`` (``r12`` [m], ``r21`` [1/m]), as MAD-X's
        TWISS initial conditions of the same names; zero (the default) for an
        uncoupled beam. ``1 + det R`` must be positive.
    """

    beta_x: Any
    beta_y: Any
    alpha_x: Any = 0.0
    alpha_y: Any = 0.0
    dx: Any = 0.0
    dpx: Any = 0.0
    dy: Any = 0.0
    dpy: Any = 0.0
    mu_x: Any = 0.0
    mu_y: Any = 0.0
    r11: Any = 0.0
    r12: Any = 0.0
    r21: Any = 0.0
    r22: Any = 0.0

    def __post_init__(self) -> None:
        for name in ("beta_x", "beta_y"):
            value = getattr(self, name)
            if isinstance(value, (int, float)) and not (math.isfinite(value) and value > 0):
                raise ParameterError(f"TwissInit: {name} must be a positive number, got {value!r}")
        for name in ("alpha_x", "alpha_y", "dx", "dpx", "dy", "dpy", "mu_x", "mu_y",
                     *COUPLING_FIELDS):
            value = getattr(self, name)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                raise ParameterError(f"TwissInit: {name} must be finite, got {value!r}")
        r = [getattr(self, f) for f in COUPLING_FIELDS]
        if all(isinstance(v, (int, float)) for v in r) and not 1.0 + r[0] * r[3] - r[1] * r[2] > 0:
            raise ParameterError(
                "TwissInit: the coupling matrix R must have 1 + det R > 0 "
                f"(r11 r22 - r12 r21 = {r[0] * r[3] - r[1] * r[2]!r})")


def _as(xp: Any, value: Any, like: Any) -> Any:
    if array_api_compat.is_array_api_obj(value):
        return value
    return xp.asarray(float(value), dtype=like.dtype, device=array_api_compat.device(like))


# 2x2 matrices as tuples (a11, a12, a21, a22) of arrays: element-wise arithmetic, any
# batch shape, and exact zeros (hence results identical to the uncoupled formulas) when
# a line is uncoupled.
def _block(r: Any, i: int, j: int) -> tuple[Any, Any, Any, Any]:
    return r[..., i, j], r[..., i, j + 1], r[..., i + 1, j], r[..., i + 1, j + 1]


def _mul(a: tuple, b: tuple) -> tuple[Any, Any, Any, Any]:
    return (a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3],
            a[2] * b[0] + a[3] * b[2], a[2] * b[1] + a[3] * b[3])


def _conj(a: tuple) -> tuple[Any, Any, Any, Any]:
    """Symplectic conjugate ``a^+ = J^T a^T J`` (the adjugate of a 2x2 matrix)."""
    return (a[3], -a[1], -a[2], a[0])


def _det(a: tuple) -> Any:
    return a[0] * a[3] - a[1] * a[2]


def _scale(s: Any, a: tuple) -> tuple[Any, Any, Any, Any]:
    return tuple(s * v for v in a)  # type: ignore[return-value]


def _add(a: tuple, b: tuple) -> tuple[Any, Any, Any, Any]:
    return tuple(u + v for u, v in zip(a, b, strict=True))  # type: ignore[return-value]


def _sub(a: tuple, b: tuple) -> tuple[Any, Any, Any, Any]:
    return tuple(u - v for u, v in zip(a, b, strict=True))  # type: ignore[return-value]


def _check(backend: Any, ok: Any, message: str) -> None:
    """Raise ``ParameterError(message)`` unless ``ok`` holds everywhere (concrete input)."""
    if backend.is_traced(ok):
        return
    import numpy as np

    if not bool(np.all(backend.to_numpy(ok))):
        raise ParameterError(message)


def propagate_twiss(matrices: list[Any], initial: TwissInit) -> dict[str, Any]:
    """Twiss functions after each of ``matrices`` (``(*batch, 6, 6)`` arrays, in order).

    Returns a dictionary of arrays of shape ``(*batch, len(matrices) + 1)`` (the first
    column is ``initial``) for each name in :data:`TWISS_FIELDS` and
    :data:`COUPLING_FIELDS`.

    Through a matrix with transverse blocks ``[[M, m], [n, N]]`` the Edwards-Teng
    quantities ``(g, C)`` and the normal-mode maps ``E_a, E_b`` follow from
    ``T V = V' U``: ``g' E_a = g M - m C^+``, ``g' E_b = g N + n C``,
    ``C' = (M C + g m) E_b^-1`` with ``g'^2 = 1 - det(g n - N C^+)``; the mode Twiss
    functions are propagated through ``E_a`` and ``E_b`` with the 2x2 formulas, and
    the dispersion through the full 4x4 matrix.

    Raises
    ------
    ParameterError
        If, for concrete input, ``g'^2 <= 0`` somewhere: the normal modes exchange
        their roles (a "mode flip", possible only with very strong coupling), which
        this parametrisation does not follow.
    """
    if not matrices:
        raise ParameterError("propagate_twiss: no transfer matrices")
    xp = array_api_compat.array_namespace(matrices[0])
    backend = backend_of(matrices[0])
    like = matrices[0]
    fields = TWISS_FIELDS + COUPLING_FIELDS
    state = {f: _as(xp, getattr(initial, f), like) for f in fields}
    columns = {f: [state[f]] for f in fields}
    rmat = tuple(state[f] for f in COUPLING_FIELDS)
    g = 1.0 / xp.sqrt(1.0 + _det(rmat))
    c = _scale(g, _conj(rmat))
    g_squared = []  # checked once at the end (one host transfer on a device)
    for r in matrices:
        mm, m, n, nn = _block(r, 0, 0), _block(r, 0, 2), _block(r, 2, 0), _block(r, 2, 2)
        p = _sub(_scale(g, mm), _mul(m, _conj(c)))
        q = _add(_scale(g, nn), _mul(n, c))
        g_new2 = 1.0 - _det(_sub(_scale(g, n), _mul(nn, _conj(c))))
        g_squared.append(g_new2)
        g_new = xp.sqrt(g_new2)
        e_a, e_b = _scale(1.0 / g_new, p), _scale(1.0 / g_new, q)
        c = _scale(1.0 / _det(e_b), _mul(_add(_mul(mm, c), _scale(g, m)), _conj(e_b)))
        g = g_new
        for plane, e in (("x", e_a), ("y", e_b)):
            r11, r12, r21, r22 = e
            beta, alpha = state[f"beta_{plane}"], state[f"alpha_{plane}"]
            gamma = (1.0 + alpha * alpha) / beta
            state[f"beta_{plane}"] = r11 * r11 * beta - 2.0 * r11 * r12 * alpha + r12 * r12 * gamma
            state[f"alpha_{plane}"] = (
                -r11 * r21 * beta + (r11 * r22 + r12 * r21) * alpha - r12 * r22 * gamma
            )
            state[f"mu_{plane}"] = state[f"mu_{plane}"] + xp.atan2(r12, r11 * beta - r12 * alpha)
        d = [state["dx"], state["dpx"], state["dy"], state["dpy"]]
        for row, name in enumerate(("dx", "dpx", "dy", "dpy")):
            own = 2 * (row // 2)  # the diagonal block first: exact uncoupled values
            other = 2 - own
            state[name] = (
                r[..., row, own] * d[own] + r[..., row, own + 1] * d[own + 1] + r[..., row, 5]
                + (r[..., row, other] * d[other] + r[..., row, other + 1] * d[other + 1])
            )
        for f, value in zip(COUPLING_FIELDS, _scale(1.0 / g, _conj(c)), strict=True):
            state[f] = value
        for f in fields:
            columns[f].append(state[f])
    g_squared = xp.stack(xp.broadcast_arrays(*g_squared), axis=-1)
    if not backend.is_traced(g_squared):
        import numpy as np

        values_g = backend.to_numpy(g_squared)
        bad = np.nonzero(np.any(~(values_g > 0.0), axis=tuple(range(values_g.ndim - 1))))[0]
        if bad.size:
            raise ParameterError(
                f"coupled optics: the normal modes flip at element {int(bad[0])} "
                f"(Edwards-Teng g^2 = {float(np.min(values_g[..., bad[0]])):.6g} <= 0); the "
                "coupling is too strong for the Edwards-Teng parametrisation")
    out = {}
    for f, values in columns.items():
        values = xp.broadcast_arrays(*values)
        out[f] = xp.stack(values, axis=-1)
    return out


def _fmt(backend: Any, value: Any) -> str:
    if backend.is_traced(value):
        return "?"
    import numpy as np

    return f"{float(np.min(backend.to_numpy(value))):.6g}"


def _inverse(a: tuple) -> tuple[Any, Any, Any, Any]:
    return _scale(1.0 / _det(a), _conj(a))


def periodic_twiss(one_turn: Any) -> TwissInit:
    """The periodic Twiss functions of a one-turn (or one-cell) matrix.

    The transverse matrix ``T = [[M, m], [n, N]]`` is decoupled (Sagan and Rubin 1999):
    with ``H = m + n^+`` and ``t = tr(M - N)``,
    ``g^2 = 1/2 + |t| / (2 sqrt(t^2 + 4 det H))``,
    ``C = -sign(t) H / (g sqrt(t^2 + 4 det H))``; the normal-mode maps
    ``A = g^2 M - g (m C^+ + C n) + C N C^+`` and
    ``B = g^2 N + g (n C + C^+ m) + C^+ M C`` then give, each,
    ``cos(mu) = (A11 + A22)/2``, ``beta = A12 / sin(mu)``,
    ``alpha = (A11 - A22) / (2 sin(mu))`` with ``sin(mu)`` of the sign of ``A12``. The
    mode ``A`` is the one closer to x (``g >= 1/sqrt(2)``). Uncoupled, ``H = 0``,
    ``g = 1``, ``C = 0``, ``A = M``, ``B = N`` exactly. The periodic dispersion solves
    ``(I - T) D = (T16, T26, T36, T46)``.

    Raises
    ------
    ParameterError
        For concrete (non-traced) input: if ``t^2 + 4 det H < 0`` (coupled motion
        unstable: the eigen-tunes are complex; or exactly on the coupling resonance
        ``t = 0`` with ``det H <= 0``), or if a normal mode is unstable
        (``|cos mu| >= 1``).
    """
    xp = array_api_compat.array_namespace(one_turn)
    backend = backend_of(one_turn)
    mm, m, n, nn = (_block(one_turn, 0, 0), _block(one_turn, 0, 2), _block(one_turn, 2, 0),
                    _block(one_turn, 2, 2))
    h = _add(m, _conj(n))
    t = (mm[0] + mm[3]) - (nn[0] + nn[3])
    arg = t * t + 4.0 * _det(h)
    h_zero = (h[0] == 0.0) & (h[1] == 0.0) & (h[2] == 0.0) & (h[3] == 0.0)
    _check(backend, (arg > 0.0) | h_zero, (
        "periodic optics: no Edwards-Teng decomposition of the one-turn matrix "
        f"((tr M - tr N)^2 + 4 det(m + n^+) = {_fmt(backend, arg)} <= 0: the coupled "
        "motion is unstable or exactly on the coupling resonance)"))
    positive = arg > 0.0
    root = xp.sqrt(xp.where(positive, arg, xp.ones_like(arg)))
    ratio = xp.where(positive, xp.abs(t) / root, xp.ones_like(arg))
    g2 = 0.5 + 0.5 * ratio
    g = xp.sqrt(g2)
    sign = xp.where(t >= 0.0, xp.ones_like(t), -xp.ones_like(t))
    c = _scale(xp.where(positive, -sign / (g * root), xp.zeros_like(arg)), h)
    cp = _conj(c)
    a = _add(_sub(_scale(g2, mm), _scale(g, _add(_mul(m, cp), _mul(c, n)))),
             _mul(_mul(c, nn), cp))
    b = _add(_add(_scale(g2, nn), _scale(g, _add(_mul(n, c), _mul(cp, m)))),
             _mul(_mul(cp, mm), c))
    values: dict[str, Any] = {}
    for plane, (m11, m12, _m21, m22) in (("x", a), ("y", b)):
        cos_mu = 0.5 * (m11 + m22)
        if not backend.is_traced(cos_mu):
            import numpy as np

            worst = float(np.max(np.abs(backend.to_numpy(cos_mu))))
            if not worst < 1.0:
                raise ParameterError(
                    f"periodic optics: the {plane} plane is unstable "
                    f"(|cos mu| = |(M11+M22)/2| = {worst:.6g} >= 1); no periodic solution"
                )
        sin_mu = xp.sign(m12) * xp.sqrt(1.0 - cos_mu * cos_mu)
        values[f"beta_{plane}"] = m12 / sin_mu
        values[f"alpha_{plane}"] = (m11 - m22) / (2.0 * sin_mu)
    # (I - T) D = e, by blocks [[P, Q], [S, U]]: Dx = (P - Q U^-1 S)^-1 (ex - Q U^-1 ey)
    # (and symmetrically Dy); Q = S = 0 when uncoupled gives the 2x2 solutions exactly.
    one = xp.ones_like(t)
    p = (one - mm[0], -mm[1], -mm[2], one - mm[3])
    u = (one - nn[0], -nn[1], -nn[2], one - nn[3])
    q, s = _scale(-1.0, m), _scale(-1.0, n)
    e_x = (one_turn[..., 0, 5], one_turn[..., 1, 5])
    e_y = (one_turn[..., 2, 5], one_turn[..., 3, 5])
    for plane, (own, cross, left, right, e_own, e_other) in (
        ("x", (p, u, q, s, e_x, e_y)), ("y", (u, p, s, q, e_y, e_x)),
    ):
        k = _mul(left, _inverse(cross))  # Q U^-1 (x) or S P^-1 (y)
        schur = _sub(own, _mul(k, right))
        rhs0 = e_own[0] - (k[0] * e_other[0] + k[1] * e_other[1])
        rhs1 = e_own[1] - (k[2] * e_other[0] + k[3] * e_other[1])
        a11, a12, a21, a22 = schur
        det = a11 * a22 - a12 * a21
        values[f"d{plane}"] = (a22 * rhs0 - a12 * rhs1) / det
        values[f"dp{plane}"] = (-a21 * rhs0 + a11 * rhs1) / det
    for f, value in zip(COUPLING_FIELDS, _scale(1.0 / g, cp), strict=True):
        values[f] = value
    return TwissInit(**values)
