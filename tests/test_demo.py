"""``racer demo W``: the whole pipeline at the tiny preset, its report, and skipping when nothing changed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from racer_agents.cli import main as racer
from racer_agents.demo import DemoConfig, demo_config, run_demo


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    ws = tmp_path_factory.mktemp("demo") / "W"
    lines: list[str] = []
    results = run_demo(ws, demo_config("tiny"), progress=False, log=lines.append)
    return ws, results, lines


def test_demo_runs_every_stage_and_reports(demo_run):
    ws, results, lines = demo_run
    assert [r.skipped for r in results] == [False] * 9
    assert len(lines) == 18 and lines[0].startswith("[1/9]") and lines[-1].startswith("[9/9] report: done")
    report = (ws / "report.md").read_text()
    systems = "bc|racer-cql|ground_truth|reconstruction|random|nearest_neighbour"
    table = [line for line in report.splitlines() if re.match(rf"\| ({systems}) \|", line)]
    assert len(table) == 2 * 6  # the metrics table and the rule-recovery table, reference systems and agents
    evaluation = json.loads((ws / "demo" / "evaluation.json").read_text())
    cql = evaluation["agents"]["systems"]["racer-cql"]
    assert f"{cql['maje_mm']:.3f}" in report  # the table holds the measured figures
    for png in re.findall(r"\]\((report/[^)]+\.png)\)", report):
        assert (ws / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    artefacts = re.findall(r"`(/[^`]+\.(?:pt|mp4|bvh|npz|json|md))`", report)
    assert len(artefacts) >= 8 and all(Path(a).exists() for a in artefacts)
    assert any(a.endswith(".mp4") for a in artefacts)


def test_second_run_skips_every_stage(demo_run):
    ws, _, _ = demo_run
    before = (ws / "report.md").stat().st_mtime_ns
    results = run_demo(ws, demo_config("tiny"), progress=False, log=lambda _: None)
    assert [r.skipped for r in results] == [True] * 9
    assert (ws / "report.md").stat().st_mtime_ns == before


def test_changed_input_reruns_the_stages_after_it(demo_run, tmp_path):
    import shutil

    ws = tmp_path / "W"
    shutil.copytree(demo_run[0], ws)
    results = run_demo(ws, demo_config("tiny", agent_steps=12), progress=False, log=lambda _: None)
    ran = [r.name for r in results if not r.skipped]
    assert ran[0].startswith("agent racer-cql") and ran[-1] == "report" and len(ran) == 5


def test_demo_cli(tmp_path, capsys):
    assert racer(["demo", str(tmp_path / "W"), "--preset", "tiny", "--quiet"]) == 0
    out = capsys.readouterr().out
    # (the dataset stage may find the same dataset, built from identical inputs, in the session's Minari root)
    assert "[9/9] report: done" in out and "racer demo: 9 stages (" in out
    assert (tmp_path / "W" / "report.md").is_file()


def test_demo_config_checks():
    with pytest.raises(ValueError, match="presets"):
        demo_config("paper")
    with pytest.raises(ValueError, match="minutes > 0"):
        DemoConfig(minutes=0)
