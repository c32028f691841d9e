"""What the gesture environments read: per-clip codes and audio, the reward scorer, and the pure functions
that turn an episode's state into an observation and a reward window.

The dataset builder uses the same functions, so a dataset episode replayed in the environment reproduces
its observations and rewards exactly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from racer_env.corpus.store import Corpus
from racer_env.errors import RacerError
from racer_env.reward.scorer import RewardScorer
from racer_env.reward.windows import decode_windows
from racer_env.vqvae.tokenize import encode_clip

#: the environment's reward options: the contrastive model's score (RACER) or the negative pose distance to the
#: ground truth (the paper's "distance reward" ablation)
REWARD_KINDS = ("contrastive", "distance")


def check_reward_kind(kind: str) -> str:
    """``kind`` if it is one of :data:`REWARD_KINDS` (the one place they are checked), else a RacerError."""
    if kind not in REWARD_KINDS:
        raise RacerError(f"reward must be one of {REWARD_KINDS}, got {kind!r}")
    return kind
DISTANCE_UNIT_MM = 100.0  # the distance reward is in units of 10 cm, so that it is of the order of 1

#: normalised audio features are clipped to [-AUDIO_BOUND, AUDIO_BOUND] so the observation space is finite.
AUDIO_BOUND = 10.0
#: how the agents' audio observation is normalised (recorded in datasets, so one built otherwise is not reused)
AUDIO_NORMALISATION = "per-clip standardisation, sd floored at 0.1 x the corpus's"
STD_FLOOR = 0.1  # a clip's feature sd is floored at this fraction of the corpus's (a near-constant feature stays 0)


def observation_audio(features: np.ndarray, stats, frames_per_code: int) -> np.ndarray:
    """(T, F) raw audio features of one clip or recording -> (T // 8, 8, F) float32 observation audio.

    Each feature is standardised over the clip itself (its mean and standard deviation; the sd floored at
    ``STD_FLOOR`` times the training corpus's), then clipped to +-AUDIO_BOUND. Per-utterance standardisation, as
    speech front-ends do it, removes what differs between recordings but says nothing about gesture timing (the
    level, the microphone's and the voice's spectrum): real recordings read against the synthetic corpus's
    statistics land far outside the range the agents were trained on (the ZEGGS take: log-mel z-scores of mean
    -1.4 and sd 3.2), and per clip they do not. The reward model keeps the corpus statistics.
    """
    x = np.asarray(features, dtype=np.float64)
    n_codes = len(x) // frames_per_code
    x = x[:n_codes * frames_per_code]
    mean, sd = standardisation(x, stats)
    return standardise(x, mean, sd).reshape(n_codes, frames_per_code, -1)


def standardisation(features: np.ndarray, stats) -> tuple[np.ndarray, np.ndarray]:
    """(T, F) raw audio features -> the (F,) mean and sd :func:`observation_audio` standardises them with (float64;
    the sd floored at ``STD_FLOOR`` times the corpus's)."""
    x = np.asarray(features, dtype=np.float64)
    return x.mean(axis=0), np.maximum(x.std(axis=0), STD_FLOOR * np.asarray(stats.audio_std, dtype=np.float64))


def standardise(features: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """(..., F) raw audio features -> float32 observation audio: (x - mean) / sd clipped to +-AUDIO_BOUND, value by
    value (so any part of a recording standardises as it does within the whole)."""
    x = np.asarray(features, dtype=np.float64)
    return np.clip((x - mean) / sd, -AUDIO_BOUND, AUDIO_BOUND).astype(np.float32)


#: code steps of speech after the step being chosen that the observation holds (1.2 s). Which stressed syllable
#: takes a beat stroke depends on the speech up to a second ahead (a stroke too near the end of its phrase is
#: dropped, so the rest of the phrase decides the last ones): with 0.4 s (one step, as in the paper's GPT) the
#: agents reached a stroke F1 under 0.5 on held-out clips, with 1.2 s 0.57-0.75 (docs/environment.md).
DEFAULT_LOOKAHEAD = 3


@dataclass(frozen=True)
class ObservationConfig:
    """Shape of the observation: audio of code steps k-past .. k+lookahead, and the last `history` codes."""

    past: int = 3  # code steps of audio before the step being chosen (1.2 s)
    lookahead: int = DEFAULT_LOOKAHEAD  # code steps of audio after it (1.2 s)
    history: int = 8  # codes the agent sees (3.2 s)

    @property
    def context(self) -> int:
        return self.past + 1 + self.lookahead


@dataclass(frozen=True)
class EnvConfig:
    """Everything that defines a gesture environment (both the single and the vector one): JSON values only, so
    that it pickles, goes into ``gym.make`` kwargs and is checked in one place."""

    workspace: str
    split: str = "train"
    segment_codes: int | None = 15  # H, actions per episode; None: whole clips
    past: int = 3
    lookahead: int = DEFAULT_LOOKAHEAD
    history: int = 8
    device: str = "cpu"
    render_mode: str | None = None
    reward: str = "contrastive"

    def __post_init__(self) -> None:
        object.__setattr__(self, "workspace", str(self.workspace))
        check_reward_kind(self.reward)
        if self.render_mode not in (None, "rgb_array"):
            raise RacerError(f"render_mode must be None or 'rgb_array', got {self.render_mode!r}")
        if self.segment_codes is not None and self.segment_codes < 1:
            raise RacerError(f"segment_codes must be >= 1 or None (whole clips), got {self.segment_codes}")
        if min(self.past, self.lookahead) < 0 or self.history < 1:
            raise RacerError(f"need past >= 0, lookahead >= 0, history >= 1; got {self.past}, {self.lookahead}, "
                             f"{self.history}")

    @property
    def obs_cfg(self) -> ObservationConfig:
        return ObservationConfig(past=self.past, lookahead=self.lookahead, history=self.history)

    def load(self) -> EnvData:
        """The workspace's (cached) environment data, with the split checked."""
        data = load_env_data(self.workspace, self.device)
        data.split_ids(self.split)  # validates the split name
        return data


@dataclass(eq=False)
class ClipData:
    clip_id: str
    codes: np.ndarray  # (L,) int64 ground-truth codes from the VQ-VAE
    audio: np.ndarray  # (L * 8, F) float32 raw audio features (the reward scorer normalises them)
    audio_obs: np.ndarray  # (L, 8, F) float32 observation audio per code step (see observation_audio)
    # (L * 8, J, 3) float32 ground-truth joint positions (mm) on the reference skeleton; None for speech without
    # motion (generation), which has no distance reward
    positions: np.ndarray | None = None

    @property
    def n_codes(self) -> int:
        return len(self.codes)


class EnvData:
    """Corpus clips of every split, encoded once, with the reward scorer of the workspace."""

    def __init__(self, workspace: str, device: str = "cpu") -> None:
        self.workspace = str(workspace)
        corpus = Corpus.load(workspace)
        self.scorer = RewardScorer.from_workspace(workspace, device)
        self.frames_per_code = corpus.frames_per_code
        self.fps = corpus.fps
        self.n_codes = self.scorer.vqvae.cfg.codebook_size
        self.n_audio_features = corpus.n_audio_features
        self.skeleton = corpus.skeleton  # the reference skeleton (of the first speaker): distances are measured on it
        self.stats = corpus.stats
        self.corpus_sha256 = corpus.checksum
        self.splits = {s: corpus.clip_ids(s) for s in ("train", "valid", "test")}
        self.clips: dict[str, ClipData] = {}
        for clip_id in corpus.clip_ids():
            clip = corpus.clip(clip_id)
            n_codes = clip.n_frames // self.frames_per_code
            self.clips[clip_id] = ClipData(
                clip_id=clip_id,
                codes=encode_clip(self.scorer.vqvae, clip, self.stats),
                audio=clip.audio.astype(np.float32),
                audio_obs=observation_audio(clip.audio, self.stats, self.frames_per_code),
                positions=self._positions(clip.rotations[:n_codes * self.frames_per_code]),
            )

    def clip(self, clip_id: str) -> ClipData:
        try:
            return self.clips[clip_id]
        except KeyError:
            raise RacerError(f"no clip {clip_id!r} in {self.workspace}; e.g. {list(self.clips)[:3]}") from None

    def split_ids(self, split: str) -> list[str]:
        if split not in self.splits:
            raise RacerError(f"split must be one of {list(self.splits)}, got {split!r}")
        return self.splits[split]

    def _positions(self, rotations: np.ndarray) -> np.ndarray:
        """(T, J, 3) rotation vectors -> (T, J, 3) float32 joint positions (mm) on the reference skeleton."""
        return self.skeleton.positions(rotations).astype(np.float32)

    def rewards(self, windows: list[tuple[np.ndarray, np.ndarray]], kind: str = "contrastive") -> np.ndarray:
        """Rewards of reward inputs (see :func:`reward_input`), batched: one call per window length (one call once
        every episode is past its first W-1 steps)."""
        if kind == "distance":
            return self.distance_rewards(windows)
        check_reward_kind(kind)
        out = np.zeros(len(windows), dtype=np.float32)
        by_len: dict[int, list[int]] = {}
        for i, (codes, _) in enumerate(windows):
            by_len.setdefault(len(codes), []).append(i)
        for idx in by_len.values():
            codes = torch.from_numpy(np.stack([windows[i][0] for i in idx]))
            audio = torch.from_numpy(np.stack([windows[i][1] for i in idx]))
            out[idx] = self.scorer.rewards(codes, audio).numpy()
        return out


    @torch.no_grad()
    def distance_rewards(self, windows: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """-(mean joint distance, in units of 10 cm) between the motion of the newest code, decoded in the context
        of the codes (l,) before it, and the ground-truth positions (8, J, 3) of the same frames."""
        out = np.zeros(len(windows), dtype=np.float32)
        by_len: dict[int, list[int]] = {}
        for i, (codes, _) in enumerate(windows):
            by_len.setdefault(len(codes), []).append(i)
        fpc, n_joints = self.frames_per_code, self.skeleton.n_joints
        device = next(self.scorer.vqvae.parameters()).device
        for idx in by_len.values():
            codes = torch.from_numpy(np.stack([windows[i][0] for i in idx])).to(device)
            motion = decode_windows(self.scorer.vqvae, codes)[:, -fpc:].cpu().numpy()  # (B, 8, J*3) normalised
            rot = self.stats.denormalise_motion(motion).reshape(-1, n_joints, 3)  # (B * 8, J, 3)
            pos = self._positions(rot).reshape(len(idx), fpc, n_joints, 3)
            truth = np.stack([windows[i][1] for i in idx])  # (B, 8, J, 3)
            out[idx] = -np.linalg.norm(pos - truth, axis=-1).mean(axis=(1, 2)) / DISTANCE_UNIT_MM
        return out


@lru_cache(maxsize=4)
def _cached(workspace: str, device: str, stamp: tuple) -> EnvData:
    return EnvData(workspace, device)


def load_env_data(workspace: str, device: str = "cpu") -> EnvData:
    """EnvData shared by every environment of this process on the same workspace files (reloaded when the
    corpus, VQ-VAE or reward model files change)."""
    root = Path(workspace)
    files = [root / "corpus" / "manifest.json", root / "vqvae" / "model.pt", root / "reward" / "model.pt"]
    stamp = tuple((str(f), f.stat().st_mtime_ns) if f.exists() else (str(f), 0) for f in files)
    return _cached(str(root.resolve()), device, stamp)


# -- pure functions of the episode state ---------------------------------------------------------------------
def audio_context(clip: ClipData, step: int, cfg: ObservationConfig) -> np.ndarray:
    """(context, 8, F) normalised audio of code steps step-past .. step+lookahead; zeros outside the clip."""
    out = np.zeros((cfg.context,) + clip.audio_obs.shape[1:], dtype=np.float32)
    lo, hi = step - cfg.past, step + cfg.lookahead + 1
    src_lo, src_hi = max(lo, 0), min(hi, clip.n_codes)
    if src_hi > src_lo:
        out[src_lo - lo:src_hi - lo] = clip.audio_obs[src_lo:src_hi]
    return out


def code_history(history: np.ndarray, cfg: ObservationConfig, pad: int) -> np.ndarray:
    """(history,) the last codes chosen (oldest first), left-padded with ``pad``."""
    out = np.full(cfg.history, pad, dtype=np.int64)
    tail = np.asarray(history[-cfg.history:], dtype=np.int64)
    if len(tail):
        out[-len(tail):] = tail
    return out


def observation(clip: ClipData, start: int, history: np.ndarray, cfg: ObservationConfig, pad: int) -> dict:
    """The observation when ``len(history) - 1`` codes have been chosen after a_0 = history[0]: the agent
    now chooses the code of clip step ``start + len(history)``."""
    return {"audio": audio_context(clip, start + len(history), cfg), "codes": code_history(history, cfg, pad)}


def rollout(policy: Callable[[Any], Any], first_observation: Any, step: Callable[[Any], Any], horizon: int,
            progress: bool = False) -> list:
    """The one rollout loop of racer: ``horizon`` times, ``policy`` maps the observation to the action(s), and
    ``step`` applies them and returns the next observation. One episode or a batch stepped together; ``step`` is an
    environment's (online training steps the vector environment) or the replay of a clip without one
    (:func:`rollout_codes`: generation, policy datasets, evaluation). Returns the actions, one entry per step."""
    actions, obs = [], first_observation
    for _ in tqdm(range(horizon), desc="gestures", unit="code", disable=not progress):
        action = policy(obs)
        obs = step(action)
        actions.append(action)
    return actions


def checked_action(action: Any, n_codes: int, step: int, agent: str) -> int:
    """``action`` as a code if it is an integer in [0, n_codes) (a Python or numpy integer, or a one-element integer
    array or tensor); else a RacerError naming the agent, the step and the value. Every rollout checks each action
    here as it is chosen, so a user's agent that returns 99999, -1, None or 3.7 is refused at its first bad step,
    not 40 s later inside the VQ-VAE (nor 3.7 silently used as code 3)."""
    value = action
    if isinstance(value, (np.ndarray, torch.Tensor)) and int(np.prod(value.shape)) == 1:
        value = value.reshape(()).item()
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and 0 <= value < n_codes:
        return int(value)
    shown = repr(value) if not isinstance(value, np.generic) else repr(value.item())
    raise RacerError(f"agent {agent}: act returned {shown[:60]} at step {step}; expected an integer code in "
                     f"[0, {n_codes - 1}]")


def rollout_codes(policy: Callable[[dict], int], clip: ClipData, start: int, horizon: int, first_code: int,
                  cfg: ObservationConfig, n_codes: int, progress: bool = False,
                  on_step: Callable[[np.ndarray], None] | None = None, agent: str = "policy") -> np.ndarray:
    """A policy rolled out over a clip without an environment: ``policy`` (observation -> code) chooses the
    ``horizon`` codes of clip steps ``start + 1 ..`` after a_0 = ``first_code``, seeing exactly the observations the
    environment would give. ``on_step(history)`` runs after each code with the episode so far (a_0 .. the new code),
    before the next choice: evaluation scores the step there and hands the reward to the agent. Used by ``racer
    generate`` (no reward to score), policy episodes of a dataset (labelled afterwards in batches) and evaluation.
    Without ``on_step`` only the observed history is kept, so memory does not grow with the horizon. Each code is
    checked as it is chosen (:func:`checked_action`; ``agent`` names the policy in the error). Returns (horizon,)
    codes."""
    recent: deque = deque([int(first_code)], maxlen=cfg.history)  # the codes an observation shows
    chosen: list[int] = []

    def observe() -> dict:
        history = np.fromiter(recent, dtype=np.int64)
        return observation(clip, start + len(chosen) + 1 - len(history), history, cfg, n_codes)

    def replay(action) -> dict:
        code = checked_action(action, n_codes, len(chosen), agent)
        recent.append(code)
        chosen.append(code)
        if on_step is not None:
            on_step(np.array([first_code, *chosen], dtype=np.int64))
        return observe()

    rollout(policy, observe(), replay, horizon, progress)
    return np.array(chosen, dtype=np.int64).reshape(horizon)


def rollout_codes_batch(act_batch: Callable[[list[dict], list[int]], list], clips: list[ClipData],
                        first_codes: list[int], cfg: ObservationConfig, n_codes: int,
                        agent: str = "policy") -> list[np.ndarray]:
    """:func:`rollout_codes` of whole clips in lock-step: at step t every clip still running (more than t codes
    to choose after its a_0) is one episode of the batch, and ``act_batch(observations, episodes)`` chooses all of
    their codes at once. Each episode sees exactly the observations :func:`rollout_codes` shows it (the clip from
    step 0, a_0 = ``first_codes[i]``); an episode that has chosen all its codes drops out of the batch (the
    episodes of a call are in increasing order). Each code is checked as it is chosen. Returns each clip's
    (L - 1,) codes."""
    histories = [deque([int(first)], maxlen=cfg.history) for first in first_codes]  # the codes an observation shows
    chosen: list[list[int]] = [[] for _ in clips]
    horizons = [clip.n_codes - 1 for clip in clips]
    for t in range(max(horizons, default=0)):
        running = [i for i, h in enumerate(horizons) if h > t]
        observations = [observation(clips[i], t + 1 - len(histories[i]), np.fromiter(histories[i], dtype=np.int64),
                                    cfg, n_codes) for i in running]
        actions = act_batch(observations, running)
        if len(actions) != len(running):
            raise RacerError(f"agent {agent}: act_batch returned {len(actions)} codes for {len(running)} episodes")
        for i, action in zip(running, actions):
            code = checked_action(action, n_codes, t, agent)
            histories[i].append(code)
            chosen[i].append(code)
    return [np.array(c, dtype=np.int64).reshape(h) for c, h in zip(chosen, horizons)]


def reward_window(clip: ClipData, start: int, history: np.ndarray, window: int,
                  frames_per_code: int) -> tuple[np.ndarray, np.ndarray]:
    """The last ``window`` codes of the episode (fewer at its start) and the raw audio of the same frames."""
    codes = np.asarray(history[-window:], dtype=np.int64)
    last = start + len(history) - 1  # clip code step of the newest code
    first = last - len(codes) + 1
    return codes, clip.audio[first * frames_per_code:(last + 1) * frames_per_code]


def reward_input(kind: str, clip: ClipData, start: int, history: np.ndarray, window: int,
                 frames_per_code: int) -> tuple[np.ndarray, np.ndarray]:
    """What :meth:`EnvData.rewards` scores for the newest code of an episode: (codes, raw audio) for the
    contrastive reward, (codes, ground-truth positions (8, J, 3) of the newest code's frames) for the distance."""
    codes, audio = reward_window(clip, start, history, window, frames_per_code)
    if check_reward_kind(kind) == "contrastive":
        return codes, audio
    if clip.positions is None:
        raise RacerError(f"clip {clip.clip_id!r} has no ground-truth motion: no distance reward")
    last = start + len(history) - 1
    return codes, clip.positions[last * frames_per_code:(last + 1) * frames_per_code]
