"""Upper-body selection by role across naming schemes."""

import numpy as np
import pytest

from racer_env.motion.bvh import read_bvh
from racer_env.motion.upper_body import UnmappableSkeletonError, select_upper_body, upper_body_joints
from tests.conftest import CMU_MAX, CMU_MB, TRINITY_UPPER, chain_skeleton, trinity_like

LEGS = [("RightUpLeg", "Hips"), ("RightLeg", "RightUpLeg"), ("LeftUpLeg", "Hips"), ("LeftLeg", "LeftUpLeg")]
FINGERS = [("RightHandThumb1", "RightHand"), ("RightHandIndex1", "RightHand"), ("LeftHandThumb1", "LeftHand"),
           ("HeadEnd", "Head")]


def names(skel, joints):
    return [skel.names[j] for j in joints]


def test_trinity_layout_gives_its_16_joints():
    skel = trinity_like(LEGS)
    assert tuple(names(skel, upper_body_joints(skel))) == TRINITY_UPPER


def test_beat_layout_drops_fingers_and_head_end():
    skel = trinity_like(LEGS + FINGERS)
    assert tuple(names(skel, upper_body_joints(skel))) == TRINITY_UPPER


def test_mixamo_prefixed_names():
    skel = trinity_like(LEGS, prefix="mixamorig:")
    assert len(upper_body_joints(skel)) == 16


def test_cmu_motionbuilder_names():
    skel = read_bvh(CMU_MB).skeleton
    assert names(skel, upper_body_joints(skel)) == [
        "Hips", "LowerBack", "Spine", "Spine1", "Neck", "Neck1", "Head",
        "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand", "RightShoulder", "RightArm", "RightForeArm", "RightHand"]


def test_cmu_3dsmax_names():
    skel = read_bvh(CMU_MAX).skeleton
    assert names(skel, upper_body_joints(skel)) == [
        "Hips", "lowerback", "Chest", "Chest2", "lowerneck", "Neck", "Head",
        "LeftCollar", "LeftShoulder", "LeftElbow", "LeftWrist", "RightCollar", "RightShoulder", "RightElbow",
        "RightWrist"]


def test_selection_keeps_rotations_of_selected_joints(rng):
    bvh = read_bvh(CMU_MB)
    rots = bvh.local_rotations()
    sub, sub_rots, joints = select_upper_body(bvh.skeleton, rots)
    assert sub.n_joints == 15 and sub_rots.shape == (524, 15, 3, 3)
    np.testing.assert_array_equal(sub_rots, rots[:, joints])
    np.testing.assert_array_equal(sub.offsets, bvh.skeleton.offsets[joints])


def test_unmappable_skeleton_lists_what_is_missing():
    skel = chain_skeleton([("pelvis", None), ("torso", "pelvis"), ("skull", "torso"), ("LeftHand", "torso")])
    with pytest.raises(UnmappableSkeletonError) as err:
        upper_body_joints(skel, source="odd.bvh")
    msg = str(err.value)
    assert "odd.bvh" in msg and "head" in msg and "right_hand" in msg and "left_hand (" not in msg
    assert "skull" in msg  # lists the joints that are there
