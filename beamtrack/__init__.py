"""beamtrack: backend-agnostic, differentiable beam dynamics tracking.

The public face of the package; it only re-exports. Importing beamtrack imports
neither torch, nor jax, nor cupy, nor dask.
"""

from importlib.resources import files as _files

from beamtrack import backends
from beamtrack.backends.defaults import defaults, get_defaults, set_defaults
from beamtrack.backends.errors import BackendError, BeamtrackError
from beamtrack.distributed import scan_parameters
from beamtrack.lattice import (
    Aperture,
    Beamline,
    Collimator,
    CrabCavity,
    Custom,
    Deviation,
    DipoleEdge,
    Drift,
    Element,
    HKicker,
    Kicker,
    LatticeError,
    LatticeFileError,
    LatticeFileWarning,
    LCavity,
    LinearMap,
    Marker,
    Monitor,
    Multipole,
    Observation,
    Octupole,
    Quadrupole,
    RBend,
    Record,
    Reference,
    RFCavity,
    SBend,
    Screen,
    Sextupole,
    Solenoid,
    SpaceCharge,
    ThickMultipole,
    TwissTable,
    UnknownParameterError,
    VKicker,
    crosscheck,
    dumps,
    load,
    loads,
    merged,
    save,
    track_along,
    track_parameter_beam,
    transfer_map,
    twiss,
)
from beamtrack.lattice.io import load_particles, save_particles
from beamtrack.lattice.io.cheetah import from_cheetah, to_cheetah
from beamtrack.lattice.io.xsuite import from_xsuite, to_xsuite
from beamtrack.tracking import (
    COORDINATES,
    ParameterError,
    Particles,
    Species,
    antimuon,
    antiproton,
    beam_statistics,
    deuteron,
    electron,
    muon,
    positron,
    proton,
    species,
    statistics,
    track_drift,
    track_quadrupole,
)
from beamtrack.tracking.beams import from_covariance, from_twiss, gaussian_particles
from beamtrack.tracking.losses import LossReason
from beamtrack.tracking.optics import TwissInit
from beamtrack.tracking.parameter_beam import ParameterBeam

__version__ = "0.1.0"

#: Folder of the bundled example lattices (``fodo.json``, ``fodo.madx``).
EXAMPLES = _files("beamtrack") / "examples"
#: Path of the bundled example FODO lattice (used by ``beamtrack track`` without a file).
EXAMPLE_LATTICE = EXAMPLES / "fodo.json"

__all__ = [
    # Particles, species and beams
    "COORDINATES",
    "ParameterBeam",
    "Particles",
    "Species",
    "antiproton",
    "beam_statistics",
    "deuteron",
    "muon",
    "antimuon",
    "electron",
    "from_covariance",
    "from_twiss",
    "gaussian_particles",
    "positron",
    "proton",
    "species",
    "statistics",
    # Tracking functions
    "track_drift",
    "track_quadrupole",
    # Element kinds
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
    # Beamlines, observation and recording along them
    "Beamline",
    "Observation",
    "Record",
    "Reference",
    "track_along",
    # First-order optics
    "TwissInit",
    "TwissTable",
    "merged",
    "track_parameter_beam",
    "transfer_map",
    "twiss",
    # Cross-backend check
    "Deviation",
    "crosscheck",
    # Lattice files
    "EXAMPLES",
    "EXAMPLE_LATTICE",
    "dumps",
    "load",
    "load_particles",
    "loads",
    "save",
    "save_particles",
    # Converters to and from other codes (each imports its code only when called)
    "from_cheetah",
    "from_xsuite",
    "to_cheetah",
    "to_xsuite",
    # Errors (every one derives from BeamtrackError)
    "BackendError",
    "BeamtrackError",
    "LatticeError",
    "LatticeFileError",
    "LatticeFileWarning",
    "LossReason",
    "ParameterError",
    "UnknownParameterError",
    # The backends layer and the project's defaults
    "backends",
    "defaults",
    "get_defaults",
    "set_defaults",
    # Parameter scans on a Dask cluster (Dask imported only when a scan runs)
    "scan_parameters",
]
