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
