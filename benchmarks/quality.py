"""Quality run: the paper's Tables 1-2 on the built-in corpus, several seeds, test split.

Systems, all on the same Minari dataset: ground truth, random codes, the supervised GPT (bc), racer-cql, and d3rlpy
DiscreteCQL and DiscreteBC with GPT encoders of the same preset. The corpus, VQ-VAE, reward model and dataset are
built once (seed 0); every agent is trained with each seed in its own copy of the workspace and evaluated with
``racer evaluate`` on the test split. Writes <out>.json, <out>.md (mean +- std over seeds) and learning-curve PNGs.

Usage:  python benchmarks/quality.py [--seeds 0 1 2] [--gpt-steps 1000] [--d3rlpy-steps 400]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from racer_agents.cli import main as racer
from racer_agents.evaluate import METRICS, evaluate
from racer_agents.train import agent_config_for, train_agent

AGENTS = ("bc", "racer-cql", "d3rlpy:DiscreteCQL", "d3rlpy:DiscreteBC")


def prepare(base: Path) -> None:
    for argv in (["corpus", "synth", str(base), "--minutes", "10", "--speakers", "2", "--seed", "0", "--quiet"],
                 ["train", "vqvae", str(base), "--preset", "demo", "--quiet"],
                 ["train", "reward", str(base), "--preset", "demo", "--quiet"],
                 ["dataset", "build", str(base), "--quiet"]):
        if racer(argv):
            raise SystemExit(f"racer {' '.join(argv)} failed")


def run_seed(base: Path, seed: int, gpt_steps: int, d3rlpy_steps: int) -> dict:
    ws = base.parent / f"seed{seed}"
    if ws.exists():
        shutil.rmtree(ws)
    shutil.copytree(base, ws, ignore=shutil.ignore_patterns("datasets", "agents", "eval"))
    times = {}
    for algo in AGENTS:
        steps = d3rlpy_steps if algo.startswith("d3rlpy") else gpt_steps
        start = time.perf_counter()
        train_agent(ws, agent_config_for("demo", algo=algo, seed=seed, steps=steps), progress=False)
        times[algo] = time.perf_counter() - start
        print(f"seed {seed}: {algo} trained in {times[algo]:.0f} s", flush=True)
    result = evaluate(ws, [a.replace(":", "-") for a in AGENTS], split="test", seed=seed, progress=False)
    result["train_seconds"] = times
    result["workspace"] = str(ws)
    return result


def aggregate(runs: list[dict]) -> dict:
    systems = runs[0]["systems"].keys()
    out = {}
    for name in systems:
        out[name] = {}
        for key in METRICS:
            values = [r["systems"][name][key] for r in runs if r["systems"][name][key] is not None]
            out[name][key] = {"mean": float(np.mean(values)), "std": float(np.std(values))} if values else None
    return out


def learning_curves(runs: list[dict], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for name, keys in (("racer-cql", ("losses/td", "losses/conservative", "q/data")), ("bc", ("losses/total",))):
        fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3), squeeze=False)
        for run in runs:
            rows = [json.loads(line) for line in
                    (Path(run["workspace"]) / "agents" / name / "metrics.jsonl").read_text().splitlines()]
            for ax, key in zip(axes[0], keys):
                ax.plot([r["step"] for r in rows], [r[key] for r in rows], label=f"seed {run['seed']}")
                ax.set_title(f"{name}: {key}")
                ax.set_xlabel("step")
        axes[0][0].legend()
        fig.tight_layout()
        path = out.parent / f"{out.name}_{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def markdown(summary: dict, runs: list[dict], args) -> str:
    head = "| system | " + " | ".join(METRICS) + " |"
    rows = [head, "|" + " --- |" * (len(METRICS) + 1)]
    for name, metrics in summary.items():
        cells = []
        for key in METRICS:
            m = metrics[key]
            digits = 3 if m is None or abs(m["mean"]) < 100 else 1
            cells.append("n/a" if m is None else f"{m['mean']:.{digits}f} ± {m['std']:.{digits}f}")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    r, b = summary["racer-cql"], summary["bc"]
    rows += ["", (f"Seeds {args.seeds}; test split ({runs[0]['clips']} clips of the 10-minute built-in corpus); GPT agents "
             f"{args.gpt_steps} steps, d3rlpy agents {args.d3rlpy_steps} steps (`demo` preset)."),
             (f"Paper's claim, checked: racer-cql FGD / supervised FGD = {r['fgd']['mean'] / b['fgd']['mean']:.2f} "
             f"(target <= 0.85); PMB racer-cql - supervised = {r['pmb_pct']['mean'] - b['pmb_pct']['mean']:+.1f} "
             f"points (target >= +5).")]
    return "\n".join(rows) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--gpt-steps", type=int, default=1000)
    p.add_argument("--d3rlpy-steps", type=int, default=400)
    p.add_argument("--workspace", type=Path, default=None, help="base workspace (default: a temporary one)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/quality"))
    args = p.parse_args()
    base = args.workspace or Path(tempfile.mkdtemp(prefix="racer-quality-")) / "base"
    os.environ.setdefault("MINARI_DATASETS_PATH", str(base.resolve() / "datasets"))
    prepare(base)
    runs = []
    for seed in args.seeds:
        run = run_seed(base, seed, args.gpt_steps, args.d3rlpy_steps)
        run["seed"] = seed
        runs.append(run)
    summary = aggregate(runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"summary": summary, "runs": runs, "args": {
        "seeds": args.seeds, "gpt_steps": args.gpt_steps, "d3rlpy_steps": args.d3rlpy_steps}}, indent=2) + "\n")
    text = markdown(summary, runs, args)
    args.out.with_suffix(".md").write_text(text)
    plots = learning_curves(runs, args.out)
    print(text)
    print("wrote", args.out.with_suffix(".json"), args.out.with_suffix(".md"), *plots)


if __name__ == "__main__":
    main()
