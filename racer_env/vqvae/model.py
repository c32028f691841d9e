"""The gesture VQ-VAE: the seed's exact architecture, with width, codebook size and code dim as presets.

Residual block RB(p, d): ReLU, Conv(W, W, 3, 1, p, d); ReLU, Conv(W, W, 1, 1, 0, 1); output = input + branch.

Encoder: Conv(J*3, W, 4, 2, 1), RB(1,1), RB(3,3), RB(9,9), Conv(W, W, 4, 2, 1), RB x3, Conv(W, W, 4, 2, 1),
RB x3, Conv(W, D, 3, 1, 1).
Decoder: Conv(D, W, 3, 1, 1), RB(9,9), RB(3,3), RB(1,1), Up(W, W, 4, 2, 1), RB x3, Up(W, W, 4, 2, 1), RB x3,
Up(W, J*3, 4, 2, 1), where Up is a transposed convolution (the decoder upsamples 8x).

The ``paper`` preset is the table exactly (W = D = N = 512). Smaller presets change only the width W, the
codebook size N and the code dim D. One code covers 8 frames (three stride-2 stages).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from racer_env.distributed import gather_rows
from racer_env.errors import RacerError

FRAMES_PER_CODE = 8  # three stride-2 stages
DILATIONS = (1, 3, 9)  # RB(p, d) with p = d keeps the length


@dataclass(frozen=True)
class VQVAEConfig:
    """Architecture of the VQ-VAE. Only width, codebook size and code dim differ between presets."""

    n_joints: int = 16  # J: the input has J*3 rotation-vector channels
    width: int = 512  # W: channels of every hidden convolution
    codebook_size: int = 512  # N: number of gesture codes
    code_dim: int = 512  # D: dimension of a code vector
    ema: bool = False  # EMA codebook updates instead of the codebook loss (Bailando-style option)
    ema_decay: float = 0.99
    dead_code_reset: bool = False  # re-seed codes unused for `dead_code_steps` steps from encoder outputs
    dead_code_steps: int = 50
    smooth_sigma: float = 1.0  # decode smoothing: Gaussian (kernel 5) sigma in frames; 0 = none (no weights)

    @property
    def in_channels(self) -> int:
        return self.n_joints * 3

    def to_dict(self) -> dict:
        return asdict(self)


#: architecture presets: (width, codebook size, code dim).
PRESETS: dict[str, dict] = {
    "paper": {"width": 512, "codebook_size": 512, "code_dim": 512},  # the seed's table
    "demo": {"width": 128, "codebook_size": 256, "code_dim": 64},  # trains in minutes on 2 CPU cores
    "tiny": {"width": 16, "codebook_size": 16, "code_dim": 8},  # tests
}


def preset_config(name: str, n_joints: int, **overrides) -> VQVAEConfig:
    if name not in PRESETS:
        raise RacerError(f"unknown VQ-VAE preset {name!r}; choose one of {sorted(PRESETS)}")
    return VQVAEConfig(n_joints=n_joints, **{**PRESETS[name], **overrides})


class ResBlock(nn.Module):
    """RB(p, d): x + Conv1x1(ReLU(Conv3(ReLU(x), padding p, dilation d)))."""

    def __init__(self, width: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(width, width, 3, 1, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(width, width, 1, 1, 0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, W, T) -> (B, W, T)
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


def _res_stack(width: int, dilations: tuple[int, ...]) -> list[nn.Module]:
    return [ResBlock(width, d) for d in dilations]


class Encoder(nn.Sequential):
    """(B, J*3, T) motion -> (B, D, T/8) continuous latents."""

    def __init__(self, cfg: VQVAEConfig) -> None:
        w = cfg.width
        layers: list[nn.Module] = [nn.Conv1d(cfg.in_channels, w, 4, 2, 1), *_res_stack(w, DILATIONS)]
        for _ in range(2):
            layers += [nn.Conv1d(w, w, 4, 2, 1), *_res_stack(w, DILATIONS)]
        layers.append(nn.Conv1d(w, cfg.code_dim, 3, 1, 1))
        super().__init__(*layers)


class Decoder(nn.Sequential):
    """(B, D, T/8) quantised latents -> (B, J*3, T) motion."""

    def __init__(self, cfg: VQVAEConfig) -> None:
        w = cfg.width
        rev = tuple(reversed(DILATIONS))
        layers: list[nn.Module] = [nn.Conv1d(cfg.code_dim, w, 3, 1, 1), *_res_stack(w, rev)]
        for _ in range(2):
            layers += [nn.ConvTranspose1d(w, w, 4, 2, 1), *_res_stack(w, rev)]
        layers.append(nn.ConvTranspose1d(w, cfg.in_channels, 4, 2, 1))
        super().__init__(*layers)


class Quantizer(nn.Module):
    """Nearest-neighbour vector quantisation with a straight-through gradient.

    Loss (van den Oord et al. 2017; RACER uses beta = 0.1):
        codebook = ||sg[z_e] - e||^2,  commitment = ||z_e - sg[e]||^2.
    With ``ema=True`` the codebook follows an exponential moving average of the encoder outputs assigned
    to each code instead (the codebook loss is then 0). With ``dead_code_reset`` codes unused for
    ``dead_code_steps`` training steps are re-seeded from random encoder outputs of the current batch.
    """

    def __init__(self, cfg: VQVAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.codebook = nn.Parameter(torch.empty(cfg.codebook_size, cfg.code_dim).uniform_(
            -1.0 / cfg.codebook_size, 1.0 / cfg.codebook_size), requires_grad=not cfg.ema)
        self.register_buffer("ema_count", torch.ones(cfg.codebook_size))
        self.register_buffer("ema_sum", self.codebook.detach().clone())
        self.register_buffer("steps_unused", torch.zeros(cfg.codebook_size, dtype=torch.long))

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """(M, D) vectors -> (M,) index of the nearest code (squared Euclidean distance)."""
        dist = (z.pow(2).sum(1, keepdim=True) - 2 * z @ self.codebook.t()
                + self.codebook.pow(2).sum(1)[None])  # (M, N)
        return dist.argmin(1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, L) code indices -> (B, D, L) code vectors."""
        return F.embedding(codes, self.codebook).transpose(1, 2)

    def forward(self, z_e: torch.Tensor, generator: torch.Generator | None = None):
        """(B, D, L) latents -> quantised (B, D, L) with straight-through gradient, codes (B, L), losses."""
        b, d, length = z_e.shape
        flat = z_e.transpose(1, 2).reshape(-1, d)  # (B*L, D)
        codes = self.nearest(flat.detach())  # (B*L,)
        z_q = F.embedding(codes, self.codebook)  # (B*L, D)
        commitment = F.mse_loss(flat, z_q.detach())
        codebook_loss = F.mse_loss(z_q, flat.detach()) if not self.cfg.ema else flat.new_zeros(())
        if self.training:
            self._update(flat.detach(), codes, generator)
        z_q = flat + (z_q - flat).detach()  # straight-through estimator
        return z_q.reshape(b, length, d).transpose(1, 2), codes.reshape(b, length), codebook_loss, commitment

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, codes: torch.Tensor, generator: torch.Generator | None) -> None:
        # under torch.distributed every rank updates from the global batch, so the codebooks stay identical
        flat, codes = gather_rows(flat), gather_rows(codes)
        counts = torch.bincount(codes, minlength=self.cfg.codebook_size).to(flat.dtype)  # (N,)
        if self.cfg.ema:
            sums = torch.zeros_like(self.ema_sum).index_add_(0, codes, flat)  # (N, D)
            decay = self.cfg.ema_decay
            self.ema_count.mul_(decay).add_(counts, alpha=1 - decay)
            self.ema_sum.mul_(decay).add_(sums, alpha=1 - decay)
            n = self.ema_count.sum()
            smoothed = (self.ema_count + 1e-5) / (n + self.cfg.codebook_size * 1e-5) * n  # Laplace smoothing
            self.codebook.data.copy_(self.ema_sum / smoothed[:, None])
        if self.cfg.dead_code_reset:
            self.steps_unused.add_(1).masked_fill_(counts > 0, 0)
            dead = (self.steps_unused >= self.cfg.dead_code_steps).nonzero().squeeze(1)
            if dead.numel():
                pick = torch.randint(0, flat.shape[0], (dead.numel(),), generator=generator)
                self.codebook.data[dead] = flat[pick]
                self.ema_sum[dead] = flat[pick]
                self.ema_count[dead] = 1.0
                self.steps_unused[dead] = 0


