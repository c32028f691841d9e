"""Resampling motion to another frame rate, rotations by quaternion slerp (not per-component Euler)."""

from __future__ import annotations

import numpy as np

from racer_env.errors import RacerError
from racer_env.motion.rotations import matrix_to_quat, quat_to_matrix, slerp_quats


def resample_times(n_frames: int, src_fps: float, dst_fps: float) -> np.ndarray:
    """Target sample times (seconds) covering the source duration: 0, 1/dst, ... <= (n-1)/src."""
    if src_fps <= 0 or dst_fps <= 0:
        raise RacerError(f"frame rates must be positive, got src_fps={src_fps}, dst_fps={dst_fps}")
    duration = (n_frames - 1) / src_fps
    n_out = int(np.floor(duration * dst_fps + 1e-6)) + 1
    return np.arange(n_out) / dst_fps


def resample_rotations(local_rotations: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
    """(T, J, 3, 3) rotations at ``src_fps`` -> (T', J, 3, 3) at ``dst_fps`` by per-joint slerp."""
    rots = np.asarray(local_rotations, dtype=np.float64)
    n = rots.shape[0]
    if n == 0:
        raise RacerError("cannot resample an empty motion")
    pos = resample_times(n, src_fps, dst_fps) * src_fps  # fractional source frame index
    i0 = np.minimum(np.floor(pos).astype(int), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    alpha = (pos - i0)[:, None]  # (T', 1) broadcast over joints
    quats = matrix_to_quat(rots)  # (T, J, 4)
    return quat_to_matrix(slerp_quats(quats[i0], quats[i1], alpha))
