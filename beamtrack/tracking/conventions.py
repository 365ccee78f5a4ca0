"""Conversions between Bmad coordinates and those of other codes.

Transverse coordinates are the same in all of them (``px = P_x / P0``); they differ
in the longitudinal pair:

- Bmad ``z, pz``: ``z = -beta c (t - t0)``, ``pz = (P - P0)/P0``.
- Xsuite ``zeta, delta``: ``zeta = z beta0 / beta``, ``delta = pz``.
- MAD-X ``t, pt``: ``t = z / beta`` (``= -c (t - t0)``), ``pt = (E - E0)/(P0 c)``.
- Cheetah ``tau, delta``: ``tau = -z / beta``, ``delta = (E - E0)/(P0 c)``, plus the
  reference energy.

All energy differences are computed without cancellation.
"""

from __future__ import annotations

from typing import Any

from beamtrack.tracking.kinematics import beta, total_energy
from beamtrack.tracking.parameters import per_particle
from beamtrack.tracking.particles import Particles
from beamtrack.tracking.special import sqrt1


def _reference(p: Particles) -> tuple[Any, Any]:
    return per_particle(p.p0c), per_particle(p.mc2)


def _energy_deviation(pz: Any, p0c: Any, mc2: Any) -> Any:
    """``(E - E0) / p0c`` from ``pz`` without cancellation."""
    e = total_energy(pz, p0c, mc2)
    e0 = total_energy(0.0 * pz, p0c, mc2)
    return p0c * pz * (2.0 + pz) / (e + e0)


def _pz_from_energy_deviation(pt: Any, p0c: Any, mc2: Any) -> Any:
    """Inverse of :func:`_energy_deviation`: ``pz`` from ``pt = (E - E0)/p0c``.

    ``(1+pz)^2 = 1 + pt (2 E0/p0c + pt)``, so ``pz = sqrt(1 + u) - 1`` with
    ``u = pt (2 E0/p0c + pt)``: no difference of nearly equal numbers (``E - mc2``
    cancels for slow particles).
    """
    xp = _xp(pt)
    e0 = xp.sqrt(p0c * p0c + mc2 * mc2)
    return sqrt1(pt * (2.0 * e0 / p0c + pt))


def _xp(a: Any) -> Any:
    import array_api_compat

    return array_api_compat.array_namespace(a)


def to_xsuite(p: Particles) -> dict[str, Any]:
    """Xsuite coordinates ``x, px, y, py, zeta, delta`` (arrays of the same backend)."""
    p0c, mc2 = _reference(p)
    zeta = p.z * beta(0.0 * p.pz, p0c, mc2) / beta(p.pz, p0c, mc2)
    return {"x": p.x, "px": p.px, "y": p.y, "py": p.py, "zeta": zeta, "delta": p.pz}


def from_xsuite(
    x: Any, px: Any, y: Any, py: Any, zeta: Any, delta: Any, *, p0c: Any, mc2: Any, s: Any = 0.0
) -> Particles:
    """Particles from Xsuite coordinates; ``p0c`` and ``mc2`` in eV."""
    ref = Particles(x, px, y, py, zeta, delta, p0c=p0c, mc2=mc2, s=s)
    p0c_n, mc2_n = _reference(ref)
    z = zeta * beta(delta, p0c_n, mc2_n) / beta(0.0 * delta, p0c_n, mc2_n)
    return ref.replace(z=z)


def to_madx(p: Particles) -> dict[str, Any]:
    """MAD-X canonical coordinates ``x, px, y, py, t, pt``."""
    p0c, mc2 = _reference(p)
    t = p.z / beta(p.pz, p0c, mc2)
    pt = _energy_deviation(p.pz, p0c, mc2)
    return {"x": p.x, "px": p.px, "y": p.y, "py": p.py, "t": t, "pt": pt}


def from_madx(
    x: Any, px: Any, y: Any, py: Any, t: Any, pt: Any, *, p0c: Any, mc2: Any, s: Any = 0.0
) -> Particles:
    """Particles from MAD-X coordinates ``(x, px, y, py, t, pt)``."""
    ref = Particles(x, px, y, py, t, pt, p0c=p0c, mc2=mc2, s=s)
    p0c_n, mc2_n = _reference(ref)
    pz = _pz_from_energy_deviation(pt, p0c_n, mc2_n)
    return ref.replace(z=t * beta(pz, p0c_n, mc2_n), pz=pz)


