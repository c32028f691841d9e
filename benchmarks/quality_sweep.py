"""What was tried when racer-cql did not beat the supervised baseline: a one-seed sweep of CQL settings.

Each variant trains racer-cql (`demo` preset) in its own copy of the quality run's seed-0 workspace and is evaluated
on the test split like benchmarks/quality.py. Writes <out>.json and <out>.md.

Usage:  python benchmarks/quality_sweep.py --workspace /tmp/racer-quality-XXXX/seed0 [--steps 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from racer_agents.evaluate import evaluate
from racer_agents.train import agent_config_for, train_agent

VARIANTS = {
    "alpha 1.0, target every 100 (quality run)": {},
    "alpha 1.0, target every 20": {"target_update_interval": 20},
    "alpha 0.1, target every 20": {"target_update_interval": 20, "alpha": 0.1},
    "alpha 0.1, target every 20, gamma 0.9": {"target_update_interval": 20, "alpha": 0.1, "gamma": 0.9},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", type=Path, required=True, help="a seed workspace of benchmarks/quality.py")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/quality_sweep"))
    args = p.parse_args()
    os.environ.setdefault("MINARI_DATASETS_PATH", str(args.workspace.parent / "base" / "datasets"))
    rows = {}
    for i, (label, overrides) in enumerate(VARIANTS.items()):
        ws = args.workspace.parent / f"sweep{i}"
        if ws.exists():
            shutil.rmtree(ws)
        shutil.copytree(args.workspace, ws, ignore=shutil.ignore_patterns("agents", "eval"))
        train_agent(ws, agent_config_for("demo", algo="racer-cql", seed=0, steps=args.steps, **overrides),
                    progress=False)
        result = evaluate(ws, ["racer-cql"], split="test", seed=0, progress=False)
        rows[label] = {"settings": overrides, **result["systems"]["racer-cql"]}
        print(label, json.dumps({k: rows[label][k] for k in ("fgd", "pmb_pct", "maje_mm", "mean_reward")}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    keys = ("fgd", "raw_fgd", "pmb_pct", "maje_mm", "mean_reward")
    lines = ["| racer-cql variant (seed 0) | " + " | ".join(keys) + " |", "|" + " --- |" * (len(keys) + 1)]
    lines += [f"| {label} | " + " | ".join(f"{r[k]:.4f}" for k in keys) + " |" for label, r in rows.items()]
    args.out.with_suffix(".md").write_text("\n".join(lines) + f"\n\n{args.steps} steps each; test split.\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
