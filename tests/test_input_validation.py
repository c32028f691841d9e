"""Bad user input (audio files, BVH files, reset options) fails with one clear line that names the culprit."""

import re

import gymnasium as gym
import numpy as np
import pytest
import soundfile as sf

from racer_env.audio.features import (
    MAX_FLOAT_PEAK,
    AudioError,
    AudioFeatureConfig,
    audio_features,
    load_audio,
)
from racer_env.errors import RacerError
from racer_env.motion.bvh import MAX_ABS_VALUE, Bvh, BvhError, read_bvh, write_bvh
from tests.conftest import chain_skeleton, trinity_like

SR = 16000


def tone(seconds: float = 1.0, sr: int = SR, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return amplitude * np.sin(2 * np.pi * 220 * t)


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


# -- audio ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("rate", [SR, 22050])  # as stored and resampled: checked before librosa sees it
def test_non_finite_float_wav_names_the_file_and_the_time(tmp_path, subtype, bad, rate):
    y = tone(1.0, rate)
    y[rate // 2] = bad
    sf.write(tmp_path / "speech.wav", y, rate, subtype=subtype)
    with pytest.raises(AudioError, match=r"speech\.wav: NaN or infinite samples \(first at 0\.500 s\)") as err:
        load_audio(tmp_path / "speech.wav")
    assert "buffer" not in one_line(err)  # librosa's ParameterError text


def test_non_finite_stereo_wav_reports_the_first_bad_frame(tmp_path):
    y = np.stack([tone(2.0), tone(2.0)], axis=1)
    y[int(1.25 * SR), 1] = np.nan
    sf.write(tmp_path / "st.wav", y, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"st\.wav: NaN or infinite samples \(first at 1\.250 s\)"):
        load_audio(tmp_path / "st.wav")


def test_absurd_float_amplitude_is_refused_but_headroom_is_kept(tmp_path):
    sf.write(tmp_path / "loud.wav", tone(amplitude=1e6), SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"loud\.wav: peak amplitude 1e\+06 .*expected in \[-1, 1\]") as err:
        load_audio(tmp_path / "loud.wav")
    one_line(err)
    sf.write(tmp_path / "hot.wav", tone(amplitude=MAX_FLOAT_PEAK / 2), SR, subtype="FLOAT")
    assert np.abs(load_audio(tmp_path / "hot.wav")).max() == pytest.approx(MAX_FLOAT_PEAK / 2, rel=1e-3)


def test_bad_files_reach_generate_and_corpus_import_with_the_same_message(tmp_path):
    from racer_agents.generate import prepare_audio
    from racer_env.corpus.importer import CorpusError, import_corpus

    y = tone(2.0)
    y[SR] = np.nan
    src = tmp_path / "src"
    src.mkdir()
    sf.write(src / "clip.wav", y, SR, subtype="FLOAT")
    skel = trinity_like()
    write_bvh(src / "clip.bvh", Bvh(skel, 1 / 20, np.zeros((40, skel.n_channels))))
    expected = r"clip\.wav: NaN or infinite samples \(first at 1\.000 s\)"
    with pytest.raises(AudioError, match=expected):
        prepare_audio(src / "clip.wav", None, SR)  # what `racer generate --audio` loads with
    with pytest.raises(CorpusError, match=expected):
        import_corpus(src, tmp_path / "W", workers=1, progress=False)


def test_directory_device_and_missing_paths_are_told_apart(tmp_path):
    with pytest.raises(AudioError, match=r"is a directory, expected an audio file \(wav, flac, ogg\)"):
        load_audio(tmp_path)
    with pytest.raises(AudioError, match="/dev/null: is not a regular file"):
        load_audio("/dev/null")
    with pytest.raises(AudioError, match="absent.wav: no such audio file"):
        load_audio(tmp_path / "absent.wav")


@pytest.mark.parametrize("name", ["x.mp3", "x.wav"])
def test_garbage_file_says_it_cannot_be_decoded_without_library_hints(tmp_path, capfd, name):
    (tmp_path / name).write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(AudioError) as err:
        load_audio(tmp_path / name)
    text = one_line(err)
    assert re.fullmatch(rf".*{re.escape(name)}: cannot decode audio: not a wav/flac/ogg file libsndfile can read "
                        r"\([^()]+\)", text), text
    assert "pipe" not in text and "Error opening" not in text
    assert "Note:" not in capfd.readouterr().err  # libsndfile's mp3 decoder notes stay off the terminal


def test_empty_file_is_called_empty(tmp_path):
    (tmp_path / "e.wav").write_bytes(b"")
    with pytest.raises(AudioError, match=r"e\.wav: cannot decode audio: .*\(the file is empty \(0 bytes\)\)"):
        load_audio(tmp_path / "e.wav")


def test_audio_shorter_than_one_feature_frame_names_its_source():
    cfg = AudioFeatureConfig()
    with pytest.raises(AudioError, match=r"a\.wav: audio of 0\.030 s \(480 samples\) is shorter than one feature"):
        audio_features(tone(0.03).astype(np.float32), cfg, source="a.wav")


# -- BVH -----------------------------------------------------------------------------------------------------
@pytest.fixture
def small_bvh(tmp_path):
    """A 5-frame BVH of Hips (6 channels), Spine and Neck (3 each): its path and its lines."""
    skel = chain_skeleton([("Hips", None), ("Spine", "Hips"), ("Neck", "Spine")])
    values = np.random.default_rng(0).uniform(-10, 10, (5, skel.n_channels)).round(3)
    path = write_bvh(tmp_path / "take.bvh", Bvh(skel, 1 / 20, values))
    return path, path.read_text().splitlines()


def test_bvh_huge_motion_value_names_file_frame_and_channel(small_bvh):
    path, lines = small_bvh
    row = lines[-2].split()  # frame 3
    row[7] = "1e300"  # Hips has 6 channels: column 7 is Spine's second (ZXY order: Xrotation)
    lines[-2] = " ".join(row)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BvhError, match=r"take\.bvh: value 1e\+300 exceeds .*frame 3 \(0-based\), channel "
                                       r"Spine Xrotation") as err:
        read_bvh(path)
    one_line(err)
    row[7] = str(MAX_ABS_VALUE)  # the limit itself is accepted
    lines[-2] = " ".join(row)
    path.write_text("\n".join(lines) + "\n")
    assert read_bvh(path).values[3, 7] == MAX_ABS_VALUE


def test_bvh_huge_offset_names_file_and_line(small_bvh):
    path, lines = small_bvh
    path.write_text("\n".join(lines).replace("OFFSET 0.000000", "OFFSET 1e300", 1))
    with pytest.raises(BvhError, match=r"take\.bvh, line 4: expected finite numbers of magnitude at most 1e\+06"):
        read_bvh(path)


def test_truncated_motion_row_is_one_clean_line(small_bvh):
    path, lines = small_bvh
    lines[-1] = " ".join(lines[-1].split()[:5])  # cut mid-row
    path.write_text("\n".join(lines))
    with pytest.raises(BvhError) as err:
        read_bvh(path)
    text = one_line(err)
    assert text == (f"{path}, line {len(lines)}: motion data is truncated or corrupt: frame 4 (0-based) has 5 "
                    f"numbers, expected 12")
    assert "usecols" not in text


def test_non_numeric_motion_value_is_named(small_bvh):
    path, lines = small_bvh
    row = lines[-3].split()
    row[2] = "abc"
    lines[-3] = " ".join(row)
    path.write_text("\n".join(lines))
    with pytest.raises(BvhError, match=r"take\.bvh, line \d+: motion data is corrupt: frame 2 \(0-based\) has "
                                       r"'abc' where a number is expected"):
        read_bvh(path)


@pytest.mark.parametrize("header, message", [
    ("Frame Time: 100000", "Frame Time 100000 s is 1e-05 fps; expected 1 to 1000 fps"),
    ("Frame Time: 0.0000001", "expected 1 to 1000 fps"),
    ("Frames: 100000000", "expected a take of at most 3600 s"),
])
def test_bvh_header_values_are_bounded_before_anything_is_allocated(small_bvh, header, message):
    """Issue 29: 'Frame Time: 100000' made the resampler ask for 8.9 GiB; the header is refused as it is read."""
    path, lines = small_bvh
    label = header.split(":")[0]
    lines = [header if line.startswith(label + ":") else line for line in lines]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BvhError, match=re.escape(message)) as err:
        read_bvh(path)
    assert str(path) in one_line(err)


