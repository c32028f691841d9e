"""Speech features at exactly one frame per motion frame.

Audio is loaded with librosa at one working rate (mono), and described per motion frame by a log-mel
spectrogram, the onset strength and the RMS energy, computed with hop = sample_rate / fps so that feature
frame t covers samples [t * hop, (t + 1) * hop): the frame a motion frame t owns.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from racer_env.errors import RacerError

#: silence threshold for a whole recording: peak amplitude below this (about -80 dBFS) is "silent".
SILENCE_PEAK = 1e-4

#: largest peak accepted in a float file (integer PCM always reads within [-1, 1]). Float audio is expected in
#: [-1, 1], but float files may legitimately go above full scale (a mix before limiting), so only a peak above
#: this (+24 dBFS) is refused: such a file holds integer sample values stored as floats, or garbage.
MAX_FLOAT_PEAK = 16.0

#: bounds on the header values that decide how much memory reading and resampling a file takes, checked before a
#: sample is read: a header claiming a rate of 1 Hz would make resampling to the working rate allocate 16,000
#: samples per stored one, a lying frame count would size the read buffer. Real recordings lie within them.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 768_000
MAX_AUDIO_SECONDS = 3600.0  # as motion.bvh.MAX_SECONDS: one take
MAX_STORED_SAMPLES = 2**28  # frames x channels read at once: 1 GiB of float32


class AudioError(RacerError):
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

    The samples are checked as stored, before averaging to mono and resampling, so that a bad sample is reported
    with its time in the file (librosa would fail on it inside the resampler without naming the file).

    Raises:
        AudioError: a missing path, a directory or other non-file, an unreadable, undecodable or truncated file,
            and empty, non-finite, out-of-range (peak above :data:`MAX_FLOAT_PEAK`) or silent audio.
    """
    path = Path(path)
    _check_audio_path(path)
    try:
        # Read with libsndfile (librosa's own reader) so that a corrupt file fails here with its reason instead of
        # falling through to librosa's deprecated audioread path. libsndfile's mp3 decoder prints "Note: ..."
        # lines when it opens garbage; they say nothing the error below does not.
        with _c_stderr_silenced():
            sound = sf.SoundFile(str(path))
        with sound:  # read as librosa.load does (its mp3 decoding depends on the read calls)
            check_audio_header(path, sound.samplerate, sound.frames, sound.channels)
            raw, rate = sound.read(frames=-1, dtype="float32", always_2d=True), sound.samplerate  # (n, channels)
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, EOFError, ValueError) as err:
        raise AudioError(f"{path}: cannot decode audio: not a wav/flac/ogg file libsndfile can read "
                         f"({_decode_reason(err, path)})") from None
    _check_samples(raw, rate, str(path))
    # what librosa.load(path, sr=sample_rate, mono=True) does after reading
    y = librosa.resample(librosa.to_mono(raw.T), orig_sr=rate, target_sr=sample_rate)
    return check_audio(y, str(path))


def check_audio_header(source: str | os.PathLike, rate: int, frames: int, channels: int) -> None:
    """Refuse a sample rate, length or channel count outside :data:`MIN_SAMPLE_RATE` .. :data:`MAX_SAMPLE_RATE`,
    :data:`MAX_AUDIO_SECONDS` and :data:`MAX_STORED_SAMPLES` before anything is read or resampled."""
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{source}: sample rate {rate} Hz; expected {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz "
                         f"(a corrupt header, or not a recording)")
    if frames > MAX_AUDIO_SECONDS * rate:
        raise AudioError(f"{source}: {frames} frames at {rate} Hz is {frames / rate:.0f} s; expected a recording of "
                         f"at most {MAX_AUDIO_SECONDS:.0f} s (split longer recordings)")
    if frames * channels > MAX_STORED_SAMPLES:
        raise AudioError(f"{source}: {frames} frames of {channels} channels is {frames * channels} samples; expected "
                         f"at most {MAX_STORED_SAMPLES} (split the recording, or mix it down to fewer channels)")


def _check_audio_path(path: Path) -> None:
    """A one-line AudioError unless ``path`` is an existing, readable regular file."""
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, expected an audio file (wav, flac, ogg)")
    if not path.exists():
        raise AudioError(f"{path}: no such audio file")
    if not path.is_file():
        raise AudioError(f"{path}: is not a regular file, expected an audio file (wav, flac, ogg)")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: cannot read the audio file (permission denied)")


def _decode_reason(err: Exception, path: Path) -> str:
    """libsndfile's reason in a few words, without its misleading hints."""
    try:
        if path.stat().st_size == 0:
            return "the file is empty (0 bytes)"
    except OSError:
        pass
    reason = getattr(err, "error_string", None) or str(err)
    # libsndfile says "File does not exist or is not a regular file (possibly a pipe?)" when a decoder (mp3) gives
    # up on garbage; the path was checked above, so what it means is that the content is not audio it knows.
    if "possibly a pipe" in reason or "does not exist" in reason:
        return "unrecognised format or corrupt data"
    reason = " ".join(reason.split()).rstrip(".")
    return reason[:1].lower() + reason[1:] if reason[1:2].islower() else reason


@contextlib.contextmanager
def _c_stderr_silenced():
    """Send file descriptor 2 to /dev/null while a C library prints notes we do not want on the terminal."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr: nothing to silence
        saved = None
    if saved is None:
        yield
        return
    try:
        if sys.stderr is not None:
            sys.stderr.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
        finally:
            os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _check_samples(raw: np.ndarray, rate: int, source: str) -> None:
    """Refuse empty, non-finite and absurdly loud audio as stored: (n, channels) at ``rate``."""
    if raw.size == 0:
        raise AudioError(f"{source}: audio is empty (0 samples)")
    finite = np.isfinite(raw).all(axis=1)
    if not finite.all():
        first = int(np.argmin(finite))
        raise AudioError(f"{source}: NaN or infinite samples (first at {first / rate:.3f} s); the file is corrupt "
                         f"or was written from a failed computation")
    peak = float(np.abs(raw).max())
    if peak > MAX_FLOAT_PEAK:
        raise AudioError(f"{source}: peak amplitude {peak:.6g} is far out of range: float audio is expected in "
                         f"[-1, 1] (peaks up to {MAX_FLOAT_PEAK:g} are accepted); rescale it")


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


def audio_features(y: np.ndarray, config: AudioFeatureConfig = AudioFeatureConfig(),
                   source: str | None = None) -> np.ndarray:
    """(n_samples,) mono waveform at ``config.sample_rate`` -> (T, n_features) float32, T = n // hop.

    Columns: log-mel in dB (n_mels), onset strength, log RMS energy. ``source`` (the file) names the audio in
    errors.
    """
    hop = config.hop_length
    n_frames = len(y) // hop
    if n_frames < 1:
        where = f"{source}: " if source else ""
        raise AudioError(f"{where}audio of {len(y) / config.sample_rate:.3f} s ({len(y)} samples) is shorter than "
                         f"one feature frame ({hop / config.sample_rate:.3f} s = {hop} samples)")
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
