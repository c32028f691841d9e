"""BVH reading and writing on the real CMU files and on constructed edge cases."""

import numpy as np
import pytest

from racer_env.motion.bvh import Bvh, BvhError, read_bvh, write_bvh
from racer_env.motion.rotations import angle_between, matrix_to_quat
from racer_env.motion.skeleton import forward_kinematics
from tests.conftest import CMU_MAX, CMU_MB, chain_skeleton, trinity_like


def test_reads_cmu_motionbuilder_file_with_crlf():
    bvh = read_bvh(CMU_MB)
    assert bvh.n_frames == 524 and bvh.skeleton.n_joints == 31
    assert bvh.fps == 120.0  # "Frame Time: .0083333" snapped to the whole rate
    assert bvh.skeleton.channels[0] == ("Xposition", "Yposition", "Zposition", "Zrotation", "Yrotation", "Xrotation")
    assert bvh.skeleton.rotation_order(1) == "ZYX"
    assert len(bvh.skeleton.end_sites) == 7  # toes, head, index fingers and thumbs: the leaves
    assert bvh.values.shape == (524, bvh.skeleton.n_channels)


def test_reads_cmu_3dsmax_file_with_mixed_line_endings():
    bvh = read_bvh(CMU_MAX)
    assert bvh.n_frames == 994 and bvh.skeleton.n_joints == 31
    assert "LeftWrist" in bvh.skeleton.names
    # first frame's values as printed in the file
    np.testing.assert_allclose(bvh.values[0, :4], [5.23, 16.9002, -33.8986, -5.4029])


@pytest.mark.parametrize("path", [CMU_MB, CMU_MAX])
def test_round_trip_keeps_rotations_and_positions(tmp_path, path):
    bvh = read_bvh(path)
    out = write_bvh(tmp_path / "out.bvh", bvh)
    again = read_bvh(out)
    assert again.skeleton.names == bvh.skeleton.names and again.skeleton.channels == bvh.skeleton.channels
    np.testing.assert_allclose(again.skeleton.offsets, bvh.skeleton.offsets, atol=1e-6)
    assert angle_between(again.local_rotations(), bvh.local_rotations()).max() < 1e-4  # degrees
    np.testing.assert_allclose(again.translations(), bvh.translations(), atol=1e-6)
    assert again.frame_time == pytest.approx(bvh.frame_time, abs=1e-8)


def test_written_file_is_accepted_by_bvhio(tmp_path):
    bvhio = pytest.importorskip("bvhio")
    bvh = read_bvh(CMU_MB)
    write_bvh(tmp_path / "out.bvh", bvh)
    other = bvhio.readAsBvh(str(tmp_path / "out.bvh"))
    assert other.FrameCount == bvh.n_frames
    # bvhio's joint list in depth-first order, each keyframe's local rotation as a quaternion (w, x, y, z)
    joints = [j for j, _, _ in other.Root.layout()]
    assert [j.Name for j in joints] == list(bvh.skeleton.names)
    ours = matrix_to_quat(bvh.local_rotations()[7])  # frame 7, (J, 4) as (x, y, z, w)
    for j, joint in enumerate(joints):
        q = joint.Keyframes[7].Rotation
        theirs = np.array([q.x, q.y, q.z, q.w])
        assert abs(abs(np.dot(theirs, ours[j])) - 1.0) < 1e-6, joint.Name


def test_from_rotations_writes_any_channel_order_and_6_channel_joints(tmp_path, rng):
    skel = chain_skeleton([("root", None), ("a", "root"), ("b", "a")], rot="YXZ")
    chans = list(skel.channels)
    chans[1] = ("Xrotation", "Xposition", "Zrotation", "Yposition", "Yrotation", "Zposition")  # interleaved
    from racer_env.motion.skeleton import Skeleton
    skel = Skeleton(skel.names, skel.parents, skel.offsets, tuple(chans), {2: np.array([0, 5.0, 0])})
    from racer_env.motion.rotations import rotvec_to_matrix
    rots = rotvec_to_matrix(rng.normal(scale=0.7, size=(30, 3, 3)))
    trans = np.broadcast_to(skel.offsets, (30, 3, 3)).copy()
    trans[:, 1] += rng.normal(size=(30, 3))
    bvh = Bvh.from_rotations(skel, rots, fps=30, translations=trans)
    again = read_bvh(write_bvh(tmp_path / "six.bvh", bvh))
    assert angle_between(again.local_rotations(), rots).max() < 1e-4
    np.testing.assert_allclose(again.translations(), trans, atol=1e-5)
    p0, _ = forward_kinematics(skel, rots, translations=trans)
    p1, _ = forward_kinematics(again.skeleton, again.local_rotations(), translations=again.translations())
    np.testing.assert_allclose(p0, p1, atol=1e-3)


def test_tolerates_tabs_trailing_spaces_and_blank_lines(tmp_path):
    text = read_bvh(CMU_MB)
    write_bvh(tmp_path / "a.bvh", text)
    messy = (tmp_path / "a.bvh").read_text().replace("\n", "   \t\r\n").replace("MOTION", "\r\nMOTION")
    (tmp_path / "b.bvh").write_text(messy)
    again = read_bvh(tmp_path / "b.bvh")
    np.testing.assert_array_equal(again.values, read_bvh(tmp_path / "a.bvh").values)


def test_reads_a_100000_frame_file(tmp_path, rng):
    skel = trinity_like()
    values = rng.uniform(-90, 90, size=(100_000, skel.n_channels)).round(4)
    write_bvh(tmp_path / "long.bvh", Bvh(skel, 1 / 60, values), precision=4)
    bvh = read_bvh(tmp_path / "long.bvh")
    assert bvh.n_frames == 100_000
    np.testing.assert_array_equal(bvh.values, values)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: t[: len(t) * 2 // 3], "truncated or corrupt"),
        (lambda t: t[: t.index("MOTION") // 2], "no MOTION"),
        (lambda t: t.replace("HIERARCHY", "HIERARCHIE"), "starts with HIERARCHY"),
        (lambda t: t.replace("Frames: 524", "Frames: 600"), "truncated or corrupt"),
        (lambda t: t.replace("CHANNELS 3", "CHANNELS 4", 1), "CHANNELS says 4"),
        (lambda t: "\n".join(t.split("\n")[:-40] + ["1.0 nan " + t.split("\n")[-40].split(" ", 2)[2]]
                             + t.split("\n")[-39:]), "NaN or infinite"),
        (lambda t: "", "starts with HIERARCHY|no MOTION"),
    ],
)
def test_bad_files_raise_errors_naming_the_file(tmp_path, mutate, message):
    text = CMU_MB.read_bytes().decode()
    bad = tmp_path / "bad.bvh"
    bad.write_text(mutate(text))
    with pytest.raises(BvhError, match=message) as err:
        read_bvh(bad)
    assert "bad.bvh" in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(BvhError, match="cannot read"):
        read_bvh(tmp_path / "nope.bvh")
