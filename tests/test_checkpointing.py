"""Gradient checkpointing: the same results and gradients with less saved memory."""

from __future__ import annotations

import numpy as np
import pytest

import beamtrack as bt
from beamtrack.backends import checkpointing

SIGMA = [1e-3, 1e-4, 1e-3, 1e-4, 1e-3, 1e-3]


def fodo(cells: int = 5, misaligned: bool = True) -> bt.Beamline:
    items: list[bt.Element] = []
    for i in range(cells):
        offset = 1e-4 * (i % 3) if misaligned else 0.0
        items += [bt.Quadrupole(f"qf{i}", length=0.2, k1=1.2, x_offset=offset),
                  bt.Drift(f"da{i}", length=1.0),
                  bt.Quadrupole(f"qd{i}", length=0.2, k1=-1.2, tilt=offset),
                  bt.Drift(f"db{i}", length=1.0), bt.Monitor(f"m{i}")]
    return bt.Beamline(items)


def torch_run(line, beam, method, checkpoint, keys=("*.k1",)):
    """Final coordinates, gradient of a loss and the bytes saved for backward."""
    torch = pytest.importorskip("torch")
    from torch.autograd.graph import saved_tensors_hooks

    params = {}
    for pattern in keys:
        params.update({k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
                       for k, v in line.parameters(pattern).items()})
    held = []

    def pack(t):
        held.append(t)
        return t

    with saved_tensors_hooks(pack, lambda t: t):
        out = line.with_parameters(params).track(beam, method, checkpoint=checkpoint)
        loss = bt.beam_statistics(out)["sigma_x"] + (out.s * out.s).sum()
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in held}
    grads = torch.autograd.grad(loss, list(params.values()))
    return (out.coords.detach().numpy(), np.array([float(g) for g in grads]),
            sum(storages.values()))


@pytest.mark.parametrize("method", ["bmad", "linear"])
def test_torch_checkpointing_gives_the_same_results_and_saves_less(method):
    pytest.importorskip("torch")
    line = fodo()
    beam = bt.gaussian_particles(300, sigma=SIGMA, p0c=1e9, mc2=bt.electron.mc2,
                                 backend="torch", seed=1)
    keys = ("*.k1", "da1.length", "qf2.x_offset")
    plain_coords, plain_grad, plain_bytes = torch_run(line, beam, method, False, keys)
    ck_coords, ck_grad, ck_bytes = torch_run(line, beam, method, True, keys)
    np.testing.assert_array_equal(ck_coords, plain_coords)
    np.testing.assert_allclose(ck_grad, plain_grad, rtol=1e-14, atol=1e-300)
    assert np.all(np.isfinite(plain_grad)) and np.any(plain_grad != 0.0)
    # Bytes of the tensors saved for backward, counted by the saved-tensor hooks
    # (deterministic: the same tensors on every machine).
    assert ck_bytes < plain_bytes / 2


def test_torch_automatic_switch(monkeypatch):
    torch = pytest.importorskip("torch")
    line = fodo(3)
    beam = bt.gaussian_particles(50, sigma=SIGMA, p0c=1e9, mc2=bt.electron.mc2,
                                 backend="torch", seed=2)
    elements = len(line.plan())
    size = 50 * elements
    assert checkpointing.wanted(None, beam, elements) == (
        size >= checkpointing.AUTO_CHECKPOINT_SIZE)
    assert checkpointing.wanted(True, beam, elements) is True
    assert checkpointing.wanted(False, beam, elements) is False
    with pytest.raises(TypeError, match="checkpoint"):
        line.track(beam, checkpoint="yes")

    k1 = torch.tensor(1.2, dtype=torch.float64, requires_grad=True)
    varied = line.with_parameters({"qf1.k1": k1})

    def last_node(checkpoint):
        return type(varied.track(beam, checkpoint=checkpoint).coords.grad_fn).__name__

    plain = last_node(False)
    monkeypatch.setattr(checkpointing, "AUTO_CHECKPOINT_SIZE", size + 1)
    assert last_node(None) == plain
    monkeypatch.setattr(checkpointing, "AUTO_CHECKPOINT_SIZE", size)
    assert last_node(None) == last_node(True) != plain
    # Nothing to differentiate: plain tracking whatever the switch.
    with torch.no_grad():
        assert varied.track(beam, checkpoint=True).coords.grad_fn is None


