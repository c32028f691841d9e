"""The contrastive speech-gesture reward model (CLIP-style).

Two 1-D temporal convolutional encoders, E_m over (decoded, normalised) motion and E_u over (normalised)
audio features, map a window of any length to a unit vector. Trained with the symmetric InfoNCE loss at a
learnable temperature; the reward is the cosine similarity E_m(M) . E_u(U) in [-1, 1] (the paper's
R(M, U) = E_m(M) . E_u(U) with normalised embeddings).

Body parts (``parts``; ours, the paper does not define the encoders' internals): ``whole`` encodes all motion
channels with one encoder; ``arms_rest`` gives the arm channels and the rest of the body (spine, neck, head)
their own motion encoder, each matched by its own audio encoder and trained with its own symmetric InfoNCE,
and the reward combines the two cosines (``combine``: their mean or their min). One encoder over the whole
body can identify a window from the head nods alone and ignore the arms; a part's encoder can only match
the speech through that part, so arms at rest during a gesture phrase score low.

Pooling keeps timing: the convolutional features are average-pooled into ``bins_per_code`` time bins per code
step of the training window before the projection, so a gesture shifted against its speech gets a different
embedding. Global mean pooling would make the embedding blind to such shifts; one bin per code step (0.4 s)
keeps only which code step a movement falls in, not where inside it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from racer_env.errors import RacerError


@dataclass(frozen=True)
class RewardConfig:
    motion_channels: int  # J*3
    audio_channels: int  # audio features per frame
    window_codes: int = 4  # W: code steps per reward window (r_t scores the last W codes)
    # time bins per code step of the pooled features: 1 keeps the timing of code steps only (0.4 s); more keep
    # where inside a code step a movement falls (a stroke's 0.2 s timing; issue 24)
    bins_per_code: int = 1
    hidden: int = 128  # channels of the convolutions
    embed_dim: int = 64  # joint embedding size
    layers: int = 3  # convolution blocks per encoder
    kernel: int = 5
    init_temperature: float = 0.07  # CLIP's initial temperature
    parts: str = "whole"  # whole | arms_rest: one motion/audio encoder pair per part (module docstring)
    combine: str = "mean"  # mean | min: the reward from the parts' cosines (arms_rest only)
    arm_channels: tuple[int, ...] = ()  # motion channels of the arms (arms_rest; from the joint names)

    def __post_init__(self) -> None:
        object.__setattr__(self, "arm_channels", tuple(int(c) for c in self.arm_channels))  # JSON lists back
        if self.parts not in PART_LAYOUTS or self.combine not in COMBINE:
            raise RacerError(f"parts must be one of {PART_LAYOUTS} and combine one of {COMBINE}; got "
                             f"{self.parts!r}, {self.combine!r}")
        if self.bins_per_code < 1:
            raise RacerError(f"bins_per_code must be >= 1, got {self.bins_per_code}")
        arms = set(self.arm_channels)
        if self.parts == "arms_rest" and not (arms and arms < set(range(self.motion_channels))):
            raise RacerError(f"parts='arms_rest' needs arm_channels, a non-empty proper subset of the "
                             f"{self.motion_channels} motion channels; got {self.arm_channels}")

    def part_channels(self) -> list[list[int]]:
        """Motion channels of each part, in the order of the embeddings' part axis."""
        if self.parts == "whole":
            return [list(range(self.motion_channels))]
        return [list(self.arm_channels), [c for c in range(self.motion_channels) if c not in self.arm_channels]]

    def to_dict(self) -> dict:
        return asdict(self)


PART_LAYOUTS = ("whole", "arms_rest")
COMBINE = ("mean", "min")


