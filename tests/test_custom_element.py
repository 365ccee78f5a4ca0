"""Custom elements: a user function Particles -> Particles in tracking, gradients, batching."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_particles, random_beam, to_np

import beamtrack as bt
from beamtrack.backends import central_difference_gradient

BEAM = random_beam(32, seed=5, scale=1e-3)


def thin_lens(particles, strength):
    """Thin lens of integrated strength ``strength`` [1/m]: px -> px - strength x."""
    return particles.replace(px=particles.px - strength * particles.x)


def lens(strength=0.5, length=0.0) -> bt.Custom:
    return bt.Custom("lens", function=thin_lens, length=length, values={"strength": strength})


def test_custom_element_tracks_on_every_backend(xp):
    particles = make_particles(xp.name, BEAM)
    line = bt.Beamline([bt.Drift("d", length=1.0), lens(0.5, length=0.2)])
    out = line.track(particles)
    # Exact drift then the lens, written out independently of the tracking code.
    x, px, y, py, z, pz = BEAM.T
    ps = np.sqrt((1 + pz) ** 2 - px**2 - py**2)
    x1 = x + 1.0 * px / ps
    np.testing.assert_allclose(to_np(out)[0], x1, rtol=1e-14)
    np.testing.assert_allclose(to_np(out)[1], px - 0.5 * x1, rtol=1e-13, atol=1e-19)
    assert float(xp.to_numpy(out.s)) == pytest.approx(1.2, rel=1e-15)
    assert line.parameters() == {"d.length": 1.0, "lens.length": 0.2, "lens.strength": 0.5}


def test_batched_custom_values_equal_the_loop(xp):
    particles = make_particles(xp.name, BEAM)
    strengths = np.linspace(-1.0, 1.0, 4)
    line = bt.Beamline([bt.Quadrupole("q", length=0.2, k1=1.0), lens()])
    batched = line.with_parameters({"lens.strength": xp.asarray(strengths)}).track(particles)
    assert batched.coords.shape == (4, 6, 32)
    for i, k in enumerate(strengths):
        single = line.with_parameters({"lens.strength": float(k)}).track(particles)
        np.testing.assert_allclose(to_np(batched)[i], to_np(single), rtol=1e-14, atol=0)


def test_gradients_of_custom_and_upstream_parameters(ad):
    point = {"lens.strength": 0.7, "q.k1": 1.3}

    def loss_on(name):
        particles = make_particles(name, BEAM)

        def loss(params):
            line = bt.Beamline([bt.Quadrupole("q", length=0.2, k1=1.0), lens(),
                                bt.Drift("d", length=2.0)]).with_parameters(params)
            return bt.beam_statistics(line.track(particles))["sigma_x"]

        return loss

    expected = central_difference_gradient(loss_on("numpy"), point, step=1e-6)
    backend = ad
    _, grad = backend.value_and_grad(loss_on(backend.name))(
        {k: backend.asarray(v) for k, v in point.items()})
    for key, value in grad.items():
        assert float(backend.to_numpy(value)) == pytest.approx(expected[key], rel=1e-6)


def test_custom_element_under_jax_jit_grad_and_vmap():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    particles = make_particles("jax", BEAM)
    cell = [bt.Quadrupole("qf", length=0.2, k1=1.2), bt.Drift("d1", length=1.0), lens(0.1),
            bt.Quadrupole("qd", length=0.2, k1=-1.2), bt.Drift("d2", length=1.0)]
    # Four repeated cells: the jitted line scans over cells with the custom element inside.
    items = [e.replace(name=f"{e.name}_{i}") for i in range(4) for e in cell]
    line = bt.Beamline(items)

    def size(strength):
        new = line.with_parameters({f"lens_{i}.strength": strength for i in range(4)})
        return bt.beam_statistics(new.track(particles))["sigma_x"]

    eager = [float(bt.beam_statistics(line.with_parameters(
        {f"lens_{i}.strength": s for i in range(4)}).track(particles.to_backend("numpy")))[
        "sigma_x"]) for s in (0.1, 0.2)]
    np.testing.assert_allclose(np.asarray(jax.jit(jax.vmap(size))(jnp.asarray([0.1, 0.2]))),
                               eager, rtol=1e-13)
    grad = float(jax.jit(jax.grad(size))(0.1))
    fd = central_difference_gradient(
        lambda p: size(p["s"]), {"s": 0.1}, step=1e-6)["s"]
    assert grad == pytest.approx(fd, rel=1e-6)


def test_neural_network_surrogate_trains_with_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Linear(2, 2, dtype=torch.float64)

    def surrogate(particles):
        xy = torch.stack([particles.x, particles.px], dim=-1) * 1e3
        out = net(xy) * 1e-3
        return particles.replace(x=out[..., 0], px=out[..., 1])

    # Learn the map of a 1 m drift in (x, px) from tracked examples.
    particles = make_particles("torch", BEAM)
    target = bt.Beamline([bt.Drift("d", length=1.0)]).track(particles)
    line = bt.Beamline([bt.Custom("nn", function=surrogate)])
    optimiser = torch.optim.Adam(net.parameters(), lr=0.05)
    losses = []
    for _ in range(300):
        optimiser.zero_grad()
        out = line.track(particles)
        loss = (((out.x - target.x) ** 2).mean() + ((out.px - target.px) ** 2).mean()) * 1e6
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 1e-3 * losses[0]
    np.testing.assert_allclose(net.weight.detach().numpy(), [[1.0, 1.0], [0.0, 1.0]],
                               atol=0.05)


def test_torch_compile_beamline_runs_custom_elements():
    pytest.importorskip("torch")
    from beamtrack.backends.torch_compile import compile_beamline

    particles = make_particles("torch", BEAM)
    line = bt.Beamline([bt.Drift("d", length=1.0), lens(0.3)])
    np.testing.assert_allclose(to_np(compile_beamline(line)(particles)),
                               to_np(line.track(particles)), rtol=1e-13, atol=1e-19)


def test_custom_element_errors_name_the_element():
    with pytest.raises(bt.ParameterError, match="Custom 'bad': parameter 'function'"):
        bt.Custom("bad", function=3.0)
    with pytest.raises(bt.ParameterError, match="Custom 'bad'.*'length'"):
        bt.Custom("bad", function=thin_lens, length=float("nan"))
    with pytest.raises(bt.ParameterError, match="custom parameter name 'length'"):
        bt.Custom("bad", function=thin_lens, values={"length": 1.0})
    with pytest.raises(bt.ParameterError, match="Custom 'bad'.*'strength'"):
        bt.Custom("bad", function=thin_lens, values={"strength": "big"})
    with pytest.raises(bt.UnknownParameterError, match="Custom 'lens'.*foo"):
        lens().replace(foo=1.0)
    particles = make_particles("numpy", BEAM)
    returns_array = bt.Custom("arr", function=lambda p: p.coords)
    with pytest.raises(bt.ParameterError, match="Custom 'arr': function must return Particles"):
        bt.Beamline([returns_array]).track(particles)
    line = bt.Beamline([bt.Drift("d", length=1.0), lens()])
    with pytest.raises(bt.ParameterError, match="Custom 'lens': a custom element has no"):
        bt.twiss(line, bt.TwissInit(beta_x=1.0, beta_y=1.0))
    with pytest.raises(bt.LatticeFileError, match="Custom 'lens'.*function"):
        bt.dumps(line)


def test_merged_keeps_custom_elements_in_place():
    line = bt.Beamline([bt.Drift("d1", length=1.0), bt.Drift("d2", length=1.0), lens(),
                        bt.Drift("d3", length=1.0)], method="linear")
    merged = line.merged(p0c=1e9, mc2=bt.electron.mc2)
    assert [e.kind for e in merged] == ["LinearMap", "Custom", "Drift"]
    particles = make_particles("numpy", BEAM)
    np.testing.assert_allclose(to_np(merged.track(particles)), to_np(line.track(particles)),
                               rtol=1e-13, atol=1e-19)
