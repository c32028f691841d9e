"""D4RL-style dataset tiers, normalised scores, and ``racer benchmark`` on a user's own agent class."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from racer_agents.cli import main
from racer_env.dataset.builder import TIERS
from tests.conftest import copy_workspace


class MostCommonCode:
    """A user's agent for ``racer benchmark --algo tests.test_tiers:MostCommonCode``: fit counts the dataset's
    actions; act plays the most common one (a seed-dependent tie-break keeps seeds apart)."""

    def fit(self, dataset, seed: int = 0) -> None:
        counts = Counter(int(a) for episode in dataset.iterate_episodes() for a in episode.actions)
        ranked = [code for code, _ in counts.most_common(2)]
        self.code = ranked[seed % len(ranked)]

    def reset(self) -> None:
        pass

    def act(self, observation: dict) -> int:
        return self.code


class NoFit:
    def act(self, observation: dict) -> int:
        return 0


@pytest.fixture(scope="module")
def tiers_workspace(trained_workspace, tmp_path_factory):
    """A copy of the trained tiny workspace with every tier built (its datasets in its own Minari root)."""
    from racer_agents.tiers import build_tier

    root = tmp_path_factory.mktemp("tiers")
    ws = copy_workspace(trained_workspace, root / "W")
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root / "minari")
    try:
        built = {tier: build_tier(ws, tier, preset="tiny", progress=False) for tier in TIERS}
        yield ws, built
    finally:
        os.environ["MINARI_DATASETS_PATH"] = old


def _load(dataset_id: str):
    import minari

    return minari.load_dataset(dataset_id)


def test_every_tier_builds_with_its_sources_and_passes_minari_show(tiers_workspace):
    _, built = tiers_workspace
    sources = {tier: _load(b["id"]).storage.metadata["sources"] for tier, b in built.items()}
    counts = {tier: Counter(sources[tier][int(s)] for ep in _load(b["id"]).iterate_episodes()
                            for s in ep.infos["source"][:1]) for tier, b in built.items()}
    n = counts["expert"]["ground_truth"]
    assert n >= 1 and set(counts["expert"]) == {"ground_truth"}
    assert counts["random"] == {"random": n} and counts["medium"] == {"policy": n}
    assert counts["medium-expert"] == {"ground_truth": n, "policy": n}
    assert set(counts["medium-replay"]) == {"replay"} and counts["medium-replay"]["replay"] >= 4
    replay_spec = json.loads(_load(built["medium-replay"]["id"]).storage.metadata["env_spec"])
    assert replay_spec["kwargs"]["segment_codes"] == 6  # (the tiny DQN's episodes: 6 codes)
    policy = _load(built["medium"]["id"]).storage.metadata["racer_policy"]
    assert policy["agent"] == "bc-medium" and policy["kept_step"] >= 1
    assert counts["augmented"]["ground_truth"] == n and len(counts["augmented"]) == 5
    for tier, b in built.items():
        assert b["id"] == f"racer/synth/{tier}-v0"
        meta = _load(b["id"]).storage.metadata
        assert meta["racer_tier"] == tier
        assert (meta["ref_min_score"], meta["ref_max_score"]) == (built["expert"]["ref_min_score"],
                                                                 built["expert"]["ref_max_score"])
        minari_cli = Path(sys.executable).with_name("minari")
        shown = subprocess.run([str(minari_cli), "show", b["id"]], capture_output=True, text=True, timeout=120,
                               env={**os.environ, "COLUMNS": "200"}, check=False)
        assert shown.returncode == 0 and b["id"] in shown.stdout, shown.stderr[-2000:]
    assert built["medium"]["agent"]["model"].endswith("bc-medium/model.pt")
    assert built["medium-replay"]["agent"]["model"].endswith("dqn-medium/model.pt")


def test_normalised_score_is_0_for_random_codes_and_1_for_the_truth_stepped_in_the_environment(tiers_workspace):
    """The reference scores, computed by labelling, against the evaluation environment stepped by hand."""
    import gymnasium as gym
    import minari

    from racer_env.corpus import Corpus

    ws, built = tiers_workspace
    dataset = _load(built["medium"]["id"])
    env = gym.make("racer/GestureSynthesisClip-v0", workspace=str(ws), split="test")
    rng = np.random.default_rng([0, 2])  # the random reference's draws (racer_env.dataset.episodes.random_episodes)
    truth, random = [], []
    for clip in Corpus.load(ws).clips("test"):
        codes = env.unwrapped.data.clip(clip.id).codes
        random_codes = rng.integers(0, env.unwrapped.data.n_codes, len(codes) - 1)
        for actions, out in ((codes[1:], truth), (random_codes, random)):
            env.reset(options={"clip": clip.id, "start": 0})
            out.append(np.sum([env.step(int(a))[1] for a in actions]))  # the clip's return
    meta = dataset.storage.metadata
    assert np.mean(truth) == pytest.approx(meta["ref_max_score"], abs=1e-4)  # (batched float32 rewards: last bits)
    assert np.mean(random) == pytest.approx(meta["ref_min_score"], abs=1e-4)
    tolerance = 2e-4 / abs(meta["ref_max_score"] - meta["ref_min_score"])  # the same, in normalised units
    assert minari.get_normalized_score(dataset, np.mean(truth)) == pytest.approx(1.0, abs=tolerance)
    assert minari.get_normalized_score(dataset, np.mean(random)) == pytest.approx(0.0, abs=tolerance)


def test_the_medium_agent_stops_at_the_target_score_or_keeps_the_nearest(tiers_workspace):
    from racer_env.checkpoint import load_checkpoint

    ws, _ = tiers_workspace
    meta, _, _ = load_checkpoint(ws / "agents" / "bc-medium" / "model.pt", "agent")
    assert meta["selection"]["metric"] == "-|valid/normalised_score - 50|"
    rows = [json.loads(line) for line in (ws / "agents" / "bc-medium" / "metrics.jsonl").read_text().splitlines()]
    scores = [(r["step"], r["valid/normalised_score"]) for r in rows if "valid/normalised_score" in r]
    best = min(scores, key=lambda s: abs(s[1] - 50.0))
    assert meta["selection"]["best_step"] == best[0]
    reached = [step for step, score in scores if score >= 50.0]
    assert not reached or scores[-1][0] == reached[0]  # it stopped at the first validation that reached 50


def test_benchmark_of_a_user_class(tiers_workspace, capsys):
    ws, built = tiers_workspace
    argv = ["benchmark", str(ws), "--algo", "tests.test_tiers:MostCommonCode", "--tier", "expert", "--tier", "random",
            "--seeds", "2", "--preset", "tiny", "--json", "--quiet"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    protocol = report["protocol"]
    assert protocol["algo"] == "tests.test_tiers:MostCommonCode" and protocol["seeds"] == [0, 1]
    assert protocol["datasets"]["expert"]["id"] == built["expert"]["id"] and len(protocol["corpus_sha256"]) == 64
    assert protocol["clips"] and protocol["code"].startswith("racer ")
    for tier in ("expert", "random"):
        t = report["tiers"][tier]
        assert set(t["per_seed"]) == {"0", "1"}
        for seed in ("0", "1"):
            per_clip = t["per_seed"][seed]["per_clip"]
            assert len(per_clip["normalised_score"]) == len(protocol["clips"])
            ref = t["dataset"]
            expected = 100 * (np.array(per_clip["return"]) - ref["ref_min_score"]) / (
                ref["ref_max_score"] - ref["ref_min_score"])
            np.testing.assert_allclose(per_clip["normalised_score"], expected)
            steps = np.array(per_clip["return"]) / np.array(per_clip["mean_reward"])
            np.testing.assert_allclose(steps, np.round(steps))  # return = mean reward x the clip's steps
        point, low, high = t["summary"]["normalised_score"]
        assert low <= point <= high
        assert t["summary"]["fgd"] is not None and t["summary"]["stroke_f1"] is not None
    assert (ws / "benchmark" / "tests.test_tiers-MostCommonCode_expert+random_seeds2_stepsdefault_tiny.md").is_file()
    assert main(argv) == 0  # the same command on the same machine: the same numbers
    assert json.loads(capsys.readouterr().out)["tiers"] == report["tiers"]


def test_benchmark_refuses_bad_algorithms_in_one_line(tiers_workspace, capsys):
    ws, _ = tiers_workspace
    for algo, message in (("no_such_module_xyz:Agent", "cannot import no_such_module_xyz"),
                          ("tests.test_tiers:Missing", "has no Missing"),
                          ("tests.test_tiers:NoFit", "NoFit lacks fit"),
                          ("sarsa", "--algo must be one of")):
        assert main(["benchmark", str(ws), "--algo", algo, "--tier", "expert", "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err



def test_the_command_line_offers_every_tier():
    from racer_agents.cli import TIER_CHOICES

    assert TIER_CHOICES == TIERS  # (kept apart so that parsing the command line imports no torch)
