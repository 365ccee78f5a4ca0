"""The project's default backend, device and dtype (beamtrack.backends.defaults)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import backend_or_skip

import beamtrack as bt
from beamtrack import backends
from beamtrack.backends.defaults import DefaultsError, read_environment
from beamtrack.cli import build_parser, main

SIGMA = [5e-4, 5e-5, 5e-4, 5e-5, 1e-3, 1e-3]
REF = {"p0c": 1e9, "mc2": bt.electron.mc2}


@pytest.fixture(autouse=True)
def restore_defaults():
    before = bt.get_defaults()
    yield
    bt.set_defaults(**dataclasses.asdict(before))
    assert bt.get_defaults() == before


def every_generator() -> dict[str, bt.Particles]:
    """One beam from each way of creating particles from scratch, no backend given."""
    return {
        "gaussian_particles": bt.gaussian_particles(8, sigma=SIGMA, **REF),
        "from_twiss": bt.from_twiss(8, beta_x=4.0, beta_y=2.0, alpha_x=-0.5,
                                    emittance_x=1e-9, emittance_y=2e-9, sigma_pz=1e-3,
                                    **REF),
        "from_covariance": bt.from_covariance(8, covariance=np.diag(np.square(SIGMA)), **REF),
        "Particles.from_twiss": bt.Particles.from_twiss(8, beta_x=4.0, beta_y=2.0,
                                                        emittance_x=1e-9, emittance_y=1e-9,
                                                        **REF),
        "Particles(numbers)": bt.Particles(1e-3, 0.0, -2e-3, 0, 0.0, 1e-4, **REF),
        "Particles(lists)": bt.Particles([1e-3, 2e-3], 0.0, 0.0, 0.0, [0.0, 1.0], 0.0, **REF),
        "Particles(coords=lists)": bt.Particles(coords=[[0.0, 1e-3]] * 6, **REF),
    }


def test_built_in_defaults_are_numpy_float64():
    assert bt.get_defaults() == backends.Defaults("numpy", None, "float64")
    for name, beam in every_generator().items():
        assert beam.backend == "numpy", name
        assert beam.dtype == np.float64, name


@pytest.mark.parametrize("backend_name", ["torch", "jax", "array_api_strict"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_generator_follows_the_default(backend_name, dtype):
    backend = backend_or_skip(backend_name)
    previous = bt.set_defaults(backend=backend_name, dtype=dtype)
    assert previous.backend == "numpy"
    assert bt.get_defaults() == backends.Defaults(backend_name, None, dtype)
    reference = bt.gaussian_particles(8, sigma=SIGMA, **REF)  # the same seed: same numbers
    for name, beam in every_generator().items():
        assert beam.backend == backend_name, name
        assert beam.dtype == backend.resolve_dtype(dtype), name
        assert beam.p0c.dtype == beam.dtype and beam.alive.dtype == beam.xp.bool, name
    assert np.array_equal(backend.to_numpy(reference.coords),
                          bt.gaussian_particles(8, sigma=SIGMA, backend="numpy",
                                                dtype=dtype, **REF).coords)
    single = every_generator()["Particles(numbers)"]
    assert single.n == 1
    assert backend.to_numpy(single.coords)[:, 0].tolist() == pytest.approx(
        [1e-3, 0.0, -2e-3, 0.0, 0.0, 1e-4], rel=1e-7)


def test_explicit_arguments_win_over_the_defaults():
    backend_or_skip("torch")
    with bt.defaults(backend="torch", dtype="float32", device="meta"):
        beam = bt.gaussian_particles(4, sigma=SIGMA, backend="numpy", **REF)
        assert beam.backend == "numpy" and beam.dtype == np.float32  # the dtype is a default
        beam = bt.gaussian_particles(4, sigma=SIGMA, dtype="float64", device="cpu", **REF)
        assert str(beam.device) == "cpu" and str(beam.dtype) == "torch.float64"
        # Particles from arrays live where the arrays are
        assert bt.Particles(*np.zeros((6, 3)), **REF).backend == "numpy"
        assert bt.Particles.from_array(np.zeros((3, 6)), **REF).backend == "numpy"


def test_the_default_device_is_used_on_the_default_backend_only():
    backend_or_skip("torch")
    with bt.defaults(backend="torch", device="meta"):  # torch's device without data
        for name, beam in every_generator().items():
            assert str(beam.device) == "meta", name
            assert str(beam.p0c.device) == "meta" and str(beam.alive.device) == "meta", name
        assert bt.gaussian_particles(4, sigma=SIGMA, backend="numpy", **REF).backend == "numpy"
    # changing the backend resets the device to that backend's default
    bt.set_defaults(backend="torch", device="meta")
    bt.set_defaults(backend="numpy")
    assert bt.get_defaults().device is None


def test_jax_device_names_become_jax_devices():
    jax_backend = backend_or_skip("jax")
    with bt.defaults(backend="jax", device="cpu:0"):
        beam = bt.gaussian_particles(4, sigma=SIGMA, **REF)
    assert beam.device == jax_backend.module().devices("cpu")[0]
    with bt.defaults(backend="jax", device="cpu:99"), pytest.raises(DefaultsError,
                                                                    match="device 'cpu:99'"):
        bt.gaussian_particles(4, sigma=SIGMA, **REF)


def test_context_manager_restores_on_exit_and_on_exception():
    backend_or_skip("torch")
    start = bt.get_defaults()
    with bt.defaults(backend="torch") as inside:
        assert bt.get_defaults() == inside == backends.Defaults("torch", None, "float64")
        with bt.defaults(dtype="float32"):  # nests, inherits the backend
            assert bt.get_defaults() == backends.Defaults("torch", None, "float32")
        assert bt.get_defaults() == inside
    assert bt.get_defaults() == start
    with pytest.raises(ZeroDivisionError), bt.defaults(backend="torch", dtype="float32"):
        assert bt.gaussian_particles(2, sigma=SIGMA, **REF).backend == "torch"
        1 / 0  # noqa: B018
    assert bt.get_defaults() == start
    assert bt.gaussian_particles(2, sigma=SIGMA, **REF).backend == "numpy"
    with bt.defaults(dtype="float32"):
        bt.set_defaults(backend="torch")  # takes effect when the block ends
        assert bt.get_defaults() == backends.Defaults("numpy", None, "float32")
    assert bt.get_defaults() == backends.Defaults("torch", None, "float64")


def test_a_block_applies_to_its_own_thread_and_set_defaults_to_all():
    backend_or_skip("torch")
    seen = {}

    def other() -> None:
        seen["backend"] = bt.gaussian_particles(2, sigma=SIGMA, **REF).backend

    with bt.defaults(backend="torch"):
        worker = threading.Thread(target=other)
        worker.start()
        worker.join()
    assert seen["backend"] == "numpy"
    bt.set_defaults(backend="torch")
    worker = threading.Thread(target=other)
    worker.start()
    worker.join()
    assert seen["backend"] == "torch"


def test_tracking_follows_the_data_not_the_defaults():
    backend_or_skip("torch")
    line = bt.load(bt.EXAMPLE_LATTICE)
    numpy_beam = bt.gaussian_particles(16, sigma=SIGMA, reference=line.reference)
    expected = line.track(numpy_beam)
    with bt.defaults(backend="torch", dtype="float32", device="meta"):
        out = line.track(numpy_beam)
        quad = bt.track_quadrupole(numpy_beam, length=0.2, k1=1.5)  # numbers as parameters
    assert out.backend == "numpy" and out.dtype == np.float64
    assert np.array_equal(out.coords, expected.coords)
    assert quad.backend == "numpy" and quad.dtype == np.float64


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"backend": "tensorflow"}, ["default backend", "'tensorflow'", "numpy, torch"]),
        ({"backend": 3}, ["default backend"]),
        ({"dtype": "int32"}, ["default dtype", "float64, float32", "'int32'"]),
        ({"dtype": "float16"}, ["default dtype"]),
        ({"device": "cuda 1"}, ["default device", "'cuda 1'"]),
        ({"device": 1.5}, ["default device"]),
    ],
)
def test_bad_values_raise_naming_the_setting(settings, words):
    before = bt.get_defaults()
    with pytest.raises(DefaultsError) as info:
        bt.set_defaults(**settings)
    for word in words:
        assert word in str(info.value)
    with pytest.raises(DefaultsError), bt.defaults(**settings):
        pass  # pragma: no cover - never entered
    assert bt.get_defaults() == before  # nothing changed
    assert isinstance(info.value, ValueError) and isinstance(info.value, backends.BackendError)


def test_dtype_objects_are_accepted():
    torch = backend_or_skip("torch").module()
    assert bt.set_defaults(dtype=np.float32) is not None
    assert bt.get_defaults().dtype == "float32"
    bt.set_defaults(dtype=torch.float64)
    assert bt.get_defaults().dtype == "float64"
    bt.set_defaults(dtype=None)
    assert bt.get_defaults().dtype == "float64"


def installed_backends() -> list[str]:
    """Names of the backends whose library is installed (usable or not)."""
    names = []
    for name in backends.KNOWN:
        try:
            backends.get(name)
        except backends.BackendUnavailableError:
            continue
        names.append(name)
    return names


def test_environment_values_are_validated_naming_the_variable():
    assert read_environment({}) == backends.Defaults()
    assert read_environment({"BEAMTRACK_BACKEND": " ", "BEAMTRACK_DTYPE": ""}) == (
        backends.Defaults())
    assert read_environment({"BEAMTRACK_DEVICE": "1"}).device == 1
    for variable, value in (("BEAMTRACK_BACKEND", "tensorflow"),
                            ("BEAMTRACK_DTYPE", "double"),
                            ("BEAMTRACK_DEVICE", "gpu 0")):
        with pytest.raises(DefaultsError, match=f"environment variable {variable}"):
            read_environment({variable: value})
    for name in set(backends.KNOWN) - set(installed_backends()):  # cupy here, say
        with pytest.raises(DefaultsError, match="environment variable BEAMTRACK_BACKEND"):
            read_environment({"BEAMTRACK_BACKEND": name})


def test_cli_backend_option_follows_the_default(capsys):
    backend_or_skip("torch")
    assert build_parser().parse_args(["track"]).backend == "numpy"
    with bt.defaults(backend="torch"):
        assert build_parser().parse_args(["track"]).backend == "torch"
        assert build_parser().parse_args(["track", "--backend", "numpy"]).backend == "numpy"
        assert main(["track", "--particles", "8"]) == 0
    assert "backend torch" in capsys.readouterr().out


ENV_SCRIPT = """
import json, sys
import beamtrack as bt
report = {"loaded_at_import": [m for m in ("torch", "jax") if m in sys.modules]}
beam = bt.gaussian_particles(4, sigma=[1e-3] * 6, p0c=1e9, mc2=bt.electron.mc2)
single = bt.Particles(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, p0c=1e9, mc2=bt.electron.mc2)
import jax
from beamtrack.cli import build_parser
report.update(beam=[beam.backend, str(beam.dtype), str(beam.device)],
              single=[single.backend, str(single.dtype)],
              cli=build_parser().parse_args(["track"]).backend,
              x64=bool(jax.config.read("jax_enable_x64")), cpu0=str(jax.devices("cpu")[0]))
