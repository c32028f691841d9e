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
    assert [r.skipped for r in results] == [False] * 10
    assert len(lines) == 20 and lines[0].startswith("[1/10]") and lines[-1].startswith("[10/10] report: done")
    report = (ws / "report.md").read_text()
    systems = "bc|racer-cql|ground_truth|reconstruction|random|nearest_neighbour"
    table = [line for line in report.splitlines() if re.match(rf"\| ({systems}) \|", line)]
    # the metrics table and the rule-recovery table (reference systems and agents), then the reward panel's rows of
    # reconstruction, random, nearest_neighbour and the two agents
    assert len(table) == 2 * 6 + 5
    panel = json.loads((ws / "demo" / "reward_panel.json").read_text())
    assert set(panel["systems"]) >= {"real_motion", "replaced_50", "codes_late_2", "frames_late_4", "mismatched",
                                     "racer-cql", "bc"} and "all_pass" in panel["targets"]
    assert f"| racer-cql | {panel['systems']['racer-cql']['mean_reward']:.3f} |" in report
    evaluation = json.loads((ws / "demo" / "evaluation.json").read_text())
    cql = evaluation["agents"]["systems"]["racer-cql"]
    assert f"{cql['maje_mm']:.3f}" in report  # the table holds the measured figures
    for png in re.findall(r"\]\((report/[^)]+\.png)\)", report):
        assert (ws / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    artefacts = re.findall(r"`([^`/ ][^` ]+\.(?:pt|mp4|bvh|npz|json|md))`", report)
    assert len(artefacts) >= 8 and all((ws / a).exists() for a in artefacts)  # (relative to W: W can move)
    assert any(a.endswith(".mp4") for a in artefacts) and str(ws) not in report


def test_second_run_skips_every_stage(demo_run):
    ws, _, _ = demo_run
    before = (ws / "report.md").stat().st_mtime_ns
    results = run_demo(ws, demo_config("tiny"), progress=False, log=lambda _: None)
    assert [r.skipped for r in results] == [True] * 10
    assert (ws / "report.md").stat().st_mtime_ns == before


def test_a_stage_whose_outputs_are_gone_runs_again(demo_run, tmp_path):
    """Issue 29: after `rm -r W/report` the demo said "up to date" and report.html pointed at missing files; a deleted
    W/demo/video/<clip>.bvh was never rebuilt (only the mp4s were checked). Each stage checks its whole set."""
    import shutil

    ws = tmp_path / "W"
    shutil.copytree(demo_run[0], ws)
    shutil.rmtree(ws / "report")
    results = run_demo(ws, demo_config("tiny"), progress=False, log=lambda _: None)
    assert [r.name for r in results if not r.skipped] == ["report"]
    html = (ws / "report.html").read_text()
    assert all((ws / src).is_file() for src in re.findall(r'src="(report/[^"]+)"', html))
    assert all((ws / png).is_file() for png in re.findall(r"\]\((report/[^)]+\.png)\)", (ws / "report.md").read_text()))
    bvh = next((ws / "demo" / "video").glob("*.bvh"))
    bvh.unlink()
    results = run_demo(ws, demo_config("tiny"), progress=False, log=lambda _: None)
    ran = [r.name for r in results if not r.skipped]  # (the report too, unless the new mp4s have the same bytes)
    assert ran[0] == "videos of held-out clips" and bvh.is_file()
    shutil.rmtree(ws / "eval")  # (the report links W/eval/test.json and .md)
    results = run_demo(ws, demo_config("tiny"), progress=False, log=lambda _: None)
    assert [r.name for r in results if not r.skipped][0] == "evaluation on the test split"
    assert (ws / "eval" / "test.json").is_file() and (ws / "eval" / "test.md").is_file()


def test_changed_input_reruns_the_stages_after_it(demo_run, tmp_path):
    import shutil

    ws = tmp_path / "W"
    shutil.copytree(demo_run[0], ws)
    results = run_demo(ws, demo_config("tiny", agent_steps=12), progress=False, log=lambda _: None)
    ran = [r.name for r in results if not r.skipped]
    assert ran[0].startswith("agent racer-cql") and ran[-1] == "report" and len(ran) == 6


def test_demo_cli(tmp_path, capsys):
    assert racer(["demo", str(tmp_path / "W"), "--preset", "tiny", "--quiet"]) == 0
    out = capsys.readouterr().out
    # (the dataset stage may find the same dataset, built from identical inputs, in the session's Minari root)
    assert "[10/10] report: done" in out and "racer demo: 10 stages (" in out
    assert (tmp_path / "W" / "report.md").is_file()


def test_demo_config_checks():
    with pytest.raises(ValueError, match="presets"):
        demo_config("paper")
    with pytest.raises(ValueError, match="minutes > 0"):
        DemoConfig(minutes=0)


# -- the HTML report in a real browser ---------------------------------------------------------------------
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
#: appended to a copy of the page: once every video has its metadata, what rendered is written into the DOM
PROBE = """<script>
(function () {
  function box(e) { var r = e.getBoundingClientRect(); return {w: r.width, h: r.height}; }
  function report() {
    var out = {tables: [], images: [], videos: []};
    document.querySelectorAll("table").forEach(function (t) { var b = box(t); b.rows = t.rows.length; out.tables.push(b); });
    document.querySelectorAll("img").forEach(function (i) { var b = box(i); b.natural = i.naturalWidth; out.images.push(b); });
    document.querySelectorAll("video").forEach(function (v) {
      var b = box(v); b.duration = v.duration; b.videoWidth = v.videoWidth; b.error = v.error ? v.error.code : null;
      out.videos.push(b);
    });
    var pre = document.createElement("pre"); pre.id = "racer-probe"; pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  var videos = Array.prototype.slice.call(document.querySelectorAll("video"));
  var pending = videos.length;
  function one() { pending -= 1; if (pending === 0) report(); }
  videos.forEach(function (v) {
    if (v.readyState >= 1 || v.error) { one(); } else { v.addEventListener("loadedmetadata", one); v.addEventListener("error", one); }
  });
  if (videos.length === 0) { window.addEventListener("load", report); }
})();
</script>"""


def _browser() -> str | None:
    import shutil

    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def _headless(browser: str, url: str, *args: str):
    import subprocess

    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=20000", *args, url],
                          capture_output=True, text=True, timeout=120, check=True)


