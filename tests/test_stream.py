"""Streaming generation (``racer_agents.stream.GestureStream``) against ``racer generate``, with the shipped weights.

The equality guarantee tested here (docs/generate.md, "Streaming"):

* the streamed audio features equal ``audio_features`` of the whole recording bit for bit, and the streamed
  resampling equals ``librosa.resample`` of the whole bit for bit;
* handed the whole recording's statistics (``recording_statistics``: the per-recording standardisation and the
  silence decision, the two non-causal steps of ``generate``), the stream's codes equal ``generate``'s bit for bit
  and its frames equal ``generate``'s rotations to 1e-5 rad (float rounding only: the decoder runs over windows of
  another length than ``generate``'s; measured 1.2e-7), for chunks of 10 ms, 37 ms, 500 ms and random sizes, at
  16 kHz and at 44.1 kHz stereo;
* without them (live audio: running statistics) and with a short decoder look-ahead, the output is the same bit for
  bit for every chunking, and frames come out within the stated latency.
"""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from racer_agents.generate import generate
from racer_agents.pretrained import pretrained_workspace
from racer_agents.stream import GestureStream, recording_statistics
from racer_env.audio.features import AudioError, AudioFeatureConfig, audio_features, load_audio
from racer_env.audio.streaming import StreamingFeatures, StreamingResampler
from racer_env.corpus.store import Corpus
from racer_env.errors import RacerError
from racer_env.vqvae.tokenize import decode_codes, decoder_reach, load_vqvae
from tests.conftest import JFK_WAV, LIBRI_OGG

RATE = 16000
ATOL_RAD = 1e-5  # frames against generate's: float rounding of the decoder's convolutions only
#: chunk sizes in samples at 16 kHz: 10 ms, 37 ms, 500 ms, and random sizes of 10 to 500 ms
CHUNKS = {"10ms": [160], "37ms": [592], "500ms": [8000],
          "random": [int(n) for n in np.random.default_rng(0).integers(160, 8001, 400)]}


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """25 s of real speech at 16 kHz (two recordings one after the other): 62 code steps."""
    return np.concatenate([load_audio(JFK_WAV, RATE), load_audio(LIBRI_OGG, RATE)])


@pytest.fixture(scope="module")
def reference(speech):
    return generate(None, speech, sample_rate=RATE, formats=(), progress=False)


@pytest.fixture(scope="module")
def statistics(speech):
    return recording_statistics(speech, RATE)


def chunked(y: np.ndarray, sizes: list[int]):
    """``y`` in consecutive chunks of the given sizes (cycled)."""
    start, i = 0, 0
    while start < len(y):
        n = sizes[i % len(sizes)]
        yield y[start:start + n]
        start, i = start + n, i + 1


def stream_all(stream: GestureStream, y: np.ndarray, sizes: list[int], rate: int = RATE) -> tuple[np.ndarray, list]:
    """Every frame the stream returns for ``y`` pushed in chunks, then flushed; and (seconds pushed, seconds of
    frames returned so far) after each push."""
    out, progress, pushed = [], [], 0
    for chunk in chunked(y, sizes):
        out.append(stream.push(chunk, rate))
        pushed += len(chunk)
        progress.append((pushed / rate, sum(len(f) for f in out) / stream.fps))
    out.append(stream.flush())
    return np.concatenate(out), progress


@pytest.mark.parametrize("sizes", [[1], [160], [592], [800], [8000], CHUNKS["random"]],
                         ids=["1", "160", "592", "800", "8000", "random"])
