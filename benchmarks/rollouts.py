"""Evaluation rollouts one by one vs batched: the same agents on the same clips, side by side in one process.

For every system (each agent of the workspace, the nearest-neighbour lookup and random codes),
``racer_agents.evaluate.rollout_clips`` rolls out every clip of the split twice per repeat: ``batched=False`` (one
clip after the other, each step's reward scored alone before the next choice: evaluation before the batched path)
and the default (the path the agent allows: lock-step clips and/or the clips' reward windows scored together). The
two alternate (which goes first swaps every repeat) so that a change in the machine's load falls on both; each
repeat's ratio is one-by-one time / batched time, and the median ratio is reported. Every repeat also checks that
both give the same codes exactly and mean rewards within 1e-6 (the run stops otherwise).

Rollouts only: decoding the codes and the metrics, the rest of ``racer evaluate``, are the same on both paths.

Usage:  python benchmarks/rollouts.py [--workspace DIR] [--split test] [--repeats 3] [--max-clips N]
                                      [--note TEXT] [--out benchmarks/results/rollouts]

Without ``--workspace`` a small workspace is built in a temporary directory (a 2-minute synthetic corpus, `tiny`
VQ-VAE, reward model and racer-cql / bc agents: minutes on a laptop). The workspace is only read (racer's own
caches aside).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
from common import machine, write_results  # noqa: E402

from racer_agents.agent import Agent, RandomAgent, list_agents, load_agent  # noqa: E402
from racer_agents.evaluate import MAX_LOCKSTEP, REWARD_CHUNK, rollout_clips  # noqa: E402
from racer_agents.retrieval import NearestNeighbourAgent  # noqa: E402
from racer_env.envs.episode_data import load_env_data  # noqa: E402
from racer_env.envs.gesture import GestureSynthesisEnv  # noqa: E402
from racer_env.threads import thread_settings  # noqa: E402

REWARD_TOLERANCE = 1e-6  # |batched - one-by-one| mean reward of a clip


def build_small_workspace(root: Path) -> Path:
    """A 2-minute synthetic corpus with `tiny` VQ-VAE, reward model, policy dataset and racer-cql / bc agents."""
    from racer_agents.train import agent_config_for, train_agent
    from racer_env.corpus.build import synth_corpus
    from racer_env.dataset.builder import build_dataset
    from racer_env.dataset.episodes import AugmentConfig
    from racer_env.reward.train import reward_train_config_for, train_reward
    from racer_env.vqvae.train import train_config_for, train_vqvae

    ws = root / "W"
    synth_corpus(ws, minutes=2.0, speakers=1, seed=0, clip_seconds=10.0, workers=1, progress=False)
    train_vqvae(ws, train_config_for("tiny"), progress=False)
    train_reward(ws, reward_train_config_for("tiny"), progress=False)
    dataset = build_dataset(ws, "racer/bench-rollouts/augmented-v0", AugmentConfig(segment_codes=6, stride=6),
                            progress=False)["id"]
    for algo in ("racer-cql", "bc"):
        train_agent(ws, agent_config_for("tiny", algo=algo, dataset=dataset, steps=20), progress=False)
    return ws


def path_of(agent: Agent) -> str:
    """Which path rollout_clips takes for the agent (its docstring's three)."""
    if agent.reads_reward:
        return "step by step (reads the reward)"
    return "lock-step clips, batched rewards" if agent.batched else "clip by clip, batched rewards"


def _timed(env: GestureSynthesisEnv, agent: Agent, ids: list[str], batched: bool) -> tuple[float, list]:
    if isinstance(agent, RandomAgent):
        agent.rng = np.random.default_rng(0)  # the same draws on both paths
    start = time.perf_counter()
    out = rollout_clips(env, agent, ids, batched=batched)
    return time.perf_counter() - start, out


def _check(name: str, one_by_one: list, batched: list) -> float:
    """The largest |mean reward difference|; SystemExit if a code differs or a reward is out of tolerance."""
    worst = 0.0
    for clip, ((codes, reward), (b_codes, b_reward)) in enumerate(zip(one_by_one, batched)):
        if not np.array_equal(codes, b_codes):
            raise SystemExit(f"{name}: the batched rollout chose other codes on clip {clip}")
        worst = max(worst, abs(reward - b_reward))
    if worst > REWARD_TOLERANCE:
        raise SystemExit(f"{name}: mean rewards differ by {worst:.2e} > {REWARD_TOLERANCE}")
    return worst


def measure(ws: str, agent: Agent, split: str, repeats: int, max_clips: int | None) -> dict:
    """Alternating one-by-one and batched rollouts of ``agent`` on the split's clips."""
    cfg = agent.obs_cfg
    env = GestureSynthesisEnv(ws, split=split, segment_codes=None, past=cfg.past, lookahead=cfg.lookahead,
                              history=cfg.history)
    ids = env.data.split_ids(split)[:max_clips]
    _timed(env, agent, ids[:1], True), _timed(env, agent, ids[:1], False)  # warm-up (first calls, allocations)
    times: dict[bool, list[float]] = {False: [], True: []}
    worst = 0.0
    for r in range(repeats):
        out = {}
        for batched in ((False, True) if r % 2 == 0 else (True, False)):
            seconds, out[batched] = _timed(env, agent, ids, batched)
            times[batched].append(seconds)
        worst = max(worst, _check(agent.name, out[False], out[True]))
    ratios = [a / b for a, b in zip(times[False], times[True])]
    steps = sum(env.data.clip(c).n_codes - 1 for c in ids)
    return {"path": path_of(agent), "clips": len(ids), "steps": steps, "one_by_one_s": times[False],
            "batched_s": times[True], "ratios": ratios, "median_ratio": statistics.median(ratios),
            "max_reward_diff": worst}


def systems(ws: str, agents: list[str] | None) -> list[Agent]:
    data = load_env_data(ws)
    names = agents if agents is not None else list_agents(ws)
    return [load_agent(ws, n) for n in names] + [NearestNeighbourAgent(data), RandomAgent(data.n_codes, 0)]


def markdown(report: dict) -> str:
    rows = [f"# Evaluation rollouts: one by one vs batched ({report['split']} split of {report['workspace']})", "",
            "| system | path | clips | steps | one by one (s, median) | batched (s, median) | median ratio | "
            "max mean-reward diff |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in report["results"].items():
        rows.append(f"| {name} | {r['path']} | {r['clips']} | {r['steps']} | {statistics.median(r['one_by_one_s']):.2f}"
                    f" | {statistics.median(r['batched_s']):.2f} | {r['median_ratio']:.2f}x | {r['max_reward_diff']:.1e} |")
    rows += ["", f"{report['repeats']} alternating repeats per system (ratio: one-by-one / batched time of the same "
             f"repeat, median over repeats); codes identical and mean rewards within {REWARD_TOLERANCE} on every "
             f"repeat. Lock-step batches of up to {report['max_lockstep']} clips, {report['reward_chunk']} reward "
             f"windows per call. Machine: {report['machine']}; torch threads: {report['threads']['torch_intra_op']}."]
    if report["note"]:
        rows += ["", report["note"]]
    return "\n".join(rows) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", type=Path, default=None, help="a trained workspace (default: build a small one)")
    p.add_argument("--split", default="test")
    p.add_argument("--agents", nargs="*", default=None, help="agents of the workspace (default: every one)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-clips", type=int, default=None, help="the split's first N clips (default: all)")
    p.add_argument("--note", default="", help="a line for the results, e.g. how loaded the machine was")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/rollouts"))
    args = p.parse_args()
    ws = str(args.workspace or build_small_workspace(Path(tempfile.mkdtemp(prefix="racer-bench-"))))
    results = {}
    for agent in systems(ws, args.agents):
        results[agent.name] = measure(ws, agent, args.split, args.repeats, args.max_clips)
        r = results[agent.name]
        print(f"{agent.name}: {r['path']}; median ratio {r['median_ratio']:.2f}x "
              f"({', '.join(f'{x:.2f}' for x in r['ratios'])})", flush=True)
    write_results(args.out, {"workspace": ws if args.workspace else "a small built workspace", "split": args.split,
                             "repeats": args.repeats, "max_lockstep": MAX_LOCKSTEP, "reward_chunk": REWARD_CHUNK,
                             "machine": machine(), "threads": thread_settings(), "note": args.note,
                             "results": results}, markdown)


if __name__ == "__main__":
    main()
