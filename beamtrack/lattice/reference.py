"""The reference particle a beamline carries (:class:`Reference`, defined in ``tracking``
so that beam generators can take one too)."""

from beamtrack.tracking.reference import Reference, species_of

__all__ = ["Reference", "species_of"]
