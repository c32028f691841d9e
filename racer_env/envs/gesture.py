"""The gesture MDP as a Gymnasium environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from racer_env.envs.episode_data import (
    AUDIO_BOUND,
    DEFAULT_LOOKAHEAD,
    EnvConfig,
    EnvData,
    ObservationConfig,
    observation,
    reward_input,
)
from racer_env.errors import RacerError
from racer_env.render import draw_pose, pose_positions, rest_framing
from racer_env.vqvae.tokenize import decode_codes


def observation_space(n_codes: int, n_features: int, frames_per_code: int, cfg: ObservationConfig) -> spaces.Dict:
    return spaces.Dict({
        "audio": spaces.Box(-AUDIO_BOUND, AUDIO_BOUND, (cfg.context, frames_per_code, n_features), np.float32),
        "codes": spaces.MultiDiscrete(np.full(cfg.history, n_codes + 1, dtype=np.int64)),
    })


def render_history(data: EnvData, history: np.ndarray) -> np.ndarray:
    """The rgb image of an episode: the decoded pose of its newest code (front view, 256 x 256)."""
    window = history[-data.scorer.window_codes:]
    rot = decode_codes(data.scorer.vqvae, window, data.stats)[-1]  # (J, 3) last frame
    extent, center = rest_framing(data.skeleton)
    return draw_pose(pose_positions(data.skeleton, rot), data.skeleton.parents, size=256, extent_mm=extent,
                     center=center)


def check_action(action: Any, n_codes: int) -> int:
    """The action as an int in [0, n_codes), or a ValueError that says what arrived."""
    arr = np.asarray(action)
    if arr.shape != () or not np.issubdtype(arr.dtype, np.integer) or not 0 <= int(arr) < n_codes:
        raise ValueError(f"action must be an integer code index in [0, {n_codes}), got {action!r}")
    return int(arr)


def reset_options(options: Any) -> dict:
    """``reset(options=...)`` as a dict (``None`` -> empty), or a RacerError that says what arrived."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise RacerError(f"reset options must be a dict with keys 'clip', 'start', 'split'; "
                         f"got {type(options).__name__}")
    unknown = set(options) - {"clip", "start", "split"}
    if unknown:
        raise RacerError(f"unknown reset options {sorted(unknown, key=str)}; expected 'clip', 'start', 'split'")
    return dict(options)


def start_option(value: Any) -> int:
    """The ``start`` reset option as an int: Python and numpy integers, and integral floats (2.0); nothing else
    (2.5 would silently become 2, "2" and True are not step numbers)."""
    integral = isinstance(value, (int, np.integer)) or (
        isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer())
    if integral and not isinstance(value, (bool, np.bool_)):
        return int(value)
    raise RacerError(f"reset option 'start' must be an integer code step, got {value!r}")


def choose_episode(data, options: Mapping | None, rng: np.random.Generator, split: str,
                   segment_codes: int | None) -> tuple[str, int, int]:
    """(clip id, start step, horizon H) from reset options, drawing what they leave open with ``rng``."""
    options = reset_options(options)
    h = segment_codes
    if "clip" in options:
        clip_id = str(options["clip"])
        n = data.clip(clip_id).n_codes
    else:
        pool = options.get("split", split)
        long_enough = [c for c in data.split_ids(pool) if data.clips[c].n_codes - 1 >= (h or 1)]
        if not long_enough:
            raise RacerError(f"no clip of split {pool!r} has the {(h or 1) + 1} code steps an episode needs")
        clip_id = long_enough[int(rng.integers(len(long_enough)))]
        n = data.clips[clip_id].n_codes
    last_start = n - 1 - (h or 1)
    if last_start < 0:
        raise RacerError(f"clip {clip_id!r} has {n} code steps; an episode of segment_codes={h} needs {(h or 1) + 1}")
    start = start_option(options["start"]) if "start" in options else (
        0 if h is None else int(rng.integers(last_start + 1)))
    if not 0 <= start <= last_start:
        raise RacerError(f"reset option 'start' {start} is out of range for clip {clip_id!r} of {n} code steps "
                         f"with segment_codes={h}: use 0 .. {last_start}")
    return clip_id, start, (n - 1 - start) if h is None else h


