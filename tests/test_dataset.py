"""The Minari dataset: replay through the environment, metadata, versioning, the minari CLI, no partial output."""

import json
import subprocess
import sys
from pathlib import Path

import minari
import numpy as np
import pytest

from racer_agents.cli import main
from racer_env.dataset import builder
from racer_env.dataset.builder import DatasetError, build_dataset
from racer_env.dataset.episodes import SOURCES, AugmentConfig
from racer_env.envs.gesture import GestureSynthesisEnv
from racer_env.reward.scorer import RewardScorer

SMALL = AugmentConfig(segment_codes=6, stride=6)


def episode_options(dataset) -> list[dict]:
    return [m["options"] for m in dataset.storage.get_episode_metadata(dataset.episode_indices)]


def test_every_episode_replays_in_the_environment(gesture_dataset, trained_workspace):
    dataset, _ = gesture_dataset
    env = GestureSynthesisEnv(str(trained_workspace), segment_codes=6)
    options = episode_options(dataset)
    for episode, opts in zip(dataset.iterate_episodes(), options):
        obs, _ = env.reset(options={"clip": str(opts["clip"]), "start": int(opts["start"])})
        for key in ("audio", "codes"):
            np.testing.assert_array_equal(obs[key], episode.observations[key][0])
        for t, action in enumerate(episode.actions):
            obs, reward, terminated, truncated, _ = env.step(int(action))
            for key in ("audio", "codes"):
                np.testing.assert_array_equal(obs[key], episode.observations[key][t + 1])
            assert reward == pytest.approx(episode.rewards[t], abs=1e-5)
            assert terminated == episode.terminations[t] and truncated == episode.truncations[t]


def test_episodes_record_their_source_and_metadata_is_complete(gesture_dataset, trained_workspace):
    dataset, result = gesture_dataset
    sources = [SOURCES[int(ep.infos["source"][0])] for ep in dataset.iterate_episodes()]
    assert set(sources) == {"ground_truth", "random_substitution", "nn_substitution", "time_shift",
                            "codes_from_other_clip"}
    assert sources.count("ground_truth") * 4 == len(sources) - sources.count("ground_truth")
    meta = dataset.storage.metadata
    scorer = RewardScorer.from_workspace(trained_workspace)
    assert meta["vqvae_sha256"] == scorer.vqvae_sha256 and meta["reward_sha256"] == scorer.reward_sha256
    assert meta["ref_min_score"] == pytest.approx(result["ref_min_score"])
    assert meta["ref_max_score"] == pytest.approx(result["ref_max_score"])
    for key in ("description", "author", "code_permalink", "requirements", "algorithm_name"):
        assert meta.get(key), key
    env_spec = json.loads(meta["env_spec"])
    assert env_spec["id"] == "racer/GestureSynthesis-v0"
    assert env_spec["kwargs"]["workspace"] == str(Path(trained_workspace).resolve())
    assert json.loads(meta["eval_env_spec"])["id"] == "racer/GestureSynthesisClip-v0"
    assert dataset.spec.env_spec.kwargs["segment_codes"] == 6


def test_ids_are_versioned_and_never_overwritten(gesture_dataset, trained_workspace):
    _, result = gesture_dataset
    again = build_dataset(trained_workspace, result["id"], SMALL, progress=False)
    assert again["skipped"]
    with pytest.raises(DatasetError, match="never overwritten"):
        build_dataset(trained_workspace, result["id"], AugmentConfig(segment_codes=6, stride=6, augment=1),
                      progress=False)
    with pytest.raises(DatasetError, match="namespace/name-v0"):
        build_dataset(trained_workspace, "no-version", SMALL, progress=False)
    # the default id moves to the next free version
    first = build_dataset(trained_workspace, None, AugmentConfig(segment_codes=6, stride=6, augment=0),
                          progress=False)
    second = build_dataset(trained_workspace, None, AugmentConfig(segment_codes=6, stride=6, augment=1),
                           progress=False)
    assert first["id"] == "racer/synth/augmented-v0" and second["id"] == "racer/synth/augmented-v1"