class VQVAE(nn.Module):
    """Motion (B, J*3, T) -> codes (B, T/8) -> motion (B, J*3, T); T must be a multiple of 8."""

    def __init__(self, cfg: VQVAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.quantizer = Quantizer(cfg)
        self.decoder = Decoder(cfg)

    @classmethod
    def from_preset(cls, name: str, n_joints: int, **overrides) -> VQVAE:
        """A VQ-VAE of preset ``name`` ('paper', 'demo', 'tiny') for ``n_joints`` joints."""
        return cls(preset_config(name, n_joints, **overrides))

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[1] != self.cfg.in_channels or x.shape[2] % FRAMES_PER_CODE:
            raise ValueError(f"motion must be (batch, {self.cfg.in_channels}, frames) with frames a multiple of "
                             f"{FRAMES_PER_CODE}, got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """Returns reconstruction (B, J*3, T), codes (B, T/8), codebook loss, commitment loss."""
        self._check(x)
        z_q, codes, codebook_loss, commitment = self.quantizer(self.encoder(x), generator)
        return self.decoder(z_q), codes, codebook_loss, commitment

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, J*3, T) normalised motion -> (B, T/8) code indices."""
        self._check(x)
        z = self.encoder(x)  # (B, D, L)
        return self.quantizer.nearest(z.transpose(1, 2).reshape(-1, z.shape[1])).reshape(z.shape[0], -1)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, L) code indices -> (B, J*3, 8L) normalised motion (before smoothing)."""
        return self.decoder(self.quantizer.lookup(codes))
