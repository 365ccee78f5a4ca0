"""Particles sharded over several JAX devices: the same results and gradients as one.

JAX fixes its device count when it starts, so the check runs in a fresh Python process
with four CPU devices (``--xla_force_host_platform_device_count=4``) and float64.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("jax")

SCRIPT = textwrap.dedent(
    """
    import json

    import jax
    import numpy as np

    import beamtrack as bt
    from beamtrack.backends import BackendError
    from beamtrack.backends.jax_sharding import particle_mesh, shard_particles

    assert jax.config.read("jax_enable_x64") and len(jax.devices()) == 4
    line = bt.Beamline([
        bt.Drift("d0", length=0.4),
        bt.Quadrupole("qf", length=0.2, k1=1.5, x_offset=1e-4),
        bt.Drift("d1", length=0.5),
        bt.Aperture("ap", x_limit=1.2e-3, y_limit=1.2e-3),
    ])
    beam = bt.gaussian_particles(
        64, sigma=[5e-4, 5e-5, 5e-4, 5e-5, 1e-3, 1e-3], p0c=1e9, mc2=bt.electron.mc2,
        seed=5)                                     # NumPy: shard_particles moves it
    single = beam.to_backend("jax")
    sharded = shard_particles(beam)
    report = {
        "coords_shards": len(sharded.coords.addressable_shards),
        "coords_spec": list(sharded.coords.sharding.spec),
        "alive_spec": list(sharded.alive.sharding.spec),
        "p0c_replicated": bool(sharded.p0c.sharding.is_fully_replicated),
        "input_equal": bool(np.array_equal(np.asarray(sharded.coords), beam.coords)),
    }

    def loss(params, particles):
        out = line.with_parameters(params).track(particles)
        weight = out.alive.astype(out.x.dtype)
        value = jax.numpy.sum((out.x**2 + out.y**2) * weight) / jax.numpy.sum(weight)
        return value, out

    step = jax.jit(jax.value_and_grad(loss, has_aux=True))
    params = {"qf.k1": jax.numpy.asarray(1.5), "d1.length": jax.numpy.asarray(0.5)}
    (value_1, out_1), grad_1 = step(params, single)
    (value_4, out_4), grad_4 = step(params, sharded)
    report["out_spec"] = list(out_4.coords.sharding.spec)
    report["lost"] = int(64 - np.sum(np.asarray(out_1.alive)))
    report["alive_equal"] = bool(np.array_equal(np.asarray(out_1.alive),
                                                np.asarray(out_4.alive)))
    scale = np.max(np.abs(np.asarray(out_1.coords)), axis=-1, keepdims=True)
    report["coords_dev"] = float(np.max(
        np.abs(np.asarray(out_4.coords) - np.asarray(out_1.coords)) / scale))
    report["value_dev"] = abs(float(value_4) / float(value_1) - 1.0)
    report["grad_dev"] = max(abs(float(grad_4[k]) / float(grad_1[k]) - 1.0) for k in params)
    report["grad_nonzero"] = all(float(grad_1[k]) != 0.0 for k in params)
    # statistics of the sharded result (sums over particles reduce across devices)
    stats_1 = bt.beam_statistics(out_1)
    stats_4 = bt.beam_statistics(out_4)
    report["stats_dev"] = max(
        abs(float(stats_4[k]) - float(stats_1[k])) / max(abs(float(stats_1[k])), 1e-300)
        for k in ("mean_x", "sigma_x", "sigma_y", "emittance_x", "n_alive"))
    try:
        shard_particles(bt.gaussian_particles(10, sigma=[1e-3] * 6, p0c=1e9, mc2=1.0))
    except BackendError as error:
        report["uneven"] = str(error)
    try:
        shard_particles(beam, mesh=particle_mesh(axis="batch"))
    except BackendError as error:
        report["no_axis"] = str(error)
    print("REPORT", json.dumps(report))
    """
)


def test_sharded_tracking_and_gradients_equal_one_device():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4")
    env["JAX_ENABLE_X64"] = "1"
    env["JAX_PLATFORMS"] = "cpu"
    for variable in ("BEAMTRACK_BACKEND", "BEAMTRACK_DEVICE", "BEAMTRACK_DTYPE"):
        env.pop(variable, None)
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(t for t in done.stdout.splitlines() if t.startswith("REPORT "))
    report = json.loads(line[len("REPORT "):])
    assert report["coords_shards"] == 4
    assert report["coords_spec"] == [None, "particles"]
    assert report["alive_spec"] == ["particles"]
    assert report["out_spec"] == [None, "particles"]  # the result stays sharded
    assert report["p0c_replicated"]
    assert report["input_equal"]
    assert report["lost"] > 0  # the aperture takes some particles: alive is sharded too
    assert report["alive_equal"]
    assert report["coords_dev"] <= 1e-15
    assert report["value_dev"] <= 1e-15
    assert report["grad_nonzero"]
    # The gradient and the beam statistics sum over particles in four partial sums (one
    # per device) instead of one: a different rounding order, a few float64 ulp (seen:
    # 1.3e-15 and 1.5e-15 relative).
    assert report["grad_dev"] <= 4e-15
    assert report["stats_dev"] <= 4e-15
    assert "do not split evenly over 4 devices" in report["uneven"]
    assert "no axis 'particles'" in report["no_axis"]
