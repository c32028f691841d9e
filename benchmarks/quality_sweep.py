"""What was tried when racer-cql did not beat the supervised baseline: a one-seed sweep over the issue's axes.

Axes: the CQL settings (alpha, target-update interval, gamma), training length, the augmentation mix, the horizon H
(actions per dataset episode) and the reward window W. Each variant works in its own copy of the quality run's seed-0
workspace: variants of the dataset build their own Minari dataset version, the reward-window variant retrains the
reward model first (its mean reward is then on that model's scale, not comparable with the other rows), and
racer-cql (`demo` preset) is trained and evaluated on the test split like benchmarks/quality.py. The supervised
baseline (bc) of the same seed is evaluated alongside for reference. Writes <out>.json and <out>.md.

Usage:  python benchmarks/quality_sweep.py --workspace /tmp/racer-quality-XXXX/seed0 [--steps 1000] [--only 4 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from racer_agents.evaluate import evaluate
from racer_agents.train import agent_config_for, train_agent
from racer_env.dataset.builder import build_dataset
from racer_env.dataset.episodes import AugmentConfig
from racer_env.reward.train import reward_train_config_for, train_reward

TUNED = {"target_update_interval": 20, "alpha": 0.1, "gamma": 0.9}  # the best CQL setting of the first four rows

# label -> {"agent": AgentTrainConfig overrides, "augment": AugmentConfig overrides, "reward": RewardTrainConfig
# overrides, "steps": training steps (default --steps)}
VARIANTS: dict[str, dict] = {
    "alpha 1.0, target every 100 (quality run)": {},
    "alpha 1.0, target every 20": {"agent": {"target_update_interval": 20}},
    "alpha 0.1, target every 20": {"agent": {"target_update_interval": 20, "alpha": 0.1}},
    "tuned: alpha 0.1, target every 20, gamma 0.9": {"agent": TUNED},
    "tuned, 3x longer training": {"agent": TUNED, "steps_factor": 3},
    "tuned, no augmentation (ground truth only)": {"agent": TUNED, "augment": {"augment": 0}},
    "tuned, 8 augmented episodes per segment": {"agent": TUNED, "augment": {"augment": 8}},
    "tuned, substitution p 0.6": {"agent": TUNED, "augment": {"p_substitute": 0.6}},
    "tuned, horizon H 8": {"agent": {**TUNED, "window": 8}, "augment": {"segment_codes": 8, "stride": 8}},
    "tuned, horizon H 30": {"agent": {**TUNED, "window": 30}, "augment": {"segment_codes": 30, "stride": 30}},
    "tuned, reward window W 2": {"agent": TUNED, "reward": {"window_codes": 2}},
    "tuned, reward window W 8": {"agent": TUNED, "reward": {"window_codes": 8}},
}
KEYS = ("fgd", "raw_fgd", "pmb_pct", "maje_mm", "mean_reward")


def run_variant(source: Path, ws: Path, variant: dict, steps: int) -> dict:
    """Train and evaluate racer-cql (and the reference bc) for one variant in the fresh workspace ``ws``."""
    if ws.exists():
        shutil.rmtree(ws)
    shutil.copytree(source, ws, ignore=shutil.ignore_patterns("eval", "racer-cql"))
    start = time.perf_counter()
    if "reward" in variant:
        train_reward(ws, reward_train_config_for("demo", **variant["reward"]), force=True, progress=False)
    # always an explicit id (the quality run's dataset is reused when current): the Minari root also holds the
    # other variants' datasets, and the default would take the newest version built from these models
    dataset = build_dataset(ws, config=AugmentConfig(**variant.get("augment", {})), progress=False)["id"]
    steps = steps * variant.get("steps_factor", 1)
    train_agent(ws, agent_config_for("demo", algo="racer-cql", seed=0, steps=steps, dataset=dataset,
                                     **variant.get("agent", {})), progress=False)
    seconds = time.perf_counter() - start
    result = evaluate(ws, ["racer-cql", "bc"], split="test", seed=0, progress=False)["systems"]
    return {"settings": variant, "dataset": dataset, "steps": steps, "seconds": seconds,
            **result["racer-cql"], "bc": {k: result["bc"][k] for k in KEYS}}


def markdown(rows: dict) -> str:
    lines = ["| racer-cql variant (seed 0) | steps | " + " | ".join(KEYS) + " | FGD / bc | PMB - bc |",
             "|" + " --- |" * (len(KEYS) + 4)]
    for label, r in rows.items():
        ratio, gain = r["fgd"] / r["bc"]["fgd"], r["pmb_pct"] - r["bc"]["pmb_pct"]
        lines.append(f"| {label} | {r['steps']} | " + " | ".join(f"{r[k]:.4f}" for k in KEYS)
                     + f" | {ratio:.2f} | {gain:+.1f} |")
    return "\n".join(lines) + ("\n\nTest split; bc is the quality run's seed-0 supervised agent (1000 steps), "
                               "evaluated with each row (its figures differ only where the reward model does). "
                               "Target: FGD / bc <= 0.85 and PMB - bc >= +5.\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", type=Path, required=True, help="a seed workspace of benchmarks/quality.py")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--only", type=int, nargs="*", default=None, help="indices of VARIANTS to (re)run; others are "
                   "kept from an existing <out>.json")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/quality_sweep"))
    args = p.parse_args()
    os.environ.setdefault("MINARI_DATASETS_PATH", str(args.workspace.parent / "base" / "datasets"))
    json_path = args.out.with_suffix(".json")
    rows = json.loads(json_path.read_text()) if args.only is not None and json_path.exists() else {}
    for i, (label, variant) in enumerate(VARIANTS.items()):
        if args.only is not None and i not in args.only:
            continue
        rows[label] = run_variant(args.workspace, args.workspace.parent / f"sweep{i}", variant, args.steps)
        print(label, json.dumps({k: rows[label][k] for k in KEYS}), "bc", json.dumps(rows[label]["bc"]), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(rows, indent=2) + "\n")
    ordered = {label: rows[label] for label in VARIANTS if label in rows}
    args.out.with_suffix(".md").write_text(markdown(ordered))
    print(markdown(ordered))


if __name__ == "__main__":
    main()
