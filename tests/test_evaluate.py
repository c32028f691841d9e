"""racer evaluate: every system on whole held-out clips, with its metric parameters."""

import json

import pytest

from racer_agents.cli import main
from racer_agents.evaluate import METRICS, REFERENCE_SYSTEMS, RULE_METRICS, evaluate
from racer_env.metrics.fgd import EXTRACTOR_SHA256, load_extractor


def test_evaluate_reports_every_metric_for_every_system(agent_workspace):
    result = evaluate(agent_workspace, ["racer-cql", "d3rlpy-DiscreteBC"], split="test", progress=False)
    assert list(result["systems"]) == [*REFERENCE_SYSTEMS, "racer-cql", "d3rlpy-DiscreteBC"]
    truth = result["systems"]["ground_truth"]
    for key in ("maje_mm", "mad_mm_s2", "fgd", "raw_fgd"):
        assert truth[key] == pytest.approx(0.0, abs=1e-6), key  # the real motion against itself
    for name, metrics in result["systems"].items():
        assert set(metrics) == {*METRICS, *RULE_METRICS, "ci95"}, name
        assert 0.0 <= metrics["pmb_pct"] <= 100.0 and 0.0 <= metrics["beat_align"] <= 1.0
        assert -1.0 <= metrics["sync"] <= 1.0 and 0.0 <= metrics["stroke_f1"] <= 1.0
        for key, ci in metrics["ci95"].items():  # every figure has its interval over clips, around it
            if ci is not None and metrics[key] is not None:
                assert ci[0] <= ci[1], (name, key)
        assert len(result["per_clip"][name]["maje_mm"]) == result["clips"]
        counts = result["per_clip"][name]  # the pooled rule F1s come back from the per-clip counts
        for event in ("stroke", "nod"):
            hits, found, annotated = (sum(counts[f"{event}_{part}"]) for part in ("hits", "detected", "annotated"))
            f1 = metrics[f"{event}_f1"]
            assert f1 == (pytest.approx(2 * hits / (found + annotated)) if found + annotated else None), (name, event)
    assert result["systems"]["random"]["maje_mm"] > 0
    assert result["params"]["pmb_tolerance_s"] == 0.2 and result["params"]["beat_sigma_s"] == 0.3
    assert result["params"]["fgd_extractor_sha256"] == EXTRACTOR_SHA256


def test_evaluate_command_writes_json_and_markdown(agent_workspace, capsys):
    assert main(["evaluate", str(agent_workspace), "--agent", "bc", "--json", "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed["systems"]) == [*REFERENCE_SYSTEMS, "bc"]
    assert (agent_workspace / "eval" / "test.json").is_file()
    assert "| bc |" in (agent_workspace / "eval" / "test.md").read_text()


def test_evaluate_videos_show_each_system_beside_the_real_motion(agent_workspace, tmp_path, capsys):
    from racer_env.corpus import Corpus
    from tests.test_export import _probe

    assert main(["evaluate", str(agent_workspace), "--agent", "bc", "--videos", "1", "--quiet"]) == 0
    first = Corpus.load(agent_workspace).clips("test")[0]
    videos = sorted(p.relative_to(agent_workspace / "eval" / "videos").as_posix()
                    for p in (agent_workspace / "eval" / "videos").rglob("*.mp4"))
    systems = [s for s in [*REFERENCE_SYSTEMS, "bc"] if s != "ground_truth"]  # (the real motion is in every video)
    assert videos == sorted(f"{s}/{first.id.replace('/', '-')}.mp4" for s in systems)
    info, n_frames = _probe(agent_workspace / "eval" / "videos" / "bc" / f"{first.id.replace('/', '-')}.mp4")
    assert "960x540" in info and "Audio: aac" in info and n_frames == first.n_frames - first.n_frames % 8
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", str(agent_workspace), "--videos", "-1"])
    assert stop.value.code == 2
    assert "argument --videos: expected an integer >= 0" in capsys.readouterr().err


def test_shipped_extractor_is_verified_and_refuses_other_layouts():
    with pytest.raises(ValueError, match="trained on joints"):
        load_extractor(joint_names=["Hips", "Head"])


def test_reference_systems_need_no_agent(trained_workspace):
    """Before any agent is trained, racer evaluate W measures the reference systems alone."""
    result = evaluate(trained_workspace, split="test", progress=False, bootstrap=20)
    assert list(result["systems"]) == list(REFERENCE_SYSTEMS)
    recon, truth = result["systems"]["reconstruction"], result["systems"]["ground_truth"]
    assert recon["maje_mm"] > 0 and truth["maje_mm"] == 0
    # the built-in speaker's annotation gives rule recovery: the corpus motion recovers its own strokes
    assert truth["stroke_recall"] == 1.0 and truth["stroke_precision"] == 1.0
    assert result["params"]["rules"]["stroke_tolerance_s"] == 0.2
