"""Minari gesture episodes as training windows for the GPT agents (one forward pass per window).

The dataset's episodes may be of any length (whole clips by default). A training batch is a set of windows of
``window`` consecutive steps drawn at *any* start step of any episode long enough: a GPT with absolute position
embeddings that only ever saw windows starting at fixed clip steps learns those phases by heart (shifting the
same training windows by one step cost a supervised agent a fifth of its accuracy), while at inference its
sliding context lands on every phase.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from racer_env.dataset.builder import DatasetInfo
from racer_env.dataset.episodes import GROUND_TRUTH
from racer_env.envs.episode_data import ObservationConfig
from racer_env.errors import RacerError


@dataclass
class Windows:
    """A batch of windows, the GPT's inputs and targets."""

    audio: torch.Tensor  # (B, T, audio_dim) audio token of every step: current step + lookahead
    prev_codes: torch.Tensor  # (B, T) long: the newest code before each action
    actions: torch.Tensor  # (B, T) long
    rewards: torch.Tensor  # (B, T) float
    dones: torch.Tensor  # (B, T) float: 1 where the episode terminated
    human: torch.Tensor  # (B, T) float: 1 on the steps of ground-truth (human speaker's) episodes


@dataclass
class Segments:
    """Every step of a dataset's episodes, concatenated, with the episode boundaries."""

    audio: torch.Tensor  # (S, audio_dim) over all S steps of all episodes
    prev_codes: torch.Tensor  # (S,) long
    actions: torch.Tensor  # (S,) long
    rewards: torch.Tensor  # (S,) float
    dones: torch.Tensor  # (S,) float
    starts: np.ndarray  # (E,) index of each episode's first step
    lengths: np.ndarray  # (E,) steps per episode
    source: np.ndarray  # (E,) int: index into ``sources``
    sources: tuple[str, ...]  # the dataset's source names
    _human: torch.Tensor | None = field(default=None, repr=False)  # cache of human_steps()

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def audio_dim(self) -> int:
        return int(self.audio.shape[-1])

    def human_steps(self) -> torch.Tensor:
        """(S,) float: 1 on the steps of ground-truth episodes."""
        human = np.zeros(len(self.actions), dtype=np.float32)
        if GROUND_TRUTH in self.sources:
            for s, n, src in zip(self.starts, self.lengths, self.source):
                human[s:s + n] = float(self.sources[src] == GROUND_TRUTH)
        return torch.from_numpy(human)

    def episodes(self, idx) -> Segments:
        """The episodes ``idx`` only (e.g. the ground truth for behaviour cloning)."""
        idx = np.asarray(idx, dtype=np.int64)
        steps = np.concatenate([np.arange(s, s + n) for s, n in zip(self.starts[idx], self.lengths[idx])]) \
            if len(idx) else np.zeros(0, dtype=np.int64)
        t = torch.from_numpy(steps)
        lengths = self.lengths[idx]
        return Segments(self.audio[t], self.prev_codes[t], self.actions[t], self.rewards[t], self.dones[t],
                        np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(idx) else lengths,
                        lengths, self.source[idx], self.sources)

    def of_source(self, name: str) -> Segments:
        if name not in self.sources:
            raise RacerError(f"unknown episode source {name!r}; the dataset's sources are {list(self.sources)}")
        return self.episodes(np.flatnonzero(self.source == self.sources.index(name)))

    def window_starts(self, window: int) -> np.ndarray:
        """(W,) the first step (index into the concatenated steps) of every window of ``window`` steps that lies
        inside one episode: every start step of every episode at least ``window`` long."""
        if window < 1:
            raise RacerError(f"window must be >= 1, got {window}")
        parts = [np.arange(s, s + n - window + 1) for s, n in zip(self.starts, self.lengths) if n >= window]
        if not parts:
            raise RacerError(f"no episode has the {window} steps a training window needs (longest: "
                             f"{int(self.lengths.max()) if len(self.lengths) else 0}); build the dataset with longer "
                             f"episodes or train with a shorter window")
        return np.concatenate(parts)

    def windows(self, firsts: np.ndarray, window: int) -> Windows:
        """The windows starting at steps ``firsts`` (B,): tensors (B, window, ...)."""
        t = torch.from_numpy(np.asarray(firsts, dtype=np.int64))[:, None] + torch.arange(window)  # (B, window)
        if self._human is None:
            self._human = self.human_steps()
        return Windows(self.audio[t], self.prev_codes[t], self.actions[t], self.rewards[t], self.dones[t],
                       self._human[t])


def audio_tokens(audio_context: np.ndarray, cfg: ObservationConfig) -> np.ndarray:
    """(..., context, 8, F) observation audio -> (..., (1 + lookahead) * 8 * F) tokens of the current step."""
    tok = audio_context[..., cfg.past:cfg.past + 1 + cfg.lookahead, :, :]
    return tok.reshape(tok.shape[:-3] + (-1,))


def load_segments(dataset) -> Segments:
    """Every episode of a racer Minari dataset, concatenated (episodes may differ in length)."""
    info = DatasetInfo.of(dataset)
    cfg = info.observation
    parts: dict[str, list] = {k: [] for k in ("audio", "prev", "actions", "rewards", "dones", "source")}
    for ep in dataset.iterate_episodes():
        steps = len(ep.actions)
        parts["audio"].append(audio_tokens(ep.observations["audio"][:steps], cfg).astype(np.float32))
        parts["prev"].append(ep.observations["codes"][:steps, -1])
        parts["actions"].append(ep.actions)
        parts["rewards"].append(ep.rewards)
        parts["dones"].append(ep.terminations)
        parts["source"].append(int(ep.infos["source"][0]))
    lengths = np.array([len(a) for a in parts["actions"]], dtype=np.int64)
    return Segments(
        audio=torch.from_numpy(np.concatenate(parts["audio"])),
        prev_codes=torch.from_numpy(np.concatenate(parts["prev"]).astype(np.int64)),
        actions=torch.from_numpy(np.concatenate(parts["actions"]).astype(np.int64)),
        rewards=torch.from_numpy(np.concatenate(parts["rewards"]).astype(np.float32)),
        dones=torch.from_numpy(np.concatenate(parts["dones"]).astype(np.float32)),
        starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
        lengths=lengths,
        source=np.array(parts["source"]),
        sources=info.sources,
    )
