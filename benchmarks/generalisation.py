"""Do the agents gesture to speech they have never heard? Held-out targets over training seeds (issue 14).

Runs the real command line on a fresh built-in corpus from a synthesis seed that no setting was tuned on:
  racer corpus synth W --minutes 60 --speakers 4 --seed S
  racer train vqvae W ; racer train reward W ; racer dataset build W          (demo defaults)
  racer train agent W --algo bc|racer-cql --seed K --name <algo>-s<K>        (K = each training seed)
then evaluates the reference systems and every agent on the whole test clips (racer_agents.evaluate.evaluate) and
reports, per algorithm, the mean over training seeds of every metric with the seeds' range, the targets of the
issue with pass/fail (racer-cql minus bc in stroke F1 and mean reward with a paired bootstrap interval over the
test clips), and the validation curves of every run (valid/mean_reward and valid/stroke_f1 against the
step, from each agent's metrics.jsonl).

Usage:  python benchmarks/generalisation.py [--corpus-seed 2] [--seeds 0 1 2] [--workspace DIR]
                                            [--out benchmarks/results/generalisation]
Writes <out>.json, <out>.md and <out>_curves.png.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from common import machine, run_racer, write_results

from racer_agents.evaluate import REFERENCE_SYSTEMS, evaluate, markdown_table
from racer_env.checkpoint import load_checkpoint
from racer_env.workspace import atomic_path

ALGOS = ("bc", "racer-cql")
SUMMARY = ("mean_reward", "stroke_f1", "nod_f1", "sync", "fgd", "pmb_pct", "maje_mm")


def build(ws: Path, corpus_seed: int, seeds: list[int], steps: int | None) -> dict[str, float]:
    """Every stage of the workspace (each skipped when current); returns the wall seconds of each."""
    seconds = {}
    if not (ws / "corpus" / "manifest.json").is_file():
        seconds["corpus"] = run_racer("corpus", "synth", str(ws), "--minutes", "60", "--speakers", "4",
                                      "--seed", str(corpus_seed))[1]
    for stage in ("vqvae", "reward"):
        seconds[stage] = run_racer("train", stage, str(ws), "--quiet")[1]
    seconds["dataset"] = run_racer("dataset", "build", str(ws), "--quiet")[1]
    for algo in ALGOS:
        for seed in seeds:
            extra = ["--steps", str(steps)] if steps else []
            seconds[f"{algo}-s{seed}"] = run_racer("train", "agent", str(ws), "--algo", algo, "--seed", str(seed),
                                                   "--name", f"{algo}-s{seed}", "--quiet", *extra)[1]
    return seconds


def by_algorithm(result: dict, seeds: list[int]) -> dict[str, dict]:
    """Per algorithm and metric: the mean over training seeds, the per-seed values and their range."""
    out = {}
    for algo in ALGOS:
        rows = [result["systems"][f"{algo}-s{s}"] for s in seeds]
        out[algo] = {k: {"mean": float(np.mean([r[k] for r in rows])), "per_seed": [r[k] for r in rows],
                         "min": float(min(r[k] for r in rows)), "max": float(max(r[k] for r in rows))}
                     for k in SUMMARY if all(r.get(k) is not None for r in rows)}
    return out


DIFF_RESAMPLES = 2000  # bootstrap resamples of the test clips for each paired difference


def pooled_f1(counts: dict, event: str, idx: np.ndarray) -> float:
    """Pooled F1 of ``event`` over the clips ``idx`` (with repeats) from per-clip counts."""
    hits, found, annotated = (np.asarray(counts[f"{event}_{part}"])[idx].sum() for part in
                              ("hits", "detected", "annotated"))
    return 2.0 * hits / max(found + annotated, 1)


def paired_differences(result: dict, seeds: list[int], seed: int = 0) -> dict[str, dict]:
    """racer-cql minus bc (means over training seeds) in stroke F1 and mean reward, with the 95 % interval over the
    test clips resampled with replacement (the same clips for both: a paired comparison)."""
    per_clip = result["per_clip"]
    n = len(per_clip[f"bc-s{seeds[0]}"]["mean_reward"])

    def figures(idx: np.ndarray) -> dict[str, float]:
        def mean(algo: str, figure) -> float:
            return float(np.mean([figure(per_clip[f"{algo}-s{s}"]) for s in seeds]))
        out = {}
        for key, figure in (("stroke_f1", lambda c: pooled_f1(c, "stroke", idx)),
                            ("mean_reward", lambda c: float(np.mean(np.asarray(c["mean_reward"])[idx])))):
            out[key] = mean("racer-cql", figure) - mean("bc", figure)
        return out

    rng = np.random.default_rng(seed)
    point = figures(np.arange(n))
    draws = [figures(rng.integers(0, n, n)) for _ in range(DIFF_RESAMPLES)]
    return {key: {"difference": value, "ci95": [float(np.percentile([d[key] for d in draws], 2.5)),
                                                float(np.percentile([d[key] for d in draws], 97.5))]}
            for key, value in point.items()}


def targets(result: dict, algos: dict, differences: dict | None = None) -> dict[str, dict]:
    """The issue's targets, each with its measured values and pass/fail (agent figures: means over seeds)."""
    ref = result["systems"]
    rec, nn, rnd = ref["reconstruction"], ref["nearest_neighbour"], ref["random"]
    out = {}
    for algo in ALGOS:
        m = {k: v["mean"] for k, v in algos[algo].items()}
        out[f"{algo}: mean reward >= 0.6 x reconstruction"] = {
            "value": m["mean_reward"], "bound": 0.6 * rec["mean_reward"], "pass": m["mean_reward"] >= 0.6 * rec["mean_reward"]}
        out[f"{algo}: mean reward > nearest_neighbour"] = {
            "value": m["mean_reward"], "bound": nn["mean_reward"], "pass": m["mean_reward"] > nn["mean_reward"]}
        for key, floor in (("stroke_f1", 0.5), ("nod_f1", 0.6)):
            bound = max(floor, 3 * rnd[key])
            out[f"{algo}: {key} >= {floor} and >= 3 x random"] = {"value": m[key], "bound": bound,
                                                                  "pass": m[key] >= bound}
    r, b = ({k: v["mean"] for k, v in algos[a].items()} for a in ("racer-cql", "bc"))
    out["racer-cql >= bc on mean reward"] = {"value": r["mean_reward"], "bound": b["mean_reward"],
                                             "pass": r["mean_reward"] >= b["mean_reward"]}
    out["racer-cql >= bc on stroke F1"] = {"value": r["stroke_f1"], "bound": b["stroke_f1"],
                                           "pass": r["stroke_f1"] >= b["stroke_f1"]}
    for key, diff in (differences or {}).items():  # issue 24 item 4: the difference's 95 % interval above 0
        out[f"racer-cql - bc on {key}: 95 % interval above 0"] = {"value": diff["ci95"][0], "bound": 0.0,
                                                                    "pass": diff["ci95"][0] > 0}
    for algo in ALGOS:
        for key in ("stroke_f1", "sync"):
            out[f"{algo} > nearest_neighbour on {key}"] = {"value": algos[algo][key]["mean"], "bound": nn[key],
                                                           "pass": algos[algo][key]["mean"] > nn[key]}
    out["paper: FGD racer-cql <= 0.85 x bc"] = {"value": r["fgd"] / b["fgd"], "bound": 0.85,
                                                "pass": r["fgd"] <= 0.85 * b["fgd"]}
    out["paper: PMB racer-cql >= bc + 5"] = {"value": r["pmb_pct"] - b["pmb_pct"], "bound": 5.0,
                                             "pass": r["pmb_pct"] >= b["pmb_pct"] + 5}
    return out


