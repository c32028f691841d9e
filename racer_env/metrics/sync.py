"""Speech-gesture synchrony: does the hands' activity rise and fall with the loudness of the speech?

Definition (``sync``), for one clip of motion and its speech at one frame rate ``fps``:

1. hand speed s(t): the mean over both wrists of their speed in mm/s (central differences of the positions);
2. speech energy e(t): the RMS amplitude of the speech per motion frame (linear, i.e. ``exp`` of the
   ``log_rms`` audio feature), so that loud stretches weigh more than the near-silence of pauses;
3. both smoothed by a Gaussian of standard deviation ``SMOOTHING_S`` (0.5 s, i.e. a ~1.2 s wide window: the
   time scale of a gesture phrase, not of single syllables, which no gesture tracks one by one);
4. ``sync`` = the Pearson correlation of the two smoothed signals at zero lag, in [-1, 1].

Motion that follows the speech scores high; the same motion against other speech, or shifted in time by more
than the smoothing width, scores near 0 (measured in ``benchmarks/sync_zeggs.py``: on a real recording, 0.77
against its own speech and at most 0.25 against the same speech circularly shifted by 5-30 s). ``lag_profile``
gives the same correlation at other lags, to see where the peak lies (a generator that gestures late peaks at a
positive lag). A motion or a speech envelope without any variation (a still pose, constant noise) has no
correlation with anything: its ``sync`` is 0 by definition.

PMB and beat alignment (:mod:`racer_env.metrics.motion`) look at individual beat times instead; on real speech
their audio beats are so dense that they barely separate synchronised from shifted motion, which is why this
metric looks at envelopes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter1d

from racer_env.errors import RacerError
from racer_env.metrics.rules import hand_speed

SMOOTHING_S = 0.5  # standard deviation (s) of the Gaussian applied to hand speed and speech energy
MIN_SECONDS = 2.0  # shorter signals are rejected: a correlation of smoothed envelopes needs several widths


def energy_from_features(features: np.ndarray, n_mels: int) -> np.ndarray:
    """(T, n_mels + 2) audio features (log-mel, onset strength, log RMS) -> (T,) linear RMS energy."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[1] != n_mels + 2:
        raise ValueError(f"audio features must be (T, {n_mels + 2}) (log-mel, onset, log RMS), got {features.shape}")
    return np.exp(features[:, n_mels + 1])


def hands_speed(positions: np.ndarray, hands: Sequence[int], fps: float) -> np.ndarray:
    """(T, J, 3) positions (mm) -> (T,) mean speed (mm/s) of the joints ``hands`` (the two wrists)."""
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 3 or positions.shape[-1] != 3:
        raise ValueError(f"positions must be (T, J, 3), got {positions.shape}")
    if len(hands) == 0 or not all(0 <= h < positions.shape[1] for h in hands):
        raise ValueError(f"hand joints {list(hands)} are not joints of a {positions.shape[1]}-joint skeleton")
    return np.mean([hand_speed(positions[:, h], fps)[1] for h in hands], axis=0)


def _smoothed(signal: np.ndarray, fps: float, smoothing_s: float) -> np.ndarray:
    return gaussian_filter1d(signal, smoothing_s * fps, mode="nearest")


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; 0 when either signal is constant (up to rounding)."""
    if any(x.std() <= 1e-9 * max(1.0, float(np.abs(x).mean())) for x in (a, b)):
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _check_signals(speed: np.ndarray, energy: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    speed, energy = np.asarray(speed, dtype=np.float64), np.asarray(energy, dtype=np.float64)
    if speed.ndim != 1 or energy.ndim != 1 or len(speed) != len(energy):
        raise ValueError(f"hand speed and speech energy must be 1-D of one length, got {speed.shape} and "
                         f"{energy.shape}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if len(speed) < MIN_SECONDS * fps:
        raise RacerError(f"sync needs at least {MIN_SECONDS:g} s ({MIN_SECONDS * fps:g} frames), got {len(speed)}")
    if not (np.isfinite(speed).all() and np.isfinite(energy).all()):
        raise ValueError("hand speed and speech energy must be finite (found NaN or inf)")
    return speed, energy


def sync_score(speed: np.ndarray, energy: np.ndarray, fps: float, smoothing_s: float = SMOOTHING_S) -> float:
    """``sync`` of (T,) hand speed and (T,) speech energy at ``fps``: the zero-lag correlation of both smoothed."""
    speed, energy = _check_signals(speed, energy, fps)
    return _pearson(_smoothed(speed, fps, smoothing_s), _smoothed(energy, fps, smoothing_s))


def sync(positions: np.ndarray, hands: Sequence[int], energy: np.ndarray, fps: float,
         smoothing_s: float = SMOOTHING_S) -> float:
    """``sync`` of (T, J, 3) positions (mm; ``hands`` = the wrist joint indices) against (T,) speech energy."""
    return sync_score(hands_speed(positions, hands, fps), energy, fps, smoothing_s)


def lag_profile(speed: np.ndarray, energy: np.ndarray, fps: float, lags_s: Sequence[float],
                smoothing_s: float = SMOOTHING_S) -> dict[float, float]:
    """Correlation of smoothed hand speed at t + lag with smoothed energy at t, for each lag (s), over the
    overlapping frames only (no wrap-around). Positive lag: the motion follows the speech."""
    speed, energy = _check_signals(speed, energy, fps)
    s, e = _smoothed(speed, fps, smoothing_s), _smoothed(energy, fps, smoothing_s)
    out = {}
    for lag in lags_s:
        k = round(lag * fps)
        if abs(k) > len(s) - MIN_SECONDS * fps:
            raise RacerError(f"lag {lag} s leaves less than {MIN_SECONDS:g} s of overlap in {len(s) / fps:g} s")
        out[float(lag)] = _pearson(s[k:], e[:len(e) - k]) if k >= 0 else _pearson(s[:k], e[-k:])
    return out
