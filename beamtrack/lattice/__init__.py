"""Lattice layer: element declarations and records, beamlines, optics and lattice files."""

from beamtrack.lattice.beamline import Beamline, Observation
from beamtrack.lattice.crosscheck import Deviation, crosscheck
from beamtrack.lattice.custom import Custom
from beamtrack.lattice.elements import (
    ELEMENT_KINDS,
    Aperture,
    Collimator,
    CrabCavity,
    DipoleEdge,
    Drift,
    Element,
    HKicker,
    Kicker,
    LCavity,
    Marker,
    Monitor,
    Multipole,
    Octupole,
    Quadrupole,
    RBend,
    RFCavity,
    SBend,
    Screen,
    Sextupole,
    Solenoid,
    SpaceCharge,
    ThickMultipole,
    VKicker,
    element_kind,
)
from beamtrack.lattice.errors import (
    LatticeError,
    LatticeFileError,
    LatticeFileWarning,
    UnknownParameterError,
)
from beamtrack.lattice.io import dumps, load, load_beam, loads, save
from beamtrack.lattice.linear_map import LinearMap
from beamtrack.lattice.optics import (
    TwissTable,
    merged,
    track_parameter_beam,
    transfer_map,
    twiss,
)
from beamtrack.lattice.parameters import (
    LENGTH,
    MISALIGNMENT,
    REQUIRED,
    SLICING,
    Parameter,
    param,
)
from beamtrack.lattice.recording import Record, track_along
from beamtrack.lattice.reference import Reference

__all__ = [
    # Element kinds (named after Bmad's) and their registry
    "ELEMENT_KINDS",
    "Aperture",
    "Collimator",
    "CrabCavity",
    "Custom",
    "DipoleEdge",
    "Drift",
    "Element",
    "HKicker",
    "Kicker",
    "LCavity",
    "LinearMap",
    "Marker",
    "Monitor",
    "Multipole",
    "Octupole",
    "Quadrupole",
    "RBend",
    "RFCavity",
    "SBend",
    "Screen",
    "Sextupole",
    "Solenoid",
    "SpaceCharge",
    "ThickMultipole",
    "VKicker",
    # Declaring element kinds: parameters, shared blocks, the class decorator
    "LENGTH",
    "MISALIGNMENT",
    "REQUIRED",
    "SLICING",
    "Parameter",
    "element_kind",
    "param",
    # Beamlines, observation and recording along them
    "Beamline",
    "Observation",
    "Record",
    "Reference",
    "track_along",
    # First-order optics
    "TwissTable",
    "merged",
    "track_parameter_beam",
    "transfer_map",
    "twiss",
    # Cross-backend check
    "Deviation",
    "crosscheck",
    # Lattice files
    "dumps",
    "load",
    "load_beam",
    "loads",
    "save",
    # Errors
    "LatticeError",
    "LatticeFileError",
    "LatticeFileWarning",
    "UnknownParameterError",
]
