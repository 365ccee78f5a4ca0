"""Parameters as data, autodiff adapters, jit, vmap and the torch module adapter."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_particles, random_beam

import beamtrack as bt
from beamtrack.backends import central_difference_gradient

BEAM = random_beam(64, seed=12, scale=1e-3)


def line() -> bt.Beamline:
    return bt.Beamline([
        bt.Quadrupole("qf", length=0.2, k1=2.0, x_offset=1e-4),
        bt.Drift("d1", length=1.0),
        bt.SBend("b1", length=0.5, angle=0.05, e1=0.01, fint=0.5, hgap=0.02),
        bt.Sextupole("s1", length=0.1, k2=10.0),
        bt.Quadrupole("qd", length=0.2, k1=-2.0, tilt=0.01),
        bt.Drift("d2", length=1.0),
        bt.Monitor("bpm"),
    ], name="cell")


def test_parameters_and_patterns():
    params = line().parameters()
    assert params["qf.k1"] == 2.0 and params["b1.angle"] == 0.05
    assert "s1.num_steps" not in params  # integers are not differentiable parameters
    assert list(line().parameters("q*.k1")) == ["qf.k1", "qd.k1"]
    new = line().with_parameters({"qf.k1": 2.5, "b1.angle": 0.06})
    assert new["qf"].k1 == 2.5 and new["b1"].angle == 0.06 and line()["qf"].k1 == 2.0
    with pytest.raises(KeyError):
        line().with_parameters({"nope.k1": 1.0})
    with pytest.raises(bt.UnknownParameterError):
        line().with_parameters({"qf.k7": 1.0})


def loss_on(backend: str):
    particles = make_particles(backend, BEAM)

    def loss(params):
        out = line().with_parameters(params).track(particles)
        stats = bt.beam_statistics(out)
        return stats["sigma_x"] + stats["sigma_y"] + 10 * stats["mean_x"]

    return loss


POINT = {"qf.k1": 2.0, "qd.k1": -2.0, "b1.angle": 0.05, "s1.k2": 10.0, "qf.x_offset": 1e-4,
         "qd.tilt": 0.01, "d1.length": 1.0}


def test_gradient_mapping_torch_jax_and_finite_differences():
    expected = central_difference_gradient(loss_on("numpy"), POINT, step=1e-5)
    results = {}
    for name in ("torch", "jax"):
        if name not in bt.backends.available():
            continue
        backend = bt.backends.get(name)
        params = {k: backend.asarray(v) for k, v in POINT.items()}
        value, grad = backend.value_and_grad(loss_on(name))(params)
        results[name] = {k: float(backend.to_numpy(v)) for k, v in grad.items()}
        assert set(results[name]) == set(POINT)
        for key, g in results[name].items():
            assert g == pytest.approx(expected[key], rel=1e-6, abs=1e-12), (name, key)
    if len(results) == 2:
        for key in POINT:
            assert results["torch"][key] == pytest.approx(results["jax"][key], rel=1e-10,
                                                          abs=1e-18)


def test_numpy_gradient_raises_and_names_the_alternatives():
    with pytest.raises(bt.backends.NoAutodiffError, match="torch, jax"):
        bt.backends.get("numpy").value_and_grad(loss_on("numpy"))


def test_jax_jit_of_a_beamline_equals_eager():
    jax = pytest.importorskip("jax")
    particles = make_particles("jax", BEAM)
    eager = line().track(particles)
    compiled = jax.jit(lambda ln, p: ln.track(p))(line(), particles)
    a, b = np.asarray(compiled.coords), np.asarray(eager.coords)
    # XLA reorders floating-point operations: compare as the cross-backend check does,
    # relative to the largest magnitude of each coordinate.
    scale = np.abs(b).max(axis=-1, keepdims=True)
    assert np.max(np.abs(a - b) / scale) < 1e-13
    # Parameters reach compiled code as arrays: a new value does not retrace.
    traces = []

    @jax.jit
    def size(ln):
        traces.append(1)
        return bt.beam_statistics(ln.track(particles))["sigma_x"]

    size(line())
    size(line().with_parameters({"qf.k1": 2.2}))
    assert len(traces) == 1


def test_jax_vmap_over_configurations_equals_loop():
    jax = pytest.importorskip("jax")
    particles = make_particles("jax", BEAM)
    k1 = jax.numpy.linspace(1.5, 2.5, 5)

    def size(k):
        return bt.beam_statistics(line().with_parameters({"qf.k1": k}).track(particles))[
            "sigma_x"]

    batched = jax.vmap(size)(k1)
    loop = [float(size(k)) for k in k1]
    np.testing.assert_allclose(np.asarray(batched), loop, rtol=1e-14)
    # The same as broadcasting a (B,) parameter without vmap:
    direct = size(k1)
    np.testing.assert_allclose(np.asarray(direct), loop, rtol=1e-14)


def test_torch_module_adapter_trains():
    torch = pytest.importorskip("torch")
    from beamtrack.backends.torch_module import beamline_module

    module = beamline_module(line(), ["q*.k1"])
    assert sorted(dict(module.named_parameters())) == ["params.qd__k1", "params.qf__k1"]
    particles = make_particles("torch", BEAM)
    target = 3e-3  # sigma_x is 3.5 mm at the start
    optimiser = torch.optim.Adam(module.parameters(), lr=0.05)
    losses = []
    for _ in range(15):
        optimiser.zero_grad()
        loss = ((bt.beam_statistics(module(particles))["sigma_x"] - target) / target) ** 2
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert module.line()["qf"].k1.requires_grad


def test_custom_element_is_a_plain_function():
    """A function Particles -> Particles stands in a beamline as a LinearMap or via track."""
    p = make_particles("numpy", BEAM)
    r = np.eye(6)
    r[1, 0] = -0.5
    custom = bt.LinearMap("thin_lens", r=r, c=np.zeros(6))
    out = bt.Beamline([custom]).track(p)
    np.testing.assert_allclose(np.asarray(out.px), BEAM[:, 1] - 0.5 * BEAM[:, 0], rtol=1e-15)


def test_torch_compile_fullgraph_of_element_tracking():
    """The tracking core compiles without graph breaks (fullgraph=True) and matches eager."""
    torch = pytest.importorskip("torch")
    # The whole path a user takes: new parameter values, validation, Beamline.track.
    cell = bt.Beamline([bt.Quadrupole("q", length=0.2, k1=1.0, tilt=0.01, x_offset=1e-4),
                        bt.Drift("d", length=0.5)])

    def step(coords, k1, length):
        p = bt.Particles(coords=coords, p0c=1e9, mc2=bt.electron.mc2)
        return cell.with_parameters({"q.k1": k1, "d.length": length}).track(p).coords

    compiled = torch.compile(step, fullgraph=True)
    coords = torch.as_tensor(BEAM.T.copy())
    k1, length = torch.tensor(2.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    got = compiled(coords, k1, length)
    expected = step(coords, k1, length)
    scale = expected.abs().amax(dim=-1, keepdim=True)
    assert float(((got - expected).abs() / scale).max()) < 1e-13
    # Parameters are tensor inputs of the compiled function, not baked-in constants.
    got2 = compiled(coords, k1 * 1.1, length)
    assert not torch.allclose(got2, got)


def test_compile_beamline_compiles_once_per_signature():
    torch = pytest.importorskip("torch")
    from beamtrack.backends.torch_compile import compile_beamline

    cell = [bt.Quadrupole("qf", length=0.2, k1=2.0), bt.Drift("d1", length=1.0),
            bt.Quadrupole("qd", length=0.2, k1=-2.0), bt.Drift("d2", length=1.0)]
    long_line = bt.Beamline([type(e)(f"{e.name}_{i}", **e.parameters())
                             for i in range(4) for e in cell])
    # One misaligned quadrupole: its offset is a tensor input of a third signature
    # (the aligned ones keep Python zeros and compile without the frame change).
    long_line = long_line.replace("qd_3", x_offset=1e-4)
    particles = make_particles("torch", BEAM)
    run = compile_beamline(long_line)
    before = len(run.compiled)
    out = run(particles)
    # aligned quadrupole, misaligned quadrupole, drift
    assert len(run.compiled) - before <= 3
    expected = long_line.track(particles)
    scale = expected.coords.abs().amax(dim=-1, keepdim=True)
    assert float(((out.coords - expected.coords).abs() / scale).max()) < 1e-13
    other = long_line.with_parameters({"qf_0.k1": torch.tensor(2.3, dtype=torch.float64)})
    count = len(run.compiled)
    out2 = compile_beamline(other)(particles)
    assert len(run.compiled) == count  # new values and a new line reuse the compiled code
    np.testing.assert_allclose(out2.coords.numpy(), other.track(particles).coords.numpy(),
                               rtol=1e-13, atol=1e-19)


def test_with_parameters_reaches_nested_lines_in_one_pass():
    inner = bt.Beamline([bt.Quadrupole("qi", length=0.2, k1=1.0), bt.Drift("di", length=1.0)],
                        name="inner")
    outer = bt.Beamline([bt.Quadrupole("qo", length=0.2, k1=-1.0), inner], name="outer")
    new = outer.with_parameters({"qi.k1": 1.5, "qo.k1": -1.5, "di.length": 2.0,
                                 "inner.method": "linear"})
    assert new["qi"].k1 == 1.5 and new["qo"].k1 == -1.5 and new["di"].length == 2.0
    assert new["inner"].method == "linear" and outer["inner"].method == "bmad"
    assert new.names() == outer.names()
    with pytest.raises(KeyError, match="nope"):
        outer.with_parameters({"qi.k1": 1.0, "nope.k1": 1.0})
    with pytest.raises(bt.LatticeError, match="only 'method'"):
        outer.with_parameters({"inner.length": 1.0})