class GestureSynthesisEnv(gym.Env):
    """Choose the next gesture code for a stretch of speech.

    ## Description

    Co-speech gesture synthesis as a Markov decision process (RACER, CVPR 2023). Motion is a sequence of
    gesture codes from the workspace's VQ-VAE codebook, one code per 8 motion frames (0.4 s at 20 fps). An
    episode is a segment of a corpus clip: the code a_0 of its first step is given (the ground truth), and the
    agent chooses the codes of the next H steps, one per step, seeing the speech around the step it chooses
    for and the codes chosen so far. A contrastive speech-gesture model scores every choice.

    ## Action Space

    ``Discrete(N)``: the index of the next code, N = codebook size (256 for the `demo` VQ-VAE).

    ## Observation Space

    ``Dict`` with

    | key | shape | dtype | bounds | meaning |
    | --- | --- | --- | --- | --- |
    | ``audio`` | (P + 1 + A, 8, F) | float32 | [-10, 10] | normalised speech features (64 log-mel, onset strength, log RMS) of code steps k-P .. k+A, k = the step being chosen; zeros beyond the clip |
    | ``codes`` | (C,) | int64 | 0 .. N | the last C codes of the episode (a_0 first), oldest first; N pads the steps before a_0 |

    Defaults: P = 3 past steps, A = 3 lookahead steps (1.2 s), C = 8 codes, F = 66.

    ## Rewards

    r_t = cosine similarity, under the workspace's reward model, between the motion decoded from the last W
    codes of the episode (a_0 included; fewer during the first W - 1 steps) and the speech features of the same
    frames; r_t is in [-1, 1]. W is the reward model's window (4 code steps by default).

    With ``reward="distance"`` (``racer/GestureSynthesisDistance-v0``, the paper's distance-reward ablation)
    r_t = -(mean over the newest code's 8 frames and the joints of the Euclidean distance between the decoded
    joint positions and the ground truth's), in units of 10 cm, on the corpus's reference skeleton; r_t <= 0.

    ## Starting State

    A clip of ``split`` and a segment start drawn with ``self.np_random`` (uniform over clips long enough, then
    over starts), or given by ``reset(options={"clip": id, "start": step})``; ``options["split"]`` draws from
    another split. a_0 is the ground-truth code of the start step.

    ## Episode End

    Terminated after H actions, when the segment's last code has been chosen. Never truncated by the
    environment (wrap it in ``TimeLimit`` for shorter horizons).

    ## Arguments

    ``gym.make("racer/GestureSynthesis-v0", workspace="W")`` with, all JSON values:

    * ``workspace`` (str): a workspace with a corpus, VQ-VAE and reward model.
    * ``split`` ("train"): clips to draw episodes from.
    * ``segment_codes`` (15): H, actions per episode (the paper's 15-code sequences); ``None`` = whole clips
      (H = clip length - 1 - start).
    * ``past`` (3), ``lookahead`` (3), ``history`` (8): observation sizes P, A, C.
    * ``reward`` ("contrastive"): "contrastive" (the reward model) or "distance" (pose distance to the truth).
    * ``device`` ("cpu"): where the VQ-VAE decoder and the reward model run.
    * ``render_mode`` (None or "rgb_array"): draws the decoded pose of the newest code (front view).

    ## Version History

    * v0: initial version. ``racer/GestureSynthesisDistance-v0``: the same MDP with ``reward="distance"``.
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 2.5}

    def __init__(self, workspace: str, split: str = "train", segment_codes: int | None = 15, past: int = 3,
                 lookahead: int = DEFAULT_LOOKAHEAD, history: int = 8, device: str = "cpu", render_mode: str | None = None,
                 reward: str = "contrastive") -> None:
        self.config = EnvConfig(workspace, split, segment_codes, past, lookahead, history, device, render_mode,
                                reward)
        self.data = self.config.load()
        self.split, self.segment_codes, self.reward = split, segment_codes, reward
        self.obs_cfg = self.config.obs_cfg
        self.render_mode = render_mode
        self.n_codes = self.data.n_codes
        self.observation_space = observation_space(self.n_codes, self.data.n_audio_features,
                                                   self.data.frames_per_code, self.obs_cfg)
        self.action_space = spaces.Discrete(self.n_codes)
        self._clip = None
        self._start = 0
        self._horizon = 0
        self._history = np.zeros(0, dtype=np.int64)

    # -- episode -------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        clip_id, self._start, self._horizon = choose_episode(self.data, options, self.np_random,
                                                             self.split, self.segment_codes)
        self._clip = self.data.clip(clip_id)
        self._history = self._clip.codes[self._start:self._start + 1].copy()  # a_0
        return self._observation(), {}

    def step(self, action):
        if self._clip is None:
            raise RuntimeError("call reset() before step()")
        if len(self._history) > self._horizon:
            raise RuntimeError("the episode is over (terminated); call reset() before step()")
        code = check_action(action, self.n_codes)
        self._history = np.append(self._history, code)
        window = reward_input(self.reward, self._clip, self._start, self._history, self.data.scorer.window_codes,
                              self.data.frames_per_code)
        reward = float(self.data.rewards([window], self.reward)[0])
        terminated = len(self._history) > self._horizon
        return self._observation(), reward, terminated, False, {}

    def _observation(self) -> dict:
        return observation(self._clip, self._start, self._history, self.obs_cfg, self.n_codes)

    # -- rendering -----------------------------------------------------------------------------------------
    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if self._clip is None:
            raise RuntimeError("call reset() before render()")
        return render_history(self.data, self._history)

    # -- pickling: the loaded models are shared, so rebuild from the config --------------------------------
    def __getstate__(self) -> dict:
        return {"kwargs": asdict(self.config), "clip": None if self._clip is None else self._clip.clip_id,
                "start": self._start, "horizon": self._horizon, "history": self._history,
                "np_random": self._np_random}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state["kwargs"])
        self._clip = None if state["clip"] is None else self.data.clip(state["clip"])
        self._start, self._horizon, self._history = state["start"], state["horizon"], state["history"]
        self._np_random = state["np_random"]
