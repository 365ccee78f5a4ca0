"""Pure tracking functions on arrays, written against the Array API standard.

Nothing here imports torch, jax or cupy; the library follows the particles' arrays.
"""

from beamtrack.tracking.conventions import (
    from_cheetah,
    from_madx,
    from_xsuite,
    to_cheetah,
    to_madx,
    to_xsuite,
)
from beamtrack.tracking.drift import drift_matrix, track_drift
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.linear import apply_linear_map, matrix6
from beamtrack.tracking.particles import COORDINATES, Particles
from beamtrack.tracking.quadrupole import quadrupole_matrix, track_quadrupole
from beamtrack.tracking.species import (
    SPECIES,
    Species,
    antiproton,
    deuteron,
    electron,
    positron,
    proton,
    species,
)
from beamtrack.tracking.statistics import beam_statistics, centroid, emittance, rms_size

__all__ = [
    "COORDINATES",
    "SPECIES",
    "ParameterError",
    "Particles",
    "Species",
    "antiproton",
    "apply_linear_map",
    "beam_statistics",
    "centroid",
    "deuteron",
    "drift_matrix",
    "electron",
    "emittance",
    "from_cheetah",
    "from_madx",
    "from_xsuite",
    "matrix6",
    "positron",
    "proton",
    "quadrupole_matrix",
    "rms_size",
    "species",
    "to_cheetah",
    "to_madx",
    "to_xsuite",
    "track_drift",
    "track_quadrupole",
]
