"""Stick-figure drawing of upper-body poses into RGB arrays (front view), with numpy only: the environment's
``render()`` (the videos are :mod:`racer_env.video`'s).

Drawing is vectorised: every bone is sampled at one point per pixel step, every sample (and every joint)
is expanded by a square offset grid of the stroke's radius, and all pixels are set with one fancy-indexed
assignment per colour; :func:`draw_poses` draws many frames per call that way, with one framing.
"""

from __future__ import annotations

import numpy as np

from racer_env.motion.skeleton import Skeleton

BACKGROUND = (245, 245, 240)
BONE = (40, 60, 120)
JOINT = (200, 60, 40)
#: Samples per bone at most (a bone longer than this many pixels is sampled more sparsely than 1 px).
MAX_BONE_SAMPLES = 4096


def pose_positions(skeleton: Skeleton, rotvecs: np.ndarray) -> np.ndarray:
    """(J, 3) rotation vectors of one frame -> (J, 3) joint positions in mm (root at its rest offset)."""
    return skeleton.positions(rotvecs[None])[0]


def rest_framing(skeleton: Skeleton) -> tuple[float, np.ndarray]:
    """The fixed view of a sequence: (extent_mm, center) from the rest pose (1.6 x its height, its mean)."""
    rest = pose_positions(skeleton, np.zeros((skeleton.n_joints, 3)))
    extent = float(np.ptp(rest[:, 1]) * 1.6)
    if not extent > 0:  # a flat rest pose: fit its width instead
        extent = max(float(np.ptp(rest[:, :2], axis=0).max()) * 1.6, 1.0)
    return extent, rest.mean(0)


def draw_pose(positions: np.ndarray, parents: tuple[int, ...], size: int = 256,
              extent_mm: float | None = None, center: np.ndarray | None = None) -> np.ndarray:
    """(J, 3) positions (x right, y up, mm) -> (size, size, 3) uint8 image of bones and joints.

    ``extent_mm`` (the height of the view) and ``center`` fix the framing across frames of a video; by default
    they fit this pose.
    """
    xy = np.asarray(positions, dtype=np.float64)[:, :2]
    center = xy.mean(0) if center is None else np.asarray(center, dtype=np.float64)[:2]
    extent = float(extent_mm or max(np.ptp(xy, axis=0).max() * 1.3, 1.0))
    return draw_poses(xy[None], parents, size, extent, center)[0]


def draw_poses(positions: np.ndarray, parents: tuple[int, ...], size: int, extent_mm: float,
               center: np.ndarray) -> np.ndarray:
    """(B, J, 2 or 3) positions in mm -> (B, size, size, 3) uint8 images, all with the same framing."""
    xy = np.asarray(positions, dtype=np.float64)[..., :2]
    if not np.isfinite(xy).all():
        raise ValueError("positions must be finite (NaN or infinite joint position)")
    center = np.asarray(center, dtype=np.float64)[:2]
    pix = (xy - center) * ((size - 1) / float(extent_mm))
    cols = pix[..., 0] + size / 2  # (B, J)
    rows = size / 2 - pix[..., 1]
    n_frames = xy.shape[0]
    img = np.empty((n_frames, size, size, 3), dtype=np.uint8)
    img[:] = BACKGROUND
    flat = img.reshape(-1, 3)
    thickness = max(1, size // 128)
    child = np.array([j for j, p in enumerate(parents) if p >= 0], dtype=np.intp)
    parent = np.array([parents[j] for j in child], dtype=np.intp)
    if child.size:
        frame, r, c = _bone_samples(rows[:, parent], cols[:, parent], rows[:, child], cols[:, child])
        flat[_square_pixels(frame, r, c, thickness // 2, size)] = BONE
    frame = np.repeat(np.arange(n_frames), rows.shape[1])
    flat[_square_pixels(frame, rows.ravel(), cols.ravel(), thickness + 1, size)] = JOINT
    return img


def _bone_samples(r0: np.ndarray, c0: np.ndarray, r1: np.ndarray, c1: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B, K) bone end points -> frame index, row and column of every sample along every bone.

    Each bone gets ``floor(max(|dr|, |dc|)) + 1`` evenly spaced samples, computed exactly as np.linspace does.
    """
    n_frames = r0.shape[0]
    r0, c0, r1, c1 = (a.ravel() for a in (r0, c0, r1, c1))
    n = np.minimum(np.maximum(np.abs(r1 - r0), np.abs(c1 - c0)).astype(np.intp) + 1, MAX_BONE_SAMPLES)
    seg = np.repeat(np.arange(n.size), n)
    ends = np.cumsum(n)
    k = np.arange(ends[-1]) - np.repeat(ends - n, n)
    div = np.maximum(n - 1, 1)
    r = r0[seg] + k * ((r1 - r0) / div)[seg]
    c = c0[seg] + k * ((c1 - c0) / div)[seg]
    last = ends[n > 1] - 1
    r[last] = r1[n > 1]
    c[last] = c1[n > 1]
    frame = seg // (n.size // n_frames)
    return frame, r, c


def _square_pixels(frame: np.ndarray, r: np.ndarray, c: np.ndarray, radius: int, size: int) -> np.ndarray:
    """Flat pixel indices (into (B * size * size, 3)) of the (2 radius + 1)^2 squares around the points.

    A point at (r, c) covers rows floor(r) - radius .. floor(r) + radius (likewise columns), clipped.
    """
    offsets = np.arange(-radius, radius + 1)
    rows = (np.floor(r).astype(np.intp)[:, None] + offsets)[:, :, None]  # (N, S, 1)
    cols = (np.floor(c).astype(np.intp)[:, None] + offsets)[:, None, :]  # (N, 1, S)
    inside = ((rows >= 0) & (rows < size)) & ((cols >= 0) & (cols < size))
    index = (frame[:, None, None] * size + rows) * size + cols
    return index[inside]
