"""Metrics on joint positions (mm) at a frame rate: MAJE, MAD, jerk, L1 diversity, motion beats, PMB, beat alignment.

Definitions (every result carries its parameters):

* MAJE (mm): mean over frames and joints of the Euclidean distance between generated and ground-truth positions.
* MAD (mm/s^2): mean over frames and joints of the Euclidean distance between their accelerations.
* jerk (mm/s^3): mean over frames and joints of the norm of the third derivative of position.
* L1 diversity (mm): mean L1 distance per joint coordinate between pairs of windows of generated motion taken
  from different places (``pairs`` random pairs of ``window``-frame windows).
* motion beats: local minima of the mean joint speed that follow a deceleration of at least ``min_drop`` of
  the speed's typical range, i.e. the moments a movement stops (the end of a stroke). The paper's "local minima
  of joint deceleration" is read as the end of a deceleration.
* PMB (%): percentage of motion beats within ``tolerance`` (0.2 s) of an audio beat.
* beat alignment: mean over audio beats of exp(-d^2 / (2 sigma^2)), d = time to the nearest motion beat,
  sigma = 0.3 s by default.
* audio beats: the onsets ``librosa.onset.onset_detect`` finds in the onset-strength audio feature.

What they can tell (measured on a real recording, ``benchmarks/sync_zeggs.py``): on real speech the audio beats
are dense (about 3.6 per second), so almost any motion beat lies within 0.2 s of one and PMB and beat alignment
barely separate motion from the same motion against shifted speech; see :mod:`racer_env.metrics.sync` for a
metric that does.
"""

from __future__ import annotations

import librosa
import numpy as np

from racer_env.errors import RacerError


def derivative(positions: np.ndarray, fps: float, order: int) -> np.ndarray:
    """(T, J, 3) -> (T - order, J, 3) finite-difference derivative of the given order, per second."""
    out = np.asarray(positions, dtype=np.float64)
    for _ in range(order):
        out = np.diff(out, axis=0) * fps
    return out


def maje(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean absolute joint error (mm) of (T, J, 3) positions."""
    _check_pair(pred, truth)
    return float(np.linalg.norm(pred - truth, axis=-1).mean())


def mad(pred: np.ndarray, truth: np.ndarray, fps: float) -> float:
    """Mean acceleration difference (mm/s^2) of (T, J, 3) positions."""
    _check_pair(pred, truth)
    return float(np.linalg.norm(derivative(pred, fps, 2) - derivative(truth, fps, 2), axis=-1).mean())


def jerk(positions: np.ndarray, fps: float) -> float:
    """Mean jerk magnitude (mm/s^3) of (T, J, 3) positions."""
    return float(np.linalg.norm(derivative(positions, fps, 3), axis=-1).mean())


def l1_diversity(motions: list[np.ndarray], window: int = 40, pairs: int = 500, seed: int = 0) -> float:
    """Mean per-coordinate L1 distance (mm) between random pairs of windows from different places of ``motions``
    (each (T, J, 3)); pairs drawn from the same motion are at least one window apart."""
    rng = np.random.default_rng(seed)
    spots = [(i, s) for i, m in enumerate(motions) for s in range(0, len(m) - window + 1, window)]
    if len(spots) < 2:
        raise RacerError(f"L1 diversity needs at least two windows of {window} frames")
    total = 0.0
    for _ in range(pairs):
        a, b = rng.choice(len(spots), 2, replace=False)
        (i, s), (k, u) = spots[a], spots[b]
        total += np.abs(motions[i][s:s + window] - motions[k][u:u + window]).mean()
    return float(total / pairs)


def motion_beats(positions: np.ndarray, fps: float, min_drop: float = 0.1) -> np.ndarray:
    """Times (s) where a movement stops: local minima of the mean joint speed preceded by a drop of at least
    ``min_drop`` x the 5-95 percentile range of the speed."""
    speed = np.linalg.norm(derivative(positions, fps, 1), axis=-1).mean(axis=1)  # (T-1,) speed between frames
    if len(speed) < 3:
        return np.zeros(0)
    span = np.percentile(speed, 95) - np.percentile(speed, 5)
    beats = []
    for t in range(1, len(speed) - 1):
        if speed[t] <= speed[t - 1] and speed[t] < speed[t + 1]:
            before = speed[max(0, t - int(fps)):t].max()  # the peak of the last second
            if before - speed[t] >= min_drop * span and span > 0:
                beats.append(t)
    return (np.asarray(beats, dtype=np.float64) + 0.5) / fps  # speed t lies between frames t and t+1


def pmb(motion_beat_times: np.ndarray, audio_beat_times: np.ndarray, tolerance: float = 0.2) -> float:
    """Percentage of motion beats within ``tolerance`` seconds of an audio beat (0 if either has no beats)."""
    m, a = np.asarray(motion_beat_times), np.asarray(audio_beat_times)
    if len(m) == 0 or len(a) == 0:
        return 0.0
    return float(100.0 * (np.abs(m[:, None] - a[None, :]).min(1) <= tolerance + 1e-9).mean())


def beat_alignment(motion_beat_times: np.ndarray, audio_beat_times: np.ndarray, sigma: float = 0.3) -> float:
    """Mean over audio beats of exp(-d^2 / 2 sigma^2), d = distance (s) to the nearest motion beat."""
    m, a = np.asarray(motion_beat_times), np.asarray(audio_beat_times)
    if len(a) == 0:
        raise RacerError("beat alignment needs at least one audio beat")
    if len(m) == 0:
        return 0.0
    d = np.abs(a[:, None] - m[None, :]).min(1)
    return float(np.exp(-d**2 / (2 * sigma**2)).mean())


def audio_beats(onset_strength: np.ndarray, sample_rate: int, fps: float) -> np.ndarray:
    """Onset times (s) librosa detects in a (T,) onset-strength envelope with one value per motion frame."""
    envelope = np.asarray(onset_strength, dtype=np.float64)
    if envelope.ndim != 1:
        raise ValueError(f"onset strength must be 1-D (one value per frame), got shape {envelope.shape}")
    hop = sample_rate / fps
    if hop != int(hop):
        raise ValueError(f"sample_rate ({sample_rate}) must be a multiple of fps ({fps})")
    return librosa.onset.onset_detect(onset_envelope=envelope, sr=sample_rate, hop_length=int(hop), units="time")


def _check_pair(pred: np.ndarray, truth: np.ndarray) -> None:
    if pred.shape != truth.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"positions must both be (T, J, 3) of one shape, got {pred.shape} and {truth.shape}")
