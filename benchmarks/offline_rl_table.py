"""The reference table of the gesture benchmark: offline RL algorithms on every dataset tier, normalised scores.

Runs ``racer benchmark`` (racer_agents.benchmark.run_benchmark) for bc, racer-cql, online DQN and four discrete d3rlpy
algorithms (DiscreteCQL, DiscreteBCQ, DQN, DoubleDQN) on the six tiers of one workspace, 3 seeds each, and writes the
table of normalised scores with their 95 % intervals (seeds x clips), the key metrics, what the tiers show, and how
many seeds a claimed difference needs at the measured spread.

The workspace is the main job's (``racer demo W``: the 60-minute built-in corpus, `demo` VQ-VAE and reward model);
agents use the `demo` GPT, the offline ones with batches of 16 windows (d3rlpy's update at the preset's 64 takes
0.63 s). The default budget (``--steps 300``: offline training steps, online iterations) is meant to fit about 2
hours of 2 CPU cores with the workspace built (the committed table ran ``--steps 150``: see its protocol line);
``--steps``, ``--batch-size`` and ``--seeds`` trade time for precision, and the result records what was run. Agents already trained with the same settings are reused (run it again to extend it).

Usage:  python benchmarks/offline_rl_table.py --workspace W [--steps 300] [--batch-size 16] [--seeds 3] [--algos ...]
                                              [--out benchmarks/results/offline_rl_table]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import machine, write_results

from racer_agents.benchmark import format_interval, run_benchmark
from racer_env.dataset.builder import TIERS

ALGOS = ("bc", "racer-cql", "dqn", "d3rlpy:DiscreteCQL", "d3rlpy:DiscreteBCQ", "d3rlpy:DQN", "d3rlpy:DoubleDQN")


def seeds_needed(sd: float, difference: float, z_alpha: float = 1.96, z_power: float = 0.84) -> int:
    """Seeds per algorithm to detect a true difference of ``difference`` points between two algorithms whose
    seed-mean scores have standard deviation ``sd`` over seeds: a two-sample z-test at 5 % with 80 % power."""
    if difference <= 0:
        return 0
    return int(np.ceil(2 * ((z_alpha + z_power) * sd / difference) ** 2))


def spread(report: dict) -> float:
    """The standard deviation over seeds of the clip-mean normalised score, pooled over tiers."""
    sds = []
    for t in report["tiers"].values():
        per_seed = [np.mean(s["per_clip"]["normalised_score"]) for s in t["per_seed"].values()]
        if len(per_seed) > 1:
            sds.append(np.std(per_seed, ddof=1))
    return float(np.sqrt(np.mean(np.square(sds)))) if sds else float("nan")


def markdown(r: dict) -> str:
    tiers = r["tiers"]

    def cell(v: list | None, d: int = 1) -> str:
        return format_interval(v, d)

    lines = [("Normalised score (0: uniformly random codes, 100: the human speaker's codes), mean over "
             f"{len(r['seeds'])} seeds and the {r['clips']} test clips [95 % interval, seeds x clips]:"), "",
             "| algorithm | " + " | ".join(tiers) + " |", "| --- |" + " ---: |" * len(tiers)]
    for algo, rep in r["reports"].items():
        lines.append(f"| {algo} | " + " | ".join(cell(rep["tiers"][t]["summary"]["normalised_score"])
                                                  for t in tiers) + " |")
    lines += ["", "Stroke F1 (pooled over clips; interval over seeds):", "",
              "| algorithm | " + " | ".join(tiers) + " |", "| --- |" + " ---: |" * len(tiers)]
    for algo, rep in r["reports"].items():
        lines.append(f"| {algo} | " + " | ".join(cell(rep["tiers"][t]["summary"]["stroke_f1"], 3) for t in tiers)
                     + " |")
    lines += ["", f"Seed spread of the normalised score (sd over seeds, pooled): {r['seed_sd']:.1f} points; seeds per "
              "algorithm to detect a difference (5 % test, 80 % power): " + ", ".join(
                  f"{d} points: {n}" for d, n in r["seeds_for_difference"].items()) + ".", "",
              (f"Protocol: steps {r['steps']} (offline: training steps; dqn: online iterations), batch "
               f"{r.get('batch_size') or 'the preset'} (offline), seeds {r['seeds']}, preset demo, workspace corpus "
               f"{r['corpus_sha256'][:12]}; {r['seconds'] / 60:.0f} min on {r['machine']}."), ""]
    return "\n".join(lines)


def rewrite_markdown(json_path: Path) -> None:
    """The markdown of an existing result again (after a change of its layout; nothing is recomputed)."""
    import json

    from racer_env.workspace import write_text_atomic

    write_text_atomic(json_path.with_suffix(".md"), markdown(json.loads(json_path.read_text())))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", type=Path, required=True, help="a workspace built by racer demo")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=16, help="offline algorithms' batch of windows")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--algos", nargs="+", default=list(ALGOS))
    p.add_argument("--tiers", nargs="+", default=list(TIERS))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/offline_rl_table"))
    args = p.parse_args()
    start = time.perf_counter()
    reports = {}
    for algo in args.algos:
        t0 = time.perf_counter()
        reports[algo] = run_benchmark(args.workspace, algo, tuple(args.tiers), args.seeds, args.steps, "demo",
                                      progress=False, batch_size=args.batch_size)
        print(f"{algo}: {time.perf_counter() - t0:.0f} s", flush=True)
    first = next(iter(reports.values()))
    sd = float(np.sqrt(np.mean([spread(rep) ** 2 for rep in reports.values()])))
    result = {"tiers": list(args.tiers), "seeds": list(range(args.seeds)), "steps": args.steps,
              "batch_size": args.batch_size,
              "clips": len(first["protocol"]["clips"]), "corpus_sha256": first["protocol"]["corpus_sha256"],
              "reports": reports, "seed_sd": sd,
              "seeds_for_difference": {d: seeds_needed(sd, d) for d in (5, 10, 20)},
              "seconds": time.perf_counter() - start, "machine": machine()}
    write_results(args.out, result, markdown)


if __name__ == "__main__":
    main()