def test_bvh_that_is_not_a_regular_file_or_is_huge_is_refused_before_reading(small_bvh, monkeypatch):
    import racer_env.motion.bvh as bvh_mod

    path, _ = small_bvh
    with pytest.raises(BvhError, match=r"^/dev/zero: is not a regular file, expected a BVH file$"):
        read_bvh("/dev/zero")  # (read whole, it never ends)
    monkeypatch.setattr(bvh_mod, "MAX_FILE_BYTES", 100)
    with pytest.raises(BvhError, match=rf"^{re.escape(str(path))}: \d+ bytes; expected a BVH file of at most 100 bytes"):
        read_bvh(path)


def test_bvh_channel_count_is_bounded(small_bvh):
    path, lines = small_bvh
    text = "\n".join(lines).replace("CHANNELS 3 Zrotation Xrotation Yrotation",
                                    "CHANNELS 9 Zrotation Xrotation Yrotation" + " Xposition" * 6, 1)
    path.write_text(text)
    with pytest.raises(BvhError, match=r"take\.bvh, line \d+: CHANNELS 9: a joint has 0 to 6 channels"):
        read_bvh(path)


def _wav_with_rate(path, rate: int, frames: int = 4000):
    """A PCM wav whose header says ``rate`` (libsndfile writes any rate it is given)."""
    sf.write(path, (0.1 * np.sin(np.arange(frames) / 3)).astype(np.float32), rate, subtype="PCM_16")
    return path


