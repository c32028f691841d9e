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
    codes: torch.Tensor | None = None  # (N, W) the codes the motion was decoded from

    def __len__(self) -> int:
        return len(self.clip)

    def subset(self, idx: np.ndarray) -> WindowSet:
        t = torch.as_tensor(idx, dtype=torch.long)
        return WindowSet(self.motion[t], self.audio[t], self.clip[idx], self.start[idx],
                         None if self.codes is None else self.codes[t])


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
    codes = torch.stack(code_windows)  # (N, W)
    motion = decode_windows(vqvae, codes.to(device)).cpu()
    return WindowSet(motion, torch.stack(audio), np.array(clip_idx), np.array(starts), codes)


def reordered_windows(vqvae: VQVAE, windows: WindowSet, rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:
    """Each window decoded from its own codes in another order: (N, 8W, J*3) motion and (N,) bool, False where
    every order of the window's codes is the same sequence (one repeated code), which is then no negative.

    The same gestures at the wrong moments of the same speech: what a system that picks plausible codes without
    their timing produces (the nearest-neighbour lookup's strokes fall mostly away from the stressed syllables)."""
    codes = windows.codes.clone()  # (N, W)
    valid = np.zeros(len(codes), dtype=bool)
    for i, row in enumerate(windows.codes):
        for _ in range(8):  # a few draws find another order unless (almost) every code is the same
            perm = row[torch.as_tensor(rng.permutation(len(row)))]
            if not torch.equal(perm, row):
                codes[i], valid[i] = perm, True
                break
    return decode_windows(vqvae, codes.to(next(vqvae.parameters()).device)).cpu(), valid


def lookup_codes(corpus: Corpus, vqvae: VQVAE, clip_ids: list[str], context: int = 1) -> list[np.ndarray]:
    """Each clip's codes as a nearest-neighbour lookup on its speech picks them from the *other* clips (leave one
    clip out): at code step k, the human code of the step of another clip whose normalised audio over code steps
    k - context .. k + context (zero-padded at the clip's edges) is nearest (Euclidean). Step 0 keeps the clip's
    own code. Uses speech and codes only, never an annotation, so it works on any corpus.

    Returns: (L_c,) int64 codes per clip, in ``clip_ids`` order."""
    stats, fpc = corpus.stats, corpus.frames_per_code
    keys, codes, owner = [], [], []
    for i, clip_id in enumerate(clip_ids):
        clip = corpus.clip(clip_id)
        c = encode_clip(vqvae, clip, stats)  # (L,)
        feats = stats.normalise_audio(clip.audio).astype(np.float32)[:len(c) * fpc]  # (8L, F)
        pad = np.zeros((context * fpc, feats.shape[1]), np.float32)
        padded = np.concatenate([pad, feats, pad])  # (8(L + 2 context), F)
        span = (2 * context + 1) * fpc
        keys.append(np.stack([padded[k * fpc:k * fpc + span].reshape(-1) for k in range(len(c))]))  # (L, span*F)
        codes.append(c.astype(np.int64))
        owner.append(np.full(len(c), i))
    table = torch.from_numpy(np.concatenate(keys))  # (N, D)
    values, owners = np.concatenate(codes), torch.from_numpy(np.concatenate(owner))
    norms = (table**2).sum(1)  # (N,)
    out = []
    for i, query in enumerate(keys):
        distance = norms[None] - 2.0 * torch.from_numpy(query) @ table.t()  # (L, N), up to |query|^2
        distance[:, owners == i] = float("inf")  # never the clip's own steps
        picked = values[distance.argmin(1).numpy()] if len(keys) > 1 else codes[i].copy()
        picked[0] = codes[i][0]
        out.append(picked)
    return out


def lookup_windows(corpus: Corpus, vqvae: VQVAE, clip_ids: list[str], windows: WindowSet) -> tuple[torch.Tensor, np.ndarray]:
    """Each window decoded from the codes the leave-one-clip-out lookup (:func:`lookup_codes`) picks on its speech:
    (N, 8W, J*3) motion and (N,) bool, False where the lookup picks exactly the human codes (then no negative).

    What a system that matches speech to plausible gestures without their rules produces: on the built-in
    speaker the lookup's (and the agents') strokes land on stressed syllables that get none, and miss those that
    do, while the phrases, rests and nods are right (issue 24's diagnosis)."""
    per_clip = lookup_codes(corpus, vqvae, clip_ids)
    w = windows.codes.shape[1]
    codes = torch.stack([torch.from_numpy(per_clip[c][s:s + w]) for c, s in zip(windows.clip, windows.start)])
    valid = (codes != windows.codes).any(1).numpy()
    return decode_windows(vqvae, codes.to(next(vqvae.parameters()).device)).cpu(), valid


def real_windows(corpus: Corpus, clip_ids: list[str], windows: WindowSet) -> torch.Tensor:
    """(N, 8W, J*3) the real (normalised) corpus motion of the frames of each window of ``windows`` (built from
    ``clip_ids``): what the decoded motion of the window approximates."""
    fpc, n = corpus.frames_per_code, windows.motion.shape[1]
    clips = [torch.from_numpy(corpus.stats.normalise_motion(corpus.clip(c).motion_features()).astype(np.float32))
             for c in clip_ids]  # (T, J*3) each
    return torch.stack([clips[c][s * fpc:s * fpc + n] for c, s in zip(windows.clip, windows.start)])
