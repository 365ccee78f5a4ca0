"""``beamtrack/TransverseTuning-v0``: set magnets so that a screen shows a target beam.

The task of Cheetah's ARES experimental-area environment on any beamline: the agent
changes named magnet settings (quadrupole strengths, corrector kicks) and sees the beam
centroid and size on a screen, the target beam and the settings.

Spaces (all float32):

- action: ``Box(-1, 1, (d,))`` for ``d`` actuators. With ``action_mode="delta"``
  (default) an action moves each setting by ``action * action_scale * (high - low) / 2``;
  with ``"absolute"`` it sets ``low + (action + 1) (high - low) / 2``. Settings are
  clipped to their ranges.
- observation: ``(mu_x, mu_y, sigma_x, sigma_y)`` of the beam on the screen [mm], the
  target's four values [mm], then the settings scaled to ``[-1, 1]`` over their ranges;
  shape ``(8 + d,)``.

Reward: ``-sum_i |beam_i - target_i| / 1 mm`` over the four beam values (the negative L1
distance in millimetres; 0 is perfect). An episode terminates when every value is within
``tolerance`` [m] of its target, and is truncated after ``max_episode_steps`` steps
(50 when made through :func:`gymnasium.make`).

Reset draws the target uniformly (sizes in ``target_sigma_range`` [m], centroids in
``target_mean_range`` [m]) and the initial settings uniformly in their ranges (or the
line's own values with ``options={"initial": "line"}``), from the environment's seeded
generator.

The beam is a moment beam (:class:`~beamtrack.tracking.parameter_beam.ParameterBeam`,
first-order maps, the fast default) or particles (tracked with the line's method and
their statistics in the screen frame).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from beamtrack.envs.actuated_map import ActuatedMap, split_key
from beamtrack.lattice.beamline import Beamline
from beamtrack.lattice.elements import Screen
from beamtrack.lattice.io import load
from beamtrack.tracking.errors import ParameterError
from beamtrack.tracking.moment_diagnostics import transverse_moments
from beamtrack.tracking.parameter_beam import ParameterBeam
from beamtrack.tracking.particles import Particles

#: Incoming beam of the bundled example lattice: RMS sizes of the six coordinates
#: (m, rad, m, rad, m, 1), as in its file.
EXAMPLE_BEAM_SIGMA = (5e-4, 5e-5, 5e-4, 5e-5, 1e-3, 1e-3)
#: Default range of a quadrupole strength actuator [1/m^2].
DEFAULT_K1_RANGE = (-5.0, 5.0)
#: Default range of a kick actuator [rad].
DEFAULT_KICK_RANGE = (-2e-3, 2e-3)
#: Length scale of the reward and the observation [m] (1 mm).
SCALE = 1e-3
#: Bound of the beam entries of the observation space [mm] (10 m: never reached).
OBSERVATION_LIMIT = 1e4


def _example_line() -> Beamline:
    from beamtrack import EXAMPLE_LATTICE

    return load(EXAMPLE_LATTICE)


class _Task:
    """What the single and the vector environment share: line, actuators, beam, screen."""

    def __init__(self, line: Beamline | None, actuators: Sequence[str] | None,
                 ranges: Mapping[str, tuple[float, float]] | None, screen: str | None,
                 beam: ParameterBeam | Particles | None, method: str | None):
        line = _example_line() if line is None else line
        if screen is None:
            screens = [e.name for e in line if isinstance(e, Screen)]
            if screens:
                screen = screens[-1]
            else:
                screen = "screen"
                line = Beamline([*line.items, Screen(screen)], name=line.name,
                                method=line.method, reference=line.reference)
        if screen not in line or not isinstance(line[screen], Screen):
            raise ParameterError(f"Beamline {line.name!r} has no screen {screen!r}")
        if actuators is None:
            actuators = [k for k in line.parameters("*.k1")]
        if not actuators:
            raise ParameterError("TransverseTuning: no actuators (give 'element.parameter' "
                                 "names)")
        self.line, self.screen, self.actuators = line, screen, tuple(actuators)
        low, high = [], []
        for key in self.actuators:
            given = (ranges or {}).get(key)
            if given is None:
                parameter = split_key(key)[1]
                if parameter == "k1":
                    given = DEFAULT_K1_RANGE
                elif parameter in ("kick", "hkick", "vkick"):
                    given = DEFAULT_KICK_RANGE
                else:
                    raise ParameterError(f"TransverseTuning: give a range for {key!r}")
            low.append(float(given[0]))
            high.append(float(given[1]))
        self.low, self.high = np.array(low), np.array(high)
        if np.any(self.high <= self.low):
            raise ParameterError("TransverseTuning: every range needs low < high")
        reference = line.reference
        if beam is None:
            p0c = reference.p0c if reference is not None else 1e9
            mc2 = reference.species.mc2 if reference is not None else 510998.95069
            beam = ParameterBeam(np.zeros(6), np.diag(np.square(EXAMPLE_BEAM_SIGMA)),
                                 p0c=p0c, mc2=mc2)
        if not isinstance(beam, (ParameterBeam, Particles)):
            raise ParameterError("TransverseTuning: beam must be a ParameterBeam or Particles")
        self.beam, self.method = beam, method
        self.screen_frame = {k: line[self.screen].parameters()[k]
                             for k in ("x_offset", "y_offset", "tilt")}
        self.aligned_screen = all(isinstance(v, (int, float)) and v == 0
                                  for v in self.screen_frame.values())
        if isinstance(beam, ParameterBeam):
            self.mean0 = np.asarray(beam.mean, dtype=np.float64)
            self.cov0 = np.asarray(beam.covariance, dtype=np.float64)
            self.model = ActuatedMap(line, self.actuators, until=screen,
                                     p0c=float(beam.p0c), mc2=float(beam.mc2),
                                     ranges=dict(zip(self.actuators, zip(low, high))))
            self.defaults = self.model.defaults
        else:
            self.model = None
            known = line.parameters()
            self.defaults = np.array([float(known[k]) for k in self.actuators])
            names = line.names()
            self.upto = Beamline([e for e in list(line)[: names.index(screen) + 1]],
                                 name=line.name, method=line.method,
                                 reference=line.reference)

    def measure(self, settings: np.ndarray) -> np.ndarray:
        """``(N, 4)``: ``mu_x, mu_y, sigma_x, sigma_y`` [m] on the screen for settings
        of shape ``(N, d)``."""
        if self.model is not None:
            r, c = self.model(settings)
            mean = np.matmul(r, self.mean0[..., None])[..., 0] + c
            cov = np.matmul(np.matmul(r, self.cov0), np.swapaxes(r, -1, -2))
            if self.aligned_screen:
                sigma = np.sqrt(np.clip(np.stack([cov[:, 0, 0], cov[:, 2, 2]], -1), 0, None))
                return np.concatenate([mean[:, 0:3:2], sigma], axis=-1)
            beam = ParameterBeam(mean, cov, p0c=self.model.p0c_end, mc2=self.model.mc2)
        else:
            values = {k: settings[:, i] for i, k in enumerate(self.actuators)}
            out = self.upto.with_parameters(values).track(self.beam, method=self.method)
            beam = ParameterBeam.from_particles(out)
        mu, cov2 = transverse_moments(beam, **self.screen_frame)
        sigma = np.sqrt(np.clip(np.stack([cov2[..., 0, 0], cov2[..., 1, 1]], -1), 0, None))
        return np.concatenate([np.asarray(mu), sigma], axis=-1)

    def observation(self, beam: np.ndarray, target: np.ndarray,
                    settings: np.ndarray) -> np.ndarray:
        scaled = 2.0 * (settings - self.low) / (self.high - self.low) - 1.0
        beam = np.clip(beam / SCALE, -OBSERVATION_LIMIT, OBSERVATION_LIMIT)
        return np.concatenate([beam, target / SCALE, scaled], axis=-1).astype(np.float32)


def _spaces(d: int) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    action = gym.spaces.Box(-1.0, 1.0, (d,), dtype=np.float32)
    high = np.full(8 + d, OBSERVATION_LIMIT, dtype=np.float32)
    high[8:] = 1.0
    low = -high
    low[[2, 3, 6, 7]] = 0.0
    return action, gym.spaces.Box(low, high, dtype=np.float32)


class _Common:
    """Parameters shared by both environments (documented on :class:`TransverseTuningEnv`)."""

    def _setup(self, line, actuators, ranges, screen, beam, method, action_mode, action_scale,
               target_sigma_range, target_mean_range, tolerance, max_episode_steps) -> None:
        if action_mode not in ("delta", "absolute"):
            raise ParameterError(f"action_mode must be 'delta' or 'absolute', got "
                                 f"{action_mode!r}")
        self.task = _Task(line, actuators, ranges, screen, beam, method)
        self.action_mode, self.action_scale = action_mode, float(action_scale)
        self.target_sigma_range = tuple(float(v) for v in target_sigma_range)
        self.target_mean_range = tuple(float(v) for v in target_mean_range)
        self.tolerance = float(tolerance)
        self.max_episode_steps = max_episode_steps

    def _draw(self, rng: np.random.Generator, n: int, initial: str) -> tuple[np.ndarray,
                                                                            np.ndarray]:
        t = self.task
        mean = rng.uniform(*self.target_mean_range, size=(n, 2))
        sigma = rng.uniform(*self.target_sigma_range, size=(n, 2))
        if initial == "line":
            settings = np.broadcast_to(np.clip(t.defaults, t.low, t.high),
                                       (n, len(t.actuators))).copy()
        else:
            settings = rng.uniform(t.low, t.high, size=(n, len(t.actuators)))
        return np.concatenate([mean, sigma], axis=-1), settings

    def _apply(self, settings: np.ndarray, action: np.ndarray) -> np.ndarray:
        t = self.task
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        half = 0.5 * (t.high - t.low)
        if self.action_mode == "delta":
            new = settings + action * self.action_scale * half
        else:
            new = t.low + (action + 1.0) * half
        return np.clip(new, t.low, t.high)

    def _score(self, beam: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        error = np.abs(beam - target)
        return -np.sum(error, axis=-1) / SCALE, np.all(error < self.tolerance, axis=-1)


class TransverseTuningEnv(_Common, gym.Env):
    """Tune magnets so that a screen shows a target beam (see the module docstring).

    Parameters
    ----------
    line
        The beamline; the bundled example FODO (``beamtrack.EXAMPLE_LATTICE``) when
        ``None``. A screen is appended at its end if it has none.
    actuators
        ``"element.parameter"`` keys the agent sets; every ``*.k1`` of the line when
        ``None``.
    ranges
        ``{key: (low, high)}``; defaults: ``k1`` in [-5, 5] 1/m^2, kicks in
        [-2, 2] mrad; other parameters need one.
    screen
        Name of the observing screen (default: the last screen of the line).
    beam
        Incoming :class:`~beamtrack.tracking.parameter_beam.ParameterBeam` (default: the
        example lattice's Gaussian beam, zero centroid) or NumPy ``Particles``.
    method
        Tracking method for a particle beam (the line's when ``None``).
    action_mode, action_scale
        ``"delta"`` (steps of ``action_scale`` half-ranges) or ``"absolute"``.
    target_sigma_range, target_mean_range
        Ranges [m] of the target sizes and centroids drawn at reset.
    tolerance
        Success threshold [m] on every beam value.
    max_episode_steps
        Truncate after this many steps (``None``: never; :func:`gymnasium.make` adds a
        ``TimeLimit`` of 50 instead).
    """

    metadata = {"render_modes": []}

    def __init__(self, line: Beamline | None = None, actuators: Sequence[str] | None = None,
                 ranges: Mapping[str, tuple[float, float]] | None = None,
                 screen: str | None = None, beam: ParameterBeam | Particles | None = None,
                 method: str | None = None, action_mode: str = "delta",
                 action_scale: float = 0.1,
                 target_sigma_range: tuple[float, float] = (1e-4, 1e-3),
                 target_mean_range: tuple[float, float] = (0.0, 0.0),
                 tolerance: float = 2e-5, max_episode_steps: int | None = None):
        self._setup(line, actuators, ranges, screen, beam, method, action_mode, action_scale,
                    target_sigma_range, target_mean_range, tolerance, max_episode_steps)
        self.action_space, self.observation_space = _spaces(len(self.task.actuators))
        self.settings = np.clip(self.task.defaults, self.task.low, self.task.high)
        self.target = np.zeros(4)
        self.beam = self.task.measure(self.settings[None])[0]
        self.steps = 0

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw a target and initial settings. ``options``: ``{"initial": "line"}``
        starts from the line's own settings, ``{"target": (mu_x, mu_y, sigma_x,
        sigma_y)}`` [m] fixes the target."""
        super().reset(seed=seed)
        options = options or {}
        target, settings = self._draw(self.np_random, 1, options.get("initial", "random"))
        if "target" in options:
            target = np.asarray(options["target"], dtype=np.float64)[None]
        self.target, self.settings = target[0], settings[0]
        self.beam = self.task.measure(self.settings[None])[0]
        self.steps = 0
        return self.task.observation(self.beam, self.target, self.settings), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply ``action``, track, observe; see the module docstring for the reward."""
        self.settings = self._apply(self.settings, action)
        self.beam = self.task.measure(self.settings[None])[0]
        reward, success = self._score(self.beam, self.target)
        self.steps += 1
        truncated = self.max_episode_steps is not None and self.steps >= self.max_episode_steps
        obs = self.task.observation(self.beam, self.target, self.settings)
        return obs, float(reward), bool(success), bool(truncated), self._info()

    def _info(self) -> dict[str, Any]:
        return {"settings": dict(zip(self.task.actuators, self.settings.tolist())),
                "beam": self.beam.copy(), "target": self.target.copy()}


class TransverseTuningVectorEnv(_Common, VectorEnv):
    """``num_envs`` copies of :class:`TransverseTuningEnv` advanced in one batched
    tracking call per step (actuator settings with a batch dimension).

    Same parameters as :class:`TransverseTuningEnv`, plus ``num_envs``;
    ``max_episode_steps`` (50 through :func:`gymnasium.make_vec`) truncates each copy.
    Copies that end are reset on their next step (Gymnasium's next-step autoreset: that
    step ignores their action and returns the first observation, reward 0).
    Infos: ``{"success": (N,) bool}``.
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, line: Beamline | None = None,
                 actuators: Sequence[str] | None = None,
                 ranges: Mapping[str, tuple[float, float]] | None = None,
                 screen: str | None = None, beam: ParameterBeam | Particles | None = None,
                 method: str | None = None, action_mode: str = "delta",
                 action_scale: float = 0.1,
                 target_sigma_range: tuple[float, float] = (1e-4, 1e-3),
                 target_mean_range: tuple[float, float] = (0.0, 0.0),
                 tolerance: float = 2e-5, max_episode_steps: int | None = None):
        self._setup(line, actuators, ranges, screen, beam, method, action_mode, action_scale,
                    target_sigma_range, target_mean_range, tolerance, max_episode_steps)
        self.num_envs = int(num_envs)
        d = len(self.task.actuators)
        self.single_action_space, self.single_observation_space = _spaces(d)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space,
                                                              self.num_envs)
        self.settings = np.zeros((self.num_envs, d))
        self.target = np.zeros((self.num_envs, 4))
        self.steps = np.zeros(self.num_envs, dtype=np.int64)
        self.done = np.zeros(self.num_envs, dtype=bool)
        self._rng = np.random.default_rng()

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every copy (``seed`` seeds the shared generator)."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        options = options or {}
        self.target, self.settings = self._draw(self._rng, self.num_envs,
                                                options.get("initial", "random"))
        self.steps[:] = 0
        self.done[:] = False
        self.beam = self.task.measure(self.settings)
        obs = self.task.observation(self.beam, self.target, self.settings)
        return obs, {"success": np.zeros(self.num_envs, dtype=bool)}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                          dict[str, Any]]:
        """Advance every copy one step in one batched call."""
        actions = np.asarray(actions, dtype=np.float64).reshape(self.settings.shape)
        restart = self.done
        if np.any(restart):
            target, settings = self._draw(self._rng, int(restart.sum()), "random")
            self.target[restart], self.settings[restart] = target, settings
            self.steps[restart] = 0
        moved = self._apply(self.settings, actions)
        self.settings = np.where(restart[:, None], self.settings, moved)
        self.beam = self.task.measure(self.settings)
        reward, success = self._score(self.beam, self.target)
        self.steps[~restart] += 1
        truncated = (np.zeros(self.num_envs, dtype=bool) if self.max_episode_steps is None
                     else self.steps >= self.max_episode_steps)
        terminated = success & ~restart
        truncated = truncated & ~restart & ~terminated
        reward = np.where(restart, 0.0, reward)
        self.done = terminated | truncated
        obs = self.task.observation(self.beam, self.target, self.settings)
        return obs, reward, terminated, truncated, {"success": success}
