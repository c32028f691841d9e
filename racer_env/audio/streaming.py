"""Speech features of a signal that arrives in pieces: the same numbers :func:`audio_features` gives for the whole.

:class:`StreamingFeatures` keeps only the tail of samples the next feature frames need. Its context, worked out
from how :func:`racer_env.audio.features.audio_features` computes a frame (hop 800 samples, n_fft 1024 at 16 kHz):

* feature frame t is the mean of the centred analysis frames t and t + 1;
* centred frame k (log-mel and RMS) reads samples [k * hop - n_fft / 2, k * hop + n_fft / 2), zeros before the
  start (librosa's ``center=True`` with constant padding) and after the end (at :meth:`finish` only);
* its onset strength is the mean over mel bands of max(0, log-mel k - log-mel k - 1), 0 at k = 0.

So feature frame t is final once samples up to (t + 1) * hop + n_fft / 2 have arrived (32 ms past the frame's own
end at 16 kHz), and the state between pushes is less than n_fft samples, the newest frame's values and the
power spectra of the last :data:`MEL_COLUMNS` frames (see there).

:class:`StreamingResampler` resamples piece by piece with the resampler librosa itself uses (soxr, 'HQ'); its
output, concatenated, equals ``librosa.resample`` of the whole signal bit for bit (soxr is a streaming resampler:
the one-shot call runs the same filter over the whole signal), ``tests/test_stream.py`` checks it.
"""

from __future__ import annotations

import librosa
import numpy as np
import soxr  # librosa's own resampler (a librosa dependency), used here piece by piece

from racer_env.audio.features import AudioFeatureConfig

#: Columns of every mel projection (a matrix product, power spectra (1 + n_fft / 2, N) -> (n_mels, N)). numpy's
#: BLAS (OpenBLAS in numpy's wheels) gives a column the same value whatever N is, except that below a size it
#: switches to a small-matrix kernel, which rounds otherwise (measured: N <= 18 here). The whole recording's product
#: has 1 + n / hop columns, so each product here is made this wide, with earlier frames (or silence at the very
#: start) before the new ones, and gives the whole recording's values bit for bit from about 1 s of audio on
#: (shorter recordings may differ in the last bit of a log-mel value).
MEL_COLUMNS = 64


