"""Speech features at exactly one frame per motion frame.

Audio is loaded with librosa at one working rate (mono), and described per motion frame by a log-mel
spectrogram, the onset strength and the RMS energy, computed with hop = sample_rate / fps so that feature
frame t covers samples [t * hop, (t + 1) * hop): the frame a motion frame t owns.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

#: silence threshold for a whole recording: peak amplitude below this (about -80 dBFS) is "silent".
SILENCE_PEAK = 1e-4


class AudioError(ValueError):
    """Audio that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class AudioFeatureConfig:
    """How speech becomes features. Stored with every corpus; a mismatch means features must be rebuilt."""

    sample_rate: int = 16000  # working rate: speech content lives below 8 kHz
    fps: int = 20  # motion rate; hop = sample_rate / fps = 800 samples (50 ms)
    n_mels: int = 64  # mel bands of the log-mel spectrogram
    n_fft: int = 1024  # 64 ms analysis window at 16 kHz
    fmin: float = 40.0  # below the lowest voice pitch
    fmax: float = 8000.0  # Nyquist of the working rate

    @property
    def hop_length(self) -> int:
        hop = self.sample_rate / self.fps
        if hop != int(hop):
            raise ValueError(f"sample_rate ({self.sample_rate}) must be a multiple of fps ({self.fps})")
        return int(hop)

    @property
    def n_features(self) -> int:
        return self.n_mels + 2  # log-mel bands, onset strength, log RMS energy

    def feature_names(self) -> list[str]:
        return [f"logmel_{i}" for i in range(self.n_mels)] + ["onset_strength", "log_rms"]

    def to_dict(self) -> dict:
        return asdict(self)


def load_audio(path: str | os.PathLike, sample_rate: int = 16000) -> np.ndarray:
    """Load wav/flac/ogg (anything libsndfile reads) at any rate, as mono float32 at ``sample_rate``.

    Raises:
        AudioError: missing, unreadable or truncated file, empty, non-finite or silent audio.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        # Probe with libsndfile (librosa's own reader) first so a corrupt file fails here with its reason
        # instead of falling through to librosa's deprecated audioread path.
        sf.info(str(path))
        y, _ = librosa.load(path, sr=sample_rate, mono=True)
    except (sf.LibsndfileError, RuntimeError, EOFError, ValueError) as err:
        raise AudioError(f"{path}: cannot decode audio ({type(err).__name__}: {err})") from None
    return check_audio(y, str(path))


def check_audio(y: np.ndarray, source: str = "audio") -> np.ndarray:
    """Validate a mono waveform: non-empty, finite and not silent. Returns it as float32."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise AudioError(f"{source}: expected a mono waveform (1-D), got shape {y.shape}")
    if y.size == 0:
        raise AudioError(f"{source}: audio is empty")
    if not np.isfinite(y).all():
        raise AudioError(f"{source}: audio contains NaN or infinite samples")
    if np.abs(y).max() < SILENCE_PEAK:
        raise AudioError(f"{source}: audio is silent (peak below {SILENCE_PEAK:g})")
    return y


def audio_features(y: np.ndarray, config: AudioFeatureConfig = AudioFeatureConfig()) -> np.ndarray:
    """(n_samples,) mono waveform at ``config.sample_rate`` -> (T, n_features) float32, T = n // hop.

    Columns: log-mel in dB (n_mels), onset strength, log RMS energy.
    """
    hop = config.hop_length
    n_frames = len(y) // hop
    if n_frames < 1:
        raise AudioError(f"audio of {len(y)} samples is shorter than one feature frame ({hop} samples)")
    mel = librosa.feature.melspectrogram(
        y=y, sr=config.sample_rate, n_fft=config.n_fft, hop_length=hop, n_mels=config.n_mels,
        fmin=config.fmin, fmax=config.fmax,
    )  # (n_mels, 1 + n // hop), frame t centred on sample t * hop
    logmel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    # n_fft matters: librosa shifts the envelope by n_fft // (2 hop) frames to centre it, and its default (2048)
    # would put onsets one frame late relative to the log-mel and RMS columns
    onset = librosa.onset.onset_strength(S=logmel, sr=config.sample_rate, hop_length=hop,
                                         n_fft=config.n_fft)  # (1 + n // hop,)
    rms = librosa.feature.rms(y=y, frame_length=config.n_fft, hop_length=hop)[0]
    # Frame t owns samples [t*hop, (t+1)*hop): take the analysis frame centred in that span, i.e. the
    # mean of centred frames t and t+1, so that feature frame t never looks past (t+1)*hop + n_fft/2.
    feats = np.concatenate([logmel.T, onset[:, None], np.log(rms + 1e-6)[:, None]], axis=1)
    feats = 0.5 * (feats[:n_frames] + feats[1:n_frames + 1])  # (T, F)
    return feats.astype(np.float32)


def align_to_code_steps(
    features: np.ndarray,
    motion: np.ndarray,
    frames_per_code: int = 8,
    fps: float = 20.0,
    max_mismatch_s: float = 1.0,
    source: str = "clip",
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Trim audio features (Ta, F) and motion (Tm, ...) to one length, a whole number of code steps.

    Lengths differing by more than ``max_mismatch_s`` seconds are an error; smaller differences are
    trimmed from the end and reported.

    Returns:
        features (T, F), motion (T, ...) with T = k * frames_per_code, and a report dict with
        ``audio_frames``, ``motion_frames``, ``frames`` and ``trimmed_s``.
    """
    n_audio, n_motion = len(features), len(motion)
    diff_s = abs(n_audio - n_motion) / fps
    if diff_s > max_mismatch_s:
        raise AudioError(
            f"{source}: audio lasts {n_audio / fps:.2f} s but motion {n_motion / fps:.2f} s; they differ by "
            f"{diff_s:.2f} s (> {max_mismatch_s} s allowed): check that the wav and bvh belong together"
        )
    n = (min(n_audio, n_motion) // frames_per_code) * frames_per_code
    if n == 0:
        raise AudioError(
            f"{source}: shorter than one code step ({frames_per_code} frames = {frames_per_code / fps:.2f} s)"
        )
    report = {
        "audio_frames": n_audio,
        "motion_frames": n_motion,
        "frames": n,
        "trimmed_s": round((max(n_audio, n_motion) - n) / fps, 4),
    }
    return features[:n], motion[:n], report
