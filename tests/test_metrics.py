"""Every metric on constructed inputs with a known answer."""

import itertools

import numpy as np
import pytest

from racer_env.metrics.fgd import FeatureExtractor, fgd, frechet_distance, raw_fgd, windows
from racer_env.metrics.motion import beat_alignment, jerk, l1_diversity, mad, maje, motion_beats, pmb

FPS = 20.0


def strokes(beat_times: np.ndarray, seconds: float, joints: int = 4, amplitude: float = 100.0) -> np.ndarray:
    """(T, J, 3) motion that moves between beats with minimum-jerk strokes: its speed is zero exactly at each beat."""
    t = np.arange(int(seconds * FPS)) / FPS
    x = np.zeros_like(t)
    edges = np.concatenate([[0.0], beat_times, [seconds]])
    for k, (a, b) in enumerate(itertools.pairwise(edges)):
        inside = (t >= a) & (t < b)
        s = (t[inside] - a) / (b - a)
        x[inside] = amplitude * ((k % 2) + (-1) ** (k % 2) * (10 * s**3 - 15 * s**4 + 6 * s**5))
    pos = np.zeros((len(t), joints, 3))
    pos[..., 0] = x[:, None] * np.arange(1, joints + 1)
    return pos


def test_maje_mad_and_jerk_known_answers():
    truth = np.random.default_rng(0).normal(size=(50, 5, 3))
    assert maje(truth + np.array([3.0, 4.0, 0.0]), truth) == pytest.approx(5.0)
    assert mad(truth + 7.0, truth, FPS) == pytest.approx(0.0, abs=1e-9)  # a constant offset has no acceleration
    t = np.arange(40) / FPS
    pos = np.zeros((40, 1, 3))
    pos[:, 0, 0] = 1000.0 * t**3  # x = 1000 t^3 mm: jerk = 6000 mm/s^3 everywhere
    assert jerk(pos, FPS) == pytest.approx(6000.0, rel=1e-6)
    quad = np.zeros((40, 1, 3))
    quad[:, 0, 1] = 500.0 * t**2  # acceleration 1000 mm/s^2 against none
    assert mad(quad, np.zeros_like(quad), FPS) == pytest.approx(1000.0, rel=1e-6)
    with pytest.raises(ValueError, match="one shape"):
        maje(truth[:10], truth)


def test_l1_diversity():
    still = [np.zeros((200, 4, 3))] * 3
    assert l1_diversity(still) == 0.0
    moving = [np.random.default_rng(i).normal(size=(200, 4, 3)) for i in range(3)]
    assert l1_diversity([2 * m for m in moving]) == pytest.approx(2 * l1_diversity(moving))


def test_motion_beats_on_the_audio_onsets_give_pmb_100_and_shifted_ones_less():
    onsets = np.arange(1.0, 9.0, 1.3)
    beats = motion_beats(strokes(onsets, 10.0), FPS)
    assert len(beats) == len(onsets)
    np.testing.assert_allclose(beats, onsets, atol=0.5 / FPS + 1e-9)
    assert pmb(beats, onsets) == 100.0
    assert pmb(beats, onsets + 0.5) == 0.0  # every motion beat 0.5 s from its onset, > 0.2 s tolerance
    assert 0.0 < pmb(beats, np.concatenate([onsets[:3], onsets[3:] + 0.5])) < 100.0
    assert beat_alignment(beats, beats) == pytest.approx(1.0)
    assert beat_alignment(beats, beats + 0.3, sigma=0.3) == pytest.approx(np.exp(-0.5), rel=1e-6)
    assert motion_beats(np.zeros((100, 4, 3)), FPS).size == 0  # no movement, no beats
    assert pmb(np.zeros(0), onsets) == 0.0


def test_frechet_distance_known_answers():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shifted = a + np.array([2.0, 0.0, 0.0])
    assert frechet_distance(a, shifted) == pytest.approx(4.0, rel=1e-6)  # |mu1 - mu2|^2, same covariance
    scaled = a * 2.0  # |mu - 2 mu|^2 + trace(S + 4 S - 2 (2 S)) = |mu|^2 + trace(S)
    expected = (a.mean(0) ** 2).sum() + np.trace(np.cov(a, rowvar=False))
    assert frechet_distance(a, scaled) == pytest.approx(expected, rel=1e-5)


def test_fgd_on_identical_sets_is_zero_and_windows_are_root_relative():
    motion = strokes(np.arange(1.0, 9.0, 1.3), 10.0) + 1000.0  # a global offset does not matter
    w = windows(motion)
    assert w.shape == (len(range(0, 200 - 32 + 1, 8)), 32, 4, 3) and np.allclose(w[:, :, 0], 0.0)
    assert raw_fgd(w, w) == pytest.approx(0.0, abs=1e-6)
    extractor = FeatureExtractor(n_joints=4)
    assert fgd(extractor, w, w) == pytest.approx(0.0, abs=1e-6)
    assert raw_fgd(w, w * 1.5) > 0.0 and fgd(extractor, w, w * 1.5) > 0.0
