"""Particle species: rest energy and charge number.

Masses are CODATA 2022 values, as used by Bmad.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Electron rest energy m_e c^2 [eV] (CODATA 2022).
ELECTRON_MC2 = 510998.95069
#: Proton rest energy [eV] (CODATA 2022).
PROTON_MC2 = 938272089.43
#: Deuteron rest energy [eV] (CODATA 2022).
DEUTERON_MC2 = 1875612945.0
#: Muon rest energy [eV] (CODATA 2022).
MUON_MC2 = 105658375.5
#: Atomic mass unit times c^2 [eV] (CODATA 2022).
ATOMIC_MASS_UNIT_MC2 = 931494102.42
#: Elementary charge [C] (exact in the SI).
ELEMENTARY_CHARGE = 1.602176634e-19
#: Vacuum electric permittivity epsilon_0 [F/m] (CODATA 2022).
VACUUM_PERMITTIVITY = 8.8541878188e-12
#: Speed of light in vacuum [m/s] (exact in the SI).
SPEED_OF_LIGHT = 299792458.0


@dataclass(frozen=True)
class Species:
    """A particle species.

    Parameters
    ----------
    name
        Name used in lattice files and printouts.
    mc2
        Rest energy [eV].
    charge
        Charge number (charge in units of the elementary charge, with sign).
    """

    name: str
    mc2: float
    charge: float

    def __post_init__(self) -> None:
        if not (isinstance(self.mc2, (int, float)) and math.isfinite(self.mc2) and self.mc2 > 0):
            raise ValueError(f"species {self.name!r}: mc2 must be a positive number of eV, "
                             f"got {self.mc2!r}")
        if not (isinstance(self.charge, (int, float)) and math.isfinite(self.charge)):
            raise ValueError(f"species {self.name!r}: charge must be a finite number, "
                             f"got {self.charge!r}")

    @classmethod
    def ion(cls, mass_number: float, charge: int, name: str | None = None) -> Species:
        """An ion of ``mass_number`` atomic mass units stripped to ``charge``.

        As in Bmad, the rest energy is ``mass_number * u - charge * m_e`` (the
        removed electrons are subtracted; their binding energy is neglected).
        """
        mc2 = mass_number * ATOMIC_MASS_UNIT_MC2 - charge * ELECTRON_MC2
        return cls(name or f"ion(A={mass_number:g}, q={charge:+d})", mc2, float(charge))


electron = Species("electron", ELECTRON_MC2, -1.0)
positron = Species("positron", ELECTRON_MC2, 1.0)
proton = Species("proton", PROTON_MC2, 1.0)
antiproton = Species("antiproton", PROTON_MC2, -1.0)
deuteron = Species("deuteron", DEUTERON_MC2, 1.0)
muon = Species("muon", MUON_MC2, -1.0)
antimuon = Species("antimuon", MUON_MC2, 1.0)

SPECIES: dict[str, Species] = {
    s.name: s for s in (electron, positron, proton, antiproton, deuteron, muon, antimuon)
}


def species(name: str) -> Species:
    """Look up a named species (``"electron"``, ``"proton"``, ...)."""
    try:
        return SPECIES[name]
    except KeyError:
        raise ValueError(
            f"unknown species {name!r}; known: {', '.join(SPECIES)} "
            "(or build one with Species(name, mc2, charge) / Species.ion)"
        ) from None
