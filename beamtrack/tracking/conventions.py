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


# -- Cheetah ParticleBeam and Xsuite Particles objects ---------------------------------
# Whole-bunch conversions behind Particles.from_cheetah / to_cheetah / from_xsuite /
# to_xsuite. cheetah and xtrack are imported inside the functions (optional extras).

#: Xsuite's state of an unallocated slot of a Particles object (not a particle).
_XSUITE_UNALLOCATED = -999999


def _species_for(mc2: float, charge: float | None, what: str) -> Any:
    """The beamtrack species of rest energy ``mc2`` [eV] (and ``charge`` if given)."""
    from beamtrack.tracking.errors import ParameterError
    from beamtrack.tracking.species import SPECIES, Species

    matches = [s for s in SPECIES.values()
               if abs(s.mc2 - mc2) <= 1e-9 * mc2 and (charge is None or s.charge == charge)]
    if charge is None:
        # Equal masses (electron and positron, proton and antiproton): the matter one.
        matches = [s for s in matches if s.name in ("electron", "proton", "deuteron", "muon")]
    if matches:
        return matches[0]
    if charge is None:
        raise ParameterError(f"{what}: no known species has the rest energy {mc2!r} eV; "
                             "pass the species (or its charge) explicitly")
    return Species(f"mc2={mc2:g} eV, charge={charge:+g}", float(mc2), float(charge))


def particles_from_cheetah(beam: Any) -> Particles:
    """Particles from a Cheetah ``ParticleBeam``.

    Parameters
    ----------
    beam
        ``cheetah.ParticleBeam``: ``particles`` of shape ``(*batch, n, 7)`` holding
        ``(x, px, y, py, tau, delta, 1)`` with ``tau = -z/beta`` [m] and
        ``delta = (E - E0)/P0c``, reference total ``energy`` [eV] of shape ``(*batch)``,
        ``s`` [m], ``species``, ``survival_probabilities`` and ``particle_charges``
        [C per macro-particle].

    Returns
    -------
    Particles
        Torch arrays (gradients flow from the beam's tensors); ``alive`` is
        ``survival_probabilities > 0`` (Cheetah's apertures multiply it by 0);
        ``charge`` is the species' charge number and ``weight`` the macro-particle
        charge over ``|charge| e``.
    """
    parts = beam.particles
    xp = _xp(parts)
    mc2 = beam.species.mass_eV
    mc2 = xp.astype(mc2, parts.dtype) if hasattr(mc2, "dtype") else mc2
    cols = [parts[..., i] for i in range(6)]
    p = from_cheetah(*cols, energy=beam.energy, mc2=mc2, s=beam.s)
    alive = beam.survival_probabilities > 0
    charge = float(beam.species.num_elementary_charges)
    weight = None
    charges = getattr(beam, "particle_charges", None)
    if charges is not None and charge != 0:
        from beamtrack.tracking.species import ELEMENTARY_CHARGE

        weight = xp.astype(xp.abs(charges), parts.dtype) / (abs(charge) * ELEMENTARY_CHARGE)
    return p.replace(alive=xp.broadcast_to(alive, p.alive.shape), charge=charge,
                     weight=weight)


def particles_to_cheetah(p: Particles, species: Any = None) -> Any:
    """A Cheetah ``ParticleBeam`` of these particles.

    Parameters
    ----------
    p
        The particles; any backend (non-torch data go through host memory, torch
        tensors keep their autograd history).
    species
        A ``cheetah.Species``, a beamtrack :class:`~beamtrack.tracking.species.Species`
        or a species name; by default the known species whose rest energy is ``p.mc2``
        and charge ``p.charge`` where known (electron for the electron mass, proton
        for the proton mass).

    Returns
    -------
    cheetah.ParticleBeam
        ``particles (*batch, n, 7)``, ``energy``, ``s``,
        ``survival_probabilities`` 1 for alive and 0 for lost particles, and, for
        particles with a ``weight``, ``particle_charges = weight |charge| e`` [C]
        (Cheetah's default otherwise).
    """
    import cheetah

    from beamtrack.backends import backend_of
    from beamtrack.tracking.species import Species
    from beamtrack.tracking.species import species as species_named

    if backend_of(p.coords).name != "torch":
        p = p.to_backend("torch")
    xp = p.xp
    mc2 = float(p.xp.max(p.mc2)) if p.mc2.ndim else float(p.mc2)
    dtype, device = p.dtype, p.device
    if isinstance(species, str):
        species = species_named(species)
    if species is None:
        species = _species_for(mc2, p.charge, "Particles.to_cheetah")
    charge_number = species.charge if isinstance(species, Species) else None
    if isinstance(species, Species):
        known = cheetah.Species.known.get(species.name)
        exact = (known is not None and known["num_elementary_charges"] == species.charge
                 and abs(float(cheetah.Species(species.name, dtype=xp.float64).mass_eV)
                         - species.mc2) <= 1e-12 * species.mc2)
        if exact:
            species = cheetah.Species(species.name, device=device, dtype=dtype)
        else:
            species = cheetah.Species(
                f"beamtrack_{species.name}".replace(" ", "_"),
                num_elementary_charges=xp.asarray(species.charge, dtype=dtype, device=device),
                mass_eV=xp.asarray(species.mc2, dtype=dtype, device=device),
                device=device, dtype=dtype)
    d = to_cheetah(p)
    x = d["x"]
    columns = [d[k] for k in ("x", "px", "y", "py", "tau", "delta")]
    parts = xp.stack([*columns, xp.ones_like(x)], axis=-1)
    batch = xp.zeros(parts.shape[:-2], dtype=dtype, device=device)
    if charge_number is None:
        charge_number = float(species.num_elementary_charges)
    charges = None
    if p.explicit_weight is not None:
        from beamtrack.tracking.species import ELEMENTARY_CHARGE

        charges = p.weight * (abs(charge_number) * ELEMENTARY_CHARGE)
    return cheetah.ParticleBeam(
        parts,
        energy=d["energy"] + batch,
        particle_charges=charges,
        survival_probabilities=xp.astype(p.alive, dtype),
        s=p.s + batch,
        species=species,
        device=device,
        dtype=dtype,
    )


