"""Stick-figure drawing of upper-body poses into RGB arrays (front view), with numpy only."""

from __future__ import annotations

import numpy as np

from racer_env.motion.rotations import rotvec_to_matrix
from racer_env.motion.skeleton import Skeleton, forward_kinematics

BACKGROUND = (245, 245, 240)
BONE = (40, 60, 120)
JOINT = (200, 60, 40)


def pose_positions(skeleton: Skeleton, rotvecs: np.ndarray) -> np.ndarray:
    """(J, 3) rotation vectors of one frame -> (J, 3) joint positions in mm (root at its rest offset)."""
    return forward_kinematics(skeleton, rotvec_to_matrix(rotvecs[None]))[0][0]


def draw_pose(positions: np.ndarray, parents: tuple[int, ...], size: int = 256,
              extent_mm: float | None = None, center: np.ndarray | None = None) -> np.ndarray:
    """(J, 3) positions (x right, y up, mm) -> (size, size, 3) uint8 image of bones and joints.

    ``extent_mm`` (the height of the view) and ``center`` fix the framing across frames of a video; by default
    they fit this pose.
    """
    xy = positions[:, :2]
    center = xy.mean(0) if center is None else np.asarray(center, dtype=np.float64)[:2]
    extent = float(extent_mm or max(np.ptp(xy, axis=0).max() * 1.3, 1.0))
    scale = (size - 1) / extent
    pix = (xy - center) * scale
    cols = pix[:, 0] + size / 2
    rows = size / 2 - pix[:, 1]
    img = np.empty((size, size, 3), dtype=np.uint8)
    img[:] = BACKGROUND
    thickness = max(1, size // 128)
    for j, p in enumerate(parents):
        if p >= 0:
            _line(img, rows[p], cols[p], rows[j], cols[j], BONE, thickness)
    for r, c in zip(rows, cols):
        _dot(img, r, c, JOINT, thickness + 1)
    return img


def _dot(img: np.ndarray, r: float, c: float, color: tuple, radius: int) -> None:
    h, w = img.shape[:2]
    r0, r1 = int(max(r - radius, 0)), int(min(r + radius + 1, h))
    c0, c1 = int(max(c - radius, 0)), int(min(c + radius + 1, w))
    if r0 < r1 and c0 < c1:
        img[r0:r1, c0:c1] = color


def _line(img: np.ndarray, r0: float, c0: float, r1: float, c1: float, color: tuple, thickness: int) -> None:
    n = int(max(abs(r1 - r0), abs(c1 - c0))) + 1
    for r, c in zip(np.linspace(r0, r1, n), np.linspace(c0, c1, n)):
        _dot(img, r, c, color, thickness // 2)
