"""The contrastive reward model: loss, timing sensitivity, batched per-step rewards, training and validity."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from racer_agents.cli import main
from racer_env.checkpoint import CheckpointError, load_checkpoint
from racer_env.corpus import Corpus
from racer_env.reward.evaluate import auc, evaluate_reward, retrieval
from racer_env.reward.model import RewardConfig, RewardModel
from racer_env.reward.scorer import RewardScorer, load_reward_model
from racer_env.reward.train import reward_train_config_for, train_reward
from racer_env.vqvae.train import train_config_for, train_vqvae
from tests.conftest import copy_workspace

CFG = RewardConfig(motion_channels=48, audio_channels=66, window_codes=4, hidden=16, embed_dim=8, layers=2)


def test_info_nce_by_hand():
    torch.manual_seed(0)
    model = RewardModel(CFG)
    m, a = torch.randn(5, 32, 48), torch.randn(5, 32, 66)
    logits = model.logits(m, a)
    em, ea = model.motion_encoder(m), model.audio_encoder(a)
    np.testing.assert_allclose(logits.detach(), (em @ ea.t() / 0.07).detach(), rtol=1e-4)
    expected = 0.5 * (F.cross_entropy(logits, torch.arange(5)) + F.cross_entropy(logits.t(), torch.arange(5)))
    loss, returned = model.info_nce(m, a)
    assert loss.item() == pytest.approx(expected.item()) and torch.equal(returned, logits)


def test_scores_are_cosines_for_any_length_and_see_timing():
    torch.manual_seed(0)
    model = RewardModel(CFG).eval()
    for frames in (8, 32, 80):
        s = model.score(torch.randn(3, frames, 48), torch.randn(3, frames, 66))
        assert s.shape == (3,) and (s.abs() <= 1 + 1e-6).all()
    x = torch.zeros(1, 32, 48)
    x[0, 4:8] = 1.0
    shifted = torch.roll(x, 16, dims=1)  # the same event two code steps later
    assert not torch.allclose(model.motion_encoder(x), model.motion_encoder(shifted), atol=1e-4)
    with pytest.raises(ValueError, match="share batch and length"):
        model.score(torch.randn(2, 32, 48), torch.randn(2, 24, 66))


def test_finer_bins_see_where_inside_a_code_step_a_movement_falls():
    import dataclasses

    torch.manual_seed(0)
    fine = RewardModel(dataclasses.replace(CFG, bins_per_code=4)).eval()
    assert fine.motion_encoder.proj.in_features == 16 * 4 * 4  # hidden x window codes x bins per code
    for frames in (8, 32, 80):  # any length still scores
        assert fine.score(torch.randn(2, frames, 48), torch.randn(2, frames, 66)).shape == (2,)
    x = torch.zeros(1, 32, 48)
    x[0, 8:10] = 1.0  # early in the second code step...
    late = torch.roll(x, 4, dims=1)  # ...and 4 frames later, in the same code step
    assert not torch.allclose(fine.motion_encoder(x), fine.motion_encoder(late), atol=1e-4)
    with pytest.raises(ValueError, match="bins_per_code"):
        RewardConfig(motion_channels=48, audio_channels=66, bins_per_code=0)


def test_auc_and_retrieval_known_answers():
    assert auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert auc(np.array([0.0]), np.array([0.0])) == 0.5
    assert auc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 0.0
    sim = np.eye(40) + 0.01 * np.random.default_rng(0).random((40, 40))
    assert retrieval(sim, 32, np.random.default_rng(0)) == (1.0, 1.0)


def test_batched_rewards_equal_one_window_at_a_time(trained_workspace):
    scorer = RewardScorer.from_workspace(trained_workspace)
    corpus = Corpus.load(trained_workspace)
    clip = corpus.clip(corpus.clip_ids("train")[0])
    rng = np.random.default_rng(0)
    w, fpc = scorer.window_codes, corpus.frames_per_code
    codes = torch.as_tensor(rng.integers(0, scorer.vqvae.cfg.codebook_size, (6, w)))
    starts = rng.integers(0, clip.n_frames // fpc - w, 6)
    audio = torch.stack([torch.from_numpy(clip.audio[s * fpc:(s + w) * fpc]) for s in starts])
    batched = scorer.rewards(codes, audio)
    single = torch.cat([scorer.rewards(codes[i:i + 1], audio[i:i + 1]) for i in range(6)])
    assert batched.shape == (6,) and (batched.abs() <= 1 + 1e-6).all()
    np.testing.assert_allclose(batched, single, atol=1e-5)
    short = scorer.rewards(codes[:, :2], audio[:, :2 * fpc])  # the start of an episode: fewer than W codes
    assert short.shape == (6,)
    with pytest.raises(ValueError, match="audio must be"):
        scorer.rewards(codes, audio[:, :-1])


def test_evaluate_reward_reports_validity(trained_workspace, capsys):
    metrics = evaluate_reward(trained_workspace, candidates=8)
    for key in ("r_at_1", "r_at_5", "auc_shifted", "auc_mismatched"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["params"]["candidates"] == 8 and metrics["params"]["chance_r_at_1"] == 1 / 8
    with pytest.raises(ValueError, match="needs more"):
        evaluate_reward(trained_workspace, candidates=32)
    assert main(["evaluate", "reward", str(trained_workspace), "--candidates", "8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["r_at_1"] == pytest.approx(metrics["r_at_1"])


def test_reward_training_resumes_to_the_same_weights(trained_workspace, tmp_path):
    cfg = reward_train_config_for("tiny", steps=12, checkpoint_every=4)
    a = copy_workspace(trained_workspace, tmp_path / "A")
    b = copy_workspace(trained_workspace, tmp_path / "B")
    train_reward(a, cfg, progress=False, force=True)
    train_reward(b, cfg, progress=False, force=True, stop_after=6)
    train_reward(b, cfg, progress=False, resume=True)
    wa = load_checkpoint(a / "reward" / "model.pt", "reward")[1]["model"]
    wb = load_checkpoint(b / "reward" / "model.pt", "reward")[1]["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_reward_model_refuses_another_vqvae(trained_workspace, tmp_path):
    ws = copy_workspace(trained_workspace, tmp_path / "W")
    train_vqvae(ws, train_config_for("tiny", seed=5), progress=False)
    with pytest.raises(CheckpointError, match="retrain the reward model"):
        RewardScorer.from_workspace(ws)
    meta, _, _ = load_checkpoint(ws / "reward" / "model.pt", "reward")
    assert len(meta["vqvae_sha256"]) == 64 and meta["arch"]["window_codes"] == 4
    load_reward_model(ws)  # without a VQ-VAE to check against it still loads
