"""Does the reward rank whole motions the way stroke timing does? The reward panel on workspaces (issue 24).

For each workspace given (a `racer demo W` workspace of corpus seed 0, and one of an untuned corpus seed, e.g.
the workspace of `benchmarks/generalisation.py`), runs `racer evaluate reward W` (retrieval and ablations on the test
clips) and the reward panel (`racer evaluate reward W --panel`: human codes replaced or delayed, decoded motion
delayed by frames, another clip's codes, random codes, the nearest-neighbour lookup and every agent of the
workspace, each with mean reward, stroke F1, nod F1, sync and the shares of the random -> reconstruction gap) on
the test clips, and reports issue 24's targets with pass/fail per workspace.

Usage:  python benchmarks/reward_validity.py --workspace seed0=W0 --workspace seed2=W2
                                             [--out benchmarks/results/reward_validity]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import machine, write_results

from racer_agents.reward_panel import panel_markdown, reward_panel
from racer_env.reward.evaluate import evaluate_reward
from racer_env.reward.scorer import load_reward_model


def measure(workspace: Path) -> dict:
    """Retrieval, the ablations (a clip without arm gestures, without nods, another gesture draw) and the panel on
    the test clips of ``workspace``, with the reward's training settings."""
    retrieval = evaluate_reward(workspace, splits=("test",), candidates=32, seed=0, ablations=True)
    panel = reward_panel(workspace, retrieval=retrieval, split="test", seed=0, progress=False)
    meta = load_reward_model(workspace)[1]
    return {"workspace": str(workspace), "reward_train": meta["train"], "reward_arch": meta["arch"],
            "retrieval": {k: v for k, v in retrieval.items() if not isinstance(v, (dict, list))},
            "ablations_gap_kept": retrieval.get("ablations", {}).get("gap_kept"), "panel": panel}


def markdown(report: dict) -> str:
    lines = ["# Reward validity: the reward panel (`benchmarks/reward_validity.py`)", "",
             f"Run: `python benchmarks/reward_validity.py {' '.join(report['args'])}` on {report['machine']}. "
             "Test clips of each workspace; shares of the random -> reconstruction gap in mean reward and in "
             "stroke F1.", ""]
    for name, result in report["workspaces"].items():
        panel = result["panel"]
        lines += [f"## {name}", "", f"Workspace `{Path(result['workspace']).name}`; reward trained with "
                  f"{_settings(result['reward_train'], result['reward_arch'])}.", "", panel_markdown(panel), "",
                  _ablations(result["ablations_gap_kept"]), ""]
    return "\n".join(lines) + "\n"


def _ablations(kept: dict | None) -> str:
    """Issue 13's properties: the share of the real -> random reward gap each resynthesised clip keeps."""
    if not kept:
        return "Ablations: not measured (the corpus has no synthetic annotation)."
    return (f"Ablations (share of the real -> random reward gap kept; a reward that hears arms and head keeps at most "
            f"0.5 without either, and at least 0.8 for another valid gesture draw): no arm gestures "
            f"{kept['no_arms']:.2f}, no nods {kept['no_nods']:.2f}, another draw {kept['other_draw']:.2f}; codes shifted "
            f"-2 / -1 / +1 / +2 steps {kept['shift_-2']:.2f} / {kept['shift_-1']:.2f} / {kept['shift_+1']:.2f} / "
            f"{kept['shift_+2']:.2f}.")


def _settings(train: dict, arch: dict) -> str:
    keys = ("shift_sigma", "part_negatives", "rest_pair_weight", "code_negatives", "code_pair_weight", "real_motion")
    parts = [f"{k}={train[k]}" for k in keys if k in train]
    return ", ".join(parts + [f"bins_per_code={arch.get('bins_per_code', 1)}"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", action="append", required=True, metavar="NAME=DIR",
                   help="a label and a workspace with corpus, codebook, reward model and agents (repeatable)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/reward_validity"))
    args = p.parse_args()
    pairs = [w.split("=", 1) for w in args.workspace]
    if any(len(pair) != 2 for pair in pairs):
        p.error("--workspace takes NAME=DIR")
    results = {name: measure(Path(directory)) for name, directory in pairs}
    write_results(args.out, {"machine": machine(), "args": [f"--workspace {n}=W" for n, _ in pairs],
                             "workspaces": results}, markdown)


if __name__ == "__main__":
    main()
