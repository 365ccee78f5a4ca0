"""MAD-X's ``beam`` as a beamtrack :class:`~beamtrack.lattice.reference.Reference`, both ways.

MAD-X names particles its own way (``posmuon``, ``negmuon``), gives masses in GeV and
energies in GeV (``pc``, ``energy``) or as ``gamma``, ``beta`` or ``brho``; a ``beam``
without ``particle`` is of positrons and one without an energy has 1 GeV total energy
(MAD-X's defaults).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from beamtrack.lattice.io.madx_definitions import Value
from beamtrack.lattice.reference import Reference
from beamtrack.tracking.species import SPECIES, Species

#: MAD-X particle names -> beamtrack species names.
PARTICLES = {
    "electron": "electron", "positron": "positron", "proton": "proton",
    "antiproton": "antiproton", "posmuon": "antimuon", "negmuon": "muon",
    "deuteron": "deuteron",
}
#: beamtrack species names -> MAD-X particle names.
MADX_PARTICLES = {"electron": "electron", "positron": "positron", "proton": "proton",
                  "antiproton": "antiproton", "antimuon": "posmuon", "muon": "negmuon"}


def beam_reference(args: dict[str, Value], number: Callable[[Value, str], float]) -> Reference:
    """The reference particle of a ``beam`` statement's arguments.

    Parameters
    ----------
    args
        The ``beam`` arguments (``particle``, ``mass``, ``charge``, and one of ``pc``,
        ``energy``, ``gamma``, ``beta``, ``brho``).
    number
        Evaluates an argument (its value, a name for messages).

    Raises
    ------
    ValueError
        An unknown particle without ``mass``, or ``beta`` outside (0, 1).
    """
    particle_value = args.get("particle")
    particle = particle_value.payload.lower() if particle_value is not None and \
        particle_value.kind == "word" else "positron"
    mass = number(args["mass"], "mass") * 1e9 if "mass" in args else None
    charge = number(args["charge"], "charge") if "charge" in args else None
    if particle in PARTICLES and mass is None and charge is None:
        chosen = SPECIES[PARTICLES[particle]]
    elif particle in PARTICLES:
        base = SPECIES[PARTICLES[particle]]
        chosen = Species(particle, mass if mass is not None else base.mc2,
                         charge if charge is not None else base.charge)
    else:
        if mass is None:
            raise ValueError(f"particle {particle!r} needs mass= (GeV)")
        chosen = Species(particle, mass, charge if charge is not None else 1.0)
    if "pc" in args:
        return Reference.from_energy(chosen, p0c=number(args["pc"], "pc") * 1e9)
    if "energy" in args:
        return Reference.from_energy(chosen, e_tot=number(args["energy"], "energy") * 1e9)
    if "gamma" in args:
        return Reference.from_energy(chosen, gamma=number(args["gamma"], "gamma"))
    if "beta" in args:
        beta = number(args["beta"], "beta")
        if not 0 < beta < 1:
            raise ValueError(f"beta must lie in (0, 1), got {beta!r}")
        return Reference.from_energy(chosen, gamma=1.0 / math.sqrt(1.0 - beta * beta))
    if "brho" in args:
        return Reference.from_energy(
            chosen, p0c=number(args["brho"], "brho") * 299792458.0 * abs(chosen.charge))
    return Reference.from_energy(chosen, e_tot=1e9)  # MAD-X's default: 1 GeV


def beam_statement(reference: Reference) -> str:
    """The MAD-X ``beam`` statement of ``reference`` (``particle=`` and ``pc=``, with
    ``mass=`` and ``charge=`` for species MAD-X does not name)."""
    species = reference.species
    particle = MADX_PARTICLES.get(species.name)
    if particle is not None and SPECIES.get(species.name) == species:
        return f"beam, particle={particle}, pc={reference.p0c * 1e-9!r};"
    safe = re.sub(r"[^a-z0-9_]", "_", species.name.lower()) or "ion"
    return (f"beam, particle={safe}, mass={species.mc2 * 1e-9!r}, "
            f"charge={species.charge!r}, pc={reference.p0c * 1e-9!r};")


__all__ = ["MADX_PARTICLES", "PARTICLES", "beam_reference", "beam_statement"]
