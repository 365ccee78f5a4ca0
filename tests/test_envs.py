"""beamtrack.envs: the TransverseTuning environment, single and vectorised."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium", reason="beamtrack.envs needs the 'rl' extra")

import beamtrack as bt  # noqa: E402
import beamtrack.envs as envs  # noqa: E402

KEYS = ["qf1.k1", "qd1.k1", "qf2.k1", "qd2.k1"]
SIGMA = np.array([5e-4, 5e-5, 5e-4, 5e-5, 1e-3, 1e-3])


def screen_sizes(k1: np.ndarray) -> np.ndarray:
    """RMS sizes (x, y) at the end of the example FODO from its full transfer map."""
    line = bt.load(bt.EXAMPLE_LATTICE).with_parameters(dict(zip(KEYS, k1)))
    r, _ = bt.transfer_map(line)
    cov = r @ np.diag(SIGMA**2) @ r.T
    return np.sqrt([cov[0, 0], cov[2, 2]])


def test_import_beamtrack_does_not_import_the_applications():
    code = ("import sys, beamtrack; bad = [m for m in ('gymnasium', 'botorch', 'gpytorch', "
            "'beamtrack.envs', 'beamtrack.bo', 'beamtrack.reconstruction', 'torch') "
            "if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_check_env_passes():
    from gymnasium.utils.env_checker import check_env

    check_env(gym.make(envs.TRANSVERSE_TUNING).unwrapped, skip_render_check=True)


def test_observation_is_the_beam_on_the_screen_and_the_reward_its_distance():
    env = gym.make(envs.TRANSVERSE_TUNING)
    design = np.array([2.0, -2.0, 2.0, -2.0])
    sizes = screen_sizes(design)
    target = np.array([0.0, 0.0, sizes[0] + 1e-4, sizes[1] - 5e-5])
    obs, info = env.reset(seed=0, options={"initial": "line", "target": target})
    np.testing.assert_allclose(obs[2:4], sizes / 1e-3, rtol=1e-6)  # mm, float32
    np.testing.assert_allclose(obs[4:8], target / 1e-3, rtol=1e-6)
    np.testing.assert_allclose(obs[8:], design / 5.0, rtol=1e-6)  # scaled to [-1, 1]
    obs, reward, terminated, truncated, info = env.step(np.zeros(4, dtype=np.float32))
    assert reward == pytest.approx(-(1e-4 + 5e-5) / 1e-3, rel=1e-8)
    assert not terminated and not truncated
    obs, _, _, _, _ = env.step(np.full(4, 0.5, dtype=np.float32))  # delta: 0.5 * 0.1 * 5
    np.testing.assert_allclose(obs[2:4], screen_sizes(design + 0.25) / 1e-3, rtol=1e-6)


def test_success_terminates_and_time_limit_truncates():
    env = gym.make(envs.TRANSVERSE_TUNING)
    sizes = screen_sizes(np.array([2.0, -2.0, 2.0, -2.0]))
    env.reset(seed=0, options={"initial": "line", "target": [0.0, 0.0, *sizes]})
    _, reward, terminated, _, _ = env.step(np.zeros(4, dtype=np.float32))
    assert terminated and reward == pytest.approx(0.0, abs=1e-9)
    env.reset(seed=0)
    flags = []
    for _ in range(50):
        _, _, terminated, truncated, _ = env.step(np.zeros(4, dtype=np.float32))
        flags.append((terminated, truncated))
    assert flags[-1] == (False, True) and not any(t or u for t, u in flags[:-1])


def test_seeding_is_reproducible():
    env = gym.make(envs.TRANSVERSE_TUNING)
    first, _ = env.reset(seed=7)
    other, _ = env.reset(seed=8)
    again, _ = env.reset(seed=7)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_vector_env_matches_single_envs():
    n = 5
    venv = gym.make_vec(envs.TRANSVERSE_TUNING, num_envs=n,
                        vectorization_mode="vector_entry_point")
    obs, _ = venv.reset(seed=1)
    actions = np.random.default_rng(0).uniform(-1, 1, (n, 4)).astype(np.float32)
    vobs, vreward, _, _, _ = venv.step(actions)
    single = envs.TransverseTuningEnv()
    single.reset(seed=0)
    for i in range(n):
        start = (obs[i, 8:].astype(np.float64) + 1.0) * 5.0 - 5.0
        single.settings, single.target = start, obs[i, 4:8] * 1e-3
        sobs, sreward, _, _, _ = single.step(actions[i])
        np.testing.assert_allclose(vobs[i], sobs, rtol=1e-5, atol=1e-6)
        assert vreward[i] == pytest.approx(sreward, rel=1e-4, abs=1e-5)


def test_vector_env_resets_finished_copies_on_their_next_step():
    venv = envs.TransverseTuningVectorEnv(num_envs=3, max_episode_steps=2)
    venv.reset(seed=0)
    zero = np.zeros((3, 4), dtype=np.float32)
    venv.step(zero)
    _, _, _, truncated, _ = venv.step(zero)
    assert truncated.all()
    obs, reward, terminated, truncated, _ = venv.step(zero)
    assert not truncated.any() and not terminated.any()
    np.testing.assert_array_equal(reward, 0.0)


def test_particle_beam_environment_agrees_with_the_moment_beam():
    beam = bt.gaussian_particles(4000, sigma=list(SIGMA), p0c=1e9, mc2=bt.electron.mc2, seed=0)
    env = envs.TransverseTuningEnv(beam=beam, method="linear")
    env.reset(seed=0, options={"initial": "line"})
    obs, *_ = env.step(np.zeros(4, dtype=np.float32))
    # 4000 particles: RMS sizes within 5 % (statistical error about 1.1 %).
    np.testing.assert_allclose(obs[2:4], screen_sizes(np.array([2.0, -2.0, 2.0, -2.0]))
                               / 1e-3, rtol=0.05)


def test_custom_line_and_actuators_and_unknown_names():
    line = bt.Beamline([bt.Drift("d0", length=1.0), bt.HKicker("hk", kick=0.0),
                        bt.Quadrupole("q", length=0.2, k1=1.0), bt.Drift("d1", length=2.0),
                        bt.Screen("scr")])
    env = envs.TransverseTuningEnv(line=line, actuators=["hk.kick", "q.k1"],
                                   target_mean_range=(-1e-3, 1e-3))
    obs, _ = env.reset(seed=0, options={"initial": "line"})
    assert obs.shape == (10,)
    obs, *_ = env.step(np.array([1.0, 0.0], dtype=np.float32))  # kick 0.2 mrad
    # The centroid is the constant part of the line's first-order map.
    _, c = bt.transfer_map(line.replace("hk", kick=2e-4))
    assert obs[0] == pytest.approx(c[0] / 1e-3, rel=1e-5)
    with pytest.raises(bt.ParameterError, match="no parameter"):
        envs.TransverseTuningEnv(line=line, actuators=["q.k9"], ranges={"q.k9": (0, 1)})


def test_actuated_map_equals_the_transfer_map_inside_and_outside_its_table():
    line = bt.load(bt.EXAMPLE_LATTICE)
    model = envs.ActuatedMap(line, KEYS, ranges={k: (-5.0, 5.0) for k in KEYS})
    values = np.random.default_rng(2).uniform(-5, 5, (4, 4))
    values[3, 0] = 7.0  # outside the table: tracked directly
    for rows in (values[:3], values):
        r, c = model(rows)
        for i, row in enumerate(rows):
            r_ref, c_ref = bt.transfer_map(line.with_parameters(dict(zip(KEYS, row))))
            np.testing.assert_allclose(r[i], r_ref, rtol=0, atol=1e-12 * np.abs(r_ref).max())
            np.testing.assert_allclose(c[i], c_ref, atol=1e-15)
