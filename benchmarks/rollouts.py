"""Evaluation rollouts one by one vs batched: the same agents on the same clips, side by side in one process.

For every system (each agent of the workspace, the nearest-neighbour lookup and random codes),
``racer_agents.evaluate.rollout_clips`` rolls out every clip of the split twice per repeat: ``batched=False`` (one
clip after the other, each step's reward scored alone before the next choice: evaluation before the batched path)
and the default (the path the agent allows: lock-step clips and/or the clips' reward windows scored together); an
agent that steps clips in lock-step is also run clip by clip with only its rewards batched, to tell the two gains
apart. The variants alternate (their order rotates every repeat) so that a change in the machine's load falls on
all; each repeat's ratio is one-by-one time / the variant's time, and the median ratio is reported. Every repeat
also checks that all give the same codes exactly and mean rewards within 1e-6 (the run stops otherwise).

Rollouts only: decoding the codes and the metrics, the rest of ``racer evaluate``, are the same on both paths.

Usage:  python benchmarks/rollouts.py [--workspace DIR] [--split SPLIT] [--repeats 3] [--max-clips N]
                                      [--note TEXT] [--out benchmarks/results/rollouts]

Without ``--workspace`` a small workspace is built in a temporary directory (a 2-minute synthetic corpus, `tiny`
VQ-VAE, reward model and racer-cql / bc agents: a minute on a laptop) and its train split timed (its test split has
one or two clips). The workspace is only read (racer's own caches aside).
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


class _ClipByClip(Agent):
    """``agent`` with lock-step turned off: its codes one clip after the other, its rewards still scored together
    (what the deferred reward scoring alone gains, without lock-step)."""

    batched = False

    def __init__(self, agent: Agent) -> None:
        self.inner, self.name, self.n_codes, self.obs_cfg = agent, agent.name, agent.n_codes, agent.obs_cfg
        self.reads_reward = agent.reads_reward

    def reset(self) -> None:
        self.inner.reset()

    def act(self, observation: dict) -> int:
        return self.inner.act(observation)


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
    """Alternating rollouts of ``agent`` on the split's clips: one by one, batched, and (for an agent that steps
    clips in lock-step) clip by clip with the rewards batched; the order rotates every repeat."""
    cfg = agent.obs_cfg
    env = GestureSynthesisEnv(ws, split=split, segment_codes=None, past=cfg.past, lookahead=cfg.lookahead,
                              history=cfg.history)
    ids = env.data.split_ids(split)[:max_clips]
    variants = {"one_by_one": (agent, False), "batched": (agent, True)}
    if agent.batched:
        variants["rewards_batched_only"] = (_ClipByClip(agent), True)
    for runner, batched in variants.values():  # warm-up (first calls, allocations)
        _timed(env, runner, ids[:1], batched)
    times: dict[str, list[float]] = {k: [] for k in variants}
    worst = 0.0
    for r in range(repeats):
        out = {}
        names = list(variants)
        for name in names[r % len(names):] + names[:r % len(names)]:
            runner, batched = variants[name]
            seconds, out[name] = _timed(env, runner, ids, batched)
            times[name].append(seconds)
        worst = max(worst, *(_check(f"{agent.name} {k}", out["one_by_one"], out[k]) for k in variants))
    steps = sum(env.data.clip(c).n_codes - 1 for c in ids)
    result = {"path": path_of(agent), "clips": len(ids), "steps": steps, "max_reward_diff": worst}
    for name in variants:
        ratios = [a / b for a, b in zip(times["one_by_one"], times[name])]
        result[f"{name}_s"] = times[name]
        if name != "one_by_one":
            result[f"{name}_ratios"], result[f"{name}_median_ratio"] = ratios, statistics.median(ratios)
    return result


def systems(ws: str, agents: list[str] | None) -> list[Agent]:
    data = load_env_data(ws)
    names = agents if agents is not None else list_agents(ws)
    return [load_agent(ws, n) for n in names] + [NearestNeighbourAgent(data), RandomAgent(data.n_codes, 0)]


def markdown(report: dict) -> str:
    med = statistics.median
    rows = [f"# Evaluation rollouts: one by one vs batched ({report['split']} split of {report['workspace']})", "",
            "| system | path | clips | steps | one by one (s) | batched (s) | speed-up | rewards batched only (s) | "
            "speed-up | max mean-reward diff |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in report["results"].items():
        only = (f"{med(r['rewards_batched_only_s']):.2f} | {r['rewards_batched_only_median_ratio']:.2f}x"
                if "rewards_batched_only_s" in r else "(the same path) | -")
        rows.append(f"| {name} | {r['path']} | {r['clips']} | {r['steps']} | {med(r['one_by_one_s']):.2f} | "
                    f"{med(r['batched_s']):.2f} | {r['batched_median_ratio']:.2f}x | {only} | "
                    f"{r['max_reward_diff']:.1e} |")
    rows += ["", f"Times: medians of {report['repeats']} repeats, the variants alternating (the order rotates every "
             f"repeat); speed-up: the median over repeats of one-by-one time / the variant's time in the same repeat. "
             f"'Rewards batched only': the agent's codes clip by clip (no lock-step), its rewards scored together. "
             f"Codes identical and mean rewards within {REWARD_TOLERANCE} of one-by-one on every repeat. Lock-step "
             f"batches of up to {report['max_lockstep']} clips, {report['reward_chunk']} reward windows per call. "
             f"Machine: {report['machine']}; torch threads: {report['threads']['torch_intra_op']}."]
    if report["note"]:
        rows += ["", report["note"]]
    return "\n".join(rows) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", type=Path, default=None, help="a trained workspace (default: build a small one)")
    p.add_argument("--split", default=None, help="default: test (train for the built workspace, whose test split has "
                                                  "one or two clips)")
    p.add_argument("--agents", nargs="*", default=None, help="agents of the workspace (default: every one)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-clips", type=int, default=None, help="the split's first N clips (default: all)")
    p.add_argument("--note", default="", help="a line for the results, e.g. how loaded the machine was")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/rollouts"))
    args = p.parse_args()
    ws = str(args.workspace or build_small_workspace(Path(tempfile.mkdtemp(prefix="racer-bench-"))))
    args.split = args.split or ("test" if args.workspace else "train")
    results = {}
    for agent in systems(ws, args.agents):
        results[agent.name] = measure(ws, agent, args.split, args.repeats, args.max_clips)
        r = results[agent.name]
        print(f"{agent.name}: {r['path']}; speed-up {r['batched_median_ratio']:.2f}x "
              f"({', '.join(f'{x:.2f}' for x in r['batched_ratios'])})", flush=True)
    write_results(args.out, {"workspace": ws if args.workspace else "a small built workspace", "split": args.split,
                             "repeats": args.repeats, "max_lockstep": MAX_LOCKSTEP, "reward_chunk": REWARD_CHUNK,
                             "machine": machine(), "threads": thread_settings(), "note": args.note,
                             "results": results}, markdown)


if __name__ == "__main__":
    main()
