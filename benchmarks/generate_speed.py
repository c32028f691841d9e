"""`racer generate` of 10 minutes of speech with every format (npz, bvh, mp4): wall time, x real time against the
10x target, and where the time goes; optionally side by side with another commit on the same machine.

The speech is the built-in synthetic speaker's voice (``racer_env.corpus.synth``: seed 0, speaker 0), ``--seconds``
long (default 600), built once and handed to every run, so that every run generates from the same samples. Each
run is a fresh process that calls ``racer_agents.generate.generate(None, audio, 16000, formats=("npz", "bvh",
"mp4"))`` (the shipped demo weights) once after a 2-second warm-up, with per-phase timers wrapped around the
functions generate calls (so the same timers work on older commits):

  * features: the speech features and observations (``speech_clip``);
  * rollout: the agent's greedy codes (``rollout_codes``);
  * decode: the VQ-VAE's decoding (``decode_long``);
  * npz, bvh: the two writers;
  * video setup: the video up to its first frame (forward kinematics, strokes, layout, the timeline's image);
  * video drawing: the time spent drawing every later frame (inside the frame generator);
  * video encoding (not overlapped): the rest of ``write_video`` - H.264/AAC encoding that the drawing did not hide,
    the wav, ffmpeg's finish;
  * other: the rest of the call (weights, audio preparation, the output directory).

Beside the phases: the CPU seconds (user + system) of the racer process and of ffmpeg (its child processes): on a
busy machine they move less than wall times do, and wall time is at least their sum over the cores; the peak
resident memory of the run and the SHA-256 of each file written (with ``--compare-ref``, whether the two commits
wrote the same bytes).

``--compare-ref REF`` times the same function from a ``git worktree`` of REF (made in a temporary directory and
removed afterwards), alternating the two commits run by run, so that both see the same machine and load: machines
differ by up to 2.2x, so compare ratios measured in one run, not figures of two runs.

Usage:  python benchmarks/generate_speed.py [--seconds 600] [--repeats 3] [--compare-ref HEAD~1]
                                            [--out benchmarks/results/generate_speed]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TARGET_X = 10.0  # seconds of speech per second of `racer generate` with every format
SAMPLE_RATE = 16000
FORMATS = ("npz", "bvh", "mp4")
PHASES = ("features", "rollout", "decode", "npz", "bvh", "video_setup", "video_drawing", "video_encoding", "other")


def speech_audio(seconds: float, seed: int = 0) -> np.ndarray:
    """(n,) float32 speech at 16 kHz: the built-in synthetic speaker ``seed``/0's voice, ``seconds`` long (the same
    samples every time)."""
    from racer_env.corpus.synth.speaker import speaker_style
    from racer_env.corpus.synth.speech import synthesize_speech

    rng = np.random.default_rng([seed, 0, 0, 0])
    return synthesize_speech(rng, seconds, speaker_style(seed, 0).voice, SAMPLE_RATE).audio


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM, MB; Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


# -- one run (in its own process, on the commit its PYTHONPATH names) -------------------------------------------
class _Timers:
    """Seconds per phase, accumulated by wrappers around the functions ``generate`` calls."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.ffmpeg_cpu_s = 0.0
        self.frames = 0

    def wrap(self, module, name: str, phase: str) -> None:
        """Replace ``module.name`` by a timed call that adds its wall time to ``phase``."""
        fn = getattr(module, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - start

        setattr(module, name, timed)

    def wrap_frames(self, module, name: str) -> None:
        """Replace the frame generator ``module.name`` by one that times each frame: the first (with the video's
        setup) as video_setup, the others as video_drawing."""
        fn = getattr(module, name)

        def timed(*args, **kwargs) -> Iterator[np.ndarray]:
            frames = fn(*args, **kwargs)
            while True:
                start = time.perf_counter()
                try:
                    frame = next(frames)
                except StopIteration:
                    return
                finally:
                    self.seconds["video_setup" if self.frames == 0 else "video_drawing"] += \
                        time.perf_counter() - start
                self.frames += 1
                yield frame

        setattr(module, name, timed)

    def wrap_video(self, module, name: str) -> None:
        """Time the whole video writer; what its setup and drawing did not take is video_encoding."""
        fn = getattr(module, name)

        def timed(*args, **kwargs):
            before = self.seconds["video_setup"] + self.seconds["video_drawing"]
            cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                wall = time.perf_counter() - start
                drawn = self.seconds["video_setup"] + self.seconds["video_drawing"] - before
                self.seconds["video_encoding"] += wall - drawn
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                self.ffmpeg_cpu_s += (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)

        setattr(module, name, timed)


def run_once(audio_path: Path) -> dict:
    """Time one ``generate`` of the audio in ``audio_path`` (.npy, 16 kHz) with every format, by phase."""
    import racer_agents.generate as gen
    import racer_env.export as export

    y = np.load(audio_path)
    timers = _Timers()
    gen.generate(None, y[:2 * SAMPLE_RATE], SAMPLE_RATE, formats=(), progress=False)  # imports, caches
    for name, phase in (("speech_clip", "features"), ("rollout_codes", "rollout"), ("decode_long", "decode")):
        timers.wrap(gen, name, phase)
    timers.wrap(export, "write_npz", "npz")
    timers.wrap(export, "write_motion_bvh", "bvh")
    timers.wrap_frames(export, "render_video_frames")
    timers.wrap_video(export, "write_video")
    with tempfile.TemporaryDirectory(prefix="racer-generate-speed-") as tmp:
        own = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        result = gen.generate(None, y, SAMPLE_RATE, out_dir=Path(tmp) / "out", formats=FORMATS, progress=False)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        digests = {fmt: hashlib.sha256(path.read_bytes()).hexdigest() for fmt, path in result.files.items()}
    timers.seconds["other"] = wall - sum(timers.seconds.values())
    return {"wall_s": wall, "speech_s": len(y) / SAMPLE_RATE, "x_real_time": len(y) / SAMPLE_RATE / wall,
            "phases_s": timers.seconds, "ffmpeg_cpu_s": timers.ffmpeg_cpu_s, "frames": timers.frames,
            "python_cpu_s": (after.ru_utime - own.ru_utime) + (after.ru_stime - own.ru_stime),
            "peak_rss_mb": peak_rss_mb(), "sha256": digests, "load_average": os.getloadavg()}


# -- the side-by-side runs --------------------------------------------------------------------------------------
def _git(*argv: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *argv], check=True, capture_output=True, text=True).stdout.strip()