class StreamingFeatures:
    """(n, F) feature frames of a mono signal pushed in pieces of any length, equal to
    ``audio_features(whole signal, config)`` frame for frame (see the module docstring for the context kept).

    ``push(samples)`` returns the frames that became final, ``finish()`` the rest (the signal's end padded as
    librosa pads it); ``len(signal) // hop`` frames in all.
    """

    def __init__(self, config: AudioFeatureConfig = AudioFeatureConfig()) -> None:
        self.config = config
        self.hop, self.n_fft = config.hop_length, config.n_fft
        self.half = self.n_fft // 2
        self.mel_basis = librosa.filters.mel(sr=config.sample_rate, n_fft=self.n_fft, n_mels=config.n_mels,
                                             fmin=config.fmin, fmax=config.fmax)  # (n_mels, 1 + n_fft / 2)
        self.samples = 0  # samples pushed
        self.finished = False
        # the padded signal (n_fft / 2 zeros, then the samples) from padded index tail_start on
        self.tail = np.zeros(self.half, dtype=np.float32)
        self.tail_start = 0
        self.next_column = 0  # the next centred analysis frame to compute
        self.power = np.zeros((1 + self.half, 0), dtype=np.float32)  # the last MEL_COLUMNS - 1 power spectra
        self.last_row: np.ndarray | None = None  # (F,) values of centred frame next_column - 1

    def push(self, samples: np.ndarray) -> np.ndarray:
        """(n,) float32 samples at the config's rate -> (k, F) float32 feature frames that became final."""
        if self.finished:
            raise RuntimeError("StreamingFeatures.push after finish")
        samples = np.asarray(samples, dtype=np.float32)
        self.samples += len(samples)
        self.tail = np.concatenate([self.tail, samples])
        # centred frame k is complete once the padded signal reaches k * hop + n_fft
        end = (self.samples + self.half - self.n_fft) // self.hop + 1
        return self._frames(end)

    def finish(self) -> np.ndarray:
        """The remaining (k, F) frames, the signal's end padded with n_fft / 2 zeros (librosa's centring)."""
        if self.finished:
            raise RuntimeError("StreamingFeatures.finish twice")
        self.finished = True
        self.tail = np.concatenate([self.tail, np.zeros(self.half, dtype=np.float32)])
        return self._frames(self.samples // self.hop + 1)  # librosa's 1 + n // hop centred frames

    def _frames(self, end: int) -> np.ndarray:
        """Centred frames next_column .. end - 1 computed, and the feature frames they complete."""
        n_features = self.config.n_features
        if end <= self.next_column:
            return np.zeros((0, n_features), dtype=np.float32)
        rows = self._columns(self.next_column, end)  # (end - next_column, F)
        if self.last_row is not None:
            rows = np.concatenate([self.last_row[None], rows])
        self.last_row = rows[-1]
        self.next_column = end
        self._drop_consumed_samples()
        frames = 0.5 * (rows[:-1] + rows[1:])  # (k, F): frame t is the mean of centred frames t and t + 1
        return frames.astype(np.float32)

    def _columns(self, start: int, end: int) -> np.ndarray:
        """(end - start, F) log-mel, onset strength and log RMS of centred frames start .. end - 1, computed as
        ``audio_features`` computes them (the same librosa calls on the same samples)."""
        cfg = self.config
        lo = start * self.hop - self.tail_start
        segment = self.tail[lo:lo + (end - start - 1) * self.hop + self.n_fft]  # frames start .. end - 1
        spectrum = librosa.stft(segment, n_fft=self.n_fft, hop_length=self.hop, center=False)  # (1 + n_fft/2, m)
        power = np.abs(spectrum) ** 2.0  # as melspectrogram squares the magnitude
        window = self._mel_window(power)  # (1 + n_fft / 2, >= MEL_COLUMNS), the new columns last
        mel = np.einsum("...ft,mf->...mt", window, self.mel_basis, optimize=True)  # melspectrogram's product
        logmel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)  # (n_mels, >= MEL_COLUMNS)
        new = end - start
        onset = self._onset(logmel, new, first=start == 0)  # (new,)
        rms = librosa.feature.rms(y=segment, frame_length=self.n_fft, hop_length=self.hop, center=False)[0]
        return np.concatenate([logmel[:, -new:].T, onset[:, None], np.log(rms + 1e-6)[:, None]], axis=1)

    def _mel_window(self, power: np.ndarray) -> np.ndarray:
        """The new power spectra (1 + n_fft / 2, m) after earlier ones (or silence at the start), at least
        :data:`MEL_COLUMNS` columns in all; keeps the newest MEL_COLUMNS - 1 for the next window."""
        window = np.concatenate([self.power, power], axis=1)
        if window.shape[1] < MEL_COLUMNS:
            pad = np.zeros((window.shape[0], MEL_COLUMNS - window.shape[1]), dtype=window.dtype)
            window = np.concatenate([pad, window], axis=1)
        self.power = window[:, -(MEL_COLUMNS - 1):].copy()
        return window

    def _onset(self, logmel: np.ndarray, new: int, first: bool) -> np.ndarray:
        """(new,) onset strength of the last ``new`` columns of the log-mel window (n_mels, >= MEL_COLUMNS), with
        librosa's own function over the whole window (each column against the one before it, a reduction over as
        many columns as the whole recording's); the signal's first column gets librosa's padding, 0."""
        onset = librosa.onset.onset_strength(S=logmel, sr=self.config.sample_rate, hop_length=self.hop,
                                             n_fft=self.n_fft)[-new:]
        if first:
            onset[0] = 0.0
        return onset

    def _drop_consumed_samples(self) -> None:
        """Keep the padded signal from the next centred frame's first sample on."""
        keep_from = self.next_column * self.hop
        if keep_from > self.tail_start:
            self.tail = self.tail[keep_from - self.tail_start:]
            self.tail_start = keep_from


class StreamingResampler:
    """Mono float32 samples at ``in_rate`` -> ``out_rate``, piece by piece; the pieces concatenated equal
    ``librosa.resample(whole, orig_sr=in_rate, target_sr=out_rate)`` (soxr 'HQ', then librosa's length fix to
    ceil(n * out_rate / in_rate) samples)."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate, self.out_rate = in_rate, out_rate
        self.resampler = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")
        self.samples_in = 0
        self.samples_out = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        """(n,) float32 -> the resampled samples ready so far (the resampler holds back its filter's delay)."""
        self.samples_in += len(samples)
        out = self.resampler.resample_chunk(np.ascontiguousarray(samples, dtype=np.float32), last=False)
        self.samples_out += len(out)
        return out

    def finish(self) -> np.ndarray:
        """The rest, with the whole signal's length fixed as librosa fixes it (zeros added, or samples cut)."""
        out = self.resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        total = int(np.ceil(self.samples_in * self.out_rate / self.in_rate))
        want = total - self.samples_out
        if want < 0:
            raise RuntimeError(f"the resampler gave {self.samples_out} samples before its end, more than the "
                               f"{total} of the whole signal")
        out = out[:want] if len(out) >= want else np.concatenate([out, np.zeros(want - len(out), np.float32)])
        self.samples_out += len(out)
        return out.astype(np.float32)
