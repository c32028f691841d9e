"""Does the reward model score the arms and the head? Ablations of held-out clips (issue 13, deliverable 2).

Runs the real command line on a scratch copy of a built-in-speaker corpus:
  racer corpus synth W --minutes 60 --speakers 4 --seed S     (unless --corpus gives a built one to copy)
  racer train vqvae W                                          (skipped when current)
  racer train reward W                                         (timed; skipped when current)
  racer evaluate reward W --json
and tabulates the mean per-step reward of the test clips: real motion, random codes, the clips
resynthesised (same speech, same draws) without arm gestures, without head nods and with another valid
gesture draw, and the true codes shifted by -2 .. +2 code steps, with the fraction of the real - random gap
each keeps and the targets.

Usage:  python benchmarks/reward_ablations.py [--seed 0] [--corpus W0] [--workspace DIR]
                                              [--out benchmarks/results/reward_ablations]
Writes <out>.json and <out>.md; with several runs (--seed 0 --seed 1) one row block per seed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from common import run_racer

SYSTEMS = ("real", "random", "no_arms", "no_nods", "other_draw", "shift_-2", "shift_-1", "shift_+0", "shift_+1",
           "shift_+2")


@dataclass
class Args:
    seeds: list[int] = field(default_factory=lambda: [0])
    corpora: list[Path | None] = field(default_factory=list)  # a built workspace per seed (copied), or synthesise
    workspace: Path | None = None  # scratch root (default: a temporary directory)
    reuse: bool = False  # keep a model already in the scratch workspace even if its settings are not current
    out: Path = Path("benchmarks/results/reward_ablations")


def targets(ablations: dict) -> dict[str, dict]:
    """Each target of issue 13 (deliverable 2) with its measured value and pass/fail."""
    kept, mean = ablations["gap_kept"], ablations["mean"]
    slope = {side: mean[f"shift_{side}1"] > mean["random"] and mean[f"shift_{side}2"] < mean[f"shift_{side}1"]
             for side in ("-", "+")}
    return {
        "no_arms keeps <= 50 % of the gap": {"value": kept["no_arms"], "pass": kept["no_arms"] <= 0.5},
        "no_nods keeps <= 50 % of the gap": {"value": kept["no_nods"], "pass": kept["no_nods"] <= 0.5},
        "other_draw keeps >= 80 % of the gap": {"value": kept["other_draw"], "pass": kept["other_draw"] >= 0.8},
        "shift +-1 above random, +-2 below +-1": {"value": [mean[f"shift_{k:+d}"] for k in (-2, -1, 1, 2)],
                                                   "pass": all(slope.values())},
    }


def train(stage: str, ws: Path, seed: int, reuse: bool) -> float | None:
    """Train a stage (skipped by racer when current); with ``reuse`` keep any model already there (None)."""
    if reuse and (ws / stage / "model.pt").is_file():
        return None
    return run_racer("train", stage, str(ws), "--seed", str(seed), "--quiet")[1]


def one_seed(seed: int, corpus: Path | None, root: Path, reuse: bool = False) -> dict:
    """Train (or reuse) the VQ-VAE and reward model on a scratch copy of the seed's corpus and evaluate."""
    ws = root / f"seed{seed}"
    if not (ws / "corpus" / "manifest.json").is_file():
        if corpus is not None:
            ws.mkdir(parents=True, exist_ok=True)
            for part in ("corpus", "synth"):
                shutil.copytree(corpus / part, ws / part)
        else:
            run_racer("corpus", "synth", str(ws), "--minutes", "60", "--speakers", "4", "--seed", str(seed), "--quiet")
    vqvae_s, reward_s = train("vqvae", ws, seed, reuse), train("reward", ws, seed, reuse)
    reward = json.loads(run_racer("evaluate", "reward", str(ws), "--json")[0])
    return {"seed": seed, "workspace": str(ws), "corpus": str(corpus) if corpus else "synthesised",
            "vqvae_train_seconds": vqvae_s, "reward_train_seconds": reward_s, "reward": reward,
            "targets": targets(reward["ablations"])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, action="append", default=None, help="corpus and training seed (repeatable)")
    p.add_argument("--corpus", type=Path, action="append", default=None,
                   help="a built corpus workspace to copy for each --seed, in order (default: synthesise one)")
    p.add_argument("--workspace", type=Path, default=None, help="scratch root (default: a temporary directory)")
    p.add_argument("--reuse", action="store_true",
                   help="keep models already in the scratch workspace (their checksums are in the results)")
    p.add_argument("--out", type=Path, default=Args.out)
    ns = p.parse_args()
    seeds = ns.seed or [0]
    corpora = ns.corpus or [None] * len(seeds)
    if len(corpora) != len(seeds):
        raise SystemExit(f"give one --corpus per --seed ({len(seeds)} seeds, {len(corpora)} corpora)")
    args = Args(seeds=seeds, corpora=corpora, workspace=ns.workspace, reuse=ns.reuse, out=ns.out)
    root = args.workspace or Path(tempfile.mkdtemp(prefix="racer-reward-ablations-"))
    results = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                           "python": platform.python_version(), "torch": torch.__version__,
                           "platform": platform.platform()},
               "runs": [one_seed(s, c, root, args.reuse) for s, c in zip(args.seeds, args.corpora)]}
    write_reports(results, args.out)


def train_time(seconds: float | None) -> str:
    return "reused (trained before this run)" if seconds is None else f"{seconds:.0f} s (< 1 s: current, skipped)"


def write_reports(r: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(r, indent=2) + "\n")
    lines = []
    for run_ in r["runs"]:
        w, a = run_["reward"], run_["reward"]["ablations"]
        lines += [(f"### corpus seed {run_['seed']} ({a['params']['clips']} test clips, W = "
                  f"{a['params']['window_codes']} codes)"), "",
                  "| system | mean reward | gap kept |", "| --- | ---: | ---: |"]
        for name in SYSTEMS:
            kept = a["gap_kept"].get(name)
            lines.append(f"| {name} | {a['mean'][name]:.3f} | {'' if kept is None else f'{kept:.2f}'} |")
        lines += ["", "| target | value | pass |", "| --- | --- | --- |"]
        for name, t in run_["targets"].items():
            v = t["value"]
            shown = ", ".join(f"{x:.3f}" for x in v) if isinstance(v, list) else f"{v:.2f}"
            lines.append(f"| {name} | {shown} | {'yes' if t['pass'] else 'NO'} |")
        lines += ["", (f"R@1 {w['r_at_1']:.3f} (chance {w['params']['chance_r_at_1']:.3f}), R@5 {w['r_at_5']:.3f}, "
                       f"AUC shifted {w['auc_shifted']:.3f}, AUC mismatched {w['auc_mismatched']:.3f}; reward "
                       f"training {train_time(run_['reward_train_seconds'])}; reward model "
                       f"{w['params']['reward_sha256'][:12]}, VQ-VAE {w['params']['vqvae_sha256'][:12]}."), ""]
    m = r["machine"]
    lines.append(f"Machine: {m['cpus']} CPUs ({m['torch_threads']} torch threads), Python {m['python']}, torch "
                 f"{m['torch']}, {m['platform']}.")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
