"""Beamline.observe: where particles are lost, monitor readings and screen images by
name, the differentiable survival weight, batches, jax.jit, and lattice files."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import alive_np, backend_or_skip, compiled, make_particles, random_beam, to_np

import beamtrack as bt
from beamtrack.lattice.elements import Aperture, Monitor, Screen
from beamtrack.tracking.aperture import aperture_factor
from beamtrack.tracking.diagnostics import monitor_reading, screen_image

A = 2.0e-3


def line_with_losses(k1=2.0, smooth=0.0) -> bt.Beamline:
    return bt.Beamline(
        [
            bt.Marker("start"),
            Aperture("ap1", x_limit=A, y_limit=A, smooth=smooth),
            bt.Quadrupole("q1", length=0.3, k1=k1),
            bt.Drift("d1", length=1.0),
            bt.Beamline(
                [
                    Monitor("bpm1", resolution=1e-6, seed=4),
                    Aperture("ap2", shape="elliptical", x_limit=1.5e-3, y_limit=2.5e-3,
                             x_offset=1e-4, smooth=smooth),
                    bt.Drift("d2", length=0.5),
                ],
                name="arc",
            ),
            Screen("scr1", resolution=(8, 6), pixel_size=(5e-4, 5e-4), deposit="cic"),
            bt.Marker("end"),
        ],
        name="line",
    )


def hand_beam() -> tuple[np.ndarray, np.ndarray]:
    """Six particles with known fates, then a random bunch."""
    beam = np.zeros((6, 6))
    beam[1, 0] = 3e-3            # outside ap1 in x                  -> lost at ap1 (1)
    beam[2, 1] = 1.5             # |px| > 1 + pz: unphysical      -> lost at q1 (2)
    beam[3, 3] = 2e-3            # y grows to ~2.6e-3 by ap2         -> lost at ap2 (5)
    beam[4, 0] = 5e-3            # dead on arrival: not lost here    -> -1
    beam[5, 2] = -1e-3           # survives                          -> -1
    beam = np.concatenate([beam, random_beam(200, seed=21, scale=1e-3)])
    alive = np.ones(len(beam), bool)
    alive[4] = False
    return beam, alive


_JITTED: dict[tuple[str, str | None], object] = {}


def observe(xp, line: bt.Beamline, p: bt.Particles, method=None):
    """``line.observe`` on backend ``xp``; on JAX jitted once per lattice (keyed by its
    JSON text) and method, since eager JAX is slow op by op."""
    if xp.name != "jax":
        return line.observe(p, method)
    key = (bt.dumps(line), method)
    if key not in _JITTED:
        _JITTED[key] = compiled(xp, lambda q: line.observe(q, method))
    return _JITTED[key](p)


def track(xp, line: bt.Beamline, p: bt.Particles, method=None):
    """``line.track``, jitted on JAX."""
    return compiled(xp, lambda q: line.track(q, method))(p)


def expected_lost_at(line: bt.Beamline, p: bt.Particles) -> np.ndarray:
    """Index of the element after which each particle is first seen dead (track_each)."""
    before = alive_np(p)
    lost = np.full(before.shape, -1)
    for index, (_, out) in enumerate(line.track_each(p)):
        after = alive_np(out)
        lost = np.where(before & ~after, index, lost)
        before = after
    return lost


def test_lost_at_names_the_element(xp):
    line = line_with_losses()
    beam, alive = hand_beam()
    p = make_particles(xp.name, beam, alive=alive)
    obs = observe(xp, line, p)
    lost = xp.to_numpy(obs.lost_at)
    assert lost.dtype == np.int32 and lost.shape == (len(beam),)
    assert line.names()[2] == "q1" and line.names()[5] == "ap2"
    assert lost[:6].tolist() == [-1, 1, 2, 5, -1, -1]
    # Reference bookkeeping from element-by-element NumPy tracking.
    np.testing.assert_array_equal(
        lost, expected_lost_at(line, make_particles("numpy", beam, alive=alive)))
    # The final particles are those of Beamline.track (bit for bit on eager backends;
    # jitted JAX may fuse operations differently, so to rounding there).
    tracked = line.track(make_particles("numpy" if xp.name == "jax" else xp.name, beam,
                                        alive=alive))
    jitted = xp.name == "jax"  # coordinates are ~1e-3: atol 1e-15 is 1e-12 of the scale
    np.testing.assert_allclose(to_np(obs.particles), to_np(tracked),
                               rtol=1e-12 if jitted else 0, atol=1e-15 if jitted else 0)
    np.testing.assert_array_equal(alive_np(obs.particles), alive_np(tracked))
    # Survivors and only survivors (of those alive at entry) have -1.
    np.testing.assert_array_equal((lost == -1) & alive, alive_np(obs.particles))
    assert obs.names == tuple(line.names())


def test_loss_at_unphysical_momentum_in_a_drift(xp):
    beam = np.zeros((3, 6))
    beam[1, 3] = 1.2  # |py| > 1: lost in the first drift
    line = bt.Beamline([Aperture("ap", x_limit=1.0), bt.Drift("d", length=1.0),
                        Aperture("ap_b", x_limit=1.0, smooth=1e-3)])
    obs = observe(xp, line, make_particles(xp.name, beam))
    assert xp.to_numpy(obs.lost_at).tolist() == [-1, 1, -1]
    assert xp.to_numpy(obs.weight)[1] == 0.0
    assert obs.loss_summary() == {"d": 1}


def test_counts_by_element_and_by_nested_line(xp):
    line = line_with_losses()
    beam, alive = hand_beam()
    obs = observe(xp, line, make_particles(xp.name, beam, alive=alive))
    lost = xp.to_numpy(obs.lost_at)
    for index, name in enumerate(line.names()):
        assert int(xp.to_numpy(obs.lost_in(name))) == int(np.sum(lost == index))
    in_arc = int(np.sum((lost >= 4) & (lost <= 6)))
    assert int(xp.to_numpy(obs.lost_in("arc"))) == in_arc > 0
    assert int(xp.to_numpy(obs.lost_in("line"))) == int(np.sum(lost >= 0))
    summary = obs.loss_summary()
    assert sum(summary.values()) == int(np.sum(lost >= 0))
    assert set(summary) <= {"ap1", "q1", "d1", "ap2"} and summary["ap1"] >= 1
    assert obs.index("ap2") == 5
    with pytest.raises(KeyError, match="nope"):
        obs.lost_in("nope")
    with pytest.raises(KeyError, match="beamline"):
        obs.index("arc")


def test_readings_and_images_by_name(xp):
    line = line_with_losses()
    beam, alive = hand_beam()
    obs = observe(xp, line, make_particles(xp.name, beam, alive=alive))
    # Reference: the standalone functions on NumPy particles at those points.
    at = {element.name: out
          for element, out in line.track_each(make_particles("numpy", beam, alive=alive))}
    assert set(obs.readings) == {"bpm1"} and set(obs.images) == {"scr1"}
    np.testing.assert_allclose(xp.to_numpy(obs.readings["bpm1"]),
                               monitor_reading(at["bpm1"], resolution=1e-6, seed=4),
                               rtol=1e-12)
    np.testing.assert_allclose(
        xp.to_numpy(obs.images["scr1"]),
        screen_image(at["scr1"], resolution=(8, 6), pixel_size=(5e-4, 5e-4), deposit="cic"),
        rtol=1e-12, atol=1e-13)
    assert obs.images["scr1"].shape == (6, 8)


def test_weight_is_alive_without_smoothing_and_the_factor_product_with(xp):
    beam, alive = hand_beam()
    p = make_particles(xp.name, beam, alive=alive)
    hard = observe(xp, line_with_losses(smooth=0.0), p)
    np.testing.assert_array_equal(xp.to_numpy(hard.weight),
                                  alive_np(hard.particles).astype(float))
    line = line_with_losses(smooth=2e-4)
    obs = observe(xp, line, p)
    # Independent bookkeeping on NumPy: the factor of each aperture a particle reaches
    # alive, zero for a loss elsewhere.
    expected = alive.astype(float)
    current = make_particles("numpy", beam, alive=alive)
    for element, out in line.track_each(current):
        arriving = alive_np(current)
        if isinstance(element, Aperture):
            factor = aperture_factor(current, **element.parameters())
            expected = np.where(arriving, expected * factor, expected)
        else:
            expected = np.where(arriving & ~alive_np(out), 0.0, expected)
        current = out
    np.testing.assert_allclose(xp.to_numpy(obs.weight), expected, rtol=1e-12, atol=1e-300)
    w = xp.to_numpy(obs.weight)
    assert 0.0 < w[1] < 0.5 and w[4] == 0.0 and w[2] == 0.0
    assert 0.5 < w[0] <= 1.0


def test_batched_parameters(xp):
    k1 = np.array([1.0, 2.0, 4.0])
    beam, alive = hand_beam()
    p = make_particles(xp.name, beam, alive=alive)
    line = line_with_losses().replace("q1", k1=xp.asarray(k1))
    obs = observe(xp, line, p)
    assert obs.lost_at.shape == (3, len(beam))
    assert obs.readings["bpm1"].shape == (3, 2) and obs.images["scr1"].shape == (3, 6, 8)
    assert obs.lost_in("ap2").shape == (3,)
    # The monitor noise is drawn for the reading's shape: (3, 2) numbers in a batch,
    # (2,) in a single run (the first two of the same stream).
    batch_noise = 1e-6 * np.random.Generator(np.random.PCG64(4)).standard_normal((3, 2))
    single_noise = batch_noise[0]
    for i, value in enumerate(k1):
        single = line_with_losses(k1=float(value)).observe(
            make_particles("numpy", beam, alive=alive))
        np.testing.assert_array_equal(xp.to_numpy(obs.lost_at)[i], single.lost_at)
        np.testing.assert_allclose(
            xp.to_numpy(obs.readings["bpm1"])[i] - batch_noise[i],
            single.readings["bpm1"] - single_noise, rtol=1e-9, atol=1e-18)
    counts = xp.to_numpy(obs.lost_in("ap2"))
    assert len(set(counts.tolist())) > 1  # the focusing really changes the losses


def test_linear_method_still_cuts(xp):
    beam, alive = hand_beam()
    p = make_particles(xp.name, beam, alive=alive)
    line = line_with_losses()
    obs = observe(xp, line, p, method="linear")
    np.testing.assert_array_equal(to_np(obs.particles), to_np(track(xp, line, p, "linear")))
    lost = xp.to_numpy(obs.lost_at)
    assert lost[1] == 1  # ap1 cuts in linear tracking too
    assert int(xp.to_numpy(obs.lost_in("ap2"))) > 0
    with pytest.raises(bt.ParameterError, match="exact"):
        line.observe(p, method="exact")


def test_observe_under_jax_jit():
    jax_backend = backend_or_skip("jax")
    import jax

    beam, alive = hand_beam()
    p = make_particles("jax", beam, alive=alive)
    line = line_with_losses(smooth=2e-4)
    eager = line.observe(make_particles("numpy", beam, alive=alive))  # reference
    jitted = jax.jit(line.observe)(p)
    np.testing.assert_array_equal(np.asarray(jitted.lost_at), np.asarray(eager.lost_at))
    np.testing.assert_allclose(np.asarray(jitted.weight), np.asarray(eager.weight), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(jitted.images["scr1"]), np.asarray(eager.images["scr1"]),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(jitted.readings["bpm1"]),
                               np.asarray(eager.readings["bpm1"]), rtol=1e-13)
    assert jitted.loss_summary() == eager.loss_summary()
    assert jax_backend.name == "jax"


def test_transmission_gradient_matches_finite_differences(ad):
    """d/dk1 of sum(weight) + a screen-image term, through the whole observe pass."""
    beam, alive = hand_beam()

    def objective(p, k1):
        obs = line_with_losses(k1=k1, smooth=2e-4).observe(p)
        xp = p.xp
        return xp.sum(obs.weight) + 1e-3 * xp.sum(obs.images["scr1"] ** 2)

    p_np = make_particles("numpy", beam, alive=alive)
    h = 1e-6
    fd = (objective(p_np, 2.0 + h) - objective(p_np, 2.0 - h)) / (2 * h)
    p = make_particles(ad.name, beam, alive=alive)
    _, g = compiled(ad, ad.value_and_grad(lambda k: objective(p, k)))(ad.asarray(2.0))
    np.testing.assert_allclose(ad.to_numpy(g), fd, rtol=1e-6)
    assert abs(fd) > 1.0


def test_observation_is_immutable_and_readable():
    obs = line_with_losses().observe(make_particles("numpy", random_beam(10, seed=1)))
    with pytest.raises(AttributeError):
        obs.weight = None  # type: ignore[misc]
    assert "1 readings" in repr(obs) and "2 images" not in repr(obs)


def test_lattice_file_round_trip_of_new_elements(tmp_path):
    line = bt.Beamline([
        Monitor("bpm", x_offset=1e-4, y_offset=-2e-4, tilt=0.1, resolution=1e-6, seed=7),
        Screen("scr", resolution=(64, 48), pixel_size=(1e-4, 2e-4), x_offset=1e-3,
               deposit="kde", bandwidth=0.1 + 0.2, method="linear"),
        Aperture("ap", shape="elliptical", x_limit=1 / 3, y_limit=np.array([1e-3, 2e-3]),
                 smooth=1e-5),
    ])
    path = tmp_path / "diag.json"
    bt.save(line, path)
    again = bt.load(path)
    assert again == line
    assert again["scr"].resolution == (64, 48) and isinstance(again["scr"].pixel_size, tuple)
    assert again["scr"].bandwidth == 0.1 + 0.2 and again["ap"].x_limit == 1 / 3
    assert again["bpm"].seed == 7 and isinstance(again["bpm"].seed, int)
    assert bt.dumps(again) == bt.dumps(line)


def test_merged_linear_maps_keep_observers_and_apertures_in_place():
    """Beamline.merged-style fusion (lattice.optics.merged) must not swallow an aperture,
    a monitor or a screen into a linear map: losses and readings stay where they were."""
    from beamtrack.lattice.optics import merged

    line = line_with_losses()
    fused = merged(line, p0c=1e9, mc2=0.51099895069e6, method="linear")
    names = fused.names()
    for name in ("ap1", "bpm1", "ap2", "scr1"):
        assert name in names
    beam, alive = hand_beam()
    p = make_particles("numpy", beam, alive=alive)
    direct = line.observe(p, method="linear")
    again = fused.observe(p, method="linear")
    np.testing.assert_array_equal(alive_np(again.particles), alive_np(direct.particles))
    for name in ("ap1", "ap2"):
        assert int(again.lost_in(name)) == int(direct.lost_in(name))
    np.testing.assert_allclose(again.readings["bpm1"], direct.readings["bpm1"], rtol=1e-12)