def test_streamed_features_equal_the_whole_recordings(sizes):
    y = load_audio(JFK_WAV, RATE)[:4 * RATE]
    features = StreamingFeatures(AudioFeatureConfig())
    streamed = np.concatenate([features.push(c) for c in chunked(y, sizes)] + [features.finish()])
    np.testing.assert_array_equal(streamed, audio_features(y, AudioFeatureConfig()))


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_streamed_resampling_equals_librosa_on_the_whole(rate):
    y = librosa.resample(load_audio(JFK_WAV, RATE)[:48000], orig_sr=RATE, target_sr=rate)
    resampler = StreamingResampler(rate, RATE)
    sizes = [rate // 100, 37, rate // 2]
    streamed = np.concatenate([resampler.push(c) for c in chunked(y, sizes)] + [resampler.finish()])
    np.testing.assert_array_equal(streamed, librosa.resample(y, orig_sr=rate, target_sr=RATE))


@pytest.mark.parametrize("name", list(CHUNKS))
def test_stream_equals_generate(name, speech, reference, statistics):
    stream = GestureStream(statistics=statistics)
    frames, progress = stream_all(stream, speech, CHUNKS[name])
    np.testing.assert_array_equal(stream.codes, reference.codes)
    assert frames.shape == reference.rotations.shape == (496, 16, 3) and frames.dtype == reference.rotations.dtype
    np.testing.assert_allclose(frames, reference.rotations, rtol=0, atol=ATOL_RAD)
    assert progress[-1][1] > 0  # frames came out before the flush, within the latency
    assert all(pushed - stream.latency_s - 1e-9 <= out <= pushed + 1e-9 for pushed, out in progress)


def test_any_rate_and_channels_stream_as_generate_takes_them(speech):
    y = librosa.resample(speech[:8 * RATE], orig_sr=RATE, target_sr=44100)
    stereo = np.stack([y, 0.5 * y], axis=1)  # (n, 2) at 44.1 kHz
    reference = generate(None, stereo, sample_rate=44100, formats=(), progress=False)
    stream = GestureStream(statistics=recording_statistics(stereo, 44100))
    frames, _ = stream_all(stream, stereo, [441, 4410, 1234], rate=44100)
    np.testing.assert_array_equal(stream.codes, reference.codes)
    np.testing.assert_allclose(frames, reference.rotations, rtol=0, atol=ATOL_RAD)


def test_a_short_decoder_lookahead_keeps_the_codes_and_changes_the_frames(speech, reference, statistics):
    stream = GestureStream(statistics=statistics, decoder_lookahead=2)
    frames, progress = stream_all(stream, speech, CHUNKS["37ms"])
    np.testing.assert_array_equal(stream.codes, reference.codes)  # the decoder's look-ahead is after the codes
    assert np.abs(frames - reference.rotations).max() > 1e-3  # the frames miss the codes past the look-ahead
    assert stream.latency_s == pytest.approx(0.4 * (1 + stream.obs_cfg.lookahead + 2) + 0.032)
    assert all(pushed - stream.latency_s - 1e-9 <= out <= pushed + 1e-9 for pushed, out in progress)


def test_live_streams_are_the_same_for_every_chunking(speech, reference):
    """Running statistics, a short decoder look-ahead: what a microphone gets. Not generate's output (its
    standardisation reads the whole recording), but a function of the audio alone, whatever its chunks."""
    outputs = []
    for name in ("10ms", "500ms", "random"):
        stream = GestureStream(decoder_lookahead=2)
        frames, progress = stream_all(stream, speech, CHUNKS[name])
        assert all(pushed - stream.latency_s - 1e-9 <= out <= pushed + 1e-9 for pushed, out in progress)
        outputs.append((frames, stream.codes))
    for frames, codes in outputs[1:]:
        np.testing.assert_array_equal(codes, outputs[0][1])
        np.testing.assert_array_equal(frames, outputs[0][0])
    assert outputs[0][0].shape == reference.rotations.shape


def test_a_workspace_s_agent_streams_as_generate_rolls_it_out(agent_workspace, speech):
    """Any agent of a workspace, here a d3rlpy one: it reads the whole observation (past audio, code history)."""
    y = speech[:6 * RATE]
    reference = generate(agent_workspace, y, sample_rate=RATE, agent="d3rlpy-DiscreteBC", formats=(), progress=False)
    stream = GestureStream(agent_workspace, "d3rlpy-DiscreteBC", statistics=recording_statistics(y, RATE,
                                                                                               agent_workspace))
    frames, _ = stream_all(stream, y, CHUNKS["random"])
    np.testing.assert_array_equal(stream.codes, reference.codes)
    np.testing.assert_allclose(frames, reference.rotations, rtol=0, atol=ATOL_RAD)


@pytest.mark.parametrize("live", [False, True], ids=["statistics", "running"])
def test_silence_gives_generate_s_rest_pose(live):
    quiet = np.zeros(2 * RATE, dtype=np.float32)
    reference = generate(None, quiet, sample_rate=RATE, formats=(), progress=False)
    stream = GestureStream(statistics=None if live else recording_statistics(quiet, RATE))
    frames, _ = stream_all(stream, quiet, CHUNKS["37ms"])
    assert reference.silent and set(stream.codes.tolist()) == {stream.rest}
    np.testing.assert_array_equal(stream.codes, reference.codes)
    np.testing.assert_allclose(frames, reference.rotations, rtol=0, atol=ATOL_RAD)


def test_recordings_shorter_than_a_code_step_are_generate_s_error(speech):
    short = speech[RATE:RATE + 4800]  # 0.3 s
    with pytest.raises(AudioError, match="shorter than one code step"):
        generate(None, short, sample_rate=RATE, formats=(), progress=False)
    stream = GestureStream()
    assert len(stream.push(short, RATE)) == 0
    with pytest.raises(AudioError, match="audio stream: audio of 0.30 s is shorter than one code step"):
        stream.flush()
    with pytest.raises(AudioError, match="shorter than one code step"):
        GestureStream().flush()  # nothing pushed at all
    one_step = speech[RATE:RATE + 8000]  # 0.5 s: one code step (a_0), the rest dropped as generate drops it
    reference = generate(None, one_step, sample_rate=RATE, formats=(), progress=False)
    frames, _ = stream_all(GestureStream(), one_step, CHUNKS["37ms"])
    assert frames.shape == reference.rotations.shape == (8, 16, 3)
    np.testing.assert_allclose(frames, reference.rotations, rtol=0, atol=ATOL_RAD)


def test_bad_input_is_a_clear_error_and_changes_nothing(speech):
    stream = GestureStream()
    chunk = speech[:1600]
    with pytest.raises(RacerError, match="float array.*int16.*32768"):
        stream.push((chunk * 32767).astype(np.int16), RATE)
    with pytest.raises(RacerError, match=r"\(n,\) mono or \(n, channels\)"):
        stream.push(chunk.reshape(2, 10, 80), RATE)
    with pytest.raises(RacerError, match="channels first"):
        stream.push(np.stack([chunk, chunk]), RATE)  # (2, n)
    for rate in (0, 500, 16000.0, None, True):
        with pytest.raises(RacerError, match="sample_rate must be an integer from 1000"):
            stream.push(chunk, rate)
    with pytest.raises(AudioError, match="NaN"):
        stream.push(np.full(160, np.nan, dtype=np.float32), RATE)
    assert len(stream.codes) == 0 and stream.samples == 0  # nothing was taken
    stream.push(chunk, RATE)
    with pytest.raises(RacerError, match="at 16000 Hz \\(fixed by its first push\\)"):
        stream.push(chunk, 44100)
    with pytest.raises(RacerError, match="2 channel"):
        stream.push(np.stack([chunk, chunk], axis=1), RATE)
    for lookahead in (-1, 26, 2.0):
        with pytest.raises(RacerError, match="decoder_lookahead must be an integer from 0 to 25"):
            GestureStream(decoder_lookahead=lookahead)


def test_push_after_flush_and_foreign_statistics_are_refused(speech):
    stream = GestureStream(decoder_lookahead=0)
    frames, _ = stream_all(stream, speech[:2 * RATE], CHUNKS["500ms"])
    assert frames.shape == (40, 16, 3)
    with pytest.raises(RacerError, match="has been flushed"):
        stream.push(speech[:160], RATE)
    with pytest.raises(RacerError, match="already been flushed"):
        stream.flush()
    stream = GestureStream(statistics=recording_statistics(speech[:3 * RATE], RATE))
    stream.push(speech[:2 * RATE], RATE)
    with pytest.raises(RacerError, match="statistics are of a recording of 7 code steps, but the stream heard 5"):
        stream.flush()


def test_decoder_reach_is_how_far_a_code_changes_the_motion():
    ws = pretrained_workspace()
    corpus = Corpus.load(ws)
    vqvae, _, _ = load_vqvae(ws, corpus)
    reach = decoder_reach(vqvae)
    assert reach == 25
    codes = np.random.default_rng(0).integers(0, vqvae.cfg.codebook_size, 80)
    i = 27  # the frames of code i, while one code at a distance d changes
    base = decode_codes(vqvae, codes, corpus.stats)[8 * i:8 * i + 8]
    for d in (-reach - 1, -reach, reach, reach + 1):
        changed = codes.copy()
        changed[i + d] = (changed[i + d] + 1) % vqvae.cfg.codebook_size
        frames = decode_codes(vqvae, changed, corpus.stats)[8 * i:8 * i + 8]
        assert np.array_equal(frames, base) == (abs(d) > reach)

