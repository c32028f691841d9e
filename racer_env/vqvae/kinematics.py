"""Differentiable forward kinematics in torch, for a VQ-VAE loss on joint positions.

Why: the reconstruction loss on per-channel normalised rotation vectors weighs every channel alike, so a
1.5-6 degree head nod on a channel whose std is 0.4 degrees counts as many standard deviations, while a
0.10 s beat stroke of the forearm (std about 20 degrees) is a fraction of one; the strokes are lost first.
A loss on joint positions in millimetres weighs each rotation by how far it moves the body. The End Sites
(head top, finger tips) are included so that the rotation of a leaf joint (the head: 60 % of a nod) moves a
point too.
"""

from __future__ import annotations

import numpy as np
import torch

from racer_env.corpus.store import NormStats
from racer_env.motion.skeleton import Skeleton


def rotvec_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """(..., 3) rotation vectors (radians) -> (..., 3, 3) matrices (Rodrigues; exact at zero angle)."""
    theta2 = (rotvec * rotvec).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    theta = torch.sqrt(theta2 + 1e-12)
    small = theta2 < 1e-8
    # sin(t)/t and (1 - cos(t))/t^2 with their Taylor series near zero (finite gradients everywhere)
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / (theta2 + 1e-12))
    x, y, z = rotvec.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*rotvec.shape[:-1], 3, 3)  # cross matrix
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye + a * k + b * (k @ k)


class Kinematics(torch.nn.Module):
    """Normalised motion (B, J*3, T) -> positions (B, T, J + E, 3) in mm of the J joints, then the E End Sites,
    on one skeleton (root at its rest offset)."""

    def __init__(self, skeleton: Skeleton, stats: NormStats) -> None:
        super().__init__()
        self.parents = tuple(skeleton.parents)
        self.register_buffer("offsets", torch.as_tensor(np.asarray(skeleton.offsets) * skeleton.unit_mm,
                                                        dtype=torch.float32))  # (J, 3) mm
        ends = sorted(skeleton.end_sites)
        self.end_parents = tuple(ends)
        self.register_buffer("end_offsets", torch.as_tensor(
            np.array([skeleton.end_sites[j] for j in ends], dtype=np.float64).reshape(-1, 3) * skeleton.unit_mm,
            dtype=torch.float32))  # (E, 3) mm
        self.register_buffer("mean", torch.as_tensor(stats.motion_mean, dtype=torch.float32)[:, None])  # (J*3, 1)
        self.register_buffer("std", torch.as_tensor(stats.motion_std, dtype=torch.float32)[:, None])  # (J*3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        rot = rotvec_to_matrix((x * self.std + self.mean).transpose(1, 2).reshape(b, t, c // 3, 3))  # (B, T, J, 3, 3)
        glob: list[torch.Tensor] = []
        pos: list[torch.Tensor] = []
        for j, p in enumerate(self.parents):
            if p == -1:
                glob.append(rot[:, :, j])
                pos.append(self.offsets[j].expand(b, t, 3))
            else:
                glob.append(glob[p] @ rot[:, :, j])
                pos.append(pos[p] + (glob[p] @ self.offsets[j]))
        for k, j in enumerate(self.end_parents):
            pos.append(pos[j] + (glob[j] @ self.end_offsets[k]))
        return torch.stack(pos, 2)  # (B, T, J + E, 3)