@pytest.mark.parametrize("rate, message", [(1, "sample rate 1 Hz; expected 1000 to 768000 Hz"),
                                           (1_000_000_000, "sample rate 1000000000 Hz")])
def test_audio_header_values_are_bounded_before_reading(tmp_path, rate, message):
    """A rate of 1 Hz would make resampling to 16 kHz allocate 16,000 samples per stored one."""
    path = _wav_with_rate(tmp_path / "a.wav", rate)
    with pytest.raises(AudioError, match=re.escape(f"{path}: {message}")) as err:
        load_audio(path, SR)
    one_line(err)


def test_audio_length_is_bounded_before_reading(tmp_path, monkeypatch):
    import racer_env.audio.features as features

    path = _wav_with_rate(tmp_path / "a.wav", 8000, frames=16000)  # 2 s
    monkeypatch.setattr(features, "MAX_AUDIO_SECONDS", 1.0)
    with pytest.raises(AudioError, match=r"a\.wav: 16000 frames at 8000 Hz is 2 s; expected a recording of at most 1 s"):
        load_audio(path, SR)
    monkeypatch.setattr(features, "MAX_AUDIO_SECONDS", 3600.0)
    monkeypatch.setattr(features, "MAX_STORED_SAMPLES", 1000)
    with pytest.raises(AudioError, match=r"16000 frames of 1 channels is 16000 samples; expected at most 1000"):
        load_audio(path, SR)


# -- environment reset options -------------------------------------------------------------------------------
@pytest.fixture
def gym_env(trained_workspace):
    env = gym.make("racer/GestureSynthesis-v0", workspace=str(trained_workspace), segment_codes=6)
    yield env
    env.close()


def test_reset_options_must_be_a_dict(gym_env):
    for bad, kind in ([("clip", "x")], "list"), ([], "list"), ("clip", "str"):
        with pytest.raises(RacerError, match=rf"^reset options must be a dict with keys 'clip', 'start', 'split'; "
                                             rf"got {kind}$"):
            gym_env.reset(options=bad)


def test_reset_start_must_be_an_integral_step_in_range(gym_env):
    data = gym_env.unwrapped.data
    clip_id = data.split_ids("train")[0]
    for bad in (2.5, "2", True, None, float("nan")):
        expected = rf"reset option 'start' must be an integer code step, got {re.escape(repr(bad))}$"
        with pytest.raises(RacerError, match=expected):
            gym_env.reset(options={"clip": clip_id, "start": bad})
    for bad in (-1, data.clip(clip_id).n_codes):
        with pytest.raises(RacerError, match=rf"reset option 'start' {bad} is out of range"):
            gym_env.reset(options={"clip": clip_id, "start": bad})
    ref = gym_env.reset(options={"clip": clip_id, "start": 2})[0]
    for good in (np.int64(2), np.int32(2), 2.0):
        obs = gym_env.reset(options={"clip": clip_id, "start": good})[0]
        assert gym_env.unwrapped._start == 2 and all(np.array_equal(obs[k], ref[k]) for k in ref)
