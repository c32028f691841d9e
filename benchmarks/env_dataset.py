"""Gesture MDP speed and dataset build time, at the `demo` preset, on this machine, in one run.

  * env steps per second: the single env, a SyncVectorEnv of 64 single envs, and the native vector env with 64
    sub-environments (target: native >= 10x SyncVectorEnv);
  * dataset build time for one hour of corpus with 4x augmentation (target <= 2 minutes on 2 cores).

The workspace (built-in corpus of --minutes, `demo` VQ-VAE and reward model) is built first unless --workspace
points at one that has them; its training time is not part of the figures.

Usage:  python benchmarks/env_dataset.py [--minutes 60] [--workspace DIR] [--out benchmarks/results/env_dataset]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from racer_agents.cli import main as racer
from racer_env.dataset.builder import build_dataset
from racer_env.dataset.episodes import AugmentConfig
from racer_env.envs.gesture import GestureSynthesisEnv
from racer_env.envs.vector import GestureSynthesisVectorEnv


def prepare(ws: str, minutes: float) -> None:
    for argv in (["corpus", "synth", ws, "--minutes", str(minutes), "--speakers", "2", "--seed", "0", "--quiet"],
                 ["train", "vqvae", ws, "--preset", "demo", "--quiet"],
                 ["train", "reward", ws, "--preset", "demo", "--quiet"]):
        if racer(argv):
            raise SystemExit(f"racer {' '.join(argv)} failed")


def steps_per_second(env, n_envs: int, steps: int) -> float:
    """Environment steps (sub-environment transitions) per second with uniformly random actions."""
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    n_actions = int(env.single_action_space.n if n_envs > 1 else env.action_space.n)
    start = time.perf_counter()
    for _ in range(steps):
        if n_envs > 1:
            env.step(rng.integers(0, n_actions, n_envs))
        else:
            _, _, terminated, truncated, _ = env.step(int(rng.integers(n_actions)))
            if terminated or truncated:
                env.reset()
    return steps * n_envs / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--workspace", type=Path, default=None)
    p.add_argument("--envs", type=int, default=64)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/env_dataset"))
    args = p.parse_args()
    ws = str(args.workspace or Path(tempfile.mkdtemp(prefix="racer-bench-")) / "W")
    prepare(ws, args.minutes)
    n = args.envs
    results: dict = {"workspace": ws, "minutes": args.minutes, "num_envs": n,
                     "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                 "python": platform.python_version(), "torch": torch.__version__}}
    single = GestureSynthesisEnv(ws)
    sync = gym.vector.SyncVectorEnv([lambda: GestureSynthesisEnv(ws) for _ in range(n)])
    native = GestureSynthesisVectorEnv(num_envs=n, workspace=ws)
    results["steps_per_second"] = {
        "single": steps_per_second(single, 1, 300),
        f"sync_vector_{n}": steps_per_second(sync, n, 20),
        f"native_vector_{n}": steps_per_second(native, n, 60),
    }
    sps = results["steps_per_second"]
    results["native_over_sync"] = sps[f"native_vector_{n}"] / sps[f"sync_vector_{n}"]
    print(json.dumps(sps, indent=1), f"native/sync = {results['native_over_sync']:.1f}x")

    os.environ["MINARI_DATASETS_PATH"] = tempfile.mkdtemp(prefix="racer-bench-minari-")
    build = build_dataset(ws, "racer/bench/augmented-v0", AugmentConfig(augment=4), progress=False)
    results["dataset_build"] = {k: build[k] for k in ("episodes", "steps", "seconds", "ref_min_score", "ref_max_score")}
    print(f"dataset: {build['episodes']} episodes, {build['steps']} steps in {build['seconds']:.1f} s")
    write_reports(results, args.out)


def write_reports(r: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(r, indent=2) + "\n")
    n, sps, d, m = r["num_envs"], r["steps_per_second"], r["dataset_build"], r["machine"]
    lines = ["| measurement | value | target |", "| --- | ---: | --- |",
             f"| single env, steps/s | {sps['single']:.0f} | |",
             f"| SyncVectorEnv of {n}, steps/s | {sps[f'sync_vector_{n}']:.0f} | |",
             f"| native vector env of {n}, steps/s | {sps[f'native_vector_{n}']:.0f} | |",
             f"| native / sync | {r['native_over_sync']:.1f}x | >= 10x |",
             f"| dataset build, {r['minutes']:.0f} min corpus, 4x augmentation (s) | {d['seconds']:.1f} | <= 120 |",
             f"| dataset episodes / steps | {d['episodes']} / {d['steps']} | |",
             "",
             (f"`demo` VQ-VAE and reward model; random actions. Machine: {m['cpus']} CPUs ({m['torch_threads']} torch "
             f"threads), Python {m['python']}, torch {m['torch']}.")]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
