"""Particles sharded over several JAX devices (``jax.sharding``).

Tracking is element-wise in the particles, so a bunch splits over devices along its
particle axis without any change to the tracking code: :func:`shard_particles` places
the particle axis of ``coords`` and ``alive`` on a one-dimensional device mesh, and
tracking under ``jax.jit`` then runs on every device at once (XLA's GSPMD partitioner
propagates the sharding; sums over particles in the statistics become all-reduces).
Results and gradients equal those of one device.

On several hosts, start every process with ``jax.distributed.initialize()``: the mesh
then spans the devices of all processes (``jax.devices()``), and each process passes
its own part of the bunch (``process_local=True``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from beamtrack.backends.errors import BackendError
from beamtrack.backends.registry import backend_of, get

#: Name of the mesh axis the particles are split over, unless another is given.
PARTICLE_AXIS = "particles"


def particle_mesh(devices: Any = None, axis: str = PARTICLE_AXIS) -> Any:
    """A one-dimensional ``jax.sharding.Mesh`` over ``devices`` (all of ``jax.devices()``,
    on every process, by default), its axis called ``axis``."""
    jax = get("jax").module()
    chosen = jax.devices() if devices is None else list(devices)
    return jax.sharding.Mesh(np.asarray(chosen, dtype=object), (axis,))


def particle_sharding(mesh: Any, ndim: int, axis: str = PARTICLE_AXIS) -> Any:
    """The ``NamedSharding`` that splits the last axis of an ``ndim``-dimensional array
    over the mesh axis ``axis`` and replicates the others."""
    jax = get("jax").module()
    spec = jax.sharding.PartitionSpec(*([None] * (ndim - 1)), axis)
    return jax.sharding.NamedSharding(mesh, spec)


def replicated(mesh: Any) -> Any:
    """The ``NamedSharding`` that keeps a full copy on every device of ``mesh``."""
    jax = get("jax").module()
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def shard_particles(
    particles: Any,
    mesh: Any = None,
    axis: str = PARTICLE_AXIS,
    process_local: bool = False,
) -> Any:
    """The same particles as JAX arrays split over the devices of ``mesh``.

    The particle axis (the last) of ``coords`` and ``alive`` is split over the mesh axis
    ``axis``; the reference fields ``s``, ``p0c``, ``mc2`` and any batch dimensions are
    replicated. Track the result under ``jax.jit`` (``jax.jit(line.track)(sharded)``) to
    compute on all devices at once; results keep the sharding.

    Parameters
    ----------
    particles
        A :class:`~beamtrack.tracking.particles.Particles` record of any backend
        (others are copied to JAX through the host, keeping their dtype).
    mesh
        A ``jax.sharding.Mesh`` with an axis called ``axis``; by default
        :func:`particle_mesh` over all devices (of every process).
    axis
        Name of the mesh axis the particles are split over.
    process_local
        With several processes (``jax.distributed``): ``particles`` holds this
        process's part of the bunch, and the global bunch is the concatenation of the
        parts in process order (``jax.make_array_from_process_local_data``). Without
        it, every process passes the whole bunch.

    Returns
    -------
    Particles
        JAX particles whose arrays carry a ``NamedSharding``.

    Raises
    ------
    BackendError
        The number of particles does not divide evenly among the devices of the
        mesh axis (pad the bunch, for example with lost particles, or choose another
        number of particles), or the mesh has no axis ``axis``.
    """
    jax = get("jax").module()
    if mesh is None:
        mesh = particle_mesh(axis=axis)
    if axis not in mesh.shape:
        raise BackendError(
            f"shard_particles: the mesh has no axis {axis!r} (its axes: {tuple(mesh.shape)})"
        )
    if backend_of(particles.coords).name != "jax":
        particles = particles.to_backend("jax")
    parts = int(mesh.shape[axis])
    n = particles.n * (jax.process_count() if process_local else 1)
    if n % parts:
        raise BackendError(
            f"shard_particles: {n} particles do not split evenly over {parts} devices; "
            f"use a multiple of {parts} particles (pad with lost particles if needed)"
        )

    def place(array: Any, sharding: Any) -> Any:
        if jax.process_count() == 1:
            return jax.device_put(array, sharding)
        host = np.asarray(array)  # pragma: no cover - several processes (jax.distributed)
        if process_local:  # pragma: no cover
            return jax.make_array_from_process_local_data(sharding, host)
        return jax.make_array_from_callback(  # pragma: no cover
            host.shape, sharding, lambda index: host[index])

    whole = replicated(mesh)
    weight = particles.explicit_weight
    return type(particles).from_fields(  # the record's own class: backends/ sits below it
        place(particles.coords, particle_sharding(mesh, particles.coords.ndim, axis)),
        place(particles.s, whole),
        place(particles.p0c, whole),
        place(particles.mc2, whole),
        place(particles.alive, particle_sharding(mesh, particles.alive.ndim, axis)),
        charge=particles.charge,
        weight=None if weight is None else place(
            weight, particle_sharding(mesh, weight.ndim, axis) if weight.ndim else whole),
    )
