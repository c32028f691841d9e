"""Clips to codes and codes back to motion with a trained VQ-VAE.

Decoding follows the paper: decode, Gaussian smoothing along time (kernel 5), de-normalise. The smoothing
width is the model's ``smooth_sigma`` (recorded in its checkpoint; 0 = no smoothing): at sigma 1 frame the
smoothing alone, applied to the corpus motion itself, loses a fifth of the 0.10 s beat strokes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from racer_env.checkpoint import load_stage_model
from racer_env.corpus.store import Clip, Corpus, NormStats
from racer_env.vqvae.model import FRAMES_PER_CODE, VQVAE, ResBlock, VQVAEConfig
from racer_env.workspace import Workspace

SMOOTH_KERNEL = 5  # frames (the paper)
SMOOTH_SIGMA = 1.0  # frames, the default of ``gaussian_smooth``; a model decodes with its ``cfg.smooth_sigma``


def load_vqvae(workspace: str | Workspace, corpus: Corpus | None = None, device: str | torch.device = "cpu"):
    """The trained VQ-VAE of a workspace, checked against its corpus.

    Returns:
        (model in eval mode, checkpoint meta, checkpoint checksum).
    """
    meta, state, checksum, _ = load_stage_model(workspace, "vqvae", corpus)
    model = VQVAE(VQVAEConfig(**meta["arch"]))
    model.load_state_dict(state["model"])  # strict: a mismatch is an error, never a partial load
    return model.to(device).eval(), meta, checksum


def gaussian_smooth(x: torch.Tensor, kernel: int = SMOOTH_KERNEL, sigma: float = SMOOTH_SIGMA) -> torch.Tensor:
    """(B, C, T) -> (B, C, T) smoothed along time with a normalised Gaussian kernel, edges replicated."""
    t = torch.arange(kernel, dtype=x.dtype, device=x.device) - (kernel - 1) / 2
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    w = (w / w.sum()).repeat(x.shape[1], 1, 1)  # (C, 1, K) depthwise
    return F.conv1d(F.pad(x, ((kernel - 1) // 2, kernel // 2), mode="replicate"), w, groups=x.shape[1])


def decoder_reach(model: VQVAE) -> int:
    """How many codes on either side of a code its decoded (and smoothed) frames depend on: the frames of code i are
    a function of codes i - reach .. i + reach (and of where the code sequence starts and ends, the convolutions'
    zero padding), of nothing further away. Worked out layer by layer from the decoder's convolutions (the
    `demo` and `paper` architectures: 25 codes, 10 s); ``tests/test_stream.py`` checks it by changing one code.

    Decoding a window of codes that reaches this far past a code on both sides (or to the sequence's ends) gives
    that code's frames as decoding the whole sequence does, up to float rounding (a convolution over another length
    may sum in another order)."""
    lo, hi = 0, FRAMES_PER_CODE - 1  # the frames of code 0, at the output's rate
    if model.cfg.smooth_sigma > 0:
        lo, hi = lo - (SMOOTH_KERNEL - 1) // 2, hi + SMOOTH_KERNEL // 2
    for layer in reversed(list(model.decoder)):
        lo, hi = _positions_read(layer, lo, hi)
    return max(-lo, hi)  # at the codes' rate now


def _positions_read(layer: torch.nn.Module, lo: int, hi: int) -> tuple[int, int]:
    """The input positions outputs lo .. hi of a decoder layer read (a residual block reads what its convolution
    does, and the positions themselves)."""
    if isinstance(layer, ResBlock):
        a, b = _positions_read(layer.conv1, lo, hi)
        return min(a, lo), max(b, hi)
    if isinstance(layer, torch.nn.ConvTranspose1d):  # output j = i * stride - padding + k * dilation
        (k,), (s,), (p,), (d,) = layer.kernel_size, layer.stride, layer.padding, layer.dilation
        return -((-(lo + p - d * (k - 1))) // s), (hi + p) // s
    if isinstance(layer, torch.nn.Conv1d):  # output j reads j * stride - padding + k * dilation
        (k,), (s,), (p,), (d,) = layer.kernel_size, layer.stride, layer.padding, layer.dilation
        return lo * s - p, hi * s - p + d * (k - 1)
    raise TypeError(f"decoder_reach: no rule for a {type(layer).__name__} layer")


def encode_clip(model: VQVAE, clip: Clip, stats: NormStats) -> np.ndarray:
    """A clip's motion -> (T/8,) int64 code indices."""
    x = torch.from_numpy(stats.normalise_motion(clip.motion_features()).T.astype(np.float32))[None]
    return model.encode(x.to(next(model.parameters()).device))[0].cpu().numpy()


def decode_normalised(model: VQVAE, codes: torch.Tensor, smooth: bool = True) -> torch.Tensor:
    """(B, L) codes -> (B, 8L, J*3) normalised motion (smoothed by the model's ``smooth_sigma``), as the
    reward model sees it."""
    x = model.decode(codes)  # (B, J*3, 8L)
    sigma = model.cfg.smooth_sigma
    return (gaussian_smooth(x, SMOOTH_KERNEL, sigma) if smooth and sigma > 0 else x).transpose(1, 2)


def decode_codes(model: VQVAE, codes: np.ndarray | torch.Tensor, stats: NormStats, smooth: bool = True) -> np.ndarray:
    """(L,) or (B, L) codes -> (8L, J, 3) or (B, 8L, J, 3) rotation vectors (radians)."""
    c = torch.as_tensor(np.asarray(codes), dtype=torch.long)
    single = c.ndim == 1
    c = c[None] if single else c
    x = decode_normalised(model, c.to(next(model.parameters()).device), smooth).cpu().numpy()
    rot = stats.denormalise_motion(x).reshape(x.shape[0], x.shape[1], -1, 3)
    return rot[0] if single else rot
