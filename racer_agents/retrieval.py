"""The nearest-neighbour lookup: a reference system with no learning beyond a table.

At every step the agent finds the training step whose speech context is nearest to the current one and plays
the code the human speaker used there. Keys are the observation's normalised audio context (code steps
k - past .. k + lookahead, 8 frames each, every feature), flattened; the distance is Euclidean. It is what
retrieval alone achieves on held-out speech: an agent that learns from the same data should do at least as well.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from racer_agents.agent import Agent
from racer_env.envs.episode_data import EnvData, ObservationConfig, audio_context
from racer_env.errors import RacerError


class NearestNeighbourAgent(Agent):
    """Plays the ground-truth code of the training step with the nearest audio context.

    Batched (``act_batch``): the distances of B queries in one matrix product, which rounds otherwise than the
    one-query product of ``act``; a query whose nearest key is not clear of every other key by more than both
    products' rounding error (a near tie) is decided by ``act`` itself, so every code is the one ``act`` chooses.

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

    #: lock-step rollouts: :meth:`act_batch` (the table has no per-episode state)
    batched = True

    def act(self, observation: dict) -> int:
        query = torch.from_numpy(np.asarray(observation["audio"], dtype=np.float32).reshape(-1))  # (D,)
        distance = self.key_norms - 2.0 * (self.keys @ query)  # (N,) squared distance minus |query|^2
        return int(self.values[int(torch.argmin(distance))])

    def reset_batch(self, n: int) -> None:
        """Nothing to reset: the choice depends on the observation alone."""

    def act_batch(self, observations: Sequence[dict], episodes: Sequence[int]) -> list[int]:
        """The codes ``act`` chooses for each observation, the distances of all of them in one product."""
        queries = torch.from_numpy(np.stack([np.asarray(o["audio"], dtype=np.float32).reshape(-1)
                                             for o in observations]))  # (B, D)
        distance = self.key_norms[None] - 2.0 * (queries @ self.keys.T)  # (B, N), as act's but rounded otherwise
        slack = self._rounding_bound(queries)  # (B, N): |this distance - act's| is below it
        best = (distance + slack).argmin(1)  # (B,) the key whose distance is surely the least, if any is
        lowest_upper = (distance + slack).gather(1, best[:, None])  # (B, 1)
        clear = ((distance - slack) <= lowest_upper).sum(1) == 1  # (B,) no other key can be as near as act sees it
        return [int(self.values[int(k)]) if ok else self.act(o)  # a near tie: act's own product decides
                for k, ok, o in zip(best, clear.tolist(), observations)]

    def _rounding_bound(self, queries: torch.Tensor) -> torch.Tensor:
        """(B, N) a bound, twice over, on how far the batched distances can be from :meth:`act`'s.

        Each computes |k|^2 - 2 k.q in float32 with its own summation order; a dot product of D terms is within
        gamma_D * sum|k_i q_i| of the exact one whatever the order (gamma_D = D u / (1 - D u), u = 2^-24), the
        final subtraction within u of its result, and sum|k_i q_i| <= |k| |q| (Cauchy-Schwarz).
        """
        u = 2.0 ** -24
        gamma = queries.shape[1] * u / (1.0 - queries.shape[1] * u)
        dot_bound = self.key_norms.sqrt()[None] * queries.norm(dim=1)[:, None]  # (B, N) >= |k.q| and sum|k_i q_i|
        per_path = 2.0 * gamma * dot_bound + u * (self.key_norms[None] + 2.0 * (1.0 + gamma) * dot_bound)
        return 2.0 * (2.0 * per_path)  # both paths, then a factor 2 for the rounding of this bound itself
