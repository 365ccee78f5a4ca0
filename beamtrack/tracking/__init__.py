"""Pure tracking functions on arrays, written against the Array API standard.

Nothing here imports torch, jax or cupy; the library follows the particles' arrays.
"""

from beamtrack.tracking.aperture import aperture_weight, track_aperture, track_collimator
from beamtrack.tracking.bend import (
    FRINGE_TYPES,
    sbend_map,
    track_dipole_edge,
    track_rbend,
    track_sbend,
)
from beamtrack.tracking.cavity import (
    crab_cavity_map,
    lcavity_map,
    rfcavity_map,
    track_crab_cavity,
    track_lcavity,
    track_rfcavity,
)
from beamtrack.tracking.conventions import (
    from_cheetah,
    from_madx,
    from_xsuite,
    to_cheetah,
    to_madx,
    to_xsuite,
)
from beamtrack.tracking.diagnostics import monitor_reading, screen_image
from beamtrack.tracking.drift import drift_matrix, track_drift
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.frames import Misalignment
from beamtrack.tracking.kicker import track_hkicker, track_kicker, track_vkicker
from beamtrack.tracking.linear import apply_linear_map, matrix6
from beamtrack.tracking.multipole import (
    multipole_kick,
    track_multipole,
    track_octupole,
    track_sextupole,
    track_thick_multipole,
)
from beamtrack.tracking.particles import COORDINATES, Particles
from beamtrack.tracking.quadrupole import quadrupole_matrix, track_quadrupole
from beamtrack.tracking.solenoid import solenoid_map, track_solenoid
from beamtrack.tracking.space_charge import (
    bunch_charge,
    space_charge_field,
    track_space_charge,
)
from beamtrack.tracking.species import (
    SPECIES,
    Species,
    antimuon,
    antiproton,
    deuteron,
    electron,
    muon,
    positron,
    proton,
    species,
)
from beamtrack.tracking.statistics import beam_statistics, centroid, emittance, rms_size
from beamtrack.tracking.stepping import METHODS, Body, Everyone, checked, track_element

__all__ = [
    # Particles, species and statistics
    "COORDINATES",
    "Particles",
    "SPECIES",
    "Species",
    "antiproton",
    "deuteron",
    "muon",
    "antimuon",
    "electron",
    "positron",
    "proton",
    "species",
    "beam_statistics",
    "centroid",
    "emittance",
    "rms_size",
    # Conversions to other codes' coordinates
    "from_cheetah",
    "from_madx",
    "from_xsuite",
    "to_cheetah",
    "to_madx",
    "to_xsuite",
    # Element tracking functions
    "track_aperture",
    "track_collimator",
    "track_crab_cavity",
    "track_dipole_edge",
    "track_drift",
    "track_hkicker",
    "track_kicker",
    "track_lcavity",
    "track_multipole",
    "track_octupole",
    "track_quadrupole",
    "track_rbend",
    "track_rfcavity",
    "track_sbend",
    "track_sextupole",
    "track_solenoid",
    "track_space_charge",
    "track_thick_multipole",
    "track_vkicker",
    # Space charge
    "bunch_charge",
    "space_charge_field",
    # Observation and apertures
    "aperture_weight",
    "monitor_reading",
    "screen_image",
    # Maps and kicks of single elements
    "crab_cavity_map",
    "drift_matrix",
    "lcavity_map",
    "multipole_kick",
    "quadrupole_matrix",
    "rfcavity_map",
    "sbend_map",
    "solenoid_map",
    # Linear maps
    "apply_linear_map",
    "matrix6",
    # The stepping framework: methods, misalignment keywords, element models
    "METHODS",
    "Body",
    "Everyone",
    "Misalignment",
    "checked",
    "track_element",
    # Constants and errors
    "FRINGE_TYPES",
    "ParameterError",
]
