"""Wrappers for libraries that do not take Dict observations."""

from __future__ import annotations

import gymnasium as gym
from gymnasium import spaces

#: the order of the Dict observation's parts in tuple observations (d3rlpy datasets and encoders use it).
OBSERVATION_KEYS = ("audio", "codes")


class DictToTupleObservation(gym.ObservationWrapper):
    """The gesture observation as a tuple ``(audio, codes)`` (d3rlpy's tuple observations)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        if not isinstance(env.observation_space, spaces.Dict) or set(env.observation_space) != set(OBSERVATION_KEYS):
            raise ValueError(f"expected a Dict observation space with keys {OBSERVATION_KEYS}, "
                             f"got {env.observation_space}")
        self.observation_space = spaces.Tuple(tuple(env.observation_space[k] for k in OBSERVATION_KEYS))

    def observation(self, observation: dict) -> tuple:
        return tuple(observation[k] for k in OBSERVATION_KEYS)
