"""``beamtrack.crosscheck``: per-backend deviations from NumPy."""

from __future__ import annotations

import pytest
from conftest import make_particles, random_beam

import beamtrack as bt


@pytest.mark.parametrize("method", ["bmad", "linear"])
def test_bundled_lattice_agrees_on_every_backend(method):
    line = bt.load(bt.EXAMPLE_LATTICE)
    particles = make_particles("numpy", random_beam(500, seed=5))
    results = bt.crosscheck(line, particles, method=method)
    assert set(results) == set(bt.backends.available()) - {"numpy"}
    for name, dev in results.items():
        assert dev.ok, dev
        assert dev.max_rel <= 1e-12, name
        assert dev.alive_mismatch == 0


def test_crosscheck_reports_lost_particles_consistently():
    line = bt.Beamline([bt.Drift("d", length=1.0)])
    beam = random_beam(10, seed=1)
    beam[0, 1] = 2.0  # px > 1 + pz: lost in the drift
    results = bt.crosscheck(line, make_particles("numpy", beam))
    assert all(d.ok and d.alive_mismatch == 0 for d in results.values())


def test_explicit_backend_list_and_unknown_backend():
    line = bt.load(bt.EXAMPLE_LATTICE)
    particles = make_particles("numpy", random_beam(10, seed=5))
    assert list(bt.crosscheck(line, particles, backends=["numpy"])) == ["numpy"]
    with pytest.raises(bt.backends.BackendUnavailableError, match="nonesuch"):
        bt.crosscheck(line, particles, backends=["nonesuch"])
