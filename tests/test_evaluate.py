"""racer evaluate: every system on whole held-out clips, with its metric parameters."""

import json

import pytest

from racer_agents.evaluate import METRICS, evaluate
from racer_env.cli import main
from racer_env.metrics.fgd import EXTRACTOR_SHA256, load_extractor


def test_evaluate_reports_every_metric_for_every_system(agent_workspace):
    result = evaluate(agent_workspace, ["racer-cql", "d3rlpy-DiscreteBC"], split="test", progress=False)
    assert list(result["systems"]) == ["ground_truth", "random", "racer-cql", "d3rlpy-DiscreteBC"]
    truth = result["systems"]["ground_truth"]
    for key in ("maje_mm", "mad_mm_s2", "fgd", "raw_fgd"):
        assert truth[key] == pytest.approx(0.0, abs=1e-6), key  # the real motion against itself
    for name, metrics in result["systems"].items():
        assert set(metrics) == set(METRICS), name
        assert 0.0 <= metrics["pmb_pct"] <= 100.0 and 0.0 <= metrics["beat_align"] <= 1.0
    assert result["systems"]["random"]["maje_mm"] > 0
    assert result["params"]["pmb_tolerance_s"] == 0.2 and result["params"]["beat_sigma_s"] == 0.3
    assert result["params"]["fgd_extractor_sha256"] == EXTRACTOR_SHA256


def test_evaluate_command_writes_json_and_markdown(agent_workspace, capsys):
    assert main(["evaluate", str(agent_workspace), "--agent", "bc", "--json", "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed["systems"]) == ["ground_truth", "random", "bc"]
    assert (agent_workspace / "eval" / "test.json").is_file()
    assert "| bc |" in (agent_workspace / "eval" / "test.md").read_text()


def test_shipped_extractor_is_verified_and_refuses_other_layouts():
    with pytest.raises(ValueError, match="trained on joints"):
        load_extractor(joint_names=["Hips", "Head"])
