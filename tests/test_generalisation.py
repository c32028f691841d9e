"""What makes the agents generalise: windows at any start step, history dropout, the conservative term on the
human steps, validation-based model selection, whole-clip datasets and level-invariant audio observations."""

import json

import numpy as np
import pytest
import torch

from racer_agents.losses import discrete_cql_loss
from racer_agents.segments import Segments
from racer_agents.train import agent_config_for, history_noise, train_agent, with_history_noise
from racer_env.audio.features import AudioFeatureConfig, audio_features
from racer_env.checkpoint import load_checkpoint
from racer_env.envs.episode_data import observation_audio
from tests.conftest import copy_workspace


def _segments(lengths=(5, 3, 4), sources=(0, 1, 0)) -> Segments:
    n = sum(lengths)
    steps = torch.arange(n)
    return Segments(audio=steps[:, None].float().repeat(1, 2), prev_codes=steps, actions=steps + 100,
                    rewards=steps.float() / 10, dones=torch.zeros(n), starts=np.cumsum([0, *lengths[:-1]]),
                    lengths=np.array(lengths), source=np.array(sources), sources=("ground_truth", "time_shift"))


def test_windows_start_at_every_step_of_every_long_enough_episode():
    seg = _segments()
    assert seg.window_starts(3).tolist() == [0, 1, 2, 5, 8, 9]  # episode 1 (3 steps) fits once, at its start
    assert seg.window_starts(4).tolist() == [0, 1, 8]
    w = seg.windows(np.array([1, 8]), 4)
    assert w.actions.tolist() == [[101, 102, 103, 104], [108, 109, 110, 111]]
    assert w.audio.shape == (2, 4, 2) and w.human.tolist() == [[1.0] * 4, [1.0] * 4]
    assert seg.windows(np.array([5]), 3).human.tolist() == [[0.0] * 3]
    human = seg.of_source("ground_truth")
    assert human.lengths.tolist() == [5, 4] and human.actions.tolist() == [100, 101, 102, 103, 104, 108, 109, 110, 111]
    assert human.window_starts(5).tolist() == [0]
    with pytest.raises(ValueError, match="no episode has the 6 steps"):
        seg.window_starts(6)
    with pytest.raises(ValueError, match="unknown episode source"):
        seg.of_source("policy")


def test_history_noise_replaces_the_chosen_share_and_repeats_with_the_seed():
    shape = (64, 15)
    assert (history_noise(np.random.default_rng(0), shape, 0.0, 16) == -1).all()
    noise = history_noise(np.random.default_rng(0), shape, 0.8, 16)
    assert torch.equal(noise, history_noise(np.random.default_rng(0), shape, 0.8, 16))
    assert 0.75 < (noise >= 0).float().mean().item() < 0.85 and noise.max().item() < 16
    prev = torch.full(shape, 99)
    out = with_history_noise(prev, noise)
    assert torch.equal(out[noise >= 0], noise[noise >= 0]) and (out[noise < 0] == 99).all()


def test_conservative_term_can_cover_the_human_steps_only():
    q = torch.tensor([[[1.0, 2.0], [3.0, 0.0]]])
    args = (q, q.clone(), torch.tensor([[1, 1]]), torch.zeros(1, 2), torch.tensor([[0.0, 1.0]]))
    gap = [np.log(np.exp(1) + np.exp(2)) - 2, np.log(np.exp(3) + 1) - 0]
    everywhere = discrete_cql_loss(*args, alpha=1.0)
    assert everywhere.conservative.item() == pytest.approx(np.mean(gap), rel=1e-5)
    assert discrete_cql_loss(*args, conservative_mask=torch.ones(1, 2)).conservative.item() == pytest.approx(
        np.mean(gap), rel=1e-5)
    first_only = discrete_cql_loss(*args, conservative_mask=torch.tensor([[1.0, 0.0]]))
    assert first_only.conservative.item() == pytest.approx(gap[0], rel=1e-5)
    assert first_only.td.item() == pytest.approx(everywhere.td.item())  # the TD term still covers every step


