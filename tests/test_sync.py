"""The synchrony metric on constructed signals with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from racer_env.metrics.motion import audio_beats
from racer_env.metrics.sync import energy_from_features, hands_speed, lag_profile, sync, sync_score

FPS = 20


def speech_envelope(seconds: float = 30.0, seed: int = 0) -> np.ndarray:
    """(T,) a speech-like energy: phrases of 1-4 s separated by 0.3-1.5 s pauses, with syllable ripple."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FPS)
    env = np.full(n, 0.01)
    t = 0
    while t < n:
        length = int(rng.uniform(1, 4) * FPS)
        env[t:t + length] = rng.uniform(0.2, 1.0)
        t += length + int(rng.uniform(0.3, 1.5) * FPS)
    return env * (1 + 0.5 * np.sin(np.arange(n) * 2 * np.pi * 4 / FPS))


def hands_following(energy: np.ndarray, seed: int = 1) -> np.ndarray:
    """(T, 2, 3) wrist positions (mm) whose speed is proportional to the energy (plus a little noise)."""
    rng = np.random.default_rng(seed)
    speed = 800 * energy + 20 * rng.random(len(energy))  # mm/s
    direction = rng.normal(size=(len(energy), 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    step = speed[:, None] * direction / FPS
    return np.stack([np.cumsum(step, 0), np.cumsum(step[::-1], 0)[::-1]], axis=1)


def test_hands_that_follow_the_speech_score_high_and_shifted_ones_low():
    energy = speech_envelope()
    positions = hands_following(energy)
    own = sync(positions, (0, 1), energy, FPS)
    assert own > 0.8
    for shift_s in (1.0, 2.0, 5.0):
        shifted = np.concatenate([positions[int(shift_s * FPS):], positions[:int(shift_s * FPS)]])
        assert sync(shifted, (0, 1), energy, FPS) < 0.5 * own
    other = speech_envelope(seed=7)
    assert abs(sync(positions, (0, 1), other, FPS)) < 0.4


def test_sync_scale_free_and_bounded():
    energy = speech_envelope()
    speed = hands_speed(hands_following(energy), (0, 1), FPS)
    r = sync_score(speed, energy, FPS)
    assert -1 <= r <= 1
    assert sync_score(10 * speed, 3 * energy + 1, FPS) == pytest.approx(r)
    assert sync_score(-speed, energy, FPS) == pytest.approx(-r)


def test_still_motion_has_zero_sync():
    energy = speech_envelope()
    still = np.zeros((len(energy), 2, 3))
    assert sync(still, (0, 1), energy, FPS) == 0.0


def test_lag_profile_peaks_at_the_delay():
    energy = speech_envelope(60.0)
    speed = np.roll(energy, FPS)  # the hands follow the speech 1 s late
    profile = lag_profile(speed, energy, FPS, [-1.0, 0.0, 1.0, 2.0])
    assert max(profile, key=profile.get) == 1.0
    assert profile[1.0] == pytest.approx(1.0, abs=0.05)


def test_energy_from_features_reads_the_log_rms_column():
    feats = np.zeros((10, 6))
    feats[:, 5] = np.log(np.arange(1, 11))
    np.testing.assert_allclose(energy_from_features(feats, 4), np.arange(1, 11))
    with pytest.raises(ValueError, match="audio features"):
        energy_from_features(feats, 64)


@pytest.mark.parametrize("speed, energy, match", [
    (np.ones(100), np.ones(99), "one length"),
    (np.ones((100, 2)), np.ones(100), "1-D"),
    (np.ones(10), np.ones(10), "at least"),
    (np.r_[np.ones(99), np.nan], np.ones(100), "finite"),
])
def test_bad_signals_are_rejected(speed, energy, match):
    with pytest.raises(ValueError, match=match):
        sync_score(speed, energy, FPS)


def test_bad_positions_are_rejected():
    with pytest.raises(ValueError, match="T, J, 3"):
        hands_speed(np.zeros((100, 6)), (0, 1), FPS)
    with pytest.raises(ValueError, match="hand joints"):
        hands_speed(np.zeros((100, 2, 3)), (0, 5), FPS)


def test_audio_beats_find_onsets_of_an_envelope():
    envelope = np.zeros(200)
    envelope[[20, 60, 100, 140]] = 5.0  # four sharp onsets, at 1, 3, 5 and 7 s
    beats = audio_beats(envelope, 16000, FPS)
    np.testing.assert_allclose(beats, [1.0, 3.0, 5.0, 7.0], atol=0.06)
    with pytest.raises(ValueError, match="1-D"):
        audio_beats(np.zeros((5, 2)), 16000, FPS)