def curves(ws: Path, seeds: list[int]) -> dict[str, list[dict]]:
    """The validation rows of every agent's metrics.jsonl."""
    out = {}
    for algo in ALGOS:
        for seed in seeds:
            log = ws / "agents" / f"{algo}-s{seed}" / "metrics.jsonl"
            rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
            out[f"{algo}-s{seed}"] = [{k: v for k, v in r.items() if k == "step" or k.startswith("valid/")}
                                      for r in rows if "valid/score" in r]
    return out


def plot_curves(series: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("valid/score", "valid/mean_reward", "valid/sync", "valid/stroke_f1", "valid/nod_f1")
            if any(k in r for rows in series.values() for r in rows)]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 2.9), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for name, rows in series.items():
            pts = [(r["step"], r[key]) for r in rows if key in r]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.1, marker=".",
                    color="C0" if name.startswith("bc") else "C3", alpha=0.8, label=name)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("training step", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=6)
    fig.suptitle("validation clips (greedy rollouts of whole clips): bc blue, racer-cql red", fontsize=9)
    fig.tight_layout()
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def markdown(report: dict) -> str:
    a = report["args"]
    lines = ["# Agents on speech they have never heard (issue 14)", "",
             (f"`python benchmarks/generalisation.py --corpus-seed {a['corpus_seed']} --seeds "
              f"{' '.join(map(str, a['seeds']))}`: built-in corpus of 60 min, 4 speakers, synthesis seed "
              f"{a['corpus_seed']} (no setting was tuned on it), demo defaults for every stage, test split "
              f"({report['evaluation']['clips']} clips); agents trained with seeds {a['seeds']}. "
              f"{report['machine']}; {report['seconds']:.0f} s in all. Seconds per stage (a stage found current is "
              f"reused, not retrained): " + ", ".join(f"{k} {v:.0f}" for k, v in report["stage_seconds"].items())
              + "."), "",
             "## Targets (agent figures: mean over training seeds)", "",
             "| target | measured | bound | met |", "| --- | --- | --- | --- |"]
    for name, t in report["targets"].items():
        lines.append(f"| {name} | {t['value']:.3f} | {t['bound']:.3f} | {'yes' if t['pass'] else '**no**'} |")
    lines += ["", "## racer-cql minus bc (means over training seeds; 95 % interval over the test clips, paired)", "",
              "| figure | difference | 95 % interval |", "| --- | --- | --- |"]
    for key, d in report["differences"].items():
        lines.append(f"| {key} | {d['difference']:+.3f} | [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] |")
    lines += ["", "## Per algorithm: mean over training seeds [min, max over seeds]", "",
              "| system | " + " | ".join(SUMMARY) + " |", "|" + " --- |" * (len(SUMMARY) + 1)]
    systems = report["evaluation"]["systems"]
    for name in REFERENCE_SYSTEMS:
        lines.append(f"| {name} | " + " | ".join("n/a" if systems[name].get(k) is None else f"{systems[name][k]:.3f}"
                                               for k in SUMMARY) + " |")
    for algo, m in report["algorithms"].items():
        lines.append(f"| **{algo}** | " + " | ".join(
            f"{m[k]['mean']:.3f} [{m[k]['min']:.3f}, {m[k]['max']:.3f}]" if k in m else "n/a" for k in SUMMARY) + " |")
    lines += ["", "## Every run, with 95 % bootstrap intervals over the test clips", "",
              markdown_table(report["evaluation"]).rstrip(), "",
              "## Validation curves", "", f"![validation curves]({Path(report['curves_png']).name})", "",
              "Best validation step per run (the weights kept): " + ", ".join(
                  f"{k} {v}" for k, v in report["best_steps"].items()) + ".", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus-seed", type=int, default=2, help="synthesis seed of the corpus (default 2: untuned)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds of the agents")
    p.add_argument("--steps", type=int, default=None, help="agent training steps (default: the demo preset's)")
    p.add_argument("--workspace", type=Path, default=None, help="scratch workspace (default: a temporary one)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/generalisation"))
    args = p.parse_args()
    import tempfile

    ws = args.workspace or Path(tempfile.mkdtemp(prefix="racer-gen-")) / "W"
    os.environ.setdefault("MINARI_DATASETS_PATH", str(ws / "datasets"))
    start = time.perf_counter()
    seconds = build(ws, args.corpus_seed, args.seeds, args.steps)
    t0 = time.perf_counter()
    result = evaluate(ws, agents=[f"{a}-s{s}" for a in ALGOS for s in args.seeds], progress=False)
    seconds["evaluate"] = time.perf_counter() - t0
    algos = by_algorithm(result, args.seeds)
    differences = paired_differences(result, args.seeds)
    series = curves(ws, args.seeds)
    png = args.out.with_name(args.out.name + "_curves.png")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot_curves(series, png)
    best = {}
    for name in series:
        meta, _, _ = load_checkpoint(ws / "agents" / name / "model.pt", "agent")
        best[name] = (meta.get("selection") or {}).get("best_step")
    report = {"args": {"corpus_seed": args.corpus_seed, "seeds": args.seeds, "steps": args.steps,
                       "workspace": str(ws)},
              "machine": machine(),
              "stage_seconds": seconds, "seconds": time.perf_counter() - start, "evaluation": result,
              "algorithms": algos, "differences": differences, "targets": targets(result, algos, differences),
              "curves": series, "best_steps": best,
              "curves_png": str(png)}
    write_results(args.out, report, markdown)


if __name__ == "__main__":
    main()