def to_cheetah(p: Particles) -> dict[str, Any]:
    """Cheetah coordinates ``x, px, y, py, tau, delta`` and reference ``energy`` [eV]."""
    p0c, mc2 = _reference(p)
    tau = -p.z / beta(p.pz, p0c, mc2)
    delta = _energy_deviation(p.pz, p0c, mc2)
    energy = total_energy(0.0 * p.p0c, p.p0c, p.mc2)
    return {"x": p.x, "px": p.px, "y": p.y, "py": p.py, "tau": tau, "delta": delta,
            "energy": energy}


def from_cheetah(
    x: Any, px: Any, y: Any, py: Any, tau: Any, delta: Any, *, energy: Any, mc2: Any,
    s: Any = 0.0,
) -> Particles:
    """Particles from Cheetah coordinates and reference total ``energy`` [eV]."""
    xp = _xp(x)
    energy = xp.asarray(energy, dtype=x.dtype) if not hasattr(energy, "dtype") else energy
    mc2_a = xp.asarray(mc2, dtype=x.dtype) if not hasattr(mc2, "dtype") else mc2
    p0c = xp.sqrt((energy - mc2_a) * (energy + mc2_a))
    ref = Particles(x, px, y, py, tau, delta, p0c=p0c, mc2=mc2_a, s=s)
    p0c_n, mc2_n = _reference(ref)
    pz = _pz_from_energy_deviation(delta, p0c_n, mc2_n)
    return ref.replace(z=-tau * beta(pz, p0c_n, mc2_n), pz=pz)


# -- openPMD-beamphysics: absolute momenta and time -------------------------------------
#: Speed of light in vacuum [m/s] (exact, SI).
C_LIGHT = 299792458.0


def to_openpmd(p: Particles, *, t_ref: Any = 0.0) -> dict[str, Any]:
    """Absolute coordinates of the openPMD beamphysics extension at a fixed ``s``.

    ``x, y`` [m] are unchanged; ``px, py, pz`` are the momentum components times c
    [eV]: ``P_x c = px p0c``, ``P_y c = py p0c`` and
    ``P_s c = p0c sqrt((1+pz)^2 - px^2 - py^2)`` (0 where that square is negative,
    which only a lost particle can hold); ``t = t_ref - z / (beta c)`` [s] is each
    particle's arrival time at the plane ``s``, with ``beta`` from ``pz``.

    Parameters
    ----------
    p
        Particles (any backend, any batch shape).
    t_ref
        Arrival time of the reference particle [s].

    Returns
    -------
    dict
        ``x, y, px, py, pz, t`` arrays of shape ``(*batch, n)`` of the particles'
        backend.
    """
    xp = _xp(p.coords)
    p0c, mc2 = _reference(p)
    ps2 = (1.0 + p.pz) ** 2 - p.px * p.px - p.py * p.py
    ps = xp.sqrt(xp.where(ps2 > 0.0, ps2, 0.0 * ps2))
    t = t_ref - p.z / (beta(p.pz, p0c, mc2) * C_LIGHT)
    return {"x": p.x, "y": p.y, "px": p.px * p0c, "py": p.py * p0c, "pz": ps * p0c, "t": t}


def from_openpmd(
    x: Any, px: Any, y: Any, py: Any, pz: Any, t: Any, *, p0c: Any, mc2: Any,
    t_ref: Any = 0.0, s: Any = 0.0, alive: Any = None,
) -> Particles:
    """Particles from absolute coordinates at a fixed ``s`` (inverse of :func:`to_openpmd`).

    Parameters
    ----------
    x, y
        Transverse positions [m].
    px, py, pz
        Momentum components times c [eV] (``pz`` along ``s``).
    t
        Arrival times at the plane ``s`` [s].
    p0c
        Reference momentum times c [eV].
    mc2
        Rest energy [eV].
    t_ref
        Arrival time of the reference particle [s]: ``z = -beta c (t - t_ref)``.
    s
        Position of the plane [m].
    alive
        Survival mask; all alive by default.

    Returns
    -------
    Particles
        Bmad coordinates: ``px = P_x/P0``, ``py = P_y/P0``, ``pz = (P - P0)/P0`` with
        ``P = |(P_x, P_y, P_s)|``.
    """
    xp = _xp(x)
    ref = Particles(x, px, y, py, t, pz, p0c=p0c, mc2=mc2, s=s, alive=alive)
    p0c_n, mc2_n = _reference(ref)
    pc = xp.sqrt(ref.px * ref.px + ref.py * ref.py + ref.pz * ref.pz)
    delta = (pc - p0c_n) / p0c_n
    z = -beta(delta, p0c_n, mc2_n) * C_LIGHT * (ref.z - t_ref)
    return ref.replace(px=ref.px / p0c_n, py=ref.py / p0c_n, z=z, pz=delta)
