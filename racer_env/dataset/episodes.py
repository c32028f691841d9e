"""Offline episodes of the gesture MDP: ground-truth trajectories and their augmentations, labelled in batches.

The paper augments the corpus into a trajectory dataset without saying how; ours:

* ``ground_truth``: the human speaker's codes of every training segment: each whole clip (the default; agents
  draw their training windows at any step of it), or segments of H code steps starting every ``stride`` steps;
* ``random_substitution``: each code replaced with probability ``p_substitute`` by a uniformly random code;
* ``nn_substitution``: each code replaced with probability ``p_substitute`` by one of the ``k_nearest`` codes
  nearest to it in the codebook (a similar but different gesture);
* ``time_shift``: the segment's own codes taken 2-4 code steps early or late against its audio;
* ``codes_from_other_clip``: the codes of a segment of another training clip (a plausible gesture for
  other speech; repeated from its start where the other segment is shorter);
* ``policy``: rollouts of a given policy (optional).

Every episode starts from the ground-truth a_0 of its segment, and its observations and rewards are exactly
what the environment returns for ``reset(options={"clip": clip, "start": start})`` and the same actions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from tqdm.auto import tqdm

from racer_env.envs.episode_data import EnvData, ObservationConfig, observation, reward_input, rollout_codes
from racer_env.errors import RacerError

GROUND_TRUTH = "ground_truth"  # the source of the human speaker's episodes
SOURCES = (GROUND_TRUTH, "random_substitution", "nn_substitution", "time_shift", "codes_from_other_clip",
           "policy", "random", "replay")
AUGMENTATIONS = SOURCES[1:5]
SHIFTS = (-4, -3, -2, 2, 3, 4)


@dataclass(frozen=True)
class AugmentConfig:
    """Which episodes a dataset holds. Recorded in the dataset's metadata."""

    segment_codes: int | None = None  # H: actions per episode; None: whole clips (the paper: 15-code sequences)
    stride: int = 15  # code steps between segment starts (15: non-overlapping); unused for whole clips
    augment: int = 4  # augmented episodes per ground-truth segment, cycling through AUGMENTATIONS
    p_substitute: float = 0.3
    k_nearest: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.segment_codes is not None and self.segment_codes < 1) or self.stride < 1 or self.augment < 0:
            raise RacerError("segment_codes >= 1 (or None: whole clips), stride >= 1 and augment >= 0 are required")
        if not 0 < self.p_substitute <= 1:
            raise RacerError(f"p_substitute must be in (0, 1], got {self.p_substitute}")


@dataclass
class Episode:
    clip: str
    start: int
    actions: np.ndarray  # (H,) int64
    source: str
    observations: dict | None = None  # audio (H+1, P+1+A, 8, F), codes (H+1, C)
    rewards: np.ndarray | None = None  # (H,) float32

    @property
    def options(self) -> dict:
        return {"clip": self.clip, "start": self.start}


def nearest_codes(codebook: torch.Tensor, k: int) -> np.ndarray:
    """(N, k) indices of each code's k nearest other codes (Euclidean, in code space)."""
    dist = torch.cdist(codebook, codebook)  # (N, N)
    dist.fill_diagonal_(float("inf"))
    return dist.topk(min(k, len(codebook) - 1), largest=False).indices.numpy()


def segment_starts(n_codes: int, horizon: int, stride: int) -> list[int]:
    """Starts s with s + horizon <= n_codes - 1 (a_0 at s, actions for s+1 .. s+horizon)."""
    return list(range(0, n_codes - horizon, stride))


def training_segments(data: EnvData, clip_ids: list[str], cfg: AugmentConfig) -> list[tuple[str, int, int]]:
    """(clip, start, horizon) of every ground-truth episode: one per clip of two or more code steps for whole
    clips, else every ``stride`` steps."""
    if cfg.segment_codes is None:
        return [(c, 0, data.clips[c].n_codes - 1) for c in clip_ids if data.clips[c].n_codes >= 2]
    h = cfg.segment_codes
    return [(c, s, h) for c in clip_ids for s in segment_starts(data.clips[c].n_codes, h, cfg.stride)]


def make_episodes(data: EnvData, clip_ids: list[str], cfg: AugmentConfig) -> list[Episode]:
    """Ground-truth and augmented episodes (actions only) of the given clips."""
    rng = np.random.default_rng(cfg.seed)
    neighbours = nearest_codes(data.scorer.vqvae.quantizer.codebook.detach().cpu(), cfg.k_nearest)
    segments = training_segments(data, clip_ids, cfg)
    if not segments:
        raise RacerError(f"no training clip has the {(cfg.segment_codes or 1) + 1} code steps a segment needs"
                         + ("; lower --segment-codes" if cfg.segment_codes else ""))
    episodes = []
    for i, (clip_id, start, h) in enumerate(segments):
        gt = data.clips[clip_id].codes[start + 1:start + 1 + h]
        episodes.append(Episode(clip_id, start, gt.copy(), GROUND_TRUTH))
        for j in range(cfg.augment):
            kind = AUGMENTATIONS[(i * cfg.augment + j) % len(AUGMENTATIONS)]
            episodes.append(Episode(clip_id, start, _augment(kind, data, clip_id, start, gt, segments, neighbours,
                                                             cfg, rng), kind))
    return episodes