def test_validation_keeps_the_best_weights_and_stops_early(agent_workspace, gesture_dataset, tmp_path):
    ws = copy_workspace(agent_workspace, tmp_path / "W")
    cfg = agent_config_for("tiny", algo="bc", dataset=gesture_dataset[0].spec.dataset_id, steps=60, valid_every=5,
                           patience=2, lr=3e-2, agent_name="bc-valid")
    result = train_agent(ws, cfg, force=True, progress=False)
    rows = [json.loads(line) for line in (ws / "agents" / "bc-valid" / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in rows if "valid/score" in r]
    assert len(valid) >= 3
    for r in valid:  # the default selection score: the validation mean reward
        assert r["valid/score"] == pytest.approx(r["valid/mean_reward"], abs=1e-6)
    scores = [r["valid/score"] for r in valid]
    best = valid[int(np.argmax(scores))]["step"]
    meta, _, _ = load_checkpoint(ws / "agents" / "bc-valid" / "model.pt", "agent")
    assert meta["selection"]["best_step"] == best == result["best_step"]
    assert meta["selection"]["best"] == pytest.approx(max(scores), abs=1e-5)
    if result["stopped_early_at"]:  # two validations without improvement after the best one
        assert result["stopped_early_at"] == valid[-1]["step"] == best + 2 * 5
    else:
        assert valid[-1]["step"] == 60
    with pytest.raises(ValueError, match="valid_every >= 0"):
        agent_config_for("tiny", valid_every=-1)


def test_the_selection_score_is_the_chosen_validation_figures(agent_workspace):
    from racer_agents.agent import RandomAgent
    from racer_agents.evaluate import Validation
    from racer_agents.train import SELECTIONS
    from racer_env.envs.episode_data import ObservationConfig
    from racer_env.errors import RacerError
    from racer_env.training import weight_settings

    figures = {}
    for select in SELECTIONS:
        validation = Validation(agent_workspace, ObservationConfig(), "valid", select=SELECTIONS[select])
        figures[select] = validation(RandomAgent(validation.env.data.n_codes, seed=0))
    assert figures["mean_reward"]["valid/score"] == pytest.approx(figures["mean_reward"]["valid/mean_reward"])
    both = figures["mean_reward+sync"]
    assert both["valid/score"] == pytest.approx(both["valid/mean_reward"] + both["valid/sync"])
    assert both["valid/sync"] != 0  # (so that the two scores differ)
    with pytest.raises(RacerError, match="select"):
        agent_config_for("tiny", select="sync")
    # the new default is part of the weights' identity; the old behaviour's value is not (its weights stay current)
    assert weight_settings(agent_config_for("tiny"))["select"] == "mean_reward"
    assert "select" not in weight_settings(agent_config_for("tiny", select="mean_reward+sync"))


def test_whole_clip_datasets_hold_one_episode_per_training_clip(trained_workspace, tmp_path, monkeypatch):
    from racer_env.dataset.builder import build_dataset
    from racer_env.dataset.episodes import AugmentConfig
    from racer_env.envs.episode_data import load_env_data

    ws = copy_workspace(trained_workspace, tmp_path / "W")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    result = build_dataset(ws, "racer/whole/augmented-v0", AugmentConfig(augment=2), progress=False)
    data = load_env_data(str(ws))
    train = data.split_ids("train")
    assert result["sources"]["ground_truth"] == len(train) and result["episodes"] == 3 * len(train)
    assert result["steps"] == 3 * sum(data.clip(c).n_codes - 1 for c in train)


def test_audio_observation_does_not_depend_on_the_recording_level():
    rng = np.random.default_rng(0)
    sr = 16000
    t = np.arange(3 * sr) / sr
    y = (0.3 * rng.standard_normal(len(t)) * (1.2 + np.sin(2 * np.pi * 1.5 * t))).astype(np.float32)
    cfg = AudioFeatureConfig()
    stats = type("Stats", (), {"audio_std": np.ones(cfg.n_mels + 2)})()
    loud, quiet = (observation_audio(audio_features(g * y, cfg), stats, 8) for g in (1.0, 0.05))
    assert loud.shape == (len(audio_features(y, cfg)) // 8, 8, cfg.n_mels + 2)
    np.testing.assert_allclose(loud, quiet, atol=2e-3)
    flat = loud.reshape(-1, cfg.n_mels + 2)
    np.testing.assert_allclose(flat.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(flat.std(0), 1.0, atol=1e-3)


def test_soft_targets_spread_a_share_of_each_label_over_its_neighbours():
    from racer_agents.losses import behaviour_cloning_loss, soft_target_matrix

    neighbours = torch.tensor([[1, 2], [0, 2], [1, 0]])
    targets = soft_target_matrix(neighbours, 0.3)
    assert targets[0].tolist() == pytest.approx([0.7, 0.15, 0.15]) and torch.allclose(targets.sum(1), torch.ones(3))
    logits = torch.randn(2, 4, 3)
    actions = torch.randint(0, 3, (2, 4))
    hard = soft_target_matrix(neighbours, 0.0)
    assert behaviour_cloning_loss(logits, actions, hard).item() == pytest.approx(
        behaviour_cloning_loss(logits, actions).item(), rel=1e-5)
    q = torch.tensor([[[1.0, 2.0, 0.0]]])
    parts = discrete_cql_loss(q, q, torch.tensor([[1]]), torch.zeros(1, 1), torch.ones(1, 1), soft_targets=targets)
    label = 0.15 * 1.0 + 0.7 * 2.0 + 0.15 * 0.0  # row 1: itself 0.7, codes 0 and 2 0.15 each
    assert parts.conservative.item() == pytest.approx(np.log(np.exp(1) + np.exp(2) + 1) - label, rel=1e-5)
