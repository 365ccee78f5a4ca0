"""Linear optics from first-order transfer matrices: Twiss propagation and periodic Twiss.

Conventions (Bmad): phase-space ``(x, px, y, py, z, pz)`` with ``px = P_x/P0``;
dispersion is ``D = dx/dpz`` [m] and ``D' = dpx/dpz``; phase advance in radians.
The planes are treated as uncoupled (the 2x2 diagonal blocks of each matrix), as in
MAD-X TWISS for uncoupled lattices; for coupled lattices (tilted quadrupoles,
solenoids) the results are those of the projected 2x2 blocks.
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


@dataclass(frozen=True)
class TwissInit:
    """Initial Twiss parameters of a single-pass optics calculation.

    Values are numbers or arrays of one backend (with optional batch dimensions), so
    the optics are differentiable with respect to them.

    Parameters
    ----------
    beta_x, beta_y
        Beta functions [m].
    alpha_x, alpha_y
        Alpha functions.
    dx, dpx, dy, dpy
        Dispersion ``dx/dpz`` [m] and its derivative.
    mu_x, mu_y
        Initial phase advances [rad].
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

    def __post_init__(self) -> None:
        for name in ("beta_x", "beta_y"):
            value = getattr(self, name)
            if isinstance(value, (int, float)) and not (math.isfinite(value) and value > 0):
                raise ParameterError(f"TwissInit: {name} must be a positive number, got {value!r}")
        for name in ("alpha_x", "alpha_y", "dx", "dpx", "dy", "dpy", "mu_x", "mu_y"):
            value = getattr(self, name)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                raise ParameterError(f"TwissInit: {name} must be finite, got {value!r}")


def _as(xp: Any, value: Any, like: Any) -> Any:
    if array_api_compat.is_array_api_obj(value):
        return value
    return xp.asarray(float(value), dtype=like.dtype, device=array_api_compat.device(like))


def propagate_twiss(matrices: list[Any], initial: TwissInit) -> dict[str, Any]:
    """Twiss functions after each of ``matrices`` (``(*batch, 6, 6)`` arrays, in order).

    Returns a dictionary of arrays of shape ``(*batch, len(matrices) + 1)`` (the first
    column is ``initial``) for each name in :data:`TWISS_FIELDS`.
    """
    if not matrices:
        raise ParameterError("propagate_twiss: no transfer matrices")
    xp = array_api_compat.array_namespace(matrices[0])
    like = matrices[0]
    state = {f: _as(xp, getattr(initial, f), like) for f in TWISS_FIELDS}
    columns = {f: [state[f]] for f in TWISS_FIELDS}
    for r in matrices:
        for plane, i in (("x", 0), ("y", 2)):
            r11, r12 = r[..., i, i], r[..., i, i + 1]
            r21, r22 = r[..., i + 1, i], r[..., i + 1, i + 1]
            beta, alpha = state[f"beta_{plane}"], state[f"alpha_{plane}"]
            gamma = (1.0 + alpha * alpha) / beta
            d, dp = state[f"d{plane}"], state[f"dp{plane}"]
            state[f"beta_{plane}"] = r11 * r11 * beta - 2.0 * r11 * r12 * alpha + r12 * r12 * gamma
            state[f"alpha_{plane}"] = (
                -r11 * r21 * beta + (r11 * r22 + r12 * r21) * alpha - r12 * r22 * gamma
            )
            state[f"mu_{plane}"] = state[f"mu_{plane}"] + xp.atan2(r12, r11 * beta - r12 * alpha)
            state[f"d{plane}"] = r11 * d + r12 * dp + r[..., i, 5]
            state[f"dp{plane}"] = r21 * d + r22 * dp + r[..., i + 1, 5]
        for f in TWISS_FIELDS:
            columns[f].append(state[f])
    out = {}
    for f, values in columns.items():
        values = xp.broadcast_arrays(*values)
        out[f] = xp.stack(values, axis=-1)
    return out


def periodic_twiss(one_turn: Any) -> TwissInit:
    """The periodic Twiss functions of a one-turn (or one-cell) matrix.

    ``cos(mu) = (M11 + M22)/2``, ``beta = M12 / sin(mu)``,
    ``alpha = (M11 - M22) / (2 sin(mu))`` with ``sin(mu)`` of the sign of ``M12``, and
    the periodic dispersion ``(I - M2) D = (M16, M26)``.

    Raises
    ------
    ParameterError
        If a plane is unstable (``|cos mu| >= 1``) for concrete (non-traced) input.
    """
    xp = array_api_compat.array_namespace(one_turn)
    backend = backend_of(one_turn)
    values: dict[str, Any] = {}
    for plane, i in (("x", 0), ("y", 2)):
        m11, m12 = one_turn[..., i, i], one_turn[..., i, i + 1]
        m21, m22 = one_turn[..., i + 1, i], one_turn[..., i + 1, i + 1]
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
        # (I - M) D = m_6  ->  D = adj(I - M) m_6 / det(I - M)
        a, b, c, d = 1.0 - m11, -m12, -m21, 1.0 - m22
        det = a * d - b * c
        e, f = one_turn[..., i, 5], one_turn[..., i + 1, 5]
        values[f"d{plane}"] = (d * e - b * f) / det
        values[f"dp{plane}"] = (-c * e + a * f) / det
    return TwissInit(**values)
