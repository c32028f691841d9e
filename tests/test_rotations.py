"""Rotation conversions checked against matrices built axis by axis."""

import itertools

import numpy as np
import pytest

from racer_env.motion import rotations as R


def axis_matrix(axis: str, deg: np.ndarray) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    one, zero = np.ones_like(c), np.zeros_like(c)
    rows = {
        "X": [[one, zero, zero], [zero, c, -s], [zero, s, c]],
        "Y": [[c, zero, s], [zero, one, zero], [-s, zero, c]],
        "Z": [[c, -s, zero], [s, c, zero], [zero, zero, one]],
    }[axis]
    return np.moveaxis(np.array(rows), (0, 1), (-2, -1))


ORDERS = ["".join(p) for p in itertools.permutations("XYZ")]


@pytest.mark.parametrize("order", ORDERS)
def test_euler_matches_bvh_convention_and_round_trips(order, rng):
    angles = rng.uniform(-80, 80, size=(5, 7, 3))  # leading shape (5, 7) is preserved
    expected = axis_matrix(order[0], angles[..., 0]) @ axis_matrix(order[1], angles[..., 1]) @ axis_matrix(
        order[2], angles[..., 2])
    mats = R.euler_to_matrix(angles, order)
    assert mats.shape == (5, 7, 3, 3)
    np.testing.assert_allclose(mats, expected, atol=1e-12)
    np.testing.assert_allclose(R.matrix_to_euler(mats, order), angles, atol=1e-9)


def test_rotvec_matrix_quat_round_trips(rng):
    vecs = rng.normal(size=(4, 3, 3))
    vecs *= (np.pi * 0.95 / np.maximum(np.linalg.norm(vecs, axis=-1, keepdims=True), np.pi))
    mats = R.rotvec_to_matrix(vecs)
    np.testing.assert_allclose(R.matrix_to_rotvec(mats), vecs, atol=1e-9)
    np.testing.assert_allclose(R.quat_to_matrix(R.matrix_to_quat(mats)), mats, atol=1e-12)
    # rotation about z by 90 degrees maps x to y
    np.testing.assert_allclose(R.rotvec_to_matrix(np.array([0, 0, np.pi / 2])) @ [1, 0, 0], [0, 1, 0], atol=1e-12)


def test_bad_euler_order_is_rejected():
    with pytest.raises(ValueError, match="permutation of 'XYZ'"):
        R.euler_to_matrix(np.zeros(3), "XXY")


def test_slerp_takes_the_short_way_and_hits_the_midpoint():
    q0 = R.matrix_to_quat(R.euler_to_matrix(np.array([170.0, 0, 0]), "ZXY"))
    q1 = R.matrix_to_quat(R.euler_to_matrix(np.array([-170.0, 0, 0]), "ZXY"))
    mid = R.quat_to_matrix(R.slerp_quats(q0, q1, np.array(0.5)))
    np.testing.assert_allclose(R.angle_between(mid, R.euler_to_matrix(np.array([180.0, 0, 0]), "ZXY")), 0, atol=1e-6)
    same = R.slerp_quats(q0, q0, np.array(0.3))
    np.testing.assert_allclose(np.abs(np.sum(same * q0)), 1.0, atol=1e-12)
