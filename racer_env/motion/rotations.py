"""Rotation conversions over arrays of any leading shape.

Thin, shape-preserving wrappers over :mod:`scipy.spatial.transform`, which is maintained, vectorised and
handles the numerics (gimbal lock, quaternion sign). Conventions used throughout the project:

* Euler angles are in **degrees** and **intrinsic** in the order the BVH channels are listed: channels
  ``Zrotation Xrotation Yrotation`` mean ``R = Rz @ Rx @ Ry`` applied to column vectors (the BVH
  convention). ``order`` is the three axis letters in that order, e.g. ``"ZXY"``.
* Rotation vectors (exponential map) are in radians: axis * angle.
* Matrices act on column vectors: ``x_parent = R @ x_child``.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.spatial.transform import Rotation

VALID_AXES = frozenset("XYZ")


def check_euler_order(order: str) -> str:
    """Return ``order`` upper-cased if it names three distinct axes (a BVH rotation channel order)."""
    upper = order.upper()
    if len(upper) != 3 or set(upper) != VALID_AXES:
        raise ValueError(f"Euler order must be a permutation of 'XYZ' (e.g. 'ZXY'), got {order!r}")
    return upper


def euler_to_matrix(angles_deg: np.ndarray, order: str) -> np.ndarray:
    """Intrinsic Euler angles (..., 3) in degrees -> rotation matrices (..., 3, 3)."""
    angles = np.asarray(angles_deg, dtype=np.float64)
    lead = angles.shape[:-1]
    rot = Rotation.from_euler(check_euler_order(order), angles.reshape(-1, 3), degrees=True)
    return rot.as_matrix().reshape(lead + (3, 3))


def matrix_to_euler(matrices: np.ndarray, order: str) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> intrinsic Euler angles (..., 3) in degrees.

    At gimbal lock the decomposition is not unique; scipy picks one (the rotation is still exact) and its
    warning is suppressed because the result is correct as a rotation.
    """
    mats = np.asarray(matrices, dtype=np.float64)
    lead = mats.shape[:-2]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Gimbal lock detected")
        angles = Rotation.from_matrix(mats.reshape(-1, 3, 3)).as_euler(check_euler_order(order), degrees=True)
    return angles.reshape(lead + (3,))


def rotvec_to_matrix(rotvecs: np.ndarray) -> np.ndarray:
    """Rotation vectors (..., 3) in radians -> matrices (..., 3, 3)."""
    vecs = np.asarray(rotvecs, dtype=np.float64)
    lead = vecs.shape[:-1]
    return Rotation.from_rotvec(vecs.reshape(-1, 3)).as_matrix().reshape(lead + (3, 3))


def matrix_to_rotvec(matrices: np.ndarray) -> np.ndarray:
    """Matrices (..., 3, 3) -> rotation vectors (..., 3) in radians, angle in [0, pi]."""
    mats = np.asarray(matrices, dtype=np.float64)
    lead = mats.shape[:-2]
    return Rotation.from_matrix(mats.reshape(-1, 3, 3)).as_rotvec().reshape(lead + (3,))


def matrix_to_quat(matrices: np.ndarray) -> np.ndarray:
    """Matrices (..., 3, 3) -> unit quaternions (..., 4) in scalar-last (x, y, z, w) order."""
    mats = np.asarray(matrices, dtype=np.float64)
    lead = mats.shape[:-2]
    return Rotation.from_matrix(mats.reshape(-1, 3, 3)).as_quat().reshape(lead + (4,))


def quat_to_matrix(quats: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) in scalar-last order -> matrices (..., 3, 3)."""
    q = np.asarray(quats, dtype=np.float64)
    lead = q.shape[:-1]
    return Rotation.from_quat(q.reshape(-1, 4)).as_matrix().reshape(lead + (3, 3))


def angle_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Geodesic angle in degrees between rotation matrices a and b (..., 3, 3) -> (...)."""
    rel = np.einsum("...ji,...jk->...ik", a, b)  # a^T b
    cos = (np.trace(rel, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def slerp_quats(q0: np.ndarray, q1: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions (..., 4), alpha broadcast over (...).

    Takes the short path (flips q1 where the dot product is negative); falls back to normalised linear
    interpolation where the two are nearly equal, where slerp's formula is ill-conditioned.
    """
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64)
    alpha = np.asarray(alpha, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0.0, -q1, q1)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_theta = np.sin(theta)
    near = sin_theta < 1e-6
    safe = np.where(near, 1.0, sin_theta)
    w0 = np.where(near, 1.0 - alpha, np.sin((1.0 - alpha) * theta) / safe)
    w1 = np.where(near, alpha, np.sin(alpha * theta) / safe)
    out = w0 * q0 + w1 * q1
    return out / np.linalg.norm(out, axis=-1, keepdims=True)
