"""Array-library backends: what the Array API standard does not give.

One module per library (``numpy``, ``torch``, ``jax``, ``cupy``, ``array_api_strict``)
behind the :class:`~beamtrack.backends.base.Backend` interface, a registry, and the
project's default backend, device and dtype (:mod:`beamtrack.backends.defaults`).
Importing this package imports none of torch, jax or cupy.
"""

from beamtrack.backends.base import Backend
from beamtrack.backends.defaults import Defaults, DefaultsError, get_defaults, set_defaults
from beamtrack.backends.errors import (
    BackendError,
    BackendUnavailableError,
    BeamtrackError,
    NoAutodiffError,
    PrecisionError,
)
from beamtrack.backends.finite_differences import central_difference_gradient
from beamtrack.backends.jax_sharding import particle_mesh, shard_particles
from beamtrack.backends.registry import KNOWN, available, backend_of, get, namespace_of

__all__ = [
    "KNOWN",
    "Backend",
    "BackendError",
    "BeamtrackError",
    "BackendUnavailableError",
    "Defaults",
    "DefaultsError",
    "NoAutodiffError",
    "PrecisionError",
    "available",
    "central_difference_gradient",
    "backend_of",
    "get",
    "get_defaults",
    "namespace_of",
    "particle_mesh",
    "set_defaults",
    "shard_particles",
]
