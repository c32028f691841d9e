"""Motion writers (npz, BVH, mp4 with speech) and the vectorised stick-figure renderer of the environment."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from racer_env import export
from racer_env.errors import RacerError
from racer_env.export import write_motion_bvh, write_npz, write_outputs, write_video
from racer_env.motion.bvh import read_bvh
from racer_env.motion.rotations import angle_between, rotvec_to_matrix
from racer_env.motion.skeleton import forward_kinematics
from racer_env.render import BACKGROUND, draw_pose, pose_positions, rest_framing
from racer_env.video import FRAME_SIZE
from tests.conftest import trinity_like

FPS = 20.0
SECONDS = 3.0
SR = 16000


@pytest.fixture(scope="module")
def skeleton():
    return trinity_like()


@pytest.fixture(scope="module")
def motion(skeleton) -> np.ndarray:
    """(60, 16, 3) smooth rotation vectors (sums of slow sines, up to ~0.5 rad)."""
    rng = np.random.default_rng(0)
    t = np.arange(int(SECONDS * FPS))[:, None, None] / FPS
    freq = rng.uniform(0.2, 1.0, (1, skeleton.n_joints, 3))
    phase = rng.uniform(0, 2 * np.pi, (1, skeleton.n_joints, 3))
    return 0.5 * np.sin(2 * np.pi * freq * t + phase)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    t = np.arange(int(SECONDS * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2).astype(np.float32)


def _leftovers(directory: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


def _probe(path: Path) -> tuple[str, int]:
    """(stream listing of ``ffmpeg -i``, number of decoded video frames)."""
    exe = export.ffmpeg_exe()
    # without an output file ffmpeg lists the streams and exits 1
    info = subprocess.run([exe, "-hide_banner", "-i", str(path)], check=False, capture_output=True,
                          text=True).stderr
    decoded = subprocess.run([exe, "-hide_banner", "-nostats", "-i", str(path), "-map", "0:v:0", "-f", "null",
                              "-progress", "pipe:1", "-"], capture_output=True, text=True, check=True).stdout
    return info, int(re.findall(r"^frame=(\d+)", decoded, flags=re.MULTILINE)[-1])


# -- npz ---------------------------------------------------------------------------------------------------
def test_npz_holds_rotations_positions_fps_names_and_extras(tmp_path, skeleton, motion):
    codes = np.arange(15, dtype=np.int64)
    path = write_npz(tmp_path / "clip.npz", motion, skeleton, FPS, codes=codes)
    with np.load(path) as data:  # no allow_pickle needed
        assert set(data.files) == {"rotations", "positions", "fps", "joint_names", "codes"}
        np.testing.assert_array_equal(data["rotations"], motion)
        positions = forward_kinematics(skeleton, rotvec_to_matrix(motion))[0]
        assert data["positions"].shape == (len(motion), 16, 3)
        np.testing.assert_allclose(data["positions"], positions)
        root = np.broadcast_to(skeleton.offsets[0] * skeleton.unit_mm, (60, 3))
        np.testing.assert_allclose(data["positions"][:, 0], root)
        assert float(data["fps"]) == FPS
        assert list(data["joint_names"]) == list(skeleton.names)
        np.testing.assert_array_equal(data["codes"], codes)
    assert _leftovers(tmp_path, {"clip.npz"}) == []


def test_npz_rejects_bad_shapes_and_reserved_extras(tmp_path, skeleton, motion):
    with pytest.raises(ValueError, match=r"\(T >= 1, 16, 3\)"):
        write_npz(tmp_path / "a.npz", motion[:, :5], skeleton, FPS)
    with pytest.raises(ValueError, match="positions"):
        write_npz(tmp_path / "a.npz", motion, skeleton, FPS, positions=np.zeros(3))
    assert _leftovers(tmp_path, set()) == []


# -- bvh ---------------------------------------------------------------------------------------------------
def test_bvh_reads_back_with_the_same_rotations_and_frame_time(tmp_path, skeleton, motion):
    path = write_motion_bvh(tmp_path / "clip.bvh", motion, skeleton, FPS)
    bvh = read_bvh(path)
    assert bvh.n_frames == len(motion) and bvh.frame_time == pytest.approx(0.05, abs=1e-8)
    assert bvh.skeleton.names == skeleton.names and bvh.skeleton.parents == skeleton.parents
    err = angle_between(bvh.local_rotations(), rotvec_to_matrix(motion))
    assert err.max() < 1e-4
    np.testing.assert_allclose(bvh.translations()[:, 0], np.broadcast_to(skeleton.offsets[0], (60, 3)))
    assert _leftovers(tmp_path, {"clip.bvh"}) == []


# -- mp4 ---------------------------------------------------------------------------------------------------
def test_mp4_has_every_frame_at_the_size_and_the_speech(tmp_path, skeleton, motion, speech):
    path = write_video(tmp_path / "clip.mp4", motion, skeleton, FPS, speech, SR, progress=False)
    info, n_frames = _probe(path)
    assert re.search(r"Video: h264.*yuv420p.*960x540", info), info
    assert re.search(r"\b20 fps\b", info), info
    assert re.search(r"Audio: aac.*16000 Hz", info), info
    assert n_frames == len(motion)
    assert _leftovers(tmp_path, {"clip.mp4"}) == []


def test_mp4_without_audio(tmp_path, skeleton, motion):
    path = write_video(tmp_path / "silent.mp4", motion[:10], skeleton, FPS, progress=False)
    info, n_frames = _probe(path)
    assert re.search(r"Video: h264.*960x540", info) and "Audio:" not in info, info
    assert n_frames == 10


def test_the_ffmpeg_command_pads_odd_sizes_only():
    """yuv420p needs even dimensions: an odd size is padded, an even one (the video's) goes through as it is."""
    even = export._ffmpeg_command("ffmpeg", (960, 540), FPS, None, Path("v.mp4"))
    odd = export._ffmpeg_command("ffmpeg", (961, 540), FPS, None, Path("v.mp4"))
    assert "-vf" not in even and "libx264" in even
    assert any(arg.startswith("pad=") for arg in odd)


def test_ffmpeg_failure_raises_with_its_stderr_and_leaves_nothing(tmp_path, skeleton, motion, speech,
                                                                  monkeypatch):
    fake = tmp_path / "bin" / "ffmpeg"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'simulated encoder failure' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(export, "ffmpeg_exe", lambda: str(fake))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RuntimeError, match="simulated encoder failure"):
        write_video(out / "clip.mp4", motion, skeleton, FPS, speech, SR, progress=False)
    assert _leftovers(out, set()) == []


