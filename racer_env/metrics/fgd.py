"""Fréchet Gesture Distance: the Fréchet distance between Gaussians fitted to features of real and generated
motion windows, on the features of a motion autoencoder this project trains (``FeatureExtractor``), and on the raw
positions ("raw-space FGD").

Input of both: windows of ``WINDOW`` frames at 20 fps of joint positions in mm relative to the root joint,
(window, J, 3), taken every ``STRIDE`` frames. The shipped extractor is trained on the built-in corpus's 16-joint
Trinity/GENEA layout (``benchmarks/train_fgd_extractor.py``); its file and SHA-256 are ``EXTRACTOR_PATH`` and
``EXTRACTOR_SHA256``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from racer_env.errors import RacerError

WINDOW = 32  # frames (1.6 s at 20 fps)
STRIDE = 8  # frames between windows (one code step)
FPS = 20.0
SCALE_MM = 100.0  # positions are divided by this before the extractor
VELOCITY_FPS = 10.0  # velocities enter the extractor as displacement per 1/VELOCITY_FPS s (~ the pose scale)
EXTRACTOR_PATH = Path(__file__).parent / "data" / "fgd_extractor.pt"
EXTRACTOR_SHA256 = "b127dceb9e6e20afe6fe6c84665906db074476ff28f95754187c87c7f20af322"


def windows(positions: np.ndarray, window: int = WINDOW, stride: int = STRIDE) -> np.ndarray:
    """(T, J, 3) positions (mm) -> (n, window, J, 3) root-relative windows."""
    rel = np.asarray(positions, dtype=np.float64) - positions[:, :1]
    starts = range(0, len(rel) - window + 1, stride)
    return np.stack([rel[s:s + window] for s in starts]) if len(rel) >= window else np.zeros((0, window) + rel.shape[1:])


#: added to the covariance diagonals: with fewer windows than dimensions (normal for raw-space FGD) the
#: covariances are singular and their product's square root is ill-defined without it.
COV_EPS = 1e-6


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of feature sets (n, d) and (m, d)."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("FGD needs at least two feature vectors on each side")
    mu1, mu2 = a.mean(0), b.mean(0)
    eye = np.eye(a.shape[1]) * COV_EPS
    s1, s2 = np.atleast_2d(np.cov(a, rowvar=False)) + eye, np.atleast_2d(np.cov(b, rowvar=False)) + eye
    return float(max(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt_product(s1, s2), 0.0))


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr sqrt(s1 s2) of two covariance matrices, as tr sqrt(r s2 r) with r = sqrt(s1): the eigenvalues of a symmetric
    matrix (two ``eigh``) instead of the general matrix square root of ``scipy.linalg.sqrtm`` (a Schur decomposition
    and its complex arithmetic), the same value to ~1e-8 relative and many times cheaper on the 360 dimensions of
    raw-space FGD, which evaluation's bootstrap computes per resample."""
    w, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(root @ s2 @ root), 0, None)).sum())


def raw_fgd(real: np.ndarray, generated: np.ndarray) -> float:
    """FGD on flattened raw windows (n, window, J, 3): every 4th frame, the root (always 0) left out, positions in
    units of SCALE_MM."""
    f = lambda w: (w[:, ::4, 1:] / SCALE_MM).reshape(len(w), -1)
    return frechet_distance(f(real), f(generated))


