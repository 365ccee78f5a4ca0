"""Field-free drift: Bmad's exact drift and its first-order map."""

from __future__ import annotations

from typing import Any

from beamtrack.tracking.kinematics import (
    beta_ratio_minus_one,
    inverse_gamma0_squared,
    one_over_ps_minus_one,
    unphysical_momentum,
)
from beamtrack.tracking.linear import apply_linear_map, matrix6
from beamtrack.tracking.parameters import as_parameter, per_particle
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.stepping import Six, assemble, check_method, freeze, safe


def exact_drift(six: Six, length: Any, p0c: Any, mc2: Any) -> Six:
    """Exact (non-paraxial) drift of ``length`` [m] on coordinates of alive particles.

    ``x += L px/ps``, ``y += L py/ps``,
    ``z += L (beta/beta0 - 1) - L (1/ps_n - 1)`` with ``ps = sqrt((1+pz)^2 - px^2 - py^2)``
    and ``ps_n = ps / (1+pz)``, both terms free of cancellation. The caller must pass
    only physical momenta (see :func:`~beamtrack.tracking.stepping.safe`).
    Parameters broadcast as ``(*batch, n)``.
    """
    import array_api_compat

    xp = array_api_compat.array_namespace(six[0])
    x, px, y, py, z, pz = six
    rel_p = 1.0 + pz
    pxn, pyn = px / rel_p, py / rel_p
    pxy2 = pxn * pxn + pyn * pyn
    inv_ps = 1.0 / xp.sqrt(1.0 - pxy2)
    x = x + length * pxn * inv_ps
    y = y + length * pyn * inv_ps
    z = z + length * (beta_ratio_minus_one(pz, p0c, mc2) - one_over_ps_minus_one(pxy2))
    return (x, px, y, py, z, pz)


def drift_matrix(length: Any, p0c: Any, mc2: Any) -> Any:
    """First-order map of a drift about the reference orbit, shape ``(*batch, 6, 6)``.

    ``R12 = R34 = L`` and ``R56 = L / gamma0^2`` (Bmad sign: ``z = -beta c dt``, so a
    faster particle gets ahead, ``z`` grows with ``pz``).
    """
    return matrix6(
        {(0, 1): length, (2, 3): length, (4, 5): length * inverse_gamma0_squared(p0c, mc2)},
        length,
    )


def track_drift(particles: Particles, *, length: Any, method: str = "bmad") -> Particles:
    """Track through a field-free drift.

    Parameters
    ----------
    particles
        Incoming particles (any backend).
    length
        Drift length [m]; a number or an array of shape ``(*batch)``.
    method
        ``"bmad"``: Bmad's exact drift (particles with ``px^2 + py^2 >= (1+pz)^2``
        are lost and keep their incoming coordinates). ``"linear"``: first-order map
        about the reference orbit.

    Returns
    -------
    Particles
        Outgoing particles, ``s`` advanced by ``length``.
    """
    check_method(method, "drift")
    c = particles.coords
    length = as_parameter(length, c, "length")
    if method == "linear":
        r = drift_matrix(length, particles.p0c, particles.mc2)
        xp = particles.xp
        zero = xp.zeros(r.shape[:-2] + (6,), dtype=c.dtype, device=particles.device)
        return apply_linear_map(particles, r, zero, length)
    xp = particles.xp
    old = particles.unpack()
    alive = particles.alive & ~unphysical_momentum(old[1], old[3], old[5])
    new = exact_drift(
        safe(xp, alive, old),
        per_particle(length),
        per_particle(particles.p0c),
        per_particle(particles.mc2),
    )
    return assemble(particles, freeze(xp, alive, new, old), alive, length)
