"""Resampling to 20 fps interpolates rotations on the sphere, not per Euler component."""

import numpy as np
import pytest

from racer_env.motion.resample import resample_rotations, resample_times
from racer_env.motion.rotations import angle_between, euler_to_matrix, rotvec_to_matrix


def test_output_times_cover_the_source():
    assert resample_times(121, 120, 20).tolist() == pytest.approx(np.arange(21) / 20)
    assert len(resample_times(524, 120.0005, 20)) == 88  # 4.358 s -> frames at 0..4.35 s


def test_constant_angular_velocity_is_reproduced_exactly():
    axis = np.array([1.0, 2.0, -0.5]) / np.linalg.norm([1.0, 2.0, -0.5])
    t_src = np.arange(361) / 120.0
    rots = rotvec_to_matrix(axis * (1.3 * t_src)[:, None])[:, None]  # (T, 1, 3, 3), 1.3 rad/s
    out = resample_rotations(rots, 120.0, 20.0)
    t_dst = np.arange(len(out)) / 20.0
    expected = rotvec_to_matrix(axis * (1.3 * t_dst)[:, None])[:, None]
    assert angle_between(out, expected).max() < 1e-4  # degrees
    # a rate that does not divide: 50 fps source
    rots50 = rotvec_to_matrix(axis * (1.3 * np.arange(151) / 50.0)[:, None])[:, None]
    out50 = resample_rotations(rots50, 50.0, 20.0)
    exp50 = rotvec_to_matrix(axis * (1.3 * np.arange(len(out50)) / 20.0)[:, None])[:, None]
    assert angle_between(out50, exp50).max() < 1e-4  # degrees


def test_wrap_around_is_interpolated_the_short_way():
    # yaw 170 -> -170 degrees between two frames: the true midpoint is 180, Euler averaging gives 0.
    rots = euler_to_matrix(np.array([[170.0, 0, 0], [-170.0, 0, 0]]), "ZXY")[:, None]  # (2, 1, 3, 3)
    out = resample_rotations(rots, 2.0, 4.0)  # frames at 0, 0.25 s (the midpoint)
    assert angle_between(out[1, 0], euler_to_matrix(np.array([180.0, 0, 0]), "ZXY")) < 1e-4
