"""What the gesture environments read: per-clip codes and audio, the reward scorer, and the pure functions
that turn an episode's state into an observation and a reward window.

The dataset builder uses the same functions, so a dataset episode replayed in the environment reproduces
its observations and rewards exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from racer_env.corpus.store import Corpus
from racer_env.reward.scorer import RewardScorer
from racer_env.vqvae.tokenize import encode_clip

#: normalised audio features are clipped to [-AUDIO_BOUND, AUDIO_BOUND] so the observation space is finite.
AUDIO_BOUND = 10.0


@dataclass(frozen=True)
class ObservationConfig:
    """Shape of the observation: audio of code steps k-past .. k+lookahead, and the last `history` codes."""

    past: int = 3  # code steps of audio before the step being chosen (1.2 s)
    lookahead: int = 1  # code steps of audio after it (0.4 s): a small lookahead, as in the paper's GPT
    history: int = 8  # codes the agent sees (3.2 s)

    @property
    def context(self) -> int:
        return self.past + 1 + self.lookahead


@dataclass(eq=False)
class ClipData:
    clip_id: str
    codes: np.ndarray  # (L,) int64 ground-truth codes from the VQ-VAE
    audio: np.ndarray  # (L * 8, F) float32 raw audio features (the reward scorer normalises them)
    audio_obs: np.ndarray  # (L, 8, F) float32 normalised, clipped audio features per code step

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
        self.skeleton = corpus.skeleton
        self.stats = corpus.stats
        self.corpus_sha256 = corpus.checksum
        self.splits = {s: corpus.clip_ids(s) for s in ("train", "valid", "test")}
        self.clips: dict[str, ClipData] = {}
        for clip_id in corpus.clip_ids():
            clip = corpus.clip(clip_id)
            n_codes = clip.n_frames // self.frames_per_code
            norm = np.clip(self.stats.normalise_audio(clip.audio), -AUDIO_BOUND, AUDIO_BOUND).astype(np.float32)
            self.clips[clip_id] = ClipData(
                clip_id=clip_id,
                codes=encode_clip(self.scorer.vqvae, clip, self.stats),
                audio=clip.audio.astype(np.float32),
                audio_obs=norm.reshape(n_codes, self.frames_per_code, -1),
            )

    def clip(self, clip_id: str) -> ClipData:
        try:
            return self.clips[clip_id]
        except KeyError:
            raise ValueError(f"no clip {clip_id!r} in {self.workspace}; e.g. {list(self.clips)[:3]}") from None

    def split_ids(self, split: str) -> list[str]:
        if split not in self.splits:
            raise ValueError(f"split must be one of {list(self.splits)}, got {split!r}")
        return self.splits[split]

    def rewards(self, windows: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Rewards of (codes (l,), raw audio (8l, F)) windows: one batched scorer call per window length
        (one call once every episode is past its first W-1 steps)."""
        out = np.zeros(len(windows), dtype=np.float32)
        by_len: dict[int, list[int]] = {}
        for i, (codes, _) in enumerate(windows):
            by_len.setdefault(len(codes), []).append(i)
        for idx in by_len.values():
            codes = torch.from_numpy(np.stack([windows[i][0] for i in idx]))
            audio = torch.from_numpy(np.stack([windows[i][1] for i in idx]))
            out[idx] = self.scorer.rewards(codes, audio).numpy()
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


def reward_window(clip: ClipData, start: int, history: np.ndarray, window: int,
                  frames_per_code: int) -> tuple[np.ndarray, np.ndarray]:
    """The last ``window`` codes of the episode (fewer at its start) and the raw audio of the same frames."""
    codes = np.asarray(history[-window:], dtype=np.int64)
    last = start + len(history) - 1  # clip code step of the newest code
    first = last - len(codes) + 1
    return codes, clip.audio[first * frames_per_code:(last + 1) * frames_per_code]
