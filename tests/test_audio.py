"""Audio loading and per-motion-frame features."""

import numpy as np
import pytest
import soundfile as sf

from racer_env.audio.features import (
    AudioError,
    AudioFeatureConfig,
    align_to_code_steps,
    audio_features,
    check_audio,
    load_audio,
)
from tests.conftest import JFK_WAV, LIBRI_OGG

CFG = AudioFeatureConfig()


def test_one_feature_frame_per_motion_frame():
    y = load_audio(JFK_WAV)
    assert y.dtype == np.float32 and len(y) == 176000  # 11.0 s at 16 kHz
    feats = audio_features(y, CFG)
    assert feats.shape == (220, CFG.n_features) and CFG.n_features == 66  # 11 s * 20 fps
    assert len(CFG.feature_names()) == CFG.n_features
    assert np.isfinite(feats).all()


def test_ogg_at_22k_and_stereo_flac_at_44k_are_resampled_to_mono(tmp_path):
    y_ogg = load_audio(LIBRI_OGG)
    assert len(y_ogg) == pytest.approx(13.91 * 16000, abs=20)
    mono = load_audio(JFK_WAV)
    stereo = np.stack([mono, 0.5 * mono], axis=1)
    import librosa
    stereo44 = librosa.resample(stereo.T, orig_sr=16000, target_sr=44100).T
    sf.write(tmp_path / "s.flac", stereo44, 44100)
    y = load_audio(tmp_path / "s.flac")
    assert y.ndim == 1 and abs(len(y) - len(mono)) <= 2
    a, b = audio_features(mono, CFG), audio_features(y, CFG)
    assert a.shape == b.shape
    # same speech -> the same log-mel pattern (correlation over time of the band energies)
    corr = np.corrcoef(a[:, :CFG.n_mels].mean(1), b[:, :CFG.n_mels].mean(1))[0, 1]
    assert corr > 0.99


def test_onset_strength_peaks_in_the_frame_of_the_click_like_the_other_columns():
    sr = CFG.sample_rate
    y = 1e-3 * np.random.default_rng(0).normal(size=sr * 4).astype(np.float32)
    clicks = [20, 40, 60]  # feature frames; each click starts mid-frame
    for frame in clicks:
        i = frame * CFG.hop_length + CFG.hop_length // 2
        y[i:i + 800] += np.hanning(800).astype(np.float32) * np.sin(np.arange(800) * 0.3)
    feats = audio_features(y, CFG)
    onset, loudness, rms = feats[:, CFG.n_mels], feats[:, :CFG.n_mels].mean(1), feats[:, CFG.n_mels + 1]
    assert sorted(np.argsort(onset)[-3:].tolist()) == clicks  # the exact frame, not one late
    assert sorted((np.argsort(np.diff(loudness))[-3:] + 1).tolist()) == clicks
    assert sorted((np.argsort(np.diff(rms))[-3:] + 1).tolist()) == clicks


@pytest.mark.parametrize("bad, message", [
    (np.zeros(16000, dtype=np.float32), "silent"),
    (np.array([], dtype=np.float32), "empty"),
    (np.array([0.1, np.nan, 0.2], dtype=np.float32), "NaN"),
    (np.zeros((2, 100), dtype=np.float32), "mono"),
])
def test_bad_waveforms(bad, message):
    with pytest.raises(AudioError, match=message):
        check_audio(bad, "x.wav")


def test_unreadable_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(JFK_WAV.read_bytes()[:30])
    with pytest.raises(AudioError, match="broken.wav: cannot decode"):
        load_audio(bad)
    with pytest.raises(AudioError, match="no such audio file"):
        load_audio(tmp_path / "absent.wav")


def test_align_trims_to_whole_code_steps_and_reports():
    feats, motion = np.zeros((107, 66)), np.zeros((100, 16, 3))
    f, m, report = align_to_code_steps(feats, motion, 8, 20.0)
    assert len(f) == len(m) == 96
    assert report == {"audio_frames": 107, "motion_frames": 100, "frames": 96, "trimmed_s": 0.55}
    with pytest.raises(AudioError, match="differ by 1.50 s"):
        align_to_code_steps(np.zeros((130, 66)), motion, 8, 20.0, source="clip.wav")
    with pytest.raises(AudioError, match="shorter than one code step"):
        align_to_code_steps(np.zeros((7, 66)), np.zeros((7, 3)), 8, 20.0)
