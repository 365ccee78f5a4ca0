"""Relativistic kinematics in Bmad's phase-space coordinates.

All energies and momenta are in eV (momenta times c). ``pz = (P - P0) / P0``.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from beamtrack.tracking.parameters import is_number
from beamtrack.tracking.special import sqrt1


def total_energy(pz: Any, p0c: Any, mc2: Any) -> Any:
    """Total energy ``E = sqrt(((1+pz) p0c)^2 + mc2^2)`` [eV]."""
    xp = array_api_compat.array_namespace(pz)
    pc = (1.0 + pz) * p0c
    return xp.sqrt(pc * pc + mc2 * mc2)


def beta(pz: Any, p0c: Any, mc2: Any) -> Any:
    """Velocity over c of a particle with momentum deviation ``pz``."""
    return (1.0 + pz) * p0c / total_energy(pz, p0c, mc2)


def beta_ratio_minus_one(pz: Any, p0c: Any, mc2: Any) -> Any:
    """``beta / beta0 - 1`` without cancellation for small ``pz`` or ultra-relativistic beams.

    Uses ``beta/beta0 - 1 = mc2^2 pz (2 + pz) / (E ((1+pz) E0 + E))``, exact algebra
    with no difference of nearly equal numbers. This is the velocity term of Bmad's
    "low energy z correction": a particle slower than the reference falls behind
    (``z`` decreases) by ``ds * (beta/beta0 - 1)`` over a length ``ds``.
    """
    energy = total_energy(pz, p0c, mc2)
    # The reference energy from the reference alone (shape of p0c, not per particle);
    # the same value as at pz = 0.
    energy0 = total_energy(0.0 * (pz if is_number(p0c) else p0c), p0c, mc2)
    return mc2 * mc2 * pz * (2.0 + pz) / (energy * ((1.0 + pz) * energy0 + energy))


def low_energy_z_correction(pz: Any, p0c: Any, mc2: Any, length: Any) -> Any:
    """Change of ``z`` [m] over ``length`` [m] from the velocity difference to the reference."""
    return length * beta_ratio_minus_one(pz, p0c, mc2)


def inverse_gamma0_squared(p0c: Any, mc2: Any) -> Any:
    """``1 / gamma0^2 = mc2^2 / E0^2`` of the reference particle."""
    return mc2 * mc2 / (p0c * p0c + mc2 * mc2)


def unphysical_momentum(px: Any, py: Any, pz: Any) -> Any:
    """Mask of particles whose transverse momentum reaches the total momentum.

    True where ``px^2 + py^2 >= (1+pz)^2`` or ``1 + pz <= 0``: such particles cannot
    move forward and are lost. Also True where a momentum is NaN (or the comparison
    is otherwise undecidable), so a NaN never passes for a physical momentum.
    """
    return ~physical_momentum(px, py, pz)


def physical_momentum(px: Any, py: Any, pz: Any) -> Any:
    """Mask of particles that can move forward: ``px^2 + py^2 < (1+pz)^2`` and
    ``1 + pz > 0`` (False for NaN momenta); the complement of
    :func:`unphysical_momentum`."""
    rel_p = 1.0 + pz
    return (px * px + py * py < rel_p * rel_p) & (rel_p > 0.0)


def one_over_ps_minus_one(pxy2: Any) -> Any:
    """``1/sqrt(1 - pxy2) - 1`` for normalised transverse momentum squared ``pxy2 < 1``."""
    xp = array_api_compat.array_namespace(pxy2)
    return -sqrt1(-pxy2) / xp.sqrt(1.0 - pxy2)