def test_report_html_renders_in_a_real_browser(demo_run, tmp_path):
    """report.html opened from disk in headless Chromium: tables, plots and playable videos, no console error."""
    import os

    browser = _browser()
    if browser is None:
        if os.environ.get("RACER_REQUIRE_BROWSER"):
            pytest.fail(f"RACER_REQUIRE_BROWSER is set but none of {BROWSERS} is installed")
        pytest.skip("no Chromium installed (Debian: apt install chromium-headless-shell); the browser check needs one")
    ws = demo_run[0]
    page = (ws / "report.html").read_text()
    assert "http://" not in page and "https://" not in page  # nothing fetched from a network
    probe = ws / ".report-probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    try:
        run = _headless(browser, probe.as_uri(), "--window-size=1280,4000", "--dump-dom")
    finally:
        probe.unlink()
    found = re.search(r'<pre id="racer-probe">(.*?)</pre>', run.stdout)
    assert found, f"the probe did not report; stderr: {run.stderr[-2000:]}"
    rendered = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert [line for line in run.stderr.splitlines() if ":CONSOLE" in line] == []
    tables = [line for line in (ws / "report.md").read_text().splitlines() if line.startswith("| ---")]
    assert len(rendered["tables"]) == len(tables) >= 3
    assert all(t["w"] > 200 and t["h"] > 40 and t["rows"] >= 3 for t in rendered["tables"])
    plots = re.findall(r'<img[^>]+src="(report/[^"]+\.png)"', page)
    assert len(rendered["images"]) == len(plots) == 4
    assert all(i["natural"] > 100 and i["w"] > 100 and i["h"] > 100 for i in rendered["images"])
    clips = demo_run[1][-2].detail.split(", ")  # the video stage's videos
    assert len(rendered["videos"]) == len(clips) >= 1
    for video in rendered["videos"]:
        assert video["error"] is None and video["videoWidth"] == 960 and video["w"] >= 640 and video["h"] >= 360
        assert video["duration"] == pytest.approx(10.0, abs=0.2)  # the tiny corpus's 10-second clips
    shot = tmp_path / "report.png"
    _headless(browser, (ws / "report.html").as_uri(), "--window-size=1100,2400", f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
