"""Skeleton validation, subsets and forward kinematics."""

import numpy as np
import pytest

from racer_env.motion.rotations import euler_to_matrix
from racer_env.motion.skeleton import Skeleton, forward_kinematics
from tests.conftest import chain_skeleton


def test_forward_kinematics_known_answer():
    # root at origin -> a (offset +y 10) -> b (offset +y 10); rotate a by 90 deg about z: b goes to -x.
    skel = chain_skeleton([("root", None), ("a", "root"), ("b", "a")])
    skel = Skeleton(skel.names, skel.parents, np.array([[0, 0, 0], [0, 10, 0], [0, 10, 0.0]]), skel.channels,
                    unit_mm=10.0)
    rots = np.broadcast_to(np.eye(3), (2, 3, 3, 3)).copy()
    rots[1, 1] = euler_to_matrix(np.array([90.0, 0, 0]), "ZXY")
    pos, glob = forward_kinematics(skel, rots)
    np.testing.assert_allclose(pos[0], [[0, 0, 0], [0, 100, 0], [0, 200, 0]], atol=1e-9)  # mm
    np.testing.assert_allclose(pos[1], [[0, 0, 0], [0, 100, 0], [-100, 100, 0]], atol=1e-9)
    np.testing.assert_allclose(glob[1, 2], rots[1, 1], atol=1e-12)


def test_forward_kinematics_root_translation_is_scaled():
    skel = chain_skeleton([("root", None), ("a", "root")])
    rots = np.broadcast_to(np.eye(3), (1, 2, 3, 3))
    pos, _ = forward_kinematics(skel, rots, root_positions=np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(pos[0, 0], [10, 20, 30])


def test_invalid_skeletons_are_rejected_with_reasons():
    with pytest.raises(ValueError, match="unique"):
        chain_skeleton([("a", None), ("a", "a")])
    with pytest.raises(ValueError, match="0 or 3 rotation channels"):
        Skeleton(("a",), (-1,), np.zeros((1, 3)), (("Xrotation", "Yrotation"),))
    with pytest.raises(ValueError, match="parent index"):
        Skeleton(("a", "b"), (-1, 5), np.zeros((2, 3)), ((), ()))


def test_subset_requires_ancestors_and_serialises():
    skel = chain_skeleton([("root", None), ("a", "root"), ("b", "a"), ("c", "root")])
    sub = skel.subset([0, 3])
    assert sub.names == ("root", "c") and sub.parents == (-1, 0)
    with pytest.raises(ValueError, match="parent"):
        skel.subset([0, 2])
    again = Skeleton.from_dict(sub.to_dict())
    assert again.same_layout(sub) and np.array_equal(again.offsets, sub.offsets)