def _run_tree(tree: Path, audio_path: Path) -> dict:
    """One run in a fresh process whose racer packages are ``tree``'s."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(audio_path),
                        "--worker-out", out.name], check=True, cwd=tree, env=env)
        return json.loads(Path(out.name).read_text())


def side_by_side(trees: dict[str, Path], audio_path: Path, repeats: int,
                 log: Callable[[str], None] = print) -> dict[str, list[dict]]:
    """``repeats`` runs of each tree, alternating (the order flips every repeat so neither always goes first)."""
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    for r in range(repeats):
        order = list(trees) if r % 2 == 0 else list(reversed(trees))
        for name in order:
            run = _run_tree(trees[name], audio_path)
            runs[name].append(run)
            log(f"repeat {r + 1}/{repeats} {name}: {run['wall_s']:.1f} s ({run['x_real_time']:.1f}x real time), "
                f"load average {run['load_average'][0]:.2f}")
    return runs


def summary(runs: list[dict]) -> dict:
    """Medians over the runs of one tree."""
    med = {k: statistics.median(r["phases_s"][k] for r in runs) for k in PHASES}
    wall = statistics.median(r["wall_s"] for r in runs)
    return {"wall_s": wall, "x_real_time": runs[0]["speech_s"] / wall, "phases_s": med,
            "ffmpeg_cpu_s": statistics.median(r["ffmpeg_cpu_s"] for r in runs),
            "python_cpu_s": statistics.median(r["python_cpu_s"] for r in runs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "sha256": runs[0]["sha256"],
            "deterministic": all(r["sha256"] == runs[0]["sha256"] for r in runs)}


def markdown(report: dict) -> str:
    s = report["summary"]
    names = list(s)
    rows = ["| phase (s, median) | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for k in PHASES:
        rows.append(f"| {k.replace('_', ' ')} | " + " | ".join(f"{s[n]['phases_s'][k]:.2f}" for n in names) + " |")
    rows.append("| **total** | " + " | ".join(f"**{s[n]['wall_s']:.2f}**" for n in names) + " |")
    rows.append("| x real time | " + " | ".join(f"{s[n]['x_real_time']:.1f}" for n in names) + " |")
    rows.append("| CPU of the racer process (s) | " + " | ".join(f"{s[n]['python_cpu_s']:.1f}" for n in names) + " |")
    rows.append("| CPU of ffmpeg (s) | " + " | ".join(f"{s[n]['ffmpeg_cpu_s']:.1f}" for n in names) + " |")
    rows.append("| peak RSS (MB) | " + " | ".join(f"{s[n]['peak_rss_mb']:.0f}" for n in names) + " |")
    cur = s["current"]
    met = "met" if cur["x_real_time"] >= TARGET_X else "NOT met"
    lines = rows + ["", f"{report['seconds']:.0f} s of speech, formats npz, bvh, mp4; {report['repeats']} runs each. "
                        f"Target >= {TARGET_X:.0f}x real time: {met} ({cur['x_real_time']:.1f}x)."]
    if "ref" in s:
        same = {fmt: s["ref"]["sha256"].get(fmt) == cur["sha256"].get(fmt) for fmt in cur["sha256"]}
        lines.append(f"Current / {report['ref']} ({report['ref_commit'][:10]}) wall time: "
                     f"{cur['wall_s'] / s['ref']['wall_s']:.2f} ({s['ref']['wall_s'] / cur['wall_s']:.2f}x faster); "
                     f"identical files: " + ", ".join(f"{f} {'yes' if v else 'no'}" for f, v in same.items()) + ".")
    lines.append(f"Machine: {report['machine']}; load average before the runs {report['load_average'][0]:.2f}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=600.0, help="length of the speech (s)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each commit")
    p.add_argument("--compare-ref", default=None, help="a git ref to time side by side (e.g. HEAD~1)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/generate_speed"))
    p.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker is not None:  # one run, on the commit of its PYTHONPATH
        args.worker_out.write_text(json.dumps(run_once(args.worker)))
        return
    sys.path[:0] = [str(REPO), str(Path(__file__).parent)]  # this checkout's racer (the speech, the results)
    from common import write_results

    report = {"seconds": args.seconds, "repeats": args.repeats, "load_average": os.getloadavg(),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
                         f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset: 1 for the runs)')}",
              "commit": _git("rev-parse", "HEAD")}
    with tempfile.TemporaryDirectory(prefix="racer-generate-speed-") as tmp:
        audio_path = Path(tmp) / "speech.npy"
        np.save(audio_path, speech_audio(args.seconds))
        trees = {"current": REPO}
        if args.compare_ref:
            report["ref"], report["ref_commit"] = args.compare_ref, _git("rev-parse", args.compare_ref)
            trees = {"ref": Path(tmp) / "ref", **trees}
            _git("worktree", "add", "--detach", str(trees["ref"]), report["ref_commit"])
        try:
            runs = side_by_side(trees, audio_path, args.repeats)
        finally:
            if "ref" in trees:
                _git("worktree", "remove", "--force", str(trees["ref"]))
                shutil.rmtree(trees["ref"], ignore_errors=True)
    report["runs"] = runs
    report["summary"] = {name: summary(r) for name, r in runs.items()}
    write_results(args.out, report, markdown)


if __name__ == "__main__":
    main()
