"""Does the gesture codebook keep the beat strokes and head nods? (issue 13, deliverable 1)

For each corpus seed: build the demo corpus (``racer corpus synth W --minutes 60 --speakers 4 --seed S``) or
copy a ready-made one (``--corpora``) into a scratch workspace, train the `demo` VQ-VAE on its train split with
the current defaults (``new``) and, for the seeds in ``--old-seeds``, with the settings before issue 13
(``old``: the paper's loss on normalised rotation vectors only, decode smoothing sigma 1 frame), then run
``evaluate_codebook`` on the test split: ``stroke_recall``, ``stroke_peak_speed_ratio``, ``nod_recall`` and
MAJE, against the targets of the issue. Training is timed (wall seconds and steps per second; the machine
may be shared, so compare steps per second side by side).

Usage:  python benchmarks/codebook_fidelity.py [--seeds 0 1] [--corpora DIR DIR] [--old-seeds 0]
                                               [--scratch DIR] [--out benchmarks/results/codebook_fidelity]
Writes <out>.json and <out>.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from racer_env.corpus.build import synth_corpus
from racer_env.vqvae.evaluate import evaluate_codebook
from racer_env.vqvae.train import train_config_for, train_vqvae

#: issue 13 targets on the held-out clips (each a lower bound).
TARGETS = {"stroke_recall": 0.8, "stroke_peak_speed_ratio": 0.6, "nod_recall": 0.8}
#: the `demo` training settings before issue 13, as overrides of today's defaults.
OLD_SETTINGS = {"position_weight": 0.0, "peak_weight": 0.0, "smooth_sigma": 1.0}
MINUTES, SPEAKERS = 60.0, 4  # the demo corpus


@dataclass
class Args:
    seeds: list[int] = field(default_factory=lambda: [0, 1])  # corpus seeds (0: tuned on; 1: not)
    corpora: list[str] = field(default_factory=list)  # ready-made corpus workspaces, one per seed, copied
    old_seeds: list[int] = field(default_factory=list)  # seeds that also train the pre-issue-13 setting
    scratch: str = ""  # scratch directory (default: a temporary one)
    out: str = "benchmarks/results/codebook_fidelity"


def parse_args() -> Args:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=Args().seeds)
    p.add_argument("--corpora", nargs="*", default=[])
    p.add_argument("--old-seeds", type=int, nargs="*", default=[])
    p.add_argument("--scratch", default="")
    p.add_argument("--out", default=Args.out)
    args = Args(**vars(p.parse_args()))
    if args.corpora and len(args.corpora) != len(args.seeds):
        raise SystemExit(f"--corpora needs one workspace per seed ({len(args.seeds)}), got {len(args.corpora)}")
    return args


def corpus_workspace(args: Args, k: int, seed: int, scratch: Path) -> Path:
    """A scratch workspace holding corpus seed ``seed``: a copy of ``--corpora[k]`` or a fresh synthesis."""
    base = scratch / f"seed{seed}"
    if args.corpora:
        src = Path(args.corpora[k])
        params = json.loads((src / "corpus" / "manifest.json").read_text())["source"]["params"]
        if (params["seed"], params["minutes"], params["speakers"]) != (seed, MINUTES, SPEAKERS):
            raise SystemExit(f"{src}: corpus of seed {params['seed']}, {params['minutes']} min, {params['speakers']} "
                             f"speakers; expected seed {seed}, {MINUTES} min, {SPEAKERS} speakers")
        shutil.copytree(src / "corpus", base / "corpus")
        shutil.copytree(src / "synth", base / "synth")
    else:
        synth_corpus(base, minutes=MINUTES, speakers=SPEAKERS, seed=seed, workers=1, progress=False)
    return base


def train_and_evaluate(corpus_ws: Path, name: str, overrides: dict) -> dict:
    """Train the `demo` VQ-VAE with ``overrides`` into a copy of ``corpus_ws``; its timing and codebook figures."""
    ws = corpus_ws.parent / f"{corpus_ws.name}-{name}"
    shutil.copytree(corpus_ws, ws)
    config = train_config_for("demo", **overrides)
    result = train_vqvae(ws, config, force=True, progress=False)
    metrics = evaluate_codebook(ws)
    checks = {k: metrics[k] is not None and metrics[k] >= v for k, v in TARGETS.items()}
    return {"train_config": asdict(config), "train_seconds": result["seconds"],
            "steps_per_second": result["steps"] / result["seconds"], "codebook": metrics, "targets_met": checks,
            "pass": all(checks.values())}


def markdown(results: dict) -> str:
    lines = ["# Codebook fidelity (issue 13, deliverable 1)", "",
             ("Demo VQ-VAE trained on the train split of the demo corpus (60 min, 4 speakers) of each seed; figures on "
             "the held-out test clips. `python benchmarks/codebook_fidelity.py` "
             f"(machine: {results['machine']['cpus']} CPUs, {results['machine']['torch_threads']} torch threads)."), "",
             "Targets: " + ", ".join(f"`{k}` >= {v}" for k, v in TARGETS.items()) + "; MAJE reported.", "",
             ("| seed | setting | stroke_recall | peak speed ratio (decoded / corpus mm/s) | nod_recall | MAJE mm "
             "| perplexity | train s (steps/s) | pass |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for seed, settings in results["seeds"].items():
        for name, r in settings.items():
            m = r["codebook"]
            speeds = m["stroke_peak_speed_mm_s"]
            lines.append(f"| {seed} | {name} | {m['stroke_recall']:.2f} | {m['stroke_peak_speed_ratio']:.2f} "
                         f"({speeds['decoded']:.0f} / {speeds['corpus']:.0f}) | {m['nod_recall']:.2f} "
                         f"| {m['maje_mm']:.1f} | {m['perplexity']:.0f} | {r['train_seconds']:.0f} "
                         f"({r['steps_per_second']:.1f}) | {'yes' if r['pass'] else 'no'} |")
    new = results["settings"]["new"]
    lines += ["", "Settings: `new` = today's `demo` defaults (" + ", ".join(f"{k}={new[k]}" for k in OLD_SETTINGS)
              + "); `old` = " + ", ".join(f"{k}={v}" for k, v in OLD_SETTINGS.items()) + " (before issue 13).",
              "Corpus motion itself: stroke recall " + ", ".join(
                  f"seed {s} {next(iter(v.values()))['codebook']['corpus_stroke_recall']:.2f}"
                  for s, v in results["seeds"].items()) + " (the detector's ceiling).", ""]
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="racer-fidelity-"))
    scratch.mkdir(parents=True, exist_ok=True)
    settings = {"new": {}, "old": OLD_SETTINGS}
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()},
        "targets": TARGETS, "corpus": {"minutes": MINUTES, "speakers": SPEAKERS, "split": "test"},
        "settings": {name: asdict(train_config_for("demo", **over)) for name, over in settings.items()},
        "seeds": {},
    }
    start = time.perf_counter()
    for k, seed in enumerate(args.seeds):
        corpus_ws = corpus_workspace(args, k, seed, scratch)
        results["seeds"][str(seed)] = {name: train_and_evaluate(corpus_ws, name, over)
                                       for name, over in settings.items() if name == "new" or seed in args.old_seeds}
        for name, r in results["seeds"][str(seed)].items():
            m = r["codebook"]
            print(f"seed {seed} {name}: stroke_recall {m['stroke_recall']:.2f} peak ratio "
                  f"{m['stroke_peak_speed_ratio']:.2f} nod_recall {m['nod_recall']:.2f} MAJE {m['maje_mm']:.1f} mm "
                  f"train {r['train_seconds']:.0f} s pass {r['pass']}", flush=True)
    results["wall_seconds"] = time.perf_counter() - start
    results["pass"] = all(r["pass"] for s in results["seeds"].values() for n, r in s.items() if n == "new")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(results), encoding="utf-8")
    print(f"wrote {out}.json and {out}.md")


if __name__ == "__main__":
    main()
