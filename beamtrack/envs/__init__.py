"""Gymnasium environments on beamtrack beamlines (extra ``rl``: ``pip install beamtrack[rl]``).

Importing this package registers:

- ``"beamtrack/TransverseTuning-v0"``: :class:`TransverseTuningEnv`, set magnets so that
  a screen shows a target beam; 50 steps per episode. Its vector version
  (``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")``) is
  :class:`TransverseTuningVectorEnv`, which advances all copies in one batched
  tracking call.

``import beamtrack`` does not import this package (nor gymnasium).

Examples
--------
>>> import gymnasium as gym
>>> import beamtrack.envs
>>> env = gym.make("beamtrack/TransverseTuning-v0")
>>> observation, info = env.reset(seed=0)
>>> observation.shape
(12,)
"""

from __future__ import annotations

import gymnasium as gym

from beamtrack.envs.actuated_map import ActuatedMap
from beamtrack.envs.transverse_tuning import TransverseTuningEnv, TransverseTuningVectorEnv

#: Identifier of the transverse tuning environment.
TRANSVERSE_TUNING = "beamtrack/TransverseTuning-v0"

if TRANSVERSE_TUNING not in gym.registry:
    gym.register(
        id=TRANSVERSE_TUNING,
        entry_point="beamtrack.envs.transverse_tuning:TransverseTuningEnv",
        vector_entry_point="beamtrack.envs.transverse_tuning:TransverseTuningVectorEnv",
        max_episode_steps=50,
    )

__all__ = ["TRANSVERSE_TUNING", "ActuatedMap", "TransverseTuningEnv",
           "TransverseTuningVectorEnv"]
