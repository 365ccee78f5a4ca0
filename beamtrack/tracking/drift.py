"""Field-free drift: Bmad's exact drift, as a step other elements reuse, and its
first-order map in closed form."""

from __future__ import annotations

from typing import Any

import array_api_compat

from beamtrack.tracking.kinematics import (
    beta_ratio_minus_one,
    inverse_gamma0_squared,
    one_over_ps_minus_one,
)
from beamtrack.tracking.linear import matrix6
from beamtrack.tracking.parameters import is_number
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.stepping import Body, Six, Step, physical, prepare, safe, track_element


def exact_drift(six: Six, length: Any, p0c: Any, mc2: Any) -> Six:
    """Exact (non-paraxial) drift of ``length`` [m] on coordinates of alive particles.

    ``x += L px/ps``, ``y += L py/ps``,
    ``z += L (beta/beta0 - 1) - L (1/ps_n - 1)`` with ``ps = sqrt((1+pz)^2 - px^2 - py^2)``
    and ``ps_n = ps / (1+pz)``, both terms free of cancellation. The caller must pass
    only physical momenta (see :func:`~beamtrack.tracking.stepping.safe`).
    Parameters broadcast as ``(*batch, n)``; coordinates may be jets.
    """
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


def drift_step(length: Any, p0c: Any, mc2: Any) -> Step:
    """The exact drift as a :data:`~beamtrack.tracking.stepping.Step` of ``length`` [m]
    at reference momentum ``p0c`` and rest energy ``mc2`` [eV] (arrays or jets of shape
    ``(*batch, 1)``): a particle with ``px^2 + py^2 >= (1+pz)^2`` is lost before it and
    keeps its coordinates (the check matters after steps that change ``pz``)."""

    def step(six: Six) -> tuple[Six, Any]:
        xp = array_api_compat.array_namespace(six[0])
        ok = physical(six)
        return exact_drift(safe(xp, ok, six), length, p0c, mc2), ok

    return step


def drift_matrix(length: Any, p0c: Any, mc2: Any) -> Any:
    """First-order map of a drift about the reference orbit, shape ``(*batch, 6, 6)``.

    ``R12 = R34 = L`` and ``R56 = L / gamma0^2`` (Bmad sign: ``z = -beta c dt``, so a
    faster particle gets ahead, ``z`` grows with ``pz``). The closed form of the
    Jacobian of :func:`drift_step` at the reference orbit, kept for speed.
    """
    r56 = length * inverse_gamma0_squared(p0c, mc2)
    if is_number(length):
        # A Python length: one constant matrix plus R56 (the drift of a line built
        # from numbers costs a few array operations, none of them differentiated).
        xp = array_api_compat.array_namespace(r56)
        dtype, device = r56.dtype, array_api_compat.device(r56)
        base = [[float(i == j) for j in range(6)] for i in range(6)]
        base[0][1] = base[2][3] = float(length)
        unit56 = [[0.0] * 6 for _ in range(6)]
        unit56[4][5] = 1.0
        return (xp.asarray(base, dtype=dtype, device=device)
                + r56[..., None, None] * xp.asarray(unit56, dtype=dtype, device=device))
    return matrix6({(0, 1): length, (2, 3): length, (4, 5): r56}, r56)


def _drift_body(p: dict[str, Any], p0c: Any, mc2: Any) -> Body:
    # The body's entrance check has lost the unphysical particles already, so the lone
    # step needs no check of its own (drift_step's is for drifts after other steps).
    return Body([lambda six: (exact_drift(six, p["length"], p0c, mc2), None)])


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
        about the reference orbit (closed form, :func:`drift_matrix`).
        ``"second_order"``: second-order Taylor map of the ``"bmad"`` drift.

    Returns
    -------
    Particles
        Outgoing particles, ``s`` advanced by ``length``.
    """
    p = prepare(particles, "drift", method, numbers=("length",), length=length)
    return track_element(particles, _drift_body, p, length=p["length"], method=method,
                         linear=lambda: (drift_matrix(p["length"], particles.p0c,
                                                      particles.mc2), None))