if sys.argv[1] == "set":  # set_defaults with JAX and float64 switches float64 on at once
    bt.set_defaults(dtype="float64")
    report["x64_after_set"] = bool(jax.config.read("jax_enable_x64"))
    report["double"] = str(bt.gaussian_particles(4, sigma=[1e-3] * 6, p0c=1e9, mc2=1.0).dtype)
print(json.dumps(report))
"""


def run_python(*args: str, **environment: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("BEAMTRACK_") and k != "JAX_ENABLE_X64"}
    env.update(environment)
    return subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_environment_variables_set_the_defaults_of_a_script():
    backend_or_skip("jax")
    done = run_python(ENV_SCRIPT, "set", BEAMTRACK_BACKEND="jax", BEAMTRACK_DTYPE="float32",
                      BEAMTRACK_DEVICE="cpu:0")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    cpu0 = report.pop("cpu0")
    assert report == {
        "loaded_at_import": [],  # reading the variables imports no array library
        "beam": ["jax", "float32", cpu0],
        "single": ["jax", "float32"],
        "cli": "jax",
        "x64": False,  # float32 asked for: JAX's float64 flag is left alone
        "x64_after_set": True,
        "double": "float64",
    }


def test_jax_float64_default_from_the_environment_switches_float64_on():
    """beamtrack never computes in float32 when float64 is the default (JAX's flag)."""
    backend_or_skip("jax")
    done = run_python(ENV_SCRIPT, "env", BEAMTRACK_BACKEND="jax")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["loaded_at_import"] == []
    assert report["beam"][:2] == ["jax", "float64"]  # switched on at the first beam
    assert report["single"] == ["jax", "float64"]
    assert report["x64"] is True


def test_a_bad_environment_variable_fails_at_import_naming_it():
    done = run_python("import beamtrack", BEAMTRACK_DTYPE="float16")
    assert done.returncode != 0
    assert "DefaultsError: environment variable BEAMTRACK_DTYPE" in done.stderr


def test_optics_follow_the_default():
    backend_or_skip("torch")
    line = bt.load(bt.EXAMPLE_LATTICE)
    with bt.defaults(backend="torch"):
        assert type(bt.twiss(line).beta_x).__module__ == "torch"
        assert type(bt.transfer_map(line)[0]).__module__ == "torch"
