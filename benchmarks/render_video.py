"""The gesture video: how long a 30-second clip takes to render, stills of a held-out clip, and the report page.

Takes a workspace built by ``racer demo W`` (the built-in corpus, `demo` preset) and:

  * times ``write_video`` of its first held-out clip (racer-cql's gestures beside the real motion, the speech and
    its annotated stressed syllables on the timeline): drawing alone and drawing + H.264/AAC encoding, ``--repeats``
    times each, median reported against the target of 10 s for 30 s of video on 2 cores;
  * writes stills of that video (read back from the mp4 with ffmpeg, i.e. what a viewer sees) to
    ``<out>_still_<t>s.png``: at ``--stills`` seconds, or by default at the first two strokes of racer-cql that a
    stroke of the real motion matches within 0.2 s (after the first 3 s, so that the timeline shows context);
  * with a Chromium installed, a screenshot of ``W/report.html`` as a browser shows it, ``<out>_report.png``.

Run nothing else at the same time: the figures are wall-clock times.

Usage:  python benchmarks/render_video.py W [--repeats 3] [--stills T ...] [--out benchmarks/results/render_video]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import machine, write_results

from racer_agents.generate import generate
from racer_env.corpus.store import Corpus
from racer_env.export import ffmpeg_exe, write_video
from racer_env.video import Speech, Take, corpus_reference, figure_of, render_video_frames

TARGET_S = 10.0  # seconds to render 30 s of video on 2 cores
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")


def held_out_inputs(ws: Path) -> dict:
    """The first test clip: its speech, real motion, stressed syllables, and racer-cql's gestures for it."""
    corpus = Corpus.load(ws)
    clip_id = corpus.clip_ids("test")[0]
    clip = corpus.clip(clip_id)
    wav = Path(corpus.record(clip_id)["source"]["wav"])
    result = generate(ws, wav, agent="racer-cql", formats=(), progress=False)
    rate = int(corpus.manifest["audio_features"]["sample_rate"])
    from racer_env.audio.features import load_audio

    reference, stressed = corpus_reference(ws, clip)
    return {"clip": clip_id, "wav": wav, "audio": load_audio(wav, rate), "rate": rate, "fps": corpus.fps,
            "rotations": result.rotations, "skeleton": corpus.skeleton, "reference": reference, "stressed": stressed}


def time_rendering(x: dict, out_dir: Path, repeats: int) -> dict:
    """Median wall seconds of drawing the frames alone and of the whole write_video (drawing and encoding)."""
    takes = [x["reference"], Take("generated: racer-cql", x["rotations"], x["skeleton"])]
    speech = Speech(x["audio"], x["rate"], x["stressed"])
    draw, write = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        n_frames = sum(1 for _ in render_video_frames(takes, x["fps"], speech))
        draw.append(time.perf_counter() - start)
        start = time.perf_counter()
        write_video(out_dir / "clip.mp4", x["rotations"], x["skeleton"], x["fps"], x["audio"], x["rate"],
                    label="generated: racer-cql", reference=x["reference"], stressed=x["stressed"], progress=False)
        write.append(time.perf_counter() - start)
    return {"frames": n_frames, "video_seconds": n_frames / x["fps"], "draw_s": draw, "write_s": write,
            "draw_median_s": statistics.median(draw), "write_median_s": statistics.median(write)}


def matched_strokes(x: dict, n: int = 2, after: float = 3.0, tolerance: float = 0.2) -> list[float]:
    """Times (s) of racer-cql's first ``n`` strokes after ``after`` s with a real stroke within ``tolerance``."""
    generated = figure_of(Take("generated", x["rotations"], x["skeleton"]), x["fps"]).stroke_times
    real = figure_of(x["reference"], x["fps"]).stroke_times
    hits = [float(t) for t in generated if t > after and len(real) and np.abs(real - t).min() <= tolerance]
    return [round(t, 2) for t in hits[:n]]


def stills(video: Path, seconds: list[float], out: Path) -> list[str]:
    """PNG stills of ``video`` at ``seconds``, decoded from the mp4."""
    paths = []
    for t in seconds:
        path = out.parent / f"{out.name}_still_{t:g}s.png"
        subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-ss", str(t), "-i", str(video),
                        "-frames:v", "1", str(path)], check=True)
        paths.append(str(path))
    return paths


def screenshot(ws: Path, out: Path) -> str | None:
    """A screenshot of W/report.html in headless Chromium (None without a Chromium)."""
    browser = next((p for p in map(shutil.which, BROWSERS) if p), None)
    if browser is None:
        print("no Chromium installed: no screenshot of the report (apt install chromium-headless-shell)")
        return None
    path = out.parent / f"{out.name}_report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1100,2600", "--virtual-time-budget=20000", f"--screenshot={path}",
                    (ws / "report.html").resolve().as_uri()], check=True, capture_output=True, timeout=120)
    return str(path)


def markdown(r: dict) -> str:
    t = r["timing"]
    met = "met" if t["write_median_s"] < TARGET_S * t["video_seconds"] / 30.0 else "NOT met"
    return "\n".join([
        "| measurement | value |", "| --- | ---: |",
        f"| video length (s) | {t['video_seconds']:.1f} ({t['frames']} frames, 960 x 540) |",
        f"| drawing the frames, median of {len(t['draw_s'])} (s) | {t['draw_median_s']:.2f} |",
        f"| write_video: drawing + H.264/AAC encoding, median (s) | {t['write_median_s']:.2f} |",
        f"| x real time | {t['video_seconds'] / t['write_median_s']:.1f} |", "",
        (f"Target: a 30-second clip in under {TARGET_S:.0f} s on 2 cores: {met}. Clip {r['clip']} (held-out, "
         f"racer-cql beside the real motion). Machine: {r['machine']}."), ""])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workspace", type=Path, help="a workspace built by racer demo")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--stills", type=float, nargs="*", default=None, help="seconds (default: matched strokes)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/render_video"))
    args = p.parse_args()
    x = held_out_inputs(args.workspace)
    with tempfile.TemporaryDirectory() as tmp:
        timing = time_rendering(x, Path(tmp), args.repeats)
        at = args.stills if args.stills is not None else (matched_strokes(x) or [6.0, 13.0])
        images = stills(Path(tmp) / "clip.mp4", at, args.out)
    report = {"clip": x["clip"], "timing": timing, "stills": images,
              "report_screenshot": screenshot(args.workspace, args.out), "machine": machine(),
              "target_s_per_30s": TARGET_S, "stressed_syllables": 0 if x["stressed"] is None else len(x["stressed"]),
              "frames_per_second": float(np.round(timing["frames"] / timing["write_median_s"], 1))}
    write_results(args.out, report, markdown)


if __name__ == "__main__":
    main()