def test_minari_cli_lists_and_shows_the_dataset(gesture_dataset, minari_datasets_path):
    _, result = gesture_dataset
    exe = Path(sys.executable).parent / "minari"
    listed = subprocess.run([str(exe), "list", "local"], capture_output=True, text=True, timeout=120, check=False)
    assert listed.returncode == 0 and result["id"] in listed.stdout.replace("\n", "")
    shown = subprocess.run([str(exe), "show", result["id"]], capture_output=True, text=True, timeout=120, check=False)
    assert shown.returncode == 0 and "racer/GestureSynthesis-v0" in shown.stdout


def test_a_failed_build_leaves_nothing(trained_workspace, monkeypatch):
    real = builder._create_minari_dataset

    def create_then_fail(*args, **kwargs):
        real(*args, **kwargs)
        raise RuntimeError("disk full")

    monkeypatch.setattr(builder, "_create_minari_dataset", create_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        build_dataset(trained_workspace, "racer/tiny/failed-v0", SMALL, progress=False)
    assert not minari.storage.get_dataset_path("racer/tiny/failed-v0").exists()
    assert "racer/tiny/failed-v0" not in minari.list_local_datasets()


def test_policy_rollouts_and_cli(trained_workspace, capsys):
    no_aug = AugmentConfig(segment_codes=6, stride=6, augment=0)
    result = build_dataset(trained_workspace, "racer/tiny/policy-v0", no_aug, policy=lambda obs: int(obs["codes"][-1]),
                           policy_id="repeat-last", progress=False)
    assert result["sources"] == {"ground_truth": result["episodes"] // 2, "policy": result["episodes"] // 2}
    with pytest.raises(DatasetError, match="never overwritten"):  # another policy is another dataset
        build_dataset(trained_workspace, "racer/tiny/policy-v0", no_aug, policy=lambda obs: 0, policy_id="zeros",
                      progress=False)
    with pytest.raises(ValueError, match="policy_id"):
        build_dataset(trained_workspace, "racer/tiny/policy-v1", no_aug, policy=lambda obs: 0, progress=False)
    assert main(["dataset", "build", str(trained_workspace), "--id", "racer/tiny/cli-v0", "--segment-codes", "6",
                 "--augment", "1", "--quiet"]) == 0
    assert "racer/tiny/cli-v0" in capsys.readouterr().out


def test_lookahead_is_set_at_build_and_kept_by_the_agents(trained_workspace, tmp_path, capsys):
    """``racer dataset build --lookahead A``: observations of P + 1 + A code steps, recorded in the dataset, and an
    agent trained on it acts on that observation (its recorded settings), in the environment built from them."""
    from racer_agents.agent import load_agent
    from racer_agents.train import agent_config_for, train_agent

    ws = tmp_path / "W"
    import shutil

    shutil.copytree(trained_workspace, ws)
    assert main(["dataset", "build", str(ws), "--id", "racer/tiny/lookahead0-v0", "--segment-codes", "6",
                 "--augment", "1", "--lookahead", "0", "--quiet"]) == 0
    dataset = minari.load_dataset("racer/tiny/lookahead0-v0")
    episode = next(iter(dataset.iterate_episodes()))
    assert episode.observations["audio"].shape[1] == 3 + 1 + 0  # P + 1 + A code steps
    train_agent(ws, agent_config_for("tiny", algo="bc", dataset="racer/tiny/lookahead0-v0", steps=4), progress=False)
    agent = load_agent(ws, "bc")
    assert agent.obs_cfg.lookahead == 0
    env = GestureSynthesisEnv(str(ws), split="valid", lookahead=agent.obs_cfg.lookahead)
    obs, _ = env.reset(seed=0)
    assert 0 <= agent.act(obs) < env.action_space.n
    with pytest.raises(SystemExit):  # a negative look-ahead is refused by the argument parser
        main(["dataset", "build", str(ws), "--lookahead", "-1"])
    assert "--lookahead" in capsys.readouterr().err