def test_real_ffmpeg_exiting_early_raises_with_its_error(tmp_path, skeleton, motion, speech, monkeypatch):
    build = export._ffmpeg_command
    monkeypatch.setattr(export, "_ffmpeg_command",
                        lambda *a: [x.replace("libx264", "no_such_encoder") for x in build(*a)])
    with pytest.raises(RuntimeError, match="ffmpeg failed.*no_such_encoder"):  # while frames are still piped
        write_video(tmp_path / "clip.mp4", motion, skeleton, FPS, speech, SR, progress=False)
    assert _leftovers(tmp_path, set()) == []


def test_a_drawing_error_mid_video_stops_ffmpeg_and_leaves_nothing(tmp_path, skeleton, motion, speech, monkeypatch):
    """Frames are drawn while a writer thread feeds ffmpeg: an error in the drawing (after frames were queued and
    written) is raised as it is, ffmpeg is stopped, the writer thread ends and no file is left."""
    import threading

    def failing(takes, fps, speech=None):
        for _ in range(export.QUEUED_FRAMES + 5):
            yield np.zeros((FRAME_SIZE[1], FRAME_SIZE[0], 3), dtype=np.uint8)
        raise RacerError("simulated drawing failure")

    monkeypatch.setattr(export, "render_video_frames", failing)
    with pytest.raises(RacerError, match="simulated drawing failure"):
        write_video(tmp_path / "clip.mp4", motion, skeleton, FPS, speech, SR, progress=False)
    assert _leftovers(tmp_path, set()) == []
    assert not [t for t in threading.enumerate() if t.name == "ffmpeg-frames"]


# -- all formats -------------------------------------------------------------------------------------------
def test_write_outputs_writes_the_requested_formats(tmp_path, skeleton, motion, speech):
    out = tmp_path / "gen"
    paths = write_outputs(out, "s1", motion, skeleton, FPS, speech, SR, formats=("npz", "BVH"),
                          progress=False, codes=np.zeros(3))
    assert paths == {"npz": out / "s1.npz", "bvh": out / "s1.bvh"}
    assert _leftovers(out, {"s1.npz", "s1.bvh"}) == []


def test_unknown_format_is_a_value_error_naming_it(tmp_path, skeleton, motion):
    with pytest.raises(ValueError, match=r"'gif'.*npz"):
        write_outputs(tmp_path / "gen", "s1", motion, skeleton, FPS, formats=("npz", "gif"))
    assert not (tmp_path / "gen").exists()


# -- rendering ---------------------------------------------------------------------------------------------
def _old_draw_pose(positions, parents, size=256, extent_mm=None, center=None):
    """The loop implementation draw_pose replaced, kept as the reference."""
    def dot(img, r, c, color, radius):
        h, w = img.shape[:2]
        r0, r1 = int(max(r - radius, 0)), int(min(r + radius + 1, h))
        c0, c1 = int(max(c - radius, 0)), int(min(c + radius + 1, w))
        if r0 < r1 and c0 < c1:
            img[r0:r1, c0:c1] = color

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
            n = int(max(abs(rows[j] - rows[p]), abs(cols[j] - cols[p]))) + 1
            for r, c in zip(np.linspace(rows[p], rows[j], n), np.linspace(cols[p], cols[j], n)):
                dot(img, r, c, (40, 60, 120), thickness // 2)
    for r, c in zip(rows, cols):
        dot(img, r, c, (200, 60, 40), thickness + 1)
    return img


@pytest.mark.parametrize("size", [64, 255, 256, 512])
def test_vectorised_draw_pose_matches_the_loop_version(skeleton, motion, size):
    extent, center = rest_framing(skeleton)
    for frame in (0, 17, 59):
        pos = pose_positions(skeleton, motion[frame])
        np.testing.assert_array_equal(draw_pose(pos, skeleton.parents, size, extent, center),
                                      _old_draw_pose(pos, skeleton.parents, size, extent, center))
        np.testing.assert_array_equal(draw_pose(pos, skeleton.parents, size),
                                      _old_draw_pose(pos, skeleton.parents, size))
    # partly outside the view: clipped the same way
    pos = pose_positions(skeleton, motion[0]) + [extent * 0.45, 0, 0]
    np.testing.assert_array_equal(draw_pose(pos, skeleton.parents, size, extent, center),
                                  _old_draw_pose(pos, skeleton.parents, size, extent, center))


def test_rest_framing_fits_the_rest_pose(skeleton):
    extent, center = rest_framing(skeleton)
    rest = pose_positions(skeleton, np.zeros((16, 3)))
    assert extent == pytest.approx(np.ptp(rest[:, 1]) * 1.6)
    np.testing.assert_allclose(center, rest.mean(0))
