"""The motion-only metrics of one take against its speech, in one place for ``racer evaluate`` and
``racer evaluate files``: ``sync`` (:mod:`racer_env.metrics.sync`), PMB, beat alignment and jerk
(:mod:`racer_env.metrics.motion`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from racer_env.metrics.motion import audio_beats, beat_alignment, jerk, motion_beats, pmb
from racer_env.metrics.sync import energy_from_features, sync


def speech_metrics(positions: np.ndarray, hands: Sequence[int], features: np.ndarray, n_mels: int,
                   sample_rate: int, fps: float, sigma: float = 0.3, tolerance: float = 0.2) -> dict:
    """Metrics of (T, J, 3) joint positions (mm; ``hands`` = the two wrist joints) against (T', n_mels + 2) speech
    features at ``fps`` (log-mel, onset strength, log RMS). ``sync`` uses the first min(T, T') frames."""
    energy = energy_from_features(features, n_mels)
    n = min(len(positions), len(energy))
    beats_audio = audio_beats(np.asarray(features)[:, n_mels], sample_rate, fps)
    beats_motion = motion_beats(positions, fps)
    return {
        "sync": sync(positions[:n], hands, energy[:n], fps),
        "pmb_pct": pmb(beats_motion, beats_audio, tolerance),
        "beat_align": beat_alignment(beats_motion, beats_audio, sigma) if len(beats_audio) else None,
        "jerk_mm_s3": jerk(positions, fps),
        "audio_beats": len(beats_audio),
        "motion_beats": len(beats_motion),
    }