class WindowEncoder(nn.Module):
    """(B, T, C) window of any length T -> (B, E) unit embedding."""

    def __init__(self, in_channels: int, cfg: RewardConfig) -> None:
        super().__init__()
        pad = cfg.kernel // 2
        blocks: list[nn.Module] = [nn.Conv1d(in_channels, cfg.hidden, cfg.kernel, 1, pad), nn.GELU()]
        for _ in range(cfg.layers - 1):
            blocks += [nn.Conv1d(cfg.hidden, cfg.hidden, cfg.kernel, 1, pad), nn.GroupNorm(8, cfg.hidden), nn.GELU()]
        self.convs = nn.Sequential(*blocks)
        bins = cfg.window_codes * cfg.bins_per_code
        self.pool = nn.AdaptiveAvgPool1d(bins)  # bins_per_code bins per code step
        self.proj = nn.Linear(cfg.hidden * bins, cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.convs(x.transpose(1, 2)))  # (B, H, bins)
        return F.normalize(self.proj(h.flatten(1)), dim=-1)  # (B, E)

    def parts(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, 1, E): the embedding as the only part."""
        return self(x)[:, None]


class PartEncoder(nn.Module):
    """One :class:`WindowEncoder` per part: (B, T, C) -> (B, P * E) concatenated unit part embeddings / sqrt(P).

    The dot product of two such vectors is the mean of the parts' cosines; :meth:`parts` gives them apart.
    """

    def __init__(self, channels: list[list[int]] | None, in_channels: int, n_parts: int, cfg: RewardConfig) -> None:
        super().__init__()
        self.channels = channels  # per part, None = every part sees all input channels (the audio)
        widths = [len(c) for c in channels] if channels else [in_channels] * n_parts
        self.encoders = nn.ModuleList(WindowEncoder(w, cfg) for w in widths)
        for i, c in enumerate(channels or []):
            self.register_buffer(f"channels_{i}", torch.as_tensor(c, dtype=torch.long), persistent=False)

    def parts(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, P, E) unit embedding of each part."""
        views = ([x.index_select(2, getattr(self, f"channels_{i}")) for i in range(len(self.encoders))]
                 if self.channels else [x] * len(self.encoders))
        return torch.stack([enc(v) for enc, v in zip(self.encoders, views)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.parts(x).flatten(1) / math.sqrt(len(self.encoders))  # (B, P * E)


class RewardModel(nn.Module):
    """Motion and audio encoders (one pair per part) with a learnable temperature."""

    def __init__(self, cfg: RewardConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.parts == "whole":  # the original layout (and state-dict keys)
            self.motion_encoder: nn.Module = WindowEncoder(cfg.motion_channels, cfg)
            self.audio_encoder: nn.Module = WindowEncoder(cfg.audio_channels, cfg)
        else:
            channels = cfg.part_channels()
            self.motion_encoder = PartEncoder(channels, cfg.motion_channels, len(channels), cfg)
            self.audio_encoder = PartEncoder(None, cfg.audio_channels, len(channels), cfg)
        self.log_inv_temperature = nn.Parameter(torch.tensor(-math.log(cfg.init_temperature)))

    def forward(self, motion: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, J*3), (B, T, F) -> unit embeddings (B, P, E) of each part of the motion and audio windows."""
        return self.motion_encoder.parts(motion), self.audio_encoder.parts(audio)

    def similarity(self, motion_emb: torch.Tensor, audio_emb: torch.Tensor) -> torch.Tensor:
        """Part embeddings (N, P, E), (M, P, E) -> (N, M) rewards: the parts' cosines combined (mean or min)."""
        return self.combine_parts(torch.einsum("npe,mpe->nmp", motion_emb, audio_emb))  # (N, M)

    def combine_parts(self, cos: torch.Tensor) -> torch.Tensor:
        """(..., P) cosines of the parts -> (...) the reward: their mean or their min (``cfg.combine``)."""
        return cos.mean(-1) if self.cfg.combine == "mean" else cos.amin(-1)

    def logits_of(self, motion_emb: torch.Tensor, audio_emb: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, E), (B, E) -> (B, B) similarity / temperature (motion rows, audio columns)."""
        scale = self.log_inv_temperature.clamp(max=math.log(100.0)).exp()  # CLIP caps 1/T at 100
        return scale * motion_emb @ audio_emb.t()

    def logits(self, motion: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """(B, T, J*3), (B, T, F) -> (B, B) mean part similarity / temperature (motion rows, audio columns)."""
        return self.logits_of(self.motion_encoder(motion), self.audio_encoder(audio))

    def info_nce_of(self, motion_emb: torch.Tensor, audio_emb: torch.Tensor, target: torch.Tensor | None = None,
                    negative_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Symmetric InfoNCE of embeddings, summed over the parts; returns (loss, (B + N, B) logits of the
        parts' mean cosine).

        Args:
            motion_emb: (B + N, E) or (B + N, P, E): B motion windows paired with the audio windows, then N
                motion-only negatives (they compete for every audio window but have no audio partner).
            audio_emb: (B, E) or (B, P, E).
            target: (B, B) soft targets, rows and columns summing to 1 (row i: how much motion i belongs
                with each audio window); None = the identity (row i's positive is column i).
            negative_mask: (N, P) bool, which parts' losses each negative takes part in; None = all.
        """
        if motion_emb.dim() == 2:
            motion_emb, audio_emb = motion_emb[:, None], audio_emb[:, None]
        b = len(audio_emb)
        if target is None:
            target = torch.eye(b, device=audio_emb.device)
        n_parts = motion_emb.shape[1]
        all_logits = [self.logits_of(motion_emb[:, p], audio_emb[:, p]) for p in range(n_parts)]  # P x (B + N, B)
        loss = 0.0
        for p, part in enumerate(all_logits):
            if negative_mask is not None:
                part = torch.cat([part[:b], part[b:][negative_mask[:, p]]])  # (B + N_p, B)
            audio_target = F.pad(target.t(), (0, len(part) - b))  # (B, B + N_p): negatives get no mass
            loss = loss + 0.5 * (F.cross_entropy(part[:b], target) + F.cross_entropy(part.t(), audio_target))
        return loss, sum(all_logits) / n_parts

    def info_nce(self, motion: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Symmetric InfoNCE of windows (row i's positive is column i); returns (loss, (B, B) logits)."""
        return self.info_nce_of(*self(motion, audio))

    def score(self, motion: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Reward of each (motion, audio) window pair: (B, T, J*3), (B, T, F) -> (B,) cosine in [-1, 1]."""
        if motion.shape[:2] != audio.shape[:2]:
            raise ValueError(f"motion {tuple(motion.shape)} and audio {tuple(audio.shape)} windows must share "
                             f"batch and length")
        return self.combine_parts((self.motion_encoder.parts(motion) * self.audio_encoder.parts(audio)).sum(-1))
