"""Lattice layer: element records, beamlines and lattice files."""

from beamtrack.lattice.beamline import Beamline
from beamtrack.lattice.elements import ELEMENT_KINDS, Drift, Element, Marker, Quadrupole
from beamtrack.lattice.errors import LatticeError, LatticeFileError, UnknownParameterError
from beamtrack.lattice.io import dumps, load, load_beam, loads, save

__all__ = [
    "ELEMENT_KINDS",
    "Beamline",
    "Drift",
    "Element",
    "LatticeError",
    "LatticeFileError",
    "Marker",
    "Quadrupole",
    "UnknownParameterError",
    "dumps",
    "load",
    "load_beam",
    "loads",
    "save",
]
