"""The synthetic speaker: determinism, files, and the speech-gesture rules measured on the written files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.stats import spearmanr

from racer_env.corpus.synth import (
    SynthClipInfo,
    clip_durations,
    min_jerk_path,
    speaker_style,
    synthesize_clip,
    synthesize_sources,
    trinity_skeleton,
    two_bone_ik,
)
from racer_env.metrics.rules import REST_RADIUS_MM, REST_SPEED_MM_S, detect_strokes
from racer_env.motion.bvh import read_bvh
from racer_env.motion.rotations import euler_to_matrix
from racer_env.motion.skeleton import forward_kinematics

MINUTES = 2.0
SPEAKERS = 2
SEED = 7


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[SynthClipInfo]]:
    out = tmp_path_factory.mktemp("synth")
    infos = synthesize_sources(out, MINUTES, SPEAKERS, SEED, clip_seconds=20.0, progress=False)
    return out, infos


def _hands(info: SynthClipInfo) -> tuple[dict[str, np.ndarray], float]:
    """Wrist positions (T, 3) in mm of both hands from the bvh file, and the frame rate."""
    bvh = read_bvh(info.bvh, unit_mm=10.0)
    pos, _ = forward_kinematics(bvh.skeleton, bvh.local_rotations(), translations=bvh.translations())
    names = bvh.skeleton.names
    return {side: pos[:, names.index(f"{side.capitalize()}Hand")] for side in ("right", "left")}, bvh.fps


def test_clip_durations():
    assert clip_durations(65.0, 30.0) == [30.0, 30.0, 5.0]
    assert clip_durations(62.0, 30.0) == [30.0, 30.0]  # a 2 s remainder is dropped
    assert clip_durations(2.0, 30.0) == [4.0]


def test_min_jerk_speed_peaks_at_midpoint():
    times = np.linspace(0.0, 1.0, 1001)
    path = min_jerk_path(np.array([0.0, 1.0]), np.array([[0.0], [1.0]]), times)
    speed = np.abs(np.gradient(path[:, 0], times))
    assert abs(times[np.argmax(speed)] - 0.5) < 1e-3
    assert path[0, 0] == 0.0 and abs(path[-1, 0] - 1.0) < 1e-12


def test_two_bone_ik_reaches_targets():
    skel = trinity_skeleton()
    rng = np.random.default_rng(0)
    n = 50
    j_arm, j_fore, j_hand = (skel.index(n) for n in ("RightArm", "RightForeArm", "RightHand"))
    local = np.broadcast_to(np.eye(3), (n, skel.n_joints, 3, 3)).copy()
    local[:, skel.index("Spine")] = euler_to_matrix(rng.uniform(-10, 10, (n, 3)), "ZXY")
    pos, glob = forward_kinematics(skel, local)
    shoulder = pos[:, j_arm] / 10.0
    target = (
        shoulder + rng.uniform(-1, 1, (n, 3)) * np.array([15.0, 25.0, 10.0]) + np.array([5.0, -20.0, 25.0])
    )
    upper, lower = two_bone_ik(
        shoulder,
        target,
        glob[:, skel.index("RightShoulder")],
        30.0,
        27.0,
        np.array([-0.35, -0.55, -0.75]),
        np.array([-1.0, 0, 0]),
        np.array([0.0, 1.0, 0]),
    )
    local[:, j_arm], local[:, j_fore] = upper, lower
    pos2, _ = forward_kinematics(skel, local)
    np.testing.assert_allclose(pos2[:, j_hand] / 10.0, target, atol=1e-6)


def test_deterministic(tmp_path):
    a = synthesize_sources(tmp_path / "a", 0.1, 1, 3, clip_seconds=6.0, progress=False)
    b = synthesize_sources(tmp_path / "b", 0.1, 1, 3, clip_seconds=6.0, progress=False)
    c = synthesize_sources(tmp_path / "c", 0.1, 1, 4, clip_seconds=6.0, progress=False)
    assert [i.name for i in a] == ["clip_000"]
    for x, y, z in zip(a, b, c):
        for attr in ("wav", "bvh", "json"):
            assert getattr(x, attr).read_bytes() == getattr(y, attr).read_bytes()
            assert getattr(x, attr).read_bytes() != getattr(z, attr).read_bytes()
    # clips are independent: clip 1 of a longer run equals clip 1 synthesised alone
    style = speaker_style(3, 0)
    one = synthesize_clip(3, 0, 1, 6.0, style)
    again = synthesize_clip(3, 0, 1, 6.0, style)
    assert np.array_equal(one.audio, again.audio) and np.array_equal(one.bvh.values, again.bvh.values)
    assert not list(tmp_path.rglob(".*tmp*"))  # no temporary files left behind


def test_files(corpus):
    out, infos = corpus
    assert len(infos) == SPEAKERS * 3  # 60 s per speaker in clips of 20 s
    assert sorted(p.name for p in (out / "speaker_01").iterdir()) == [
        f"clip_00{k}.{e}" for k in range(3) for e in ("bvh", "json", "wav")
    ]
    assert abs(sum(i.duration_s for i in infos) - MINUTES * 60) < 0.1
    for info in infos:
        y, sr = sf.read(info.wav)
        assert sr == 16000 and y.ndim == 1 and sf.info(str(info.wav)).subtype == "PCM_16"
        bvh = read_bvh(info.bvh, unit_mm=10.0)
        assert bvh.skeleton.names[:8] == (
            "Hips",
            "Spine",
            "Spine1",
            "Spine2",
            "Spine3",
            "Neck",
            "Neck1",
            "Head",
        )
        assert "RightUpLeg" in bvh.skeleton.names and round(bvh.fps) == 60
        assert bvh.skeleton.channels[0][:3] == ("Xposition", "Yposition", "Zposition")
        assert abs(len(y) / sr - bvh.n_frames / bvh.fps) < 0.1
        assert abs(info.duration_s - len(y) / sr) < 0.1
        ann = json.loads(info.json.read_text())
        for key in ("phrases", "syllables", "pauses", "strokes", "gestures", "style"):
            assert key in ann


def _measure(corpus):
    """Per clip: annotation, hands, fps and detected strokes per hand."""
    import librosa

    _, infos = corpus
    out = []
    for info in infos:
        ann = json.loads(info.json.read_text())
        hands, fps = _hands(info)
        y, sr = sf.read(info.wav, dtype="float32")
        onsets = librosa.onset.onset_detect(y=y, sr=sr, hop_length=160, units="time")
        stressed = np.array([s["onset"] for s in ann["syllables"] if s["stressed"]])
        stressed_onsets = [o for o in onsets if stressed.size and np.min(np.abs(stressed - o)) <= 0.05]
        strokes = {side: detect_strokes(h, fps) for side, h in hands.items()}
        out.append((info, ann, hands, fps, np.array(stressed_onsets), strokes))
    return out


@pytest.fixture(scope="module")
def measured(corpus):
    return _measure(corpus)


def test_strokes_fall_on_stressed_onsets(measured):
    near = total = 0
    for _, ann, _, fps, stressed_onsets, strokes in measured:
        for side in strokes:
            for stroke in strokes[side]:
                total += 1
                if stressed_onsets.size and np.min(np.abs(stressed_onsets - stroke.frame / fps)) <= 0.1:
                    near += 1
    assert total >= 10, "too few strokes detected to test the rule"
    assert near / total >= 0.8, f"only {near}/{total} detected strokes lie within 0.1 s of a stressed onset"


def test_hands_rest_in_pauses(measured):
    at_rest = total = 0
    for _, ann, hands, fps, _, _ in measured:
        n = len(hands["right"])
        frames = np.zeros(n, dtype=bool)
        for p in ann["pauses"]:
            frames[int(np.ceil(p["start"] * fps)) : int(np.floor(p["end"] * fps)) + 1] = True
        frames = frames[:n]
        ok = np.ones(n, dtype=bool)
        for h in hands.values():
            rest = np.median(h[frames], axis=0)
            speed = np.linalg.norm(np.gradient(h, axis=0), axis=1) * fps
            ok &= (np.linalg.norm(h - rest, axis=1) < REST_RADIUS_MM) & (speed < REST_SPEED_MM_S)
        at_rest += int(np.sum(ok & frames))
        total += int(np.sum(frames))
    assert total > 0
    assert at_rest / total >= 0.9, f"hands at rest in only {at_rest}/{total} pause frames"


def _stroke_pairs(measured, speaker: int):
    """Per matched stroke: annotated loudness and pitch, measured size and start height (mm)."""
    rows = []
    for info, ann, hands, fps, _, strokes in measured:
        if info.speaker != speaker:
            continue
        syl = ann["syllables"]
        stressed = [s for s in syl if s["stressed"]]
        onsets = np.array([s["onset"] for s in stressed])
        for side in strokes:
            for stroke in strokes[side]:
                t = stroke.frame / fps
                k = int(np.argmin(np.abs(onsets - t)))
                if abs(onsets[k] - t) <= 0.1:
                    rows.append((stressed[k]["loudness_db"], stressed[k]["pitch_hz"], stroke.size_mm,
                                 hands[side][stroke.start_frame, 1]))
    return np.array(rows)


@pytest.mark.parametrize("speaker", range(SPEAKERS))
def test_amplitude_follows_loudness_and_height_follows_pitch(measured, speaker):
    rows = _stroke_pairs(measured, speaker)
    assert len(rows) >= 8
    rho_amp = spearmanr(rows[:, 0], rows[:, 2])[0]
    rho_height = spearmanr(rows[:, 1], rows[:, 3])[0]
    assert rho_amp > 0.5, f"loudness vs stroke size: spearman {rho_amp:.2f}"
    assert rho_height > 0.5, f"pitch vs hand height: spearman {rho_height:.2f}"


def test_one_to_many(corpus):
    _, infos = corpus
    for speaker in range(SPEAKERS):
        choices = set()
        for info in infos:
            if info.speaker == speaker:
                for g in json.loads(info.json.read_text())["gestures"]:
                    if g["hands"] != "none":
                        choices.add((g["hands"], g["direction"], g["lateral"]))
        assert len(choices) >= 2, f"speaker {speaker}: a single gesture choice {choices}"


def test_speaker_styles_differ():
    a, b = speaker_style(0, 0), speaker_style(0, 1)
    assert a != b
    assert a == speaker_style(0, 0)
