"""``racer corpus import``: real BVH + real speech pairs, and every kind of bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from racer_env.audio.features import load_audio
from racer_env.corpus import Corpus, CorpusError
from racer_env.corpus.importer import ImportConfig, find_pairs, import_corpus
from racer_env.motion.bvh import read_bvh
from racer_env.motion.rotations import rotvec_to_matrix
from racer_env.motion.skeleton import forward_kinematics
from tests.conftest import CMU_MB, CMU_UNIT_MM, JFK_WAV, LIBRI_OGG

CONFIG = ImportConfig(unit_mm=CMU_UNIT_MM)
WALK_S = 523 / 120.0  # duration of the CMU walk (its frame time .0083333 is read as 120 fps)


@pytest.fixture(scope="module")
def speech():
    return load_audio(JFK_WAV), load_audio(LIBRI_OGG)


def make_src(root, speech, n=3):
    """n pairs of the CMU walk with speech cut to its length, as wav 16k, stereo flac 44.1k and ogg 22.05k."""
    jfk, libri = speech
    src = root / "cmu"
    src.mkdir(parents=True)
    cut = int(WALK_S * 16000)
    for i in range(n):
        shutil.copy(CMU_MB, src / f"take{i}.bvh")
        seg = (jfk if i % 2 == 0 else libri)[i * 8000: i * 8000 + cut]
        if i % 3 == 0:
            sf.write(src / f"take{i}.wav", seg, 16000)
        elif i % 3 == 1:
            import librosa
            y = librosa.resample(seg, orig_sr=16000, target_sr=44100)
            sf.write(src / f"take{i}.flac", np.stack([y, y], 1), 44100)
        else:
            import librosa
            sf.write(src / f"take{i}.ogg", librosa.resample(seg, orig_sr=16000, target_sr=22050), 22050)
    return src


def test_import_builds_a_corpus_that_matches_the_source(tmp_path, speech):
    src = make_src(tmp_path, speech)
    result = import_corpus(src, tmp_path / "W", CONFIG, workers=1, progress=False)
    corpus = result.corpus
    assert not result.skipped
    s = corpus.summary()
    assert s["clips"] == 3 and s["speakers"] == ["cmu"] and s["fps"] == 20 and s["n_joints"] == 15
    assert {k: v["clips"] for k, v in s["splits"].items()} == {"train": 1, "valid": 1, "test": 1}
    clip = corpus.clip("cmu/take1")
    assert clip.n_frames % 8 == 0 and clip.n_frames == 80  # 4.36 s at 20 fps -> 87 frames -> 10 code steps
    assert clip.audio.shape == (80, 66) and clip.rotations.shape == (80, 15, 3)
    assert clip.source["bvh"].endswith("take1.bvh") and len(clip.source["wav_sha256"]) == 64
    # The corpus motion at 20 fps is the source motion at every 6th frame of 120 fps: compare joint positions
    # via forward kinematics.
    bvh = read_bvh(CMU_MB, unit_mm=CMU_UNIT_MM)
    joints = [bvh.skeleton.index(n) for n in corpus.joint_names]
    src_pos, _ = forward_kinematics(bvh.skeleton, bvh.local_rotations())
    pos, _ = forward_kinematics(clip.skeleton, rotvec_to_matrix(clip.rotations))
    # positions relative to the root (the corpus motion has a rotational root only)
    err = np.abs((pos - pos[:, :1]) - (src_pos[::6][:80, joints] - src_pos[::6][:80, :1]))
    assert err.max() < 1e-3  # mm: the same frames, exactly
    stats = corpus.stats
    assert stats.motion_mean.shape == (45,) and stats.audio_std.shape == (66,) and (stats.motion_std > 0).all()
    report = result.reports["cmu/take0"]
    assert report["frames"] == 80 and report["trimmed_s"] > 0


def test_second_import_is_skipped_and_other_inputs_need_force(tmp_path, speech):
    src = make_src(tmp_path, speech)
    first = import_corpus(src, tmp_path / "W", CONFIG, workers=1, progress=False)
    again = import_corpus(src, tmp_path / "W", CONFIG, workers=1, progress=False)
    assert again.skipped and again.corpus.checksum == first.corpus.checksum
    with pytest.raises(CorpusError, match="--force"):
        import_corpus(src, tmp_path / "W", ImportConfig(unit_mm=CMU_UNIT_MM, seed=1), workers=1, progress=False)
    forced = import_corpus(src, tmp_path / "W", ImportConfig(unit_mm=CMU_UNIT_MM, seed=1), force=True, workers=1,
                           progress=False)
    assert not forced.skipped


def test_parallel_import_equals_serial(tmp_path, speech):
    src = make_src(tmp_path, speech)
    a = import_corpus(src, tmp_path / "A", CONFIG, workers=1, progress=False).corpus
    b = import_corpus(src, tmp_path / "B", CONFIG, workers=2, progress=False).corpus
    assert a.checksum == b.checksum


def test_subdirectories_are_speakers(tmp_path, speech):
    src = make_src(tmp_path / "corpus", speech, n=1)
    shutil.copytree(src, tmp_path / "corpus" / "other")
    pairs = find_pairs(tmp_path / "corpus")
    assert sorted(p.clip_id for p in pairs) == ["cmu/take0", "other/take0"]


def _corrupt(src, kind):
    """Make one file of a good source directory bad; return the name the error must mention."""
    if kind == "missing pair":
        (src / "take0.bvh").unlink()
        return "take0.wav"
    if kind == "truncated wav":
        (src / "take0.wav").write_bytes((src / "take0.wav").read_bytes()[:40])
        return "take0.wav"
    if kind == "truncated bvh":
        text = (src / "take1.bvh").read_bytes()
        (src / "take1.bvh").write_bytes(text[: len(text) // 2])
        return "take1.bvh"
    if kind == "nan in bvh":
        text = (src / "take2.bvh").read_text()
        lines = text.split("\n")
        lines[-10] = "nan " + lines[-10].split(" ", 1)[1]
        (src / "take2.bvh").write_text("\n".join(lines))
        return "take2.bvh"
    if kind == "silent audio":
        sf.write(src / "take0.wav", np.zeros(int(WALK_S * 16000), dtype=np.float32), 16000)
        return "take0.wav"
    if kind == "empty audio":
        sf.write(src / "take0.wav", np.zeros(0, dtype=np.float32), 16000)
        return "take0.wav"
    if kind == "length mismatch":
        sf.write(src / "take0.wav", np.random.default_rng(0).normal(0, 0.1, int((WALK_S + 1.5) * 16000)), 16000)
        return "take0.wav"
    if kind == "unmappable skeleton":
        text = (src / "take1.bvh").read_bytes().replace(b"JOINT Head", b"JOINT Skull")
        (src / "take1.bvh").write_bytes(text)
        return "take1.bvh"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, message", [
    ("missing pair", "missing pair"),
    ("truncated wav", "cannot decode"),
    ("truncated bvh", "truncated"),
    ("nan in bvh", "NaN"),
    ("silent audio", "silent"),
    ("empty audio", "empty"),
    ("length mismatch", r"differ by 1\.\d+ s"),
    ("unmappable skeleton", "missing head"),
])
def test_bad_input_names_the_file_and_leaves_nothing(tmp_path, speech, kind, message):
    src = make_src(tmp_path, speech)
    name = _corrupt(src, kind)
    ws = tmp_path / "W"
    with pytest.raises(CorpusError, match=message) as err:
        import_corpus(src, ws, CONFIG, workers=1, progress=False)
    assert name in str(err.value)
    assert not (ws / "corpus").exists()
    assert not any(p.name.startswith(".corpus") for p in ws.iterdir()) if ws.exists() else True


def test_small_length_difference_is_trimmed_and_reported(tmp_path, speech):
    src = make_src(tmp_path, speech, n=1)
    y = load_audio(src / "take0.wav")
    sf.write(src / "take0.wav", np.concatenate([y, y[:8000]]), 16000)  # 0.5 s longer than the motion
    result = import_corpus(src, tmp_path / "W", CONFIG, workers=1, progress=False)
    report = result.reports["cmu/take0"]
    assert report["audio_frames"] - report["motion_frames"] == 9 and report["trimmed_s"] == 0.45


def test_mixed_skeleton_layouts_are_refused(tmp_path, speech):
    src = make_src(tmp_path, speech, n=2)
    text = (src / "take1.bvh").read_bytes().replace(b"JOINT Neck1", b"JOINT NeckB")
    (src / "take1.bvh").write_bytes(text)
    with pytest.raises(CorpusError, match="one skeleton layout"):
        import_corpus(src, tmp_path / "W", CONFIG, workers=1, progress=False)


def test_corrupted_clip_file_is_detected_on_load(tmp_path, speech):
    src = make_src(tmp_path, speech, n=1)
    corpus = import_corpus(src, tmp_path / "W", CONFIG, workers=1, progress=False).corpus
    path = corpus.directory / corpus.record("cmu/take0")["file"]
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CorpusError, match="checksum"):
        Corpus(corpus.directory).clip("cmu/take0")


def test_force_replaces_an_unreadable_corpus(tmp_path, speech):
    src = make_src(tmp_path, speech, n=1)
    ws = tmp_path / "W"
    import_corpus(src, ws, CONFIG, workers=1, progress=False)
    (ws / "corpus" / "manifest.json").write_text("{not json")
    with pytest.raises(CorpusError, match="pass --force"):
        import_corpus(src, ws, CONFIG, workers=1, progress=False)
    assert not import_corpus(src, ws, CONFIG, force=True, workers=1, progress=False).skipped


def test_an_empty_training_split_is_an_error(tmp_path, speech):
    src = make_src(tmp_path, speech, n=4)
    with pytest.raises(CorpusError, match="no clip is left for the training split"):
        import_corpus(src, tmp_path / "W", ImportConfig(unit_mm=CMU_UNIT_MM, valid_frac=0.45, test_frac=0.45),
                      workers=1, progress=False)
