"""Make the pretrained demo weights shipped in racer_agents/pretrained/demo/, timing `racer demo` on the way.

Runs the README's main job (`racer demo W`, `demo` preset, seed 0) in a fresh workspace, then a second time to
time the skip-everything path, then copies the pruned workspace (corpus manifest and statistics, VQ-VAE, racer-cql)
into the package with pretrained.json: the demo config, the commit, the evaluation figures, stage timings and the
SHA-256 of every file. Writes benchmarks/results/demo.json and demo.md with the timings.

Usage:  python benchmarks/train_demo_weights.py [--workspace DIR] [--out racer_agents/pretrained/demo]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from racer_agents.demo import demo_config, run_demo
from racer_agents.pretrained import FILES, MANIFEST, PRETRAINED_DIR, pretrained_workspace
from racer_env.workspace import sha256_file, staged_directory, write_json_atomic


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", type=Path, default=None, help="demo workspace (default: a fresh temporary one)")
    p.add_argument("--out", type=Path, default=PRETRAINED_DIR)
    p.add_argument("--results", type=Path, default=Path("benchmarks/results/demo"))
    args = p.parse_args()
    ws = args.workspace or Path(tempfile.mkdtemp(prefix="racer-demo-")) / "W"
    os.environ.pop("MINARI_DATASETS_PATH", None)  # the demo's own W/datasets, as a newcomer's run
    config = demo_config("demo")
    runs = []
    for attempt in ("first run", "second run (inputs unchanged)"):
        start = time.perf_counter()
        stages = run_demo(ws, config, progress=False)
        runs.append({"run": attempt, "seconds": time.perf_counter() - start,
                     "stages": [{"name": s.name, "skipped": s.skipped, "seconds": s.seconds} for s in stages]})
        print(f"{attempt}: {runs[-1]['seconds']:.1f} s", flush=True)
    evaluation = json.loads((ws / "demo" / "evaluation.json").read_text())
    with staged_directory(args.out) as tmp:
        for rel in FILES:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ws / rel, tmp / rel)
        write_json_atomic(tmp / MANIFEST, {
            "made_by": "benchmarks/train_demo_weights.py (racer demo W, demo preset)", "commit": git_commit(),
            "config": asdict(config), "torch": torch.__version__,
            "evaluation": evaluation["agents"]["systems"],
            "codebook": {k: v for k, v in evaluation["codebook"].items() if k != "params"},
            "sha256": {rel: sha256_file(tmp / rel) for rel in FILES}})
    args.out.chmod(0o755)  # (the staging directory was created private)
    pretrained_workspace(args.out)  # verifies what was written
    size = sum((args.out / rel).stat().st_size for rel in (*FILES, MANIFEST))
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    args.results.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.results.with_suffix(".json"), {"machine": machine, "runs": runs, "shipped_bytes": size})
    lines = ["| stage | first run (s) | second run (s) |", "| --- | --- | --- |"]
    lines += [f"| {a['name']} | {a['seconds']:.1f} | {b['seconds']:.2f} ({'skipped' if b['skipped'] else 'ran'}) |"
              for a, b in zip(runs[0]["stages"], runs[1]["stages"])]
    lines += [f"| **total** | **{runs[0]['seconds']:.0f}** | **{runs[1]['seconds']:.1f}** |", "",
              f"`racer demo W` on {machine}; shipped weights {size / 1e6:.1f} MB in {args.out.name}/."]
    args.results.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
