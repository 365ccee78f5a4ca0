"""openPMD beamphysics files: the absolute-momentum conversions, round trips, and
interchange with openPMD-beamphysics' ParticleGroup."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import beamtrack as bt
from beamtrack.tracking.conventions import from_openpmd, to_openpmd

h5py = pytest.importorskip("h5py", reason="h5py not installed")
openpmd = pytest.importorskip("beamtrack.lattice.io.openpmd")

C_LIGHT = 299792458.0


def particle_group_class():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from beamphysics import ParticleGroup
        except ImportError:
            module = pytest.importorskip("pmd_beamphysics",
                                         reason="openpmd-beamphysics not installed")
            ParticleGroup = module.ParticleGroup
    return ParticleGroup


def beam(n: int = 50, p0c: float = 5e6, s: float = 2.5, lost: bool = True) -> bt.Particles:
    rng = np.random.default_rng(3)
    coords = rng.normal(size=(6, n)) * np.array([1e-3, 1e-3, 2e-3, 1e-3, 1e-3, 1e-2])[:, None]
    alive = rng.random(n) > 0.2 if lost else None
    return bt.Particles(coords=coords, p0c=p0c, mc2=bt.electron.mc2, s=s, alive=alive)


# -- the conversion -----------------------------------------------------------------------
def test_absolute_coordinates_follow_from_the_definitions():
    p0c, mc2 = 3e6, bt.electron.mc2
    px, py, pz, z = 1e-3, -2e-3, 0.05, 1e-3
    p = bt.Particles(*(np.array([v]) for v in (0.0, px, 0.0, py, z, pz)), p0c=p0c, mc2=mc2)
    out = {k: float(v[0]) for k, v in to_openpmd(p, t_ref=1e-9).items()}
    momentum = (1 + pz) * p0c
    assert out["px"] == pytest.approx(px * p0c, rel=1e-15)
    assert out["py"] == pytest.approx(py * p0c, rel=1e-15)
    assert math.hypot(out["px"], out["py"], out["pz"]) == pytest.approx(momentum, rel=1e-15)
    velocity = momentum / math.hypot(momentum, mc2) * C_LIGHT
    assert out["t"] == pytest.approx(1e-9 - z / velocity, rel=1e-15)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_conversion_round_trips_both_ways(backend):
    if backend == "torch":
        pytest.importorskip("torch", reason="torch not installed")
    p = beam(lost=False).to_backend(backend) if backend != "numpy" else beam(lost=False)
    d = to_openpmd(p, t_ref=2e-9)
    q = from_openpmd(d["x"], d["px"], d["y"], d["py"], d["pz"], d["t"], p0c=p.p0c, mc2=p.mc2,
                     t_ref=2e-9, s=p.s)
    np.testing.assert_allclose(np.asarray(q.numpy().coords), np.asarray(p.numpy().coords),
                               rtol=0, atol=2e-15)
    again = to_openpmd(q, t_ref=2e-9)
    for key in d:
        np.testing.assert_allclose(np.asarray(again[key]), np.asarray(d[key]), rtol=1e-14,
                                   atol=0)


# -- files ----------------------------------------------------------------------------------
def test_round_trip_keeps_coordinates_status_and_s(tmp_path):
    p = beam()
    path = tmp_path / "beam.h5"
    openpmd.save_particles(p, path, weights=np.full(p.n, 2e-15))
    info = openpmd.read_particle_file(path)
    q = info.particles
    np.testing.assert_allclose(q.coords, p.coords, rtol=0, atol=1e-15)
    assert np.array_equal(q.alive, p.alive)
    assert float(q.s) == 2.5 and float(q.p0c) == 5e6 and float(q.mc2) == bt.electron.mc2
    assert info.species == bt.electron
    np.testing.assert_array_equal(info.weights, np.full(p.n, 2e-15))


def test_load_into_torch_and_given_p0c(tmp_path):
    torch = pytest.importorskip("torch", reason="torch not installed")
    p = beam(lost=False)
    path = tmp_path / "beam.h5"
    openpmd.save_particles(p, path)
    q = openpmd.load_particles(path, backend="torch", p0c=4e6)
    assert isinstance(q.coords, torch.Tensor)
    np.testing.assert_allclose(q.numpy().px, p.px * 5e6 / 4e6, rtol=1e-14)


def test_our_file_reads_in_particle_group_with_the_same_physics(tmp_path):
    ParticleGroup = particle_group_class()
    p = beam()
    path = tmp_path / "beam.h5"
    openpmd.save_particles(p, path, species="electron")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        group = ParticleGroup(str(path))
    assert group.species == "electron"
    np.testing.assert_allclose(group.x, p.x, rtol=0, atol=0)
    np.testing.assert_allclose(group.px, p.px * 5e6, rtol=1e-15)
    np.testing.assert_allclose(group.z, 2.5)
    momentum = (1 + p.pz) * 5e6
    np.testing.assert_allclose(np.sqrt(group.px**2 + group.py**2 + group.pz**2), momentum,
                               rtol=1e-14)
    velocity = momentum / np.hypot(momentum, bt.electron.mc2) * C_LIGHT
    np.testing.assert_allclose(group.t, -p.z / velocity, rtol=1e-13, atol=1e-30)
    np.testing.assert_array_equal(group.status, np.where(p.alive, 1, 0))
    np.testing.assert_allclose(group.weight, 1.602176634e-19)  # one electron per macro-particle


def test_particle_group_file_loads(tmp_path):
    ParticleGroup = particle_group_class()
    n = 20
    rng = np.random.default_rng(1)
    data = {"x": rng.normal(size=n) * 1e-3, "y": rng.normal(size=n) * 1e-3,
            "z": np.full(n, 0.7), "px": rng.normal(size=n) * 1e3, "py": rng.normal(size=n) * 1e3,
            "pz": 1e8 + rng.normal(size=n) * 1e5, "t": rng.normal(size=n) * 1e-12,
            "status": np.where(np.arange(n) == 3, 2, 1), "weight": np.full(n, 1e-13),
            "species": "proton"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ParticleGroup(data=data).write(str(tmp_path / "pg.h5"))
    info = openpmd.read_particle_file(tmp_path / "pg.h5")
    q = info.particles
    assert info.species == bt.proton and float(q.s) == 0.7
    alive = data["status"] == 1
    total = np.sqrt(data["px"] ** 2 + data["py"] ** 2 + data["pz"] ** 2)
    p0c = total[alive].mean()
    assert float(q.p0c) == pytest.approx(p0c, rel=1e-15)
    np.testing.assert_allclose(q.px, data["px"] / p0c, rtol=1e-15)
    np.testing.assert_allclose(q.pz, total / p0c - 1, rtol=0, atol=1e-15)
    velocity = total / np.hypot(total, bt.proton.mc2) * C_LIGHT
    t_ref = data["t"][alive].mean()
    np.testing.assert_allclose(q.z, -velocity * (data["t"] - t_ref), rtol=1e-12, atol=1e-20)
    assert list(np.asarray(q.alive)) == list(alive)


def test_fixed_time_file_is_refused(tmp_path):
    ParticleGroup = particle_group_class()
    n = 5
    data = {"x": np.zeros(n), "y": np.zeros(n), "z": np.linspace(0, 1e-3, n),
            "px": np.zeros(n), "py": np.zeros(n), "pz": np.full(n, 1e9), "t": np.zeros(n),
            "status": np.ones(n, dtype=int), "weight": np.full(n, 1e-13), "species": "electron"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ParticleGroup(data=data).write(str(tmp_path / "t.h5"))
    with pytest.raises(bt.LatticeFileError, match="position/z.*fixed time"):
        openpmd.load_particles(tmp_path / "t.h5")


def test_species_inference_and_positrons(tmp_path):
    p = beam(lost=False)
    openpmd.save_particles(p, tmp_path / "e.h5", species="positron")
    assert openpmd.read_particle_file(tmp_path / "e.h5").species == bt.positron
    with h5py.File(tmp_path / "e.h5") as f:
        group = f["data/0/particles/positron"]
        assert group["chargeState"].attrs["value"] == 1.0
    with pytest.raises(bt.ParameterError, match="mc2"):
        openpmd.save_particles(p, tmp_path / "x.h5", species="proton")


def test_batched_particles_are_refused(tmp_path):
    p = bt.Particles(coords=np.zeros((2, 6, 3)), p0c=1e9, mc2=bt.electron.mc2)
    with pytest.raises(bt.ParameterError, match="one beam per file"):
        openpmd.save_particles(p, tmp_path / "b.h5")


def test_bad_files_name_file_and_dataset(tmp_path):
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(bt.LatticeFileError, match="text.h5"):
        openpmd.load_particles(tmp_path / "text.h5")
    path = tmp_path / "beam.h5"
    openpmd.save_particles(beam(lost=False), path)
    with h5py.File(path, "a") as f:
        del f["data/0/particles/electron/momentum/x"]
    with pytest.raises(bt.LatticeFileError, match="momentum/x: dataset missing"):
        openpmd.load_particles(path)
    openpmd.save_particles(beam(lost=False), path)
    with h5py.File(path, "a") as f:
        f["data/0/particles/electron/mass"].attrs["value"] = 1.0
    with pytest.raises(bt.LatticeFileError, match="mass"):
        openpmd.load_particles(path)
