"""Which training choices make the agents generalise? One change at a time against the defaults (issue 14).

On a workspace with a corpus, a VQ-VAE and a reward model (e.g. one built by benchmarks/generalisation.py or
`racer demo`), trains bc with the defaults and with one choice undone at a time, through the real command line:

  defaults               racer train agent W --algo bc
  no history dropout     ... --history-dropout 0
  no soft targets        ... --soft-targets 0
  no weight average      ... --ema-decay 0
  no model selection     ... --valid-every 0   (the last step's weights)
  grid windows           ... --dataset <15-code segments every 15 steps> --valid-every 0 --history-dropout 0
                             --soft-targets 0 --ema-decay 0  (the training before this work)

then evaluates all of them and the reference systems on the whole test clips. All runs use the same training seed
and step budget; the table is held-out figures, with 95 % bootstrap intervals over clips in the JSON.

Usage:  python benchmarks/agent_ablations.py --workspace W [--seed 0] [--steps 1500]
                                             [--out benchmarks/results/agent_ablations]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from common import machine, run_racer, write_results

from racer_agents.evaluate import REFERENCE_SYSTEMS, evaluate
from racer_env.checkpoint import load_checkpoint
from racer_env.corpus.store import Corpus

GRID_DATASET = "racer/ablation/grid15-v0"
VARIANTS: dict[str, list[str]] = {
    "bc (defaults)": [],
    "no history dropout": ["--history-dropout", "0"],
    "no soft targets": ["--soft-targets", "0"],
    "no weight average": ["--ema-decay", "0"],
    "no model selection": ["--valid-every", "0"],
    "grid windows, none of the above (before)": ["--dataset", GRID_DATASET, "--valid-every", "0",
                                                 "--history-dropout", "0", "--soft-targets", "0",
                                                 "--ema-decay", "0"],
}
COLUMNS = ("mean_reward", "stroke_f1", "nod_f1", "sync", "fgd", "maje_mm")



def agent_name(label: str) -> str:
    return "abl-" + "".join(c if c.isalnum() else "-" for c in label.split(" (")[0]).strip("-")


def markdown(report: dict) -> str:
    ev, a = report["evaluation"], report["args"]
    corpus = report["corpus"]
    lines = ["# Agent training ablations: one choice undone at a time (held-out test clips)", "",
             (f"`python benchmarks/agent_ablations.py --workspace W --seed {a['seed']} --steps {a['steps']}` on a "
              f"built-in corpus of {corpus['minutes']:.0f} min, {len(corpus['speakers'])} speakers (synthesis seed "
              f"{corpus['source'].get('params', {}).get('seed', '?')}), bc, training seed {a['seed']}, "
              f"{ev['clips']} test clips; {report['machine']}; {report['seconds']:.0f} s."), "",
             "| system | " + " | ".join(COLUMNS) + " | weights kept (step) |", "|" + " --- |" * (len(COLUMNS) + 2)]
    for name in [*REFERENCE_SYSTEMS, *report["agents"]]:
        m = ev["systems"][report["agents"].get(name, name)]
        label = name if name in REFERENCE_SYSTEMS else f"**{name}**"
        cells = ["n/a" if m.get(k) is None else f"{m[k]:.3f}" for k in COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {report['best_steps'].get(name, '')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/agent_ablations"))
    args = p.parse_args()
    ws = args.workspace
    os.environ.setdefault("MINARI_DATASETS_PATH", str(ws / "datasets"))
    start = time.perf_counter()
    run_racer("dataset", "build", str(ws), "--quiet")  # the default whole-clip dataset (skipped when current)
    # 15-code segments every 15 steps: the training windows before this work (reused when built from the same inputs)
    run_racer("dataset", "build", str(ws), "--segment-codes", "15", "--id", GRID_DATASET, "--quiet")
    agents, best = {}, {}
    for label, flags in VARIANTS.items():
        name = agent_name(label)
        run_racer("train", "agent", str(ws), "--algo", "bc", "--seed", str(args.seed), "--steps", str(args.steps),
            "--name", name, "--quiet", *flags)
        agents[label] = name
        meta, _, _ = load_checkpoint(ws / "agents" / name / "model.pt", "agent")
        best[label] = (meta.get("selection") or {}).get("best_step") or args.steps
    result = evaluate(ws, agents=list(agents.values()), progress=False)
    report = {"args": {"workspace": str(ws), "seed": args.seed, "steps": args.steps}, "agents": agents,
              "best_steps": best, "evaluation": result, "corpus": Corpus.load(ws).summary(),
              "machine": machine(),
              "seconds": time.perf_counter() - start}
    write_results(args.out, report, markdown)


if __name__ == "__main__":
    main()
