"""beamtrack: backend-agnostic, differentiable beam dynamics tracking.

The public face of the package; it only re-exports. Importing beamtrack imports
neither torch, nor jax, nor cupy.
"""

from importlib.resources import files as _files

from beamtrack import backends
from beamtrack.lattice import (
    Beamline,
    Element,
    LatticeError,
    LatticeFileError,
    Observation,
    UnknownParameterError,
    dumps,
    load,
    loads,
    save,
)
from beamtrack.lattice.crosscheck import Deviation, crosscheck
from beamtrack.lattice.custom import Custom
from beamtrack.lattice.elements import (
    Aperture,
    CrabCavity,
    Drift,
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
    ThickMultipole,
    VKicker,
)
from beamtrack.lattice.linear_map import LinearMap
from beamtrack.lattice.optics import (
    TwissTable,
    merged,
    track_parameter_beam,
    transfer_map,
    twiss,
)
from beamtrack.lattice.recording import Record, track_along
from beamtrack.tracking import (
    COORDINATES,
    ParameterError,
    Particles,
    Species,
    antiproton,
    beam_statistics,
    deuteron,
    electron,
    positron,
    proton,
    species,
    statistics,
    track_drift,
    track_quadrupole,
)
from beamtrack.tracking.beams import from_covariance, from_twiss, gaussian_particles
from beamtrack.tracking.optics import TwissInit
from beamtrack.tracking.parameter_beam import ParameterBeam

__version__ = "0.1.0"

#: Path of the bundled example FODO lattice (used by ``beamtrack track`` without a file).
EXAMPLE_LATTICE = _files("beamtrack") / "examples" / "fodo.json"

__all__ = [
    "Aperture",
    "CrabCavity",
    "HKicker",
    "Kicker",
    "LCavity",
    "Monitor",
    "Multipole",
    "Octupole",
    "RBend",
    "RFCavity",
    "SBend",
    "Screen",
    "Sextupole",
    "Solenoid",
    "ThickMultipole",
    "VKicker",
    "Observation",
    "COORDINATES",
    "EXAMPLE_LATTICE",
    "Beamline",
    "Deviation",
    "Drift",
    "Element",
    "LatticeError",
    "LatticeFileError",
    "LinearMap",
    "Custom",
    "ParameterBeam",
    "Record",
    "TwissInit",
    "TwissTable",
    "Marker",
    "ParameterError",
    "Particles",
    "Quadrupole",
    "Species",
    "UnknownParameterError",
    "antiproton",
    "backends",
    "beam_statistics",
    "crosscheck",
    "deuteron",
    "dumps",
    "from_covariance",
    "from_twiss",
    "merged",
    "statistics",
    "track_along",
    "track_parameter_beam",
    "transfer_map",
    "twiss",
    "electron",
    "gaussian_particles",
    "load",
    "loads",
    "positron",
    "proton",
    "save",
    "species",
    "track_drift",
    "track_quadrupole",
]
