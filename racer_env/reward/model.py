"""The contrastive speech-gesture reward model (CLIP-style).

Two 1-D temporal convolutional encoders, E_m over (decoded, normalised) motion and E_u over (normalised)
audio features, map a window of any length to a unit vector. Trained with the symmetric InfoNCE loss at a
learnable temperature; the reward is the cosine similarity E_m(M) . E_u(U) in [-1, 1] (the paper's
R(M, U) = E_m(M) . E_u(U) with normalised embeddings).

Pooling keeps coarse timing: the convolutional features are average-pooled into ``bins`` time bins (one
per code step of the training window) before the projection, so a gesture shifted against its speech
gets a different embedding. Global mean pooling would make the embedding blind to such shifts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class RewardConfig:
    motion_channels: int  # J*3
    audio_channels: int  # audio features per frame
    window_codes: int = 4  # W: code steps per reward window (r_t scores the last W codes)
    hidden: int = 128  # channels of the convolutions
    embed_dim: int = 64  # joint embedding size
    layers: int = 3  # convolution blocks per encoder
    kernel: int = 5
    init_temperature: float = 0.07  # CLIP's initial temperature

    def to_dict(self) -> dict:
        return asdict(self)


class WindowEncoder(nn.Module):
    """(B, T, C) window of any length T -> (B, E) unit embedding."""

    def __init__(self, in_channels: int, cfg: RewardConfig) -> None:
        super().__init__()
        pad = cfg.kernel // 2
        blocks: list[nn.Module] = [nn.Conv1d(in_channels, cfg.hidden, cfg.kernel, 1, pad), nn.GELU()]
        for _ in range(cfg.layers - 1):
            blocks += [nn.Conv1d(cfg.hidden, cfg.hidden, cfg.kernel, 1, pad), nn.GroupNorm(8, cfg.hidden), nn.GELU()]
        self.convs = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool1d(cfg.window_codes)  # one bin per code step
        self.proj = nn.Linear(cfg.hidden * cfg.window_codes, cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.convs(x.transpose(1, 2)))  # (B, H, bins)
        return F.normalize(self.proj(h.flatten(1)), dim=-1)  # (B, E)


class RewardModel(nn.Module):
    """Motion and audio encoders with a learnable temperature."""

    def __init__(self, cfg: RewardConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.motion_encoder = WindowEncoder(cfg.motion_channels, cfg)
        self.audio_encoder = WindowEncoder(cfg.audio_channels, cfg)
        self.log_inv_temperature = nn.Parameter(torch.tensor(-math.log(cfg.init_temperature)))

    def forward(self, motion: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, J*3), (B, T, F) -> unit embeddings (B, E) of the motion and of the audio windows."""
        return self.motion_encoder(motion), self.audio_encoder(audio)

    def logits_of(self, motion_emb: torch.Tensor, audio_emb: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, E), (B, E) -> (B, B) similarity / temperature (motion rows, audio columns)."""
        scale = self.log_inv_temperature.clamp(max=math.log(100.0)).exp()  # CLIP caps 1/T at 100
        return scale * motion_emb @ audio_emb.t()

    def logits(self, motion: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """(B, T, J*3), (B, T, F) -> (B, B) similarity / temperature (motion rows, audio columns)."""
        return self.logits_of(*self(motion, audio))

    def info_nce_of(self, motion_emb: torch.Tensor, audio_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Symmetric InfoNCE of embeddings (row i's positive is column i); returns (loss, (B, B) logits)."""
        logits = self.logits_of(motion_emb, audio_emb)
        target = torch.arange(len(logits), device=logits.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)), logits

    def info_nce(self, motion: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Symmetric InfoNCE of windows (row i's positive is column i); returns (loss, (B, B) logits)."""
        return self.info_nce_of(*self(motion, audio))

    def score(self, motion: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Reward of each (motion, audio) window pair: (B, T, J*3), (B, T, F) -> (B,) cosine in [-1, 1]."""
        if motion.shape[:2] != audio.shape[:2]:
            raise ValueError(f"motion {tuple(motion.shape)} and audio {tuple(audio.shape)} windows must share "
                             f"batch and length")
        return (self.motion_encoder(motion) * self.audio_encoder(audio)).sum(-1)
