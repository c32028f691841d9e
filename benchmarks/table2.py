"""The paper's Table 2 on the built-in corpus: supervised, distance reward, online DQN, online actor-critic, RACER.

All on the 10-minute built-in corpus with the `demo` presets (the quality run's base workspace: corpus, VQ-VAE,
reward model, dataset; built here when --workspace is not given), per seed:

* supervised: bc, 1000 steps on the dataset's ground-truth episodes;
* distance reward: racer-cql, 1000 steps, on the dataset relabelled with the negative pose distance to the truth
  (``racer dataset build --reward distance``), in its own copy of the workspace;
* DQN and actor-critic: online on the native vector environment (contrastive reward), --online-steps iterations of
  32 episodes each;
* RACER: racer-cql, 1000 steps on the contrastive dataset.

Each is evaluated with ``racer evaluate`` on the test split (mean episode reward = the contrastive reward for every
system). Agents already trained with the same settings in a seed's workspace are reused (the trainers skip current
runs), so the quality run's bc and racer-cql are not trained twice. Also measured: the environment steps per
second the online trainers consume, and their wall time until their greedy policy's PMB on the validation clips
first reaches the supervised agent's PMB there. Writes <out>.json, <out>.md and learning-curve PNGs.

Usage:  python benchmarks/table2.py [--workspace BASE] [--seeds 0 1 2] [--online-steps 300]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from racer_agents.evaluate import evaluate
from racer_agents.online import online_config_for
from racer_agents.train import agent_config_for, train_agent
from racer_env.dataset.builder import build_dataset

COLUMNS = ("maje_mm", "mad_mm_s2", "fgd", "pmb_pct", "mean_reward")
SYSTEMS = ("supervised (bc)", "distance reward (racer-cql)", "online DQN", "online actor-critic", "RACER (racer-cql)")


def seed_workspace(base: Path, name: str) -> Path:
    ws = base.parent / name
    if not ws.exists():
        shutil.copytree(base, ws, ignore=shutil.ignore_patterns("datasets", "agents", "eval"))
    return ws


def run_seed(base: Path, seed: int, gpt_steps: int, online_steps: int, dataset_id: str, distance_id: str) -> dict:
    ws, ws_distance = seed_workspace(base, f"seed{seed}"), seed_workspace(base, f"seed{seed}-distance")
    seconds = {}

    def timed(key, fn):
        start = time.perf_counter()
        result = fn()
        seconds[key] = None if result.get("skipped") else time.perf_counter() - start
        print(f"seed {seed}: {key} {'reused' if result.get('skipped') else f'trained in {seconds[key]:.0f} s'}",
              flush=True)
        return result

    timed("bc", lambda: train_agent(ws, agent_config_for("demo", algo="bc", seed=seed, steps=gpt_steps,
                                                         dataset=dataset_id), progress=False))
    timed("racer-cql", lambda: train_agent(ws, agent_config_for("demo", algo="racer-cql", seed=seed,
                                                                steps=gpt_steps, dataset=dataset_id), progress=False))
    timed("distance", lambda: train_agent(ws_distance, agent_config_for("demo", algo="racer-cql", seed=seed,
                                                                        steps=gpt_steps, dataset=distance_id),
                                          progress=False))
    online = {}
    for algo in ("dqn", "actor-critic"):
        online[algo] = timed(algo, lambda a=algo: train_online_agent(ws, a, seed, online_steps))
    test = evaluate(ws, ["bc", "racer-cql", "dqn", "actor-critic"], split="test", seed=seed, progress=False)
    test_distance = evaluate(ws_distance, ["racer-cql"], split="test", seed=seed, progress=False)
    valid_bc = evaluate(ws, ["bc"], split="valid", seed=seed, progress=False)["systems"]["bc"]["pmb_pct"]
    systems = {"supervised (bc)": test["systems"]["bc"],
               "distance reward (racer-cql)": test_distance["systems"]["racer-cql"],
               "online DQN": test["systems"]["dqn"], "online actor-critic": test["systems"]["actor-critic"],
               "RACER (racer-cql)": test["systems"]["racer-cql"],
               "ground truth": test["systems"]["ground_truth"]}
    speed = {algo: {"env_steps_per_second": online[algo].get("env_steps_per_second"),
                    "seconds_to_bc_valid_pmb": time_to_pmb(ws / "agents" / algo / "metrics.jsonl", valid_bc)}
             for algo in online}
    return {"seed": seed, "systems": systems, "clips": test["clips"], "bc_valid_pmb": valid_bc, "online": speed,
            "train_seconds": seconds, "workspace": str(ws)}


def train_online_agent(ws: Path, algo: str, seed: int, steps: int) -> dict:
    return train_agent(ws, online_config_for("demo", algo=algo, seed=seed, steps=steps), progress=False)


def time_to_pmb(log: Path, target: float) -> float | None:
    """Seconds of training until the first evaluation whose validation PMB reaches ``target`` (None: never)."""
    for row in (json.loads(line) for line in log.read_text().splitlines()):
        if row.get("eval/pmb_pct", -1) >= target:
            return row["time_s"]
    return None


def curves(runs: list[dict], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    for run in runs:
        for algo, style in (("dqn", "-"), ("actor-critic", "--")):
            rows = [json.loads(line) for line in
                    (Path(run["workspace"]) / "agents" / algo / "metrics.jsonl").read_text().splitlines()]
            label = f"{algo} seed {run['seed']}"
            axes[0].plot([r["env_steps"] for r in rows], [r["episode/return"] for r in rows], style, label=label)
            ev = [r for r in rows if "eval/return" in r]
            axes[1].plot([r["env_steps"] for r in ev], [r["eval/return"] for r in ev], style, label=label)
            axes[2].plot([r["env_steps"] for r in ev], [r["eval/pmb_pct"] for r in ev], style, label=label)
        axes[2].axhline(run["bc_valid_pmb"], color="grey", lw=0.8)
    for ax, title in zip(axes, ("training episode return", "greedy return (valid segments)",
                                "PMB % (valid clips; grey: bc)")):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("environment steps", fontsize=8)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    path = out.parent / f"{out.name}_online.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def markdown(runs: list[dict], args) -> str:
    lines = ["| system | " + " | ".join(COLUMNS) + " |", "|" + " --- |" * (len(COLUMNS) + 1)]
    for name in (*SYSTEMS, "ground truth"):
        cells = []
        for key in COLUMNS:
            values = [r["systems"][name][key] for r in runs if r["systems"][name][key] is not None]
            digits = 4 if key == "fgd" else 2
            cells.append(f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}" if values else "n/a")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", (f"Seeds {args.seeds}; test split ({runs[0]['clips']} clips of the 10-minute built-in corpus); offline "
              f"agents {args.gpt_steps} steps, online agents {args.online_steps} iterations x 32 episodes x 15 steps "
              "(`demo` preset); mean reward = the contrastive reward for every system."), "",
              "| online agent | env steps/s (training) | wall time to bc's validation PMB (s) |", "| --- | ---: | ---: |"]
    for algo in ("dqn", "actor-critic"):
        rates = [r["online"][algo]["env_steps_per_second"] for r in runs if r["online"][algo]["env_steps_per_second"]]
        times = [r["online"][algo]["seconds_to_bc_valid_pmb"] for r in runs]
        reached = [t for t in times if t is not None]
        rate = f"{np.mean(rates):.0f}" if rates else "n/a (reused)"
        when = (f"{np.mean(reached):.0f} ({len(reached)}/{len(times)} seeds reached it)" if reached
                else f"not reached ({len(times)} seeds)")
        lines.append(f"| {algo} | {rate} | {when} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", type=Path, default=None, help="base workspace of benchmarks/quality.py")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--gpt-steps", type=int, default=1000)
    p.add_argument("--online-steps", type=int, default=300)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/table2"))
    args = p.parse_args()
    base = args.workspace or Path(tempfile.mkdtemp(prefix="racer-table2-")) / "base"
    os.environ.setdefault("MINARI_DATASETS_PATH", str(base.resolve() / "datasets"))
    if args.workspace is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from quality import prepare  # the quality run's corpus, VQ-VAE, reward model and dataset

        prepare(base)
    # explicit ids: the base's Minari root may hold other versions (e.g. benchmarks/quality_sweep.py's variants)
    dataset_id = build_dataset(base, progress=False)["id"]  # the quality run's dataset (reused when current)
    distance_id = build_dataset(base, progress=False, reward="distance")["id"]
    runs = [run_seed(base, seed, args.gpt_steps, args.online_steps, dataset_id, distance_id) for seed in args.seeds]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"runs": runs, "args": {
        "seeds": args.seeds, "gpt_steps": args.gpt_steps, "online_steps": args.online_steps}}, indent=2) + "\n")
    text = markdown(runs, args)
    args.out.with_suffix(".md").write_text(text)
    plot = curves(runs, args.out)
    print(text)
    print("wrote", args.out.with_suffix(".json"), args.out.with_suffix(".md"), plot)


if __name__ == "__main__":
    main()
