"""The real-speech benchmark's own figures on synthetic arrays: speech time, the shift, shifted sync, rest share."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import real_speech  # noqa: E402

FPS = 20.0


def _log_rms(db: np.ndarray) -> np.ndarray:
    """Levels in dB -> the natural-log RMS of the audio features."""
    return np.asarray(db, dtype=np.float64) * np.log(10.0) / 20.0


def test_speech_mask_bridges_short_gaps_only() -> None:
    # 1 s silence, 2 s speech, 0.15 s gap, 2 s speech, 1.5 s pause, 2 s speech, 1 s silence (levels in dB)
    parts = [(-80, 1.0), (-20, 2.0), (-80, 0.15), (-20, 2.0), (-80, 1.5), (-20, 2.0), (-80, 1.0)]
    db = np.concatenate([np.full(int(round(s * FPS)), v, dtype=float) for v, s in parts])
    mask = real_speech.speech_mask(_log_rms(db), FPS)
    edges = np.cumsum([0] + [int(round(s * FPS)) for _, s in parts])
    assert not mask[: edges[1] - 3].any() and not mask[edges[6] + 3:].any()  # leading/trailing silence
    assert mask[edges[1] + 2: edges[4] - 2].all()  # the 0.15-s gap is bridged
    assert not mask[edges[4] + 5: edges[5] - 5].any()  # the 1.5-s pause is not


def test_speech_mask_ignores_a_noise_floor_within_30_db() -> None:
    # noisy recording: pauses at -45 dB, speech at -20 dB (25 dB apart: within 30 dB of the loud frames)
    db = np.tile(np.r_[np.full(40, -20.0), np.full(40, -45.0)], 4)
    mask = real_speech.speech_mask(_log_rms(db), FPS)
    assert 0.4 < mask.mean() < 0.6
    assert real_speech.speech_mask(_log_rms(np.full(100, -30.0)), FPS).all()  # constant level: all speech


def test_speech_mask_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="finite 1-D"):
        real_speech.speech_mask(np.array([0.0, np.nan, 1.0]), FPS)


def test_shift_frames_halves_short_recordings() -> None:
    assert real_speech.shift_frames(1000, FPS, 10.0) == (200, False)
    assert real_speech.shift_frames(400, FPS, 10.0) == (200, False)
    assert real_speech.shift_frames(300, FPS, 10.0) == (150, True)


def test_shifted_sync_drops_for_motion_timed_to_the_speech() -> None:
    rng = np.random.default_rng(0)
    energy = np.repeat(rng.uniform(0.0, 1.0, 60), 10)  # 30 s of 0.5-s level steps
    speed = 100.0 * energy + rng.normal(0.0, 1.0, energy.size)  # the hands follow the speech
    shift, _ = real_speech.shift_frames(energy.size, FPS)
    own = real_speech.sync_score(speed, energy, FPS)
    assert own > 0.9
    assert abs(real_speech.shifted_sync(speed, energy, FPS, shift)) < 0.5 * own
    assert real_speech.shifted_sync(speed, energy, FPS, 0) == pytest.approx(own)


def test_rest_share_counts_frames_with_both_hands_still_at_rest() -> None:
    n = 100
    rest = {"right": np.zeros(3), "left": np.array([400.0, 0.0, 0.0])}
    hands = {side: np.tile(p, (n, 1)) for side, p in rest.items()}
    hands["right"][50:] += np.array([0.0, 200.0, 0.0])  # right hand raised (still) for the second half
    speech = np.zeros(n, dtype=bool)
    speech[25:75] = True
    assert real_speech.rest_share(hands, rest, speech, FPS) == pytest.approx(50.0, abs=2.0)
    assert real_speech.rest_share(hands, rest, ~speech, FPS) == pytest.approx(50.0, abs=2.0)
    assert real_speech.rest_share(hands, rest, np.zeros(n, dtype=bool), FPS) is None
    moving = {side: h + np.arange(n)[:, None] * np.array([0.0, 0.0, 10.0]) for side, h in hands.items()}  # 200 mm/s
    assert real_speech.rest_share(moving, rest, speech, FPS) == 0.0
