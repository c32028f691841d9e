"""VQ-VAE training, resume, checkpoints, tokenisation and evaluation at `tiny` scale."""

import json

import numpy as np
import pytest
import torch

from racer_agents.cli import main
from racer_env.checkpoint import CheckpointError, corpus_meta, load_checkpoint, save_checkpoint
from racer_env.corpus import Corpus
from racer_env.vqvae.evaluate import evaluate_codebook
from racer_env.vqvae.tokenize import decode_codes, encode_clip, gaussian_smooth, load_vqvae
from racer_env.vqvae.train import reconstruction_losses, train_config_for, train_vqvae
from tests.conftest import copy_workspace

TINY = train_config_for("tiny", steps=20, checkpoint_every=5)


def weights(ws):
    _, state, _ = load_checkpoint(ws / "vqvae" / "model.pt", "vqvae")
    return state["model"]


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tiny_workspace, tmp_path):
    a = copy_workspace(tiny_workspace, tmp_path / "A")
    b = copy_workspace(tiny_workspace, tmp_path / "B")
    train_vqvae(a, TINY, progress=False)
    stopped = train_vqvae(b, TINY, progress=False, stop_after=7)  # dies between checkpoints 5 and 10
    assert stopped["stopped_at"] == 7 and not (b / "vqvae" / "model.pt").exists()
    # a crash after step 7 leaves the checkpoint of step 7 (written at the stop); resume from it
    train_vqvae(b, TINY, progress=False, resume=True)
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    log_a = (a / "vqvae" / "metrics.jsonl").read_text()
    assert log_a == (b / "vqvae" / "metrics.jsonl").read_text()
    assert json.loads(log_a.splitlines()[-1])["step"] == 20


def test_same_seed_same_weights_and_current_run_is_skipped(tiny_workspace, tmp_path):
    a = copy_workspace(tiny_workspace, tmp_path / "A")
    first = train_vqvae(a, TINY, progress=False)
    assert train_vqvae(a, TINY, progress=False)["skipped"]
    again = train_vqvae(a, TINY, progress=False, force=True)
    assert again["checksum"] == first["checksum"]
    other = train_vqvae(a, train_config_for("tiny", steps=20, checkpoint_every=5, seed=1), progress=False)
    assert other["checksum"] != first["checksum"]


def test_resume_refuses_a_checkpoint_of_other_settings(tiny_workspace, tmp_path):
    a = copy_workspace(tiny_workspace, tmp_path / "A")
    train_vqvae(a, TINY, progress=False, stop_after=5)
    with pytest.raises(CheckpointError, match="other settings"):
        train_vqvae(a, train_config_for("tiny", steps=30, checkpoint_every=5), progress=False, resume=True)


def test_reconstruction_losses_by_hand():
    x = torch.tensor([[[0.0, 1.0, 3.0, 6.0]]])  # vel 1, 2, 3; acc 1, 1
    x_hat = torch.zeros_like(x)
    parts = reconstruction_losses(x_hat, x)
    assert parts["rec"].item() == pytest.approx(2.5)
    assert parts["vel"].item() == pytest.approx(2.0)
    assert parts["acc"].item() == pytest.approx(1.0)


def test_gaussian_smoothing_keeps_constants_and_length():
    x = torch.ones(2, 3, 16) * 4.0
    np.testing.assert_allclose(gaussian_smooth(x).numpy(), x.numpy(), rtol=1e-6)
    spike = torch.zeros(1, 1, 9)
    spike[0, 0, 4] = 1.0
    out = gaussian_smooth(spike)[0, 0]
    assert out.shape == (9,) and out.sum().item() == pytest.approx(1.0) and out[4] < 1.0 and out[2] > 0


