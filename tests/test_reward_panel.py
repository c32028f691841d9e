"""``racer evaluate reward W --panel``: the reward-validity panel, its shares and targets, on the tiny workspace."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from racer_agents.cli import main as racer
from racer_agents.reward_panel import (
    ANCHORS,
    CODE_DELAYS,
    FRAME_DELAYS,
    REPLACED,
    codes_reward,
    delayed,
    mismatched_codes,
    panel_markdown,
    panel_summary,
    replaced_codes,
    reward_panel,
)

PANEL_KEYS = {"split", "clips", "clip_ids", "systems", "max_share_gap", "max_share_gap_system",
              "spearman_reward_stroke_f1", "real_reconstruction_reward_ratio", "retrieval_r_at_1", "targets",
              "reasons", "skipped", "params"}
TARGETS = {"share_gap", "spearman", "real_motion", "retrieval_r_at_1", "all_pass"}


@pytest.fixture(scope="module")
def panel(agent_workspace):
    return reward_panel(agent_workspace, retrieval={"r_at_1": 0.7, "params": {"candidates": 32}}, split="test",
                        seed=0, progress=False)


def _figures(rewards: dict[str, float], strokes: dict[str, float]) -> dict[str, dict]:
    return {n: {"mean_reward": rewards[n], "stroke_f1": strokes[n], "nod_f1": 0.5, "sync": 0.1} for n in rewards}


# -- the summary on constructed figures --------------------------------------------------------------------------
STROKES = {"random": 0.2, "reconstruction": 0.6, "real_motion": 0.9, "replaced_50": 0.4, "codes_late_2": 0.3,
           "bc": 0.35, "nearest_neighbour": 0.25}


def test_shares_gap_and_targets_of_a_reward_that_tracks_the_strokes():
    rewards = {"random": 0.1, "reconstruction": 0.5, "real_motion": 0.48, "replaced_50": 0.32, "codes_late_2": 0.18,
               "bc": 0.26, "nearest_neighbour": 0.14}
    out = panel_summary(_figures(rewards, STROKES), {"r_at_1": 0.65, "params": {"candidates": 32}})
    s = out["systems"]
    assert s["random"]["reward_share"] == 0 and s["reconstruction"]["reward_share"] == 1
    assert s["replaced_50"]["reward_share"] == pytest.approx(0.55)  # (0.32 - 0.1) / (0.5 - 0.1)
    assert s["replaced_50"]["stroke_share"] == pytest.approx(0.5)  # (0.4 - 0.2) / (0.6 - 0.2)
    assert s["bc"]["share_gap"] == pytest.approx(abs(0.4 - 0.375))
    gaps = {n: abs(v["reward_share"] - v["stroke_share"]) for n, v in s.items() if n not in ANCHORS}
    assert out["max_share_gap"] == pytest.approx(max(gaps.values()))
    assert out["max_share_gap_system"] == max(gaps, key=gaps.get) == "real_motion"  # 0.95 vs 1.75
    assert out["spearman_reward_stroke_f1"] == pytest.approx(1 - 6 * 2 / (7 * 48))  # (real and reconstruction swap)
    assert out["real_reconstruction_reward_ratio"] == pytest.approx(0.96)
    t = out["targets"]
    assert set(t) == TARGETS
    assert t["spearman"]["pass"] and t["real_motion"]["pass"] and t["retrieval_r_at_1"]["pass"]
    assert not t["share_gap"]["pass"] and not t["all_pass"]  # (the real motion places more strokes than it earns)
    json.dumps(out, allow_nan=False)


def test_a_reward_that_ignores_the_motion_fails_the_targets_on_constructed_figures():
    rewards = dict.fromkeys(STROKES, 0.4)  # the same reward whatever the motion
    out = panel_summary(_figures(rewards, STROKES), {"r_at_1": 1 / 32})
    assert all(v["reward_share"] is None for v in out["systems"].values())
    assert out["max_share_gap"] is None and "max_share_gap" in out["reasons"]
    assert out["spearman_reward_stroke_f1"] is None and "spearman_reward_stroke_f1" in out["reasons"]
    t = out["targets"]
    assert not t["share_gap"]["pass"] and not t["spearman"]["pass"] and not t["retrieval_r_at_1"]["pass"]
    assert not t["all_pass"]


def test_summary_without_annotation_or_retrieval_says_why():
    strokes = dict.fromkeys(STROKES)  # no stroke F1 anywhere
    rewards = {n: 0.1 + 0.05 * i for i, n in enumerate(STROKES)}
    out = panel_summary(_figures(rewards, strokes), None, has_rules=False)
    assert out["systems"]["codes_late_2"]["reward_share"] is not None
    assert out["systems"]["codes_late_2"]["stroke_share"] is None
    for key in ("stroke_f1", "max_share_gap", "spearman_reward_stroke_f1", "retrieval_r_at_1"):
        assert key in out["reasons"]
    out = panel_summary({**_figures(rewards, STROKES), "bc": {"mean_reward": math.nan, "stroke_f1": 0.3}})
    assert out["systems"]["bc"]["mean_reward"] is None  # strict JSON: NaN becomes null
    json.dumps(out, allow_nan=False)
    out = panel_summary(_figures(rewards, STROKES), {"r_at_1": 0.9, "params": {"candidates": 8}})
    assert out["retrieval_r_at_1"] == 0.9 and not out["targets"]["retrieval_r_at_1"]["pass"]  # (among 8, not 32)
    assert "among 8" in out["reasons"]["retrieval_r_at_1"]
    with pytest.raises(ValueError, match="anchor"):
        panel_summary({"bc": {"mean_reward": 0.3}})


def test_code_sequences():
    codes = np.arange(10)
    assert delayed(codes, 2).tolist() == [0, 0, 0, 1, 2, 3, 4, 5, 6, 7]
    frames = np.arange(12.0).reshape(6, 2)
    assert delayed(frames, 1).tolist() == [[0, 1], [0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert mismatched_codes(codes, np.array([7, 8, 9])).tolist() == [0, 8, 9, 7, 8, 9, 7, 8, 9, 7]
    out = replaced_codes(codes + 100, 0.5, 50, np.random.default_rng(0))
    assert out[0] == 100 and (out != codes + 100).sum() == round(0.5 * 9)  # (random codes < 50 never equal)


# -- the panel on the tiny workspace ------------------------------------------------------------------------------
def test_panel_has_every_system_and_key(panel, agent_workspace):
    from racer_agents.agent import list_agents

    assert set(panel) == PANEL_KEYS
    expected = ["reconstruction", "random", "real_motion", *(f"replaced_{round(100 * p)}" for p in REPLACED),
                *(f"codes_late_{k}" for k in CODE_DELAYS), *(f"frames_late_{k}" for k in FRAME_DELAYS),
                "mismatched", "nearest_neighbour", *list_agents(agent_workspace)]
    assert list(panel["systems"]) == expected  # (the test split has one clip: mismatched plays another split's)
    for name, s in panel["systems"].items():
        assert {"mean_reward", "stroke_f1", "nod_f1", "sync", "reward_share", "stroke_share", "share_gap"} <= set(s)
        assert -1 <= s["mean_reward"] <= 1 and s["stroke_f1"] is not None  # (the built-in speaker is annotated)
    low, high = panel["systems"]["random"]["mean_reward"], panel["systems"]["reconstruction"]["mean_reward"]
    bc = panel["systems"]["bc"]
    if high > low:
        assert bc["reward_share"] == pytest.approx((bc["mean_reward"] - low) / (high - low))
    assert panel["retrieval_r_at_1"] == 0.7 and panel["targets"]["retrieval_r_at_1"]["pass"]
    assert panel["params"]["random_draws"] >= 2  # (the random anchor over several draws)
    assert set(panel["targets"]) == TARGETS
    json.dumps(panel, allow_nan=False)
    table = panel_markdown(panel)
    assert all(f"| {name} |" in table for name in expected) and "largest gap" in table


def test_codes_reward_is_the_environments(agent_workspace):
    from racer_agents.evaluate import rollout_clip
    from racer_agents.retrieval import NearestNeighbourAgent
    from racer_env.envs.gesture import GestureSynthesisEnv

    env = GestureSynthesisEnv(str(agent_workspace), split="test", segment_codes=None)
    clip_id = env.data.split_ids("test")[0]
    codes, reward = rollout_clip(env, NearestNeighbourAgent(env.data), clip_id)
    assert codes_reward(env.data, env.data.clip(clip_id), codes) == pytest.approx(reward, abs=1e-6)


def test_cli_panel_json_is_the_panel_and_deterministic(panel, agent_workspace, capsys):
    assert racer(["evaluate", "reward", str(agent_workspace), "--panel", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == PANEL_KEYS
    assert out["systems"] == panel["systems"]  # the same seed, the same panel
    assert out["retrieval_r_at_1"] is None and "retrieval_r_at_1" in out["reasons"]  # (too few windows for 32)
    assert racer(["evaluate", "reward", str(agent_workspace), "--split", "valid"]) == 2  # (--split needs --panel)


def test_a_reward_that_ignores_the_motion_fails_the_targets(trained_workspace, monkeypatch):
    import torch

    from racer_env.reward.model import RewardModel

    score = RewardModel.score

    def blind(self, motion: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return score(self, torch.zeros_like(motion), audio)  # the motion never reaches the reward

    monkeypatch.setattr(RewardModel, "score", blind)
    out = reward_panel(trained_workspace, retrieval={"r_at_1": 0.7}, split="test", agents=[], progress=False)
    s = out["systems"]
    assert s["random"]["mean_reward"] == s["reconstruction"]["mean_reward"] == s["replaced_50"]["mean_reward"]
    assert all(v["reward_share"] is None for v in s.values()) and "reward_share" in out["reasons"]
    assert not out["targets"]["share_gap"]["pass"] and not out["targets"]["all_pass"]


def test_panel_on_a_corpus_without_annotation(trained_workspace, tmp_path):
    from racer_env.corpus.store import Corpus
    from racer_env.metrics.rules import annotation_path
    from tests.conftest import copy_workspace

    ws = copy_workspace(trained_workspace, tmp_path / "W")
    for clip_id in Corpus.load(ws).clip_ids():
        annotation_path(ws, clip_id).unlink()  # (a real corpus: no annotation)
    out = reward_panel(ws, split="valid", agents=[], progress=False)
    assert all(v["stroke_f1"] is None and v["stroke_share"] is None for v in out["systems"].values())
    assert all(v["sync"] is not None for v in out["systems"].values())
    assert {"codes_late_4", "frames_late_6", "mismatched"} <= set(out["systems"])
    assert out["max_share_gap"] is None and "stroke_f1" in out["reasons"] and out["params"]["rules"] is None
    assert not out["targets"]["all_pass"]
    json.dumps(out, allow_nan=False)
    with pytest.raises(ValueError, match="held-out"):
        reward_panel(ws, split="train", agents=[], progress=False)
