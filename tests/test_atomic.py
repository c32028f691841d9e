"""The one way files are written (``atomic_path``) and the one forward kinematics of a take
(``Skeleton.positions``)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from racer_env.motion.rotations import rotvec_to_matrix
from racer_env.motion.skeleton import forward_kinematics
from racer_env.workspace import atomic_path, remove_stale_temporaries, write_text_atomic
from tests.conftest import trinity_like


def test_atomic_path_renames_on_success_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target, ".txt") as tmp:
        assert tmp.parent == tmp_path and f".tmp{os.getpid()}-" in tmp.name and tmp.name.endswith(".txt")
        tmp.write_text("half")
        raise RuntimeError("the writer failed")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert remove_stale_temporaries(tmp_path) == []  # a live process's temporary is never removed
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_skeleton_positions_is_forward_kinematics_of_rotation_vectors():
    skeleton = trinity_like()
    rotations = np.random.default_rng(0).normal(scale=0.3, size=(5, skeleton.n_joints, 3))
    expected = forward_kinematics(skeleton, rotvec_to_matrix(rotations))[0]
    np.testing.assert_allclose(skeleton.positions(rotations), expected)
    assert skeleton.positions(rotations).shape == (5, skeleton.n_joints, 3)
