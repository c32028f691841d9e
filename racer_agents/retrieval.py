"""The nearest-neighbour lookup: a reference system with no learning beyond a table.

At every step the agent finds the training step whose speech context is nearest to the current one and plays
the code the human speaker used there. Keys are the observation's normalised audio context (code steps
k - past .. k + lookahead, 8 frames each, every feature), flattened; the distance is Euclidean. It is what
retrieval alone achieves on held-out speech: an agent that learns from the same data should do at least as well.
"""

from __future__ import annotations

import numpy as np
import torch

from racer_agents.agent import Agent
from racer_env.envs.episode_data import EnvData, ObservationConfig, audio_context
from racer_env.errors import RacerError


class NearestNeighbourAgent(Agent):
    """Plays the ground-truth code of the training step with the nearest audio context.

    Args:
        data: the workspace's encoded clips (``racer_env.envs.episode_data.load_env_data``).
        split: the clips the table is built from (the training split: never the evaluated one).
        obs_cfg: the observation shape the agent is run with (the table's keys have the same shape).
    """

    def __init__(self, data: EnvData, split: str = "train", obs_cfg: ObservationConfig | None = None) -> None:
        obs_cfg = obs_cfg or ObservationConfig()
        self.name, self.n_codes, self.obs_cfg = "nearest_neighbour", data.n_codes, obs_cfg
        keys, values = [], []
        for clip_id in data.split_ids(split):
            clip = data.clip(clip_id)
            for step in range(1, clip.n_codes):  # step 0 is a_0, given by the environment
                keys.append(audio_context(clip, step, obs_cfg).reshape(-1))
                values.append(clip.codes[step])
        if not keys:
            raise RacerError(f"the {split!r} split of {data.workspace} has no clip longer than one code step: "
                             f"the nearest-neighbour table would be empty")
        self.keys = torch.from_numpy(np.stack(keys))  # (N, context * 8 * F)
        self.key_norms = (self.keys**2).sum(1)  # (N,)
        self.values = np.asarray(values, dtype=np.int64)  # (N,)

    def act(self, observation: dict) -> int:
        query = torch.from_numpy(np.asarray(observation["audio"], dtype=np.float32).reshape(-1))  # (D,)
        distance = self.key_norms - 2.0 * (self.keys @ query)  # (N,) squared distance minus |query|^2
        return int(self.values[int(torch.argmin(distance))])
