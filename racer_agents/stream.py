"""Live gestures: speech pushed in chunks of any length, motion frames back as soon as they are final.

:class:`GestureStream` runs ``racer generate``'s pipeline (:func:`racer_agents.generate.generate`) as the audio
arrives, keeping bounded state:

* **audio**: resampled piece by piece to the working rate (16 kHz) with librosa's own resampler
  (:class:`~racer_env.audio.streaming.StreamingResampler`), then turned into feature frames incrementally
  (:class:`~racer_env.audio.streaming.StreamingFeatures`: only the tail of samples the next frames need is kept;
  a frame is final 32 ms after its own end);
* **codes**: one per code step (0.4 s) as soon as the observation's look-ahead has been heard, chosen by the
  agent's own ``act`` (a GPT agent steps its key/value cache, carried from chunk to chunk, exactly as in
  ``generate``'s rollout); a_0 is the rest code;
* **motion**: the frames of code i are decoded from the window of codes i - reach .. i + ``decoder_lookahead``
  (``reach``: :func:`~racer_env.vqvae.tokenize.decoder_reach`, 25 codes), once code i + ``decoder_lookahead`` is
  chosen, and never change afterwards.

What the stream equals, and why not more (docs/generate.md, "Streaming"):

* ``generate`` standardises each audio feature over the *whole* recording (its mean and sd) and gives the rest pose
  throughout when the *whole* recording is silent: two decisions no causal stream can make. Handed those
  (``statistics=recording_statistics(...)`` of the recording), the stream's codes equal ``generate``'s bit for bit,
  for any chunking and any input rate. Without them (live audio) it standardises by the running mean and sd of the
  features heard so far and gives the rest code to the steps before the first sound; its output is then the same
  for every chunking, bit for bit, but not ``generate``'s.
* The decoder's frames of a code depend on the codes up to 25 steps (10 s) on either side. With the default
  ``decoder_lookahead`` (that whole reach), the frames equal ``generate``'s up to float rounding (a convolution over
  another window length sums in another order: measured 1.2e-7 rad, tested to 1e-5 rad). A shorter look-ahead cuts
  the latency and changes the frames (up to tenths of a radian for a look-ahead of a few codes): they are then what
  the decoder makes of the codes known so far, still never changed afterwards.

Algorithmic latency (audio heard -> its frame out, at the working rate): one code step + the observation's
look-ahead + the decoder's look-ahead (0.4 s each code) + half an analysis window (32 ms): with the shipped
weights (an observation look-ahead of 3 codes) 11.63 s by default, 2.43 s with ``decoder_lookahead=2``; see
:attr:`GestureStream.latency_s`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np

from racer_agents.agent import Agent, load_agent
from racer_agents.generate import code_steps, prepare_audio, rest_code, speech_clip
from racer_agents.pretrained import pretrained_workspace
from racer_env.audio.features import (
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    SILENCE_PEAK,
    AudioError,
    AudioFeatureConfig,
)
from racer_env.audio.streaming import StreamingFeatures, StreamingResampler
from racer_env.corpus.store import Corpus
from racer_env.envs.episode_data import STD_FLOOR, checked_action, code_history, standardisation, standardise
from racer_env.errors import RacerError
from racer_env.vqvae.tokenize import decode_codes, decoder_reach, load_vqvae
from racer_env.workspace import Workspace

MAX_CHANNELS = 64  # a chunk (n, channels) with more is taken for (channels, n) transposed, and refused


@dataclass(frozen=True)
class RecordingStatistics:
    """What ``racer generate`` reads from the whole recording before it chooses a code: the mean and sd it
    standardises each audio feature with, and whether the recording is silent (peak below ``SILENCE_PEAK``)."""

    mean: np.ndarray  # (F,) float64
    sd: np.ndarray  # (F,) float64, floored as generate floors it
    silent: bool
    n_codes: int  # the recording's whole code steps (checked against the stream's at flush)


def recording_statistics(audio: str | Path | np.ndarray, sample_rate: int | None = None,
                         workspace: str | Workspace | None = None) -> RecordingStatistics:
    """:class:`RecordingStatistics` of a whole recording (a path, or an array with its rate), computed as
    ``generate`` computes them, for a :class:`GestureStream` that must equal ``generate``."""
    corpus = Corpus.load(pretrained_workspace() if workspace is None else Workspace.of(workspace))
    rate = int(corpus.manifest["audio_features"]["sample_rate"])
    y = prepare_audio(audio, sample_rate, rate)
    code_steps(len(y), rate, corpus, audio if isinstance(audio, (str, Path)) else "audio array")
    clip = speech_clip(y, corpus)
    mean, sd = standardisation(clip.audio, corpus.stats)
    return RecordingStatistics(mean, sd, bool(np.abs(y).max(initial=0.0) < SILENCE_PEAK), clip.n_codes)


class RunningStatistics:
    """The mean and sd of the feature frames heard so far, whole code steps at a time (a stream's standardisation
    when the recording's is not known). Frames are summed one after the other, so the figures depend on the frames
    only, not on how the audio was chunked."""

    def __init__(self, n_features: int, audio_std: np.ndarray) -> None:
        self.frames = 0
        self.total = np.zeros(n_features, dtype=np.float64)
        self.squares = np.zeros(n_features, dtype=np.float64)
        self.floor = STD_FLOOR * np.asarray(audio_std, dtype=np.float64)

    def add(self, step: np.ndarray) -> None:
        """(8, F) raw features of one code step."""
        for row in np.asarray(step, dtype=np.float64):
            self.total += row
            self.squares += row * row
            self.frames += 1

    def current(self) -> tuple[np.ndarray, np.ndarray]:
        """(F,) mean and sd so far, the sd floored as ``generate`` floors it."""
        mean = self.total / self.frames
        variance = np.maximum(self.squares / self.frames - mean * mean, 0.0)
        return mean, np.maximum(np.sqrt(variance), self.floor)


class GestureStream:
    """Speech in chunks -> motion frames (rotation vectors (n, J, 3) at the corpus's fps, as ``generate``'s
    ``rotations`` and its npz hold them) as soon as they are final.

    Built like ``generate``: ``workspace=None`` uses the shipped pretrained weights; ``agent`` names one of the
    workspace's agents (default racer-cql) or is an :class:`~racer_agents.agent.Agent` (the stream resets it and
    owns its episode). ``decoder_lookahead`` (codes, 0 .. reach; None: the decoder's whole reach) trades latency for
    equality with ``generate``; ``statistics`` (from :func:`recording_statistics`) hands the stream the whole
    recording's standardisation, without which it standardises by running statistics (see the module docstring).

    ``push(samples, sample_rate)`` takes 1-D (mono) or (n, channels) float samples at any rate from 1 to 768 kHz
    (the first push fixes the rate and the channels), and returns the frames that became final (often none);
    ``flush()`` ends the recording and returns the rest. Altogether: 8 frames per whole code step of the recording,
    as ``generate`` makes (a trailing part shorter than a code step has none; a recording shorter than one code
    step is the AudioError ``generate`` raises).
    """

    def __init__(self, workspace: str | Workspace | None = None, agent: str | Agent | None = None, *,
                 decoder_lookahead: int | None = None, statistics: RecordingStatistics | None = None,
                 device: str = "cpu") -> None:
        ws = pretrained_workspace() if workspace is None else Workspace.of(workspace)
        self.corpus = corpus = Corpus.load(ws)
        self.config = AudioFeatureConfig(**corpus.manifest["audio_features"])
        self.fpc = corpus.frames_per_code
        self.vqvae, _, _ = load_vqvae(ws, corpus, device)
        self.agent = agent if isinstance(agent, Agent) else load_agent(ws, agent, device)
        self.agent.reset()
        self.obs_cfg = self.agent.obs_cfg
        self.reach = decoder_reach(self.vqvae)
        self.decoder_lookahead = self._checked_lookahead(decoder_lookahead)
        self.statistics = statistics
        self.running = RunningStatistics(self.config.n_features, corpus.stats.audio_std)
        self.rest = rest_code(self.vqvae, self.fpc)
        self.features = StreamingFeatures(self.config)
        self.resampler: StreamingResampler | None = None
        self.input_rate: int | None = None  # fixed by the first push
        self.channels: int | None = None  # likewise: 1 for a 1-D push
        self.samples = 0  # samples received, at the working rate
        self.first_sound: int | None = None  # index of the first sample at or above SILENCE_PEAK
        self.partial = np.zeros((0, self.config.n_features), dtype=np.float32)  # frames of an unfinished step
        self.steps: deque = deque(maxlen=self.obs_cfg.context)  # raw (8, F) features of the newest code steps
        self.n_steps = 0  # whole code steps heard
        self.total_steps: int | None = None  # the recording's, known at flush
        self.chosen: list[int] = []  # the codes so far, a_0 first
        self.recent: deque = deque(maxlen=self.obs_cfg.history)  # the codes an observation shows
        self.emitted = 0  # codes whose frames have been returned
        self.flushed = False

    # -- the public API ------------------------------------------------------------------------------------------
    @property
    def fps(self) -> float:
        return float(self.corpus.fps)

    @property
    def joint_names(self) -> list[str]:
        return list(self.corpus.joint_names)

    @property
    def codes(self) -> np.ndarray:
        """(n,) the codes chosen so far (a_0, the rest code, first)."""
        return np.array(self.chosen, dtype=np.int64)

    @property
    def latency_s(self) -> float:
        """Algorithmic latency at the working rate: from a code step's first sample arriving to its frames being
        returned, one code step + the observation's look-ahead + the decoder's look-ahead + half an analysis
        window (a frame's features read 32 ms past its end). The chunk size (waiting for a chunk to fill), the
        resampler's delay at other rates (a few ms) and compute time come on top."""
        codes = 1 + self.obs_cfg.lookahead + self.decoder_lookahead
        return (codes * self.fpc * self.config.hop_length + self.config.n_fft // 2) / self.config.sample_rate

    def push(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """Add a chunk of audio; returns the (n, J, 3) float32 frames that became final (n may be 0)."""
        if self.flushed:
            raise RacerError("this GestureStream has been flushed: the recording is over; start a new GestureStream")
        mono = self._checked_chunk(samples, sample_rate)
        if self.resampler is None and sample_rate != self.config.sample_rate:
            self.resampler = StreamingResampler(sample_rate, self.config.sample_rate)
        if self.resampler is not None:
            mono = self.resampler.push(mono)
        return self._hear(mono)

    def flush(self) -> np.ndarray:
        """End the recording: returns the remaining (n, J, 3) frames. A recording shorter than one code step is an
        AudioError (as in ``generate``); the stream takes nothing more afterwards."""
        if self.flushed:
            raise RacerError("this GestureStream has already been flushed; start a new GestureStream")
        self.flushed = True
        tail = self.resampler.finish() if self.resampler is not None else np.zeros(0, dtype=np.float32)
        out = [self._hear(tail)]
        self.total_steps = code_steps(self.samples, self.config.sample_rate, self.corpus, "audio stream")
        if self.statistics is not None and self.statistics.n_codes != self.total_steps:
            raise RacerError(f"the statistics are of a recording of {self.statistics.n_codes} code steps, but the "
                             f"stream heard {self.total_steps}: pass the statistics of the recording streamed")
        out.append(self._add_frames(self.features.finish()))
        while len(self.chosen) < self.total_steps:  # the last codes: their look-ahead runs past the end
            self._choose(len(self.chosen))
        out.append(self._emit())
        return np.concatenate(out)

    # -- input ---------------------------------------------------------------------------------------------------
    def _checked_lookahead(self, lookahead: int | None) -> int:
        if lookahead is None:
            return self.reach
        if isinstance(lookahead, bool) or not isinstance(lookahead, (int, np.integer)) \
                or not 0 <= lookahead <= self.reach:
            raise RacerError(f"decoder_lookahead must be an integer from 0 to {self.reach} codes (the decoder's "
                             f"reach; None: all of it), got {lookahead!r}")
        return int(lookahead)

    def _checked_chunk(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """A chunk as mono float32 at its rate, after checking it against the stream's rate and channels."""
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
                or not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
            raise RacerError(f"sample_rate must be an integer from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz, "
                             f"got {sample_rate!r}")
        if self.input_rate is not None and sample_rate != self.input_rate:
            raise RacerError(f"sample_rate {sample_rate} Hz, but this stream's audio is at {self.input_rate} Hz "
                             f"(fixed by its first push); resample before pushing, or start a new GestureStream")
        y = samples if isinstance(samples, np.ndarray) else np.asarray(samples)
        if y.dtype.kind != "f":
            hint = " (integer PCM: divide by 32768 for int16)" if y.dtype.kind in "iu" else ""
            raise RacerError(f"samples must be a float array in [-1, 1], got dtype {y.dtype}{hint}")
        if y.ndim not in (1, 2) or (y.ndim == 2 and not 1 <= y.shape[1] <= MAX_CHANNELS):
            raise RacerError(f"samples must be (n,) mono or (n, channels) with 1 to {MAX_CHANNELS} channels, got "
                             f"shape {y.shape}" + (" (channels first? pass samples.T)" if y.ndim == 2 else ""))
        channels = 1 if y.ndim == 1 else y.shape[1]
        if self.channels is not None and channels != self.channels:
            raise RacerError(f"a chunk of {channels} channel(s), but this stream's first had {self.channels}")
        if not np.isfinite(y).all():
            raise AudioError("audio chunk contains NaN or infinite samples")
        self.input_rate, self.channels = int(sample_rate), channels
        y = np.asarray(y, dtype=np.float32)  # as generate: float32 first, then the channels averaged
        return librosa.to_mono(y.T) if y.ndim == 2 else y

    def _hear(self, mono: np.ndarray) -> np.ndarray:
        """Samples at the working rate -> the frames they make final."""
        if self.first_sound is None:
            loud = np.flatnonzero(np.abs(mono) >= SILENCE_PEAK)
            if len(loud):
                self.first_sound = self.samples + int(loud[0])
        self.samples += len(mono)
        return self._add_frames(self.features.push(mono))

    # -- codes ---------------------------------------------------------------------------------------------------
    def _add_frames(self, frames: np.ndarray) -> np.ndarray:
        """New (k, F) feature frames -> whole code steps; each step lets the code its look-ahead waited for be
        chosen, and that code lets the frames ``decoder_lookahead`` codes back be decoded."""
        self.partial = np.concatenate([self.partial, frames])
        while len(self.partial) >= self.fpc:
            step, self.partial = self.partial[:self.fpc], self.partial[self.fpc:]
            self.steps.append(step)
            self.running.add(step)
            self.n_steps += 1
            code = self.n_steps - 1 - self.obs_cfg.lookahead  # the code whose look-ahead this step completes
            if code >= 0:
                self._choose(code)
        return self._emit()

    def _choose(self, i: int) -> None:
        """Choose code i (the codes before it are chosen): a_0 is the rest code; then the agent's, or the rest code
        while the recording is silent (the whole of it, from ``statistics``; else the audio heard so far)."""
        if i == 0:
            code = self.rest
        elif self._silent_so_far(i):
            code = self.rest
        else:
            code = checked_action(self.agent.act(self._observation(i)), self.agent.n_codes, i - 1, self.agent.name)
        self.chosen.append(code)
        self.recent.append(code)

    def _silent_so_far(self, i: int) -> bool:
        if self.statistics is not None:
            return self.statistics.silent
        heard = (i + 1 + self.obs_cfg.lookahead) * self.fpc * self.config.hop_length + self.config.n_fft // 2
        return self.first_sound is None or self.first_sound >= min(heard, self.samples)

    def _observation(self, i: int) -> dict:
        """The observation ``generate``'s rollout shows the agent for code i: the standardised audio of code steps
        i - past .. i + lookahead (zeros outside the recording) and the last codes (left-padded)."""
        cfg = self.obs_cfg
        mean, sd = ((self.statistics.mean, self.statistics.sd) if self.statistics is not None
                    else self.running.current())
        audio = np.zeros((cfg.context, self.fpc, self.config.n_features), dtype=np.float32)
        newest = self.n_steps - 1  # the deque holds steps newest - len + 1 .. newest
        last = i + cfg.lookahead if self.total_steps is None else min(i + cfg.lookahead, self.total_steps - 1)
        for step in range(max(i - cfg.past, 0), last + 1):
            audio[step - (i - cfg.past)] = standardise(self.steps[step - newest - 1], mean, sd)
        history = np.fromiter(self.recent, dtype=np.int64)
        return {"audio": audio, "codes": code_history(history, cfg, self.agent.n_codes)}

    # -- motion --------------------------------------------------------------------------------------------------
    def _emit(self) -> np.ndarray:
        """The frames of every code whose decoder window is complete: codes j - reach .. j + decoder_lookahead
        chosen (or the recording over)."""
        out = []
        while self.emitted < len(self.chosen) and (self.emitted + self.decoder_lookahead < len(self.chosen)
                                                   or self.total_steps == len(self.chosen)):
            out.append(self._frames_of(self.emitted))
            self.emitted += 1
        if not out:
            return np.zeros((0, len(self.corpus.joint_names), 3), dtype=np.float32)
        return np.concatenate(out)

    def _frames_of(self, j: int) -> np.ndarray:
        """(8, J, 3) frames of code j, decoded from the codes j - reach .. j + decoder_lookahead (fewer at the
        recording's ends): a window fixed by j alone, so the frames do not depend on how the audio was chunked."""
        lo, hi = max(j - self.reach, 0), min(j + self.decoder_lookahead + 1, len(self.chosen))
        rotations = decode_codes(self.vqvae, np.array(self.chosen[lo:hi], dtype=np.int64), self.corpus.stats)
        return rotations[(j - lo) * self.fpc:(j - lo + 1) * self.fpc]  # (8, J, 3)
