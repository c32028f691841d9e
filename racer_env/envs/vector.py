"""The gesture MDP, natively batched: one reward-model call per step for all sub-environments."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import VectorEnv
from gymnasium.vector.utils import batch_space

from racer_env.envs.episode_data import DEFAULT_LOOKAHEAD, EnvConfig, observation, reward_input
from racer_env.envs.gesture import check_action, choose_episode, observation_space, render_history
from racer_env.errors import RacerError


class GestureSynthesisVectorEnv(VectorEnv):
    """``num_envs`` gesture-synthesis episodes stepped together (see :class:`GestureSynthesisEnv` for the MDP).

    Each sub-environment has its own random generator, seeded like ``SyncVectorEnv`` seeds its sub-envs
    (``reset(seed=s)`` seeds sub-env i with s + i), so with the same seeds the two produce the same
    observations and rewards. Autoreset is next-step, as in gymnasium 1.0: the ``step`` after a sub-env
    terminates resets it (its action is ignored, reward 0) and returns the first observation of the new
    episode. Rewards of all sub-environments come from one batched reward-model call (one per distinct window
    length while some episodes are in their first W - 1 steps).
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 2.5, "autoreset_mode": "next_step"}

    def __init__(self, num_envs: int = 1, workspace: str = "", split: str = "train", segment_codes: int | None = 15,
                 past: int = 3, lookahead: int = DEFAULT_LOOKAHEAD, history: int = 8, device: str = "cpu",
                 render_mode: str | None = None, reward: str = "contrastive") -> None:
        if num_envs < 1:
            raise RacerError(f"num_envs must be >= 1, got {num_envs}")
        self.config = EnvConfig(workspace, split, segment_codes, past, lookahead, history, device, render_mode,
                                reward)
        self.data = self.config.load()  # shared with every other environment of the workspace
        self.num_envs = num_envs
        self.split, self.segment_codes, self.render_mode, self.reward = split, segment_codes, render_mode, reward
        self.obs_cfg = self.config.obs_cfg
        self.n_codes = self.data.n_codes
        self.single_observation_space = observation_space(self.n_codes, self.data.n_audio_features,
                                                          self.data.frames_per_code, self.obs_cfg)
        self.single_action_space = spaces.Discrete(self.n_codes)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._rngs = [seeding.np_random(None)[0] for _ in range(num_envs)]
        self._clips: list = [None] * num_envs
        self._starts = np.zeros(num_envs, dtype=np.int64)
        self._horizons = np.zeros(num_envs, dtype=np.int64)
        self._histories: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * num_envs
        self._autoreset = np.zeros(num_envs, dtype=bool)

    def _reset_one(self, i: int, options: dict | None) -> None:
        clip_id, start, horizon = choose_episode(self.data, options, self._rngs[i], self.split,
                                                 self.segment_codes)
        self._clips[i] = self.data.clip(clip_id)
        self._starts[i], self._horizons[i] = start, horizon
        self._histories[i] = self._clips[i].codes[start:start + 1].copy()

    def _observations(self) -> dict:
        obs = [observation(c, int(s), h, self.obs_cfg, self.n_codes)
               for c, s, h in zip(self._clips, self._starts, self._histories)]
        return {k: np.stack([o[k] for o in obs]) for k in ("audio", "codes")}

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if seed is None:
            seeds = [None] * self.num_envs
        elif isinstance(seed, int):
            seeds = [seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise RacerError(f"need {self.num_envs} seeds, got {len(seeds)}")
        for i, s in enumerate(seeds):
            if s is not None or self._clips[i] is None:
                self._rngs[i] = seeding.np_random(s)[0]
            self._reset_one(i, options)
        self._autoreset[:] = False
        return self._observations(), {}

    def step(self, actions):
        if any(c is None for c in self._clips):
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            raise RacerError(f"actions must have shape ({self.num_envs},), got {actions.shape}")
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=bool)
        windows, stepped = [], []
        for i in range(self.num_envs):
            if self._autoreset[i]:
                self._reset_one(i, None)
                continue
            self._histories[i] = np.append(self._histories[i], check_action(actions[i], self.n_codes))
            windows.append(reward_input(self.reward, self._clips[i], int(self._starts[i]), self._histories[i],
                                        self.data.scorer.window_codes, self.data.frames_per_code))
            stepped.append(i)
            terminated[i] = len(self._histories[i]) > self._horizons[i]
        if stepped:
            rewards[stepped] = self.data.rewards(windows, self.reward)
        self._autoreset = terminated.copy()
        return self._observations(), rewards, terminated, np.zeros(self.num_envs, dtype=bool), {}

    def episode_origins(self) -> tuple[tuple[str, int], ...]:
        """(clip id, start step) of every sub-environment's current episode: with its actions, what replays it."""
        if any(c is None for c in self._clips):
            raise RuntimeError("call reset() before episode_origins()")
        return tuple((c.clip_id, int(s)) for c, s in zip(self._clips, self._starts))

    def render(self):
        """A tuple of one rgb array per sub-environment (with render_mode='rgb_array')."""
        if self.render_mode != "rgb_array":
            return None
        if any(c is None for c in self._clips):
            raise RuntimeError("call reset() before render()")
        return tuple(render_history(self.data, h) for h in self._histories)