def test_tokenise_decode_and_evaluate(trained_workspace, capsys):
    corpus = Corpus.load(trained_workspace)
    model, _, _ = load_vqvae(trained_workspace, corpus)
    clip = corpus.clip(corpus.clip_ids("test")[0])
    codes = encode_clip(model, clip, corpus.stats)
    assert codes.shape == (clip.n_frames // 8,) and codes.dtype == np.int64
    assert codes.max() < model.cfg.codebook_size
    motion = decode_codes(model, codes, corpus.stats)
    assert motion.shape == (clip.n_frames, corpus.n_joints, 3)
    metrics = evaluate_codebook(trained_workspace)
    assert metrics["maje_mm"] > 0 and 0 < metrics["codes_used_frac"] <= 1
    assert 1 <= metrics["perplexity"] <= model.cfg.codebook_size
    assert main(["evaluate", "codebook", str(trained_workspace), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["maje_mm"] == pytest.approx(metrics["maje_mm"]) and printed["params"]["split"] == "test"


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[: len(b) // 2], "corrupt or truncated"),
    (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "corrupt or truncated"),
    (lambda b: b"PK\x03\x04" + b[4:], "not a racer checkpoint"),
])
def test_corrupt_checkpoints_are_refused(trained_workspace, tmp_path, damage, message):
    ws = copy_workspace(trained_workspace, tmp_path / "W")
    path = ws / "vqvae" / "model.pt"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError, match=message):
        load_vqvae(ws)
    assert main(["evaluate", "codebook", str(ws)]) == 2


def test_checkpoint_for_other_joints_or_fps_names_both(trained_workspace, tmp_path):
    ws = copy_workspace(trained_workspace, tmp_path / "W")
    path = ws / "vqvae" / "model.pt"
    meta, state, _ = load_checkpoint(path, "vqvae")
    meta["corpus"] = {**meta["corpus"], "n_joints": 15, "fps": 30.0}
    save_checkpoint(path, meta, state)
    with pytest.raises(CheckpointError, match=r"15 joints at 30.0 fps.*has 16 joints at 20.0 fps"):
        load_vqvae(ws)


def test_checkpoint_records_config_seed_and_corpus(trained_workspace):
    meta, _, checksum = load_checkpoint(trained_workspace / "vqvae" / "model.pt", "vqvae")
    corpus = Corpus.load(trained_workspace)
    assert meta["corpus"] == corpus_meta(corpus) and meta["seed"] == 0
    assert meta["train"]["preset"] == "tiny" and meta["arch"]["n_joints"] == 16 and len(checksum) == 64


def test_resume_survives_a_torn_log_line_and_drops_lines_past_the_checkpoint(tiny_workspace, tmp_path):
    a = copy_workspace(tiny_workspace, tmp_path / "A")
    b = copy_workspace(tiny_workspace, tmp_path / "B")
    train_vqvae(a, TINY, progress=False)
    train_vqvae(b, TINY, progress=False, stop_after=5)  # checkpoint at step 5
    with open(b / "vqvae" / "metrics.running.jsonl", "a") as f:  # a crash after more logging, mid-line
        f.write('{"step": 10, "losses/total": 1.0}\n{"step": 15, "losses/tot')
    train_vqvae(b, TINY, progress=False, resume=True)
    assert (a / "vqvae" / "metrics.jsonl").read_text() == (b / "vqvae" / "metrics.jsonl").read_text()


def test_a_run_interrupted_before_the_running_log_resumes_its_log(tiny_workspace, tmp_path):
    """Runs interrupted before issue 29 logged to metrics.jsonl itself; --resume carries that log on."""
    import os

    a = copy_workspace(tiny_workspace, tmp_path / "A")
    b = copy_workspace(tiny_workspace, tmp_path / "B")
    train_vqvae(a, TINY, progress=False)
    train_vqvae(b, TINY, progress=False, stop_after=5)
    os.replace(b / "vqvae" / "metrics.running.jsonl", b / "vqvae" / "metrics.jsonl")  # (the old layout)
    train_vqvae(b, TINY, progress=False, resume=True)
    assert (a / "vqvae" / "metrics.jsonl").read_text() == (b / "vqvae" / "metrics.jsonl").read_text()


def test_models_of_an_older_corpus_are_refused_as_stale(trained_workspace, tmp_path):
    from racer_env.corpus.build import synth_corpus
    from racer_env.corpus.importer import ImportConfig

    ws = copy_workspace(trained_workspace, tmp_path / "W")
    synth_corpus(ws, minutes=1.0, speakers=1, seed=0, clip_seconds=10.0, config=ImportConfig(seed=5), workers=1,
                 progress=False)  # same clips, other splits -> other statistics
    with pytest.raises(CheckpointError, match="stale"):
        load_vqvae(ws)


def test_bookkeeping_settings_do_not_retrain(trained_workspace, tmp_path):
    ws = copy_workspace(trained_workspace, tmp_path / "W")
    assert train_vqvae(ws, train_config_for("tiny", checkpoint_every=3, log_every=2), progress=False)["skipped"]
