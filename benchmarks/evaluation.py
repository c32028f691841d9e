"""The evaluation table of a demo workspace: reference systems and agents on the held-out clips, with intervals.

Runs ``racer evaluate`` (racer_agents.evaluate.evaluate) on the test split of a workspace built by ``racer demo W``
(or by benchmarks/train_demo_weights.py --workspace W) and writes benchmarks/results/evaluation.{json,md}: every
system's figures with their bootstrap 95 % intervals over clips, the per-clip values and the metric parameters.
The evaluation tables of benchmarks/README.md are copied from the markdown file this writes.

Usage:  python benchmarks/evaluation.py --workspace W [--results benchmarks/results/evaluation]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from racer_agents.evaluate import evaluate, markdown_table
from racer_env.corpus.store import Corpus
from racer_env.workspace import write_json_atomic


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", type=Path, required=True, help="a workspace with a VQ-VAE, a reward model and agents")
    p.add_argument("--split", default="test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results", type=Path, default=Path("benchmarks/results/evaluation"))
    args = p.parse_args()
    start = time.perf_counter()
    result = evaluate(args.workspace, split=args.split, seed=args.seed, progress=False)
    seconds = time.perf_counter() - start
    corpus = Corpus.load(args.workspace).summary()
    result["benchmark"] = {"workspace": str(args.workspace), "corpus": {k: corpus[k] for k in
                                                                        ("clips", "minutes", "speakers", "source")},
                           "seconds": seconds}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.results.with_suffix(".json"), result)
    src = corpus["source"].get("params", {})
    head = (f"# Evaluation on held-out clips\n\n`python benchmarks/evaluation.py --workspace W` on a `racer demo` "
            f"workspace: built-in corpus of {corpus['minutes']:.0f} min, {len(corpus['speakers'])} speakers "
            f"(synthesis seed {src.get('seed', '?')}), {args.split} split, evaluation seed {args.seed}; "
            f"{seconds:.0f} s.\n\n")
    args.results.with_suffix(".md").write_text(head + markdown_table(result), encoding="utf-8")
    print(markdown_table(result))


if __name__ == "__main__":
    main()
