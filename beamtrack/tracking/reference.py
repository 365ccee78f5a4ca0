"""The reference particle: a species and a reference momentum (what a line is designed for)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.species import Species, species


@dataclass(frozen=True)
class Reference:
    """Species and reference momentum that a beamline was designed for.

    A line read from a lattice file carries one (MAD-X ``beam``, Bmad
    ``parameter[particle]`` with ``beginning[p0c]`` or ``beginning[e_tot]``, ...).
    :func:`~beamtrack.lattice.optics.twiss`, :meth:`Beamline.merged`, the beam
    generators and the command line use it when no ``p0c``/``mc2`` is given.

    Parameters
    ----------
    species
        The particle species (rest energy and charge number).
    p0c
        Reference momentum times c [eV], positive and finite.

    Examples
    --------
    >>> import beamtrack as bt
    >>> ref = bt.Reference.from_energy("proton", e_tot=7e12)
    >>> round(ref.p0c / 1e12, 9), ref.charge
    (6.99999994, 1.0)
    """

    species: Species
    p0c: float

    def __post_init__(self) -> None:
        if isinstance(self.species, str):
            object.__setattr__(self, "species", species(self.species))
        if not isinstance(self.species, Species):
            raise ParameterError(f"parameter 'species' must be a Species, got {self.species!r}",
                                 element="Reference")
        p0c = self.p0c
        try:
            finite = math.isfinite(p0c) and p0c > 0
        except (TypeError, OverflowError):
            finite = False
        if isinstance(p0c, bool) or not isinstance(p0c, (int, float)) or not finite:
            raise ParameterError(f"parameter 'p0c' must be a positive finite number of eV, "
                                 f"got {p0c!r}", element="Reference")
        object.__setattr__(self, "p0c", float(p0c))

    @property
    def mc2(self) -> float:
        """Rest energy of the species [eV]."""
        return self.species.mc2

    @property
    def charge(self) -> float:
        """Charge number of the species (e.g. -1 for electrons)."""
        return self.species.charge

    @property
    def e_tot(self) -> float:
        """Total energy of the reference particle [eV]."""
        return math.hypot(self.p0c, self.mc2)

    @property
    def gamma(self) -> float:
        """Lorentz factor of the reference particle."""
        return self.e_tot / self.mc2

    @classmethod
    def from_energy(
        cls,
        species: Species | str,
        *,
        p0c: float | None = None,
        e_tot: float | None = None,
        kinetic_energy: float | None = None,
        gamma: float | None = None,
    ) -> Reference:
        """The reference from exactly one of its energy measures.

        Parameters
        ----------
        species
            A :class:`~beamtrack.tracking.species.Species` or a known species name.
        p0c
            Momentum times c [eV].
        e_tot
            Total energy [eV]; must exceed the rest energy.
        kinetic_energy
            Kinetic energy [eV].
        gamma
            Lorentz factor (> 1).
        """
        given = {k: v for k, v in (("p0c", p0c), ("e_tot", e_tot),
                                   ("kinetic_energy", kinetic_energy), ("gamma", gamma))
                 if v is not None}
        if len(given) != 1:
            raise ParameterError("give exactly one of p0c, e_tot, kinetic_energy, gamma; got "
                                 f"{', '.join(given) or 'none'}", element="Reference")
        chosen = species_of(species)
        (key, value), = given.items()
        mc2 = chosen.mc2
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ParameterError(f"parameter {key!r} must be a number, got {value!r}",
                                 element="Reference") from None
        e = {"p0c": None, "e_tot": value, "kinetic_energy": value + mc2,
             "gamma": value * mc2}[key]
        if e is None:
            return cls(chosen, value)
        if not (math.isfinite(e) and e > mc2):
            raise ParameterError(f"parameter {key!r} = {value!r} gives a total energy not above "
                                 f"the rest energy {mc2!r} eV of {chosen.name}",
                                 element="Reference")
        return cls(chosen, math.sqrt((e - mc2) * (e + mc2)))


def species_of(value: Species | str) -> Species:
    """A :class:`Species` from itself or its name."""
    if isinstance(value, Species):
        return value
    try:
        return species(value)
    except ValueError as exc:
        raise ParameterError(str(exc), element="Reference") from None