def particles_from_xsuite(particles: Any) -> Particles:
    """Particles (NumPy) from an Xsuite ``xtrack.Particles`` object.

    Particles are put in the order of their ``particle_id`` (Xsuite moves lost
    particles to the end when tracking); unallocated slots are left out. ``alive`` is
    ``state > 0``. The reference ``p0c``, ``mass0`` and ``s`` must be the same for all
    particles. ``charge`` is Xsuite's ``q0`` and ``weight`` its ``weight`` (physical
    particles per macro-particle).
    """
    import numpy as np

    from beamtrack.tracking.errors import ParameterError

    def host(name: str) -> Any:
        value = getattr(particles, name)
        if not np.isscalar(value) and not isinstance(value, np.ndarray):
            value = particles._context.nparray_from_context_array(value)
        return np.asarray(value)

    state = host("state")
    keep = state != _XSUITE_UNALLOCATED
    order = np.argsort(host("particle_id")[keep], kind="stable")

    def column(name: str) -> Any:
        values = np.broadcast_to(host(name), state.shape)
        return np.asarray(values[keep][order], dtype=np.float64)

    alive = state[keep][order] > 0
    reference = {}
    for name in ("p0c", "mass0", "s"):
        values = column(name)
        if name == "s" and values.size:
            # Lost particles keep the s where they were lost; the bunch is where the
            # survivors are (or the farthest loss when none survived).
            values = values[alive] if np.any(alive) else np.array([values.max()])
        if values.size and not np.all(values == values[0]):
            raise ParameterError(f"Particles.from_xsuite: {name} differs between particles; "
                                 "beamtrack holds one reference per bunch")
        reference[name] = float(values[0]) if values.size else 0.0
    p = from_xsuite(*(column(k) for k in ("x", "px", "y", "py", "zeta", "delta")),
                    p0c=reference["p0c"], mc2=reference["mass0"], s=reference["s"])
    q0 = np.unique(column("q0")) if hasattr(particles, "q0") else np.array([])
    charge = float(q0[0]) if q0.size == 1 else None
    weight = column("weight") if hasattr(particles, "weight") else None
    return p.replace(alive=alive, charge=charge, weight=weight)


def particles_to_xsuite(p: Particles, q0: float | None = None) -> Any:
    """An Xsuite ``xtrack.Particles`` object (CPU) of these particles.

    Parameters
    ----------
    p
        The particles: one bunch (no batch dimensions); any backend.
    q0
        Charge number of the species; by default ``p.charge``, else that of the known
        species with rest energy ``p.mc2`` (-1 for the electron mass, +1 for the
        proton mass).

    Returns
    -------
    xtrack.Particles
        ``x, px, y, py, zeta, delta``, ``p0c``, ``mass0``, ``q0``, ``s``,
        ``particle_id = 0..n-1``, ``state`` 1 (alive) or 0 (lost) and, for particles
        with a ``weight``, ``weight``.
    """
    import numpy as np
    import xtrack

    from beamtrack.tracking.errors import ParameterError

    if p.batch_shape:
        raise ParameterError("Particles.to_xsuite: Xsuite holds one bunch; index the batch "
                             f"dimensions {p.batch_shape} first")
    p = p.numpy()
    mc2 = float(p.mc2)
    if q0 is None:
        q0 = p.charge if p.charge is not None else _species_for(
            mc2, None, "Particles.to_xsuite").charge
    d = {k: np.asarray(v, dtype=np.float64) for k, v in to_xsuite(p).items()}
    if p.explicit_weight is not None:
        d["weight"] = np.asarray(p.weight, dtype=np.float64)
    alive = np.asarray(p.alive)
    return xtrack.Particles(
        **d, p0c=float(p.p0c), mass0=mc2, q0=float(q0), s=float(p.s),
        particle_id=np.arange(p.n), state=np.where(alive, 1, 0).astype(np.int64))
