"""The segmented scan that tracks beamlines under JAX transformations."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_particles, random_beam

import beamtrack as bt
from beamtrack.backends.jax_scan import find_cells

BEAM = random_beam(16, seed=3, scale=1e-3)


def test_find_cells_takes_the_longest_covering_repeat():
    # a b (c d e)x4 f (g)x5 h
    kinds = [0, 1] + [2, 3, 4] * 4 + [5] + [6] * 5 + [7]
    assert find_cells(kinds) == [(2, 3, 4), (15, 1, 5)]
    # Repeats below the minimum stay with the switch scan.
    assert find_cells([0, 1, 0, 1, 2]) == []
    # A uniform line is one cell of one element.
    assert find_cells([4] * 10) == [(0, 1, 10)]
    # The body budget keeps the cells that cover most elements.
    assert find_cells(list(range(5)) * 3 + list(range(10, 12)) * 9, max_bodies=4) == [
        (15, 2, 9)]


def mixed_line() -> bt.Beamline:
    """Irregular start, repeated cells, a different repeated cell, irregular end."""
    items = [bt.Marker("start"), bt.SBend("b0", length=0.5, angle=0.02, e1=0.01),
             bt.Drift("d0", length=0.3)]
    for i in range(4):
        items += [bt.Quadrupole(f"qf{i}", length=0.2, k1=1.1 + 0.01 * i),
                  bt.Drift(f"da{i}", length=0.8), bt.Sextupole(f"s{i}", length=0.1, k2=5.0),
                  bt.Quadrupole(f"qd{i}", length=0.2, k1=-1.1, x_offset=1e-4 * i),
                  bt.Drift(f"db{i}", length=0.8), bt.Monitor(f"bpm{i}")]
    items += [bt.HKicker(f"hk{i}", kick=1e-5 * i) for i in range(3)]
    items += [bt.Solenoid("sol", length=0.5, ks=0.3), bt.Drift("end", length=0.2)]
    return bt.Beamline(items)


@pytest.mark.parametrize("method", ["bmad", "linear"])
def test_jit_and_gradient_of_a_segmented_line_equal_eager(method):
    jax = pytest.importorskip("jax")
    line = mixed_line()
    particles = make_particles("jax", BEAM)
    eager = make_particles("numpy", BEAM)
    expected = np.asarray(line.track(eager, method).coords)
    got = np.asarray(jax.jit(lambda ln, p: ln.track(p, method))(line, particles).coords)
    scale = np.abs(expected).max(axis=-1, keepdims=True)
    assert np.max(np.abs(got - expected) / scale) < 1e-13
    if method == "linear":
        return  # gradients of "linear" maps are tested element by element elsewhere

    keys = ["qf1.k1", "qd3.x_offset", "b0.angle", "hk2.kick", "sol.ks"]

    def loss(params):
        out = line.with_parameters(params).track(particles, method)
        return bt.beam_statistics(out)["sigma_x"]

    point = {k: v for k, v in line.parameters().items() if k in keys}
    grad = jax.jit(jax.grad(loss))({k: jax.numpy.asarray(v) for k, v in point.items()})
    jitted = jax.jit(loss)
    fd = bt.backends.central_difference_gradient(
        lambda p: jitted({k: jax.numpy.asarray(v) for k, v in p.items()}), point, step=1e-6)
    for key in keys:
        assert float(grad[key]) == pytest.approx(fd[key], rel=1e-6, abs=1e-12), key


def test_aligned_elements_and_shared_host_values_are_constants_of_the_body():
    pytest.importorskip("jax")
    from beamtrack.backends.jax_scan import _columns, _signature

    aligned = bt.Quadrupole("qa", length=0.2, k1=1.0)
    offset = bt.Quadrupole("qb", length=0.2, k1=1.0, x_offset=1e-4)
    # Aligned and misaligned magnets of one kind get different bodies.
    assert _signature(aligned, "bmad") != _signature(offset, "bmad")
    assert _signature(aligned, "bmad") == _signature(aligned.replace(k1=2.0), "bmad")
    constants, stacked = _columns([aligned, aligned.replace(k1=2.0)], "float64")
    keys = list(aligned.arrays())
    by_key = dict(zip(keys, constants))
    # Shared host values are Python numbers (as the unrolled line passes them); only
    # the strength that differs is stacked.
    assert by_key["length"] == 0.2 and isinstance(by_key["length"], float)
    assert all(by_key[k] == 0.0 and isinstance(by_key[k], float)
               for k in ("x_offset", "y_offset", "tilt"))
    assert by_key["k1"] is None and len(stacked) == 1
    np.testing.assert_array_equal(np.asarray(stacked[0]), [1.0, 2.0])


def test_jit_of_a_closed_over_line_with_aligned_and_misaligned_magnets_equals_eager():
    jax = pytest.importorskip("jax")
    line = mixed_line()  # qd0 is aligned, qd1..qd3 are offset
    particles = make_particles("jax", BEAM)
    expected = np.asarray(line.track(make_particles("numpy", BEAM)).coords)
    got = np.asarray(jax.jit(lambda p: line.track(p).coords)(particles))
    scale = np.abs(expected).max(axis=-1, keepdims=True)
    assert np.max(np.abs(got - expected) / scale) < 1e-13