class FeatureExtractor(nn.Module):
    """Window (B, window, J, 3) -> features (B, dim): the encoder of a convolutional motion autoencoder.

    With ``velocity`` the input holds, beside the positions, their frame-to-frame velocity (in SCALE_MM per
    1/VELOCITY_FPS s), so that fast, short movements (beat strokes) weigh in the features as much as poses do.
    ``features`` are standardised per dimension by the mean and standard deviation of the real training windows'
    features (``set_standardisation``, stored in the checkpoint): every feature dimension then counts alike in
    the Fréchet distance instead of the few with the largest raw spread.
    """

    def __init__(self, n_joints: int = 16, dim: int = 32, width: int = 64, velocity: bool = False) -> None:
        super().__init__()
        self.n_joints, self.dim, self.velocity = n_joints, dim, velocity
        c = n_joints * 3 * (2 if velocity else 1)
        self.encoder = nn.Sequential(
            nn.Conv1d(c, width, 3, 1, 1), nn.ReLU(), nn.Conv1d(width, width, 4, 2, 1), nn.ReLU(),
            nn.Conv1d(width, width, 4, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(width * WINDOW // 4, dim))
        self.decoder = nn.Sequential(
            nn.Linear(dim, width * WINDOW // 4), nn.Unflatten(1, (width, WINDOW // 4)), nn.ReLU(),
            nn.ConvTranspose1d(width, width, 4, 2, 1), nn.ReLU(), nn.ConvTranspose1d(width, width, 4, 2, 1), nn.ReLU(),
            nn.Conv1d(width, c, 3, 1, 1))
        self.register_buffer("feature_mean", torch.zeros(dim))  # (dim,)
        self.register_buffer("feature_std", torch.ones(dim))  # (dim,)

    def prepare(self, w: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(B, window, J, 3) positions (mm) -> (B, C, window) network input."""
        x = torch.as_tensor(np.asarray(w), dtype=torch.float32) / SCALE_MM  # (B, window, J, 3)
        x = x.flatten(2).transpose(1, 2)  # (B, J*3, window)
        if not self.velocity:
            return x
        v = torch.diff(x, dim=2, prepend=x[:, :, :1]) * (FPS / VELOCITY_FPS)  # (B, J*3, window), first frame 0
        return torch.cat([x, v], dim=1)  # (B, 2*J*3, window)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.encoder(w)

    def reconstruct(self, w: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(w))

    @torch.no_grad()
    def raw_features(self, w: np.ndarray) -> np.ndarray:
        """(n, window, J, 3) windows -> (n, dim) encoder outputs, before standardisation."""
        self.eval()
        return torch.cat([self.encoder(self.prepare(w[i:i + 512])) for i in range(0, len(w), 512)]).numpy()

    def set_standardisation(self, real_windows: np.ndarray) -> None:
        """Standardise features by the mean and std of the features of ``real_windows`` (the training windows)."""
        f = torch.from_numpy(self.raw_features(real_windows))  # (n, dim)
        self.feature_mean.copy_(f.mean(0))
        self.feature_std.copy_(f.std(0).clamp_min(1e-6))

    def features(self, w: np.ndarray) -> np.ndarray:
        """(n, window, J, 3) windows -> (n, dim) standardised features."""
        return (self.raw_features(w) - self.feature_mean.numpy()) / self.feature_std.numpy()


def load_extractor(path: Path = EXTRACTOR_PATH, joint_names: list[str] | None = None) -> FeatureExtractor:
    """The shipped extractor (checksum-verified); refuses joint layouts it was not trained on."""
    from racer_env.checkpoint import load_checkpoint

    meta, state, checksum = load_checkpoint(path, "fgd_extractor")
    if EXTRACTOR_SHA256 and path == EXTRACTOR_PATH and checksum != EXTRACTOR_SHA256:
        raise RacerError(f"{path}: checksum {checksum[:12]} is not the shipped extractor's {EXTRACTOR_SHA256[:12]}")
    if joint_names is not None and list(joint_names) != meta["joint_names"]:
        raise RacerError(f"the FGD extractor was trained on joints {meta['joint_names']}; this corpus has "
                         f"{list(joint_names)} (use raw-space FGD, or train an extractor for this layout)")
    model = FeatureExtractor(len(meta["joint_names"]), meta["dim"], meta["width"], meta.get("velocity", False))
    model.load_state_dict(state["model"])
    return model.eval()


def fgd(extractor: FeatureExtractor, real: np.ndarray, generated: np.ndarray) -> float:
    """FGD on the extractor's features of real and generated windows (n, window, J, 3)."""
    return frechet_distance(extractor.features(real), extractor.features(generated))
