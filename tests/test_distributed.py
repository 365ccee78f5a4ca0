"""Parameter scans on a local Dask cluster equal a plain loop."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import beamtrack as bt
from beamtrack.distributed import scan_parameters

distributed = pytest.importorskip(
    "dask.distributed", reason="dask[distributed] is not installed (the `distributed` extra)"
)

LINE = bt.Beamline(
    [bt.Drift("d0", length=0.5), bt.Quadrupole("qf", length=0.2, k1=1.2),
     bt.Beamline([bt.Drift("d1", length=0.6), bt.Quadrupole("qd", length=0.2, k1=-1.1)],
                 name="inner"),
     bt.Aperture("ap", x_limit=2e-3, y_limit=2e-3)],
    name="scan", reference=bt.Reference(bt.electron, 1e9),
)
BEAM = bt.gaussian_particles(200, sigma=[5e-4, 5e-5, 5e-4, 5e-5, 1e-3, 1e-3],
                             reference=LINE.reference, seed=2, backend="numpy")
GRID = [{"qf.k1": k1, "qd.k1": -k1, "d1.length": 0.4 + 0.01 * i}
        for i, k1 in enumerate(np.linspace(0.5, 3.0, 23))]


def sigma_x(out: bt.Particles) -> float:
    return float(bt.beam_statistics(out)["sigma_x"])


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                       dashboard_address=None)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def test_scan_equals_a_plain_loop(client):
    expected = [sigma_x(LINE.with_parameters(v).track(BEAM)) for v in GRID]
    assert len(set(expected)) == len(GRID)  # every set gives its own result
    assert scan_parameters(LINE, GRID, BEAM, sigma_x, client=client) == expected
    # any chunking, and the current client by default
    assert scan_parameters(LINE, GRID, BEAM, sigma_x, chunk_size=5) == expected
    assert scan_parameters(LINE, GRID, BEAM, sigma_x, client=client, chunk_size=100) == expected
    assert scan_parameters(LINE, [], BEAM, sigma_x, client=client) == []


def test_scan_returns_particles_and_takes_the_method(client):
    values = GRID[:3]
    got = scan_parameters(LINE, values, BEAM, lambda out: out, client=client, method="linear")
    for v, out in zip(values, got):
        expected = LINE.with_parameters(v).track(BEAM, "linear")
        assert np.array_equal(out.coords, expected.coords)
        assert np.array_equal(out.alive, expected.alive)


def test_bad_chunk_size_raises(client):
    with pytest.raises(ValueError, match="chunk_size"):
        scan_parameters(LINE, GRID, BEAM, sigma_x, client=client, chunk_size=0)


def test_beamlines_and_particles_pickle_for_process_workers():
    """Workers in other processes or machines receive the line and beam by pickle."""
    line = pickle.loads(pickle.dumps(LINE))
    beam = pickle.loads(pickle.dumps(BEAM))
    assert line.names() == LINE.names() and line.reference == LINE.reference
    assert np.array_equal(line.track(beam).coords, LINE.track(BEAM).coords)
