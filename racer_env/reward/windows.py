"""Reward windows: W consecutive code steps of decoded motion with the audio of the same frames."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from racer_env.corpus.store import Clip, Corpus
from racer_env.errors import RacerError
from racer_env.vqvae.model import VQVAE
from racer_env.vqvae.tokenize import decode_normalised, encode_clip


@dataclass
class WindowSet:
    """Aligned windows. ``motion`` is decoded from each window's own codes, as the environment does."""

    motion: torch.Tensor  # (N, 8W, J*3) normalised, smoothed decoded motion
    audio: torch.Tensor  # (N, 8W, F) normalised audio features
    clip: np.ndarray  # (N,) index into the clip list the set was built from
    start: np.ndarray  # (N,) first code step of the window in its clip

    def __len__(self) -> int:
        return len(self.clip)

    def subset(self, idx: np.ndarray) -> WindowSet:
        t = torch.as_tensor(idx, dtype=torch.long)
        return WindowSet(self.motion[t], self.audio[t], self.clip[idx], self.start[idx])


@torch.no_grad()
def decode_windows(vqvae: VQVAE, codes: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """(N, W) code windows -> (N, 8W, J*3) normalised decoded motion, in batches."""
    return torch.cat([decode_normalised(vqvae, codes[i:i + batch]) for i in range(0, len(codes), batch)])


def build_windows(corpus: Corpus, vqvae: VQVAE, clip_ids: list[str], window_codes: int, stride: int = 1,
                  transform: Callable[[Clip], Clip] | None = None) -> WindowSet:
    """Every window of ``window_codes`` code steps (at ``stride``) of the given clips, each clip first
    mapped by ``transform`` when given (e.g. a part held at rest; the windows stay aligned)."""
    stats, fpc = corpus.stats, corpus.frames_per_code
    code_windows, audio, clip_idx, starts = [], [], [], []
    for i, clip_id in enumerate(clip_ids):
        clip = corpus.clip(clip_id) if transform is None else transform(corpus.clip(clip_id))
        codes = torch.from_numpy(encode_clip(vqvae, clip, stats))  # (L,)
        feats = torch.from_numpy(stats.normalise_audio(clip.audio).astype(np.float32))  # (T, F)
        for s in range(0, len(codes) - window_codes + 1, stride):
            code_windows.append(codes[s:s + window_codes])
            audio.append(feats[s * fpc:(s + window_codes) * fpc])
            clip_idx.append(i)
            starts.append(s)
    if not code_windows:
        raise RacerError(f"no clip among {len(clip_ids)} is {window_codes} code steps long")
    device = next(vqvae.parameters()).device
    motion = decode_windows(vqvae, torch.stack(code_windows).to(device)).cpu()
    return WindowSet(motion, torch.stack(audio), np.array(clip_idx), np.array(starts))
