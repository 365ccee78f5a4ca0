"""Gradients of a beam-size loss after a FODO: torch and jax vs central finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_particles, random_beam

import beamtrack as bt

BEAM = random_beam(64, seed=11, scale=1e-3)
POINT = {"k1": 2.3, "length": 0.9}


def fodo(k1, length) -> bt.Beamline:
    return bt.Beamline([
        bt.Quadrupole("qf", length=0.2, k1=k1, x_offset=1e-4, tilt=0.02),
        bt.Drift("d1", length=length),
        bt.Quadrupole("qd", length=0.2, k1=-2.0, num_steps=3),
        bt.Drift("d2", length=1.0),
    ])


def loss(particles: bt.Particles, k1, length, method: str):
    out = fodo(k1, length).track(particles, method=method)
    stats = bt.beam_statistics(out)
    return stats["sigma_x"] + 0.5 * stats["sigma_y"]


def numpy_loss(k1: float, length: float, method: str) -> float:
    return float(loss(make_particles("numpy", BEAM), k1, length, method))


def central_differences(method: str) -> np.ndarray:
    """Fourth-order central differences with step 1e-4 (truncation ~1e-16 relative)."""
    grads = []
    for name in ("k1", "length"):
        h = 1e-4
        def f(delta, name=name):
            point = dict(POINT)
            point[name] += delta
            return numpy_loss(point["k1"], point["length"], method)
        grads.append((-f(2 * h) + 8 * f(h) - 8 * f(-h) + f(-2 * h)) / (12 * h))
    return np.array(grads)


def autodiff_gradient(backend: bt.backends.Backend, method: str) -> np.ndarray:
    particles = make_particles(backend.name, BEAM)

    def f(params):
        return loss(particles, params[0], params[1], method)

    _, grad = backend.value_and_grad(f)(backend.asarray([POINT["k1"], POINT["length"]]))
    return backend.to_numpy(grad)


@pytest.mark.parametrize("method", ["bmad", "linear"])
def test_gradient_matches_finite_differences(ad, method):
    expected = central_differences(method)
    got = autodiff_gradient(ad, method)
    assert np.all(np.abs(expected) > 1e-6)  # a gradient that could be wrong
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=0)


@pytest.mark.parametrize("method", ["bmad", "linear"])
def test_torch_and_jax_gradients_agree(method):
    torch_grad = autodiff_gradient(bt.backends.get("torch"), method)
    pytest.importorskip("jax")
    jax_grad = autodiff_gradient(bt.backends.get("jax"), method)
    np.testing.assert_allclose(torch_grad, jax_grad, rtol=1e-12, atol=0)


def test_torch_backward_through_replace():
    torch = pytest.importorskip("torch")
    k1 = torch.tensor(POINT["k1"], dtype=torch.float64, requires_grad=True)
    particles = make_particles("torch", BEAM)
    value = loss(particles, k1, POINT["length"], "bmad")
    value.backward()
    expected = central_differences("bmad")[0]
    assert k1.grad.item() == pytest.approx(expected, rel=1e-8)


def test_numpy_has_no_gradient():
    with pytest.raises(bt.backends.NoAutodiffError, match="torch"):
        bt.backends.get("numpy").value_and_grad(lambda x: x)