def test_torch_checkpointing_under_compile_beamline():
    torch = pytest.importorskip("torch")
    from beamtrack.backends.torch_compile import compile_beamline

    line = bt.Beamline([bt.Drift("d0", length=0.5), bt.Quadrupole("q0", length=0.2, k1=1.1),
                        bt.Drift("d1", length=0.5), bt.Quadrupole("q1", length=0.2, k1=-1.1),
                        bt.Drift("d2", length=0.5)])
    beam = bt.gaussian_particles(64, sigma=SIGMA, p0c=1e9, mc2=bt.electron.mc2,
                                 backend="torch", seed=3)
    results = {}
    for checkpoint in (False, True):
        k1 = torch.tensor([1.1, -1.1], dtype=torch.float64, requires_grad=True)
        varied = line.with_parameters({"q0.k1": k1[0], "q1.k1": k1[1]})
        out = compile_beamline(varied, checkpoint=checkpoint)(beam)
        (grad,) = torch.autograd.grad(bt.beam_statistics(out)["sigma_x"], [k1])
        results[checkpoint] = (out.coords.detach().numpy(), grad.numpy())
    np.testing.assert_array_equal(results[True][0], results[False][0])
    np.testing.assert_allclose(results[True][1], results[False][1], rtol=1e-14)
    eager = line.track(beam).coords.numpy()
    np.testing.assert_allclose(results[True][0], eager, rtol=0, atol=1e-15)


@pytest.mark.parametrize("method", ["bmad", "linear"])
def test_jax_checkpointing_gives_the_same_results(method, monkeypatch):
    jax = pytest.importorskip("jax")
    bt.backends.get("jax").enable_float64()
    jnp = jax.numpy
    # A long uniform cell scan and a switch scan, both past the two-level size. The bend
    # only with "bmad": the gradient of its first-order series took 3/4 of this test's
    # time (300 s on 2 cores) under "linear", where the sextupoles and kickers already
    # give the switch scan several signatures.
    bend = [bt.SBend("b", length=0.5, angle=0.01)] if method == "bmad" else []
    line = bt.Beamline([*fodo(20).items, *bend,
                        *[bt.HKicker(f"k{i}", kick=1e-5 * i) for i in range(5)],
                        *[e for i in range(5) for e in (bt.Drift(f"e{i}", length=0.1),
                                                        bt.Sextupole(f"s{i}", length=0.1,
                                                                     k2=float(i)))]])
    monkeypatch.setattr("beamtrack.backends.jax_scan.NESTED_CHECKPOINT_STEPS", 4)
    beam = bt.gaussian_particles(40, sigma=SIGMA, p0c=1e9, mc2=bt.electron.mc2,
                                 backend="jax", seed=4)
    params = {k: jnp.asarray(v) for k, v in line.parameters().items()
              if k.endswith((".k1", ".kick", ".k2"))}
    eager = np.asarray(line.track(beam.to_backend("numpy"), method).coords)
    results = {}
    for checkpoint in (False, None, True):
        def loss(p, checkpoint=checkpoint):
            out = line.with_parameters(p).track(beam, method, checkpoint=checkpoint)
            return bt.beam_statistics(out)["sigma_x"]

        coords = jax.jit(lambda p, c=checkpoint: line.with_parameters(p).track(
            beam, method, checkpoint=c).coords)(params)
        grad = jax.jit(jax.grad(loss))(params)
        results[checkpoint] = (np.asarray(coords), np.array([float(grad[k]) for k in params]))
        np.testing.assert_allclose(results[checkpoint][0], eager, rtol=0, atol=1e-15)
    for checkpoint in (None, True):
        np.testing.assert_array_equal(results[checkpoint][0], results[False][0])
        # Rematerialisation changes XLA's fusion, hence the rounding of the gradient.
        scale = np.max(np.abs(results[False][1]))
        np.testing.assert_allclose(results[checkpoint][1], results[False][1], rtol=1e-12,
                                   atol=1e-14 * scale)