def _augment(kind: str, data: EnvData, clip_id: str, start: int, gt: np.ndarray, segments: list,
             neighbours: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    actions = gt.copy()
    if kind in ("random_substitution", "nn_substitution"):
        mask = rng.random(len(gt)) < cfg.p_substitute
        mask[rng.integers(len(gt))] = True  # at least one substitution
        if kind == "random_substitution":
            actions[mask] = rng.integers(0, data.n_codes, mask.sum())
        else:
            actions[mask] = neighbours[gt[mask], rng.integers(0, neighbours.shape[1], mask.sum())]
        return actions
    if kind == "time_shift":
        codes = data.clips[clip_id].codes
        idx = np.clip(np.arange(start + 1, start + 1 + len(gt)) + rng.choice(SHIFTS), 0, len(codes) - 1)
        return codes[idx].copy()
    others = [s for s in segments if s[0] != clip_id]
    if not others:
        raise RacerError("codes_from_other_clip needs at least two training clips with segments; use --augment 3 "
                         "or a larger corpus")
    other_clip, other_start, other_h = others[int(rng.integers(len(others)))]
    return np.resize(data.clips[other_clip].codes[other_start + 1:other_start + 1 + other_h], len(gt))


@runtime_checkable
class Policy(Protocol):
    """What rolls out a dataset's policy episodes: reset at each episode's start, then one code per observation
    (racer_agents' agents implement it; a plain function observation -> code is taken as a stateless policy)."""

    def reset(self) -> None: ...

    def act(self, observation: dict) -> int: ...


def policy_episodes(data: EnvData, segments: list[tuple[str, int, int]], policy: Policy | Callable[[dict], int],
                    cfg: ObservationConfig) -> list[Episode]:
    """Rollouts of ``policy`` from the ground-truth a_0 of each (clip, start, horizon)."""
    stateful = isinstance(policy, Policy)
    act = policy.act if stateful else policy
    episodes = []
    for clip_id, start, horizon in segments:
        clip = data.clips[clip_id]
        if stateful:
            policy.reset()
        actions = rollout_codes(act, clip, start, horizon, int(clip.codes[start]), cfg, data.n_codes,
                                agent=getattr(policy, "name", "policy"))
        episodes.append(Episode(clip_id, start, actions, "policy"))
    return episodes


def random_episodes(data: EnvData, like: list[Episode], seed: int) -> list[Episode]:
    """One episode of uniformly random codes for each of ``like`` (same clip, start and length)."""
    rng = np.random.default_rng([seed, 2])
    return [Episode(e.clip, e.start, rng.integers(0, data.n_codes, len(e.actions)), "random") for e in like]


def clip_episodes(data: EnvData, clip_ids: list[str]) -> list[Episode]:
    """The human speaker's episode of every whole clip (from its first code step)."""
    return [Episode(c, 0, data.clips[c].codes[1:].copy(), GROUND_TRUTH) for c in clip_ids
            if len(data.clips[c].codes) >= 2]


def label_episodes(data: EnvData, episodes: list[Episode], cfg: ObservationConfig, batch: int = 4096,
                   progress: bool = True, reward: str = "contrastive") -> None:
    """Fill every episode's observations and rewards (``reward``: "contrastive" or "distance", as the
    environment's option); rewards come from batched calls."""
    windows: list[tuple[np.ndarray, np.ndarray]] = []
    for ep in tqdm(episodes, desc="observations", unit="episode", disable=not progress):
        clip = data.clips[ep.clip]
        history = np.concatenate([clip.codes[ep.start:ep.start + 1], ep.actions])  # a_0 .. a_H
        obs = [observation(clip, ep.start, history[:t + 1], cfg, data.n_codes) for t in range(len(history))]
        ep.observations = {k: np.stack([o[k] for o in obs]) for k in ("audio", "codes")}
        windows += [reward_input(reward, clip, ep.start, history[:t + 2], data.scorer.window_codes,
                                 data.frames_per_code) for t in range(len(ep.actions))]
    rewards = np.concatenate([data.rewards(windows[i:i + batch], reward)
                              for i in tqdm(range(0, len(windows), batch), desc="rewards", unit="batch",
                                            disable=not progress)])
    offset = 0
    for ep in episodes:
        ep.rewards = rewards[offset:offset + len(ep.actions)].astype(np.float32)
        offset += len(ep.actions)
