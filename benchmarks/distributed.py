"""Training throughput on 1 vs N processes (torch.distributed, torchrun), samples per second of each trainer.

Builds a 10-minute built-in corpus with its `demo` VQ-VAE, reward model and dataset once, then times each trainer
(`demo` preset, the same global batch) in fresh copies of that workspace:

* 1 process with all the machine's cores as torch threads (how a single-process run uses the machine);
* N processes under ``torchrun --nproc_per_node N`` with cores / N threads each (gloo on CPU, NCCL on GPUs).

Samples: VQ-VAE = 120-frame crops, reward model = windows, agents = 15-step segments. The time is that of the
training loop on rank 0 (start-up and data loading excluded). Writes <out>.json and <out>.md.

Usage:  python benchmarks/distributed.py [--procs 2] [--steps 150] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

TRAINERS = ("vqvae", "reward", "racer-cql", "bc")


def worker(args) -> None:
    """One timed training run (inside torchrun or plain); rank 0 writes the result JSON."""
    from racer_agents.train import agent_config_for, train_agent
    from racer_env.reward.train import reward_train_config_for, train_reward
    from racer_env.vqvae.train import train_config_for, train_vqvae

    ws, steps = args.workspace, args.steps
    if args.trainer == "vqvae":
        cfg = train_config_for("demo", steps=steps)
        result, samples = train_vqvae(ws, cfg, force=True, device=args.device, progress=False), cfg.batch_size
    elif args.trainer == "reward":
        cfg = reward_train_config_for("demo", steps=steps)
        result, samples = train_reward(ws, cfg, force=True, device=args.device, progress=False), cfg.batch_size
    else:
        cfg = agent_config_for("demo", algo=args.trainer, steps=steps)
        result, samples = train_agent(ws, cfg, force=True, device=args.device, progress=False), cfg.batch_size
    if int(os.environ.get("RANK", "0")) == 0:
        Path(args.result).write_text(json.dumps({"seconds": result["seconds"], "steps": steps,
                                                 "samples_per_second": steps * samples / result["seconds"]}))


def timed(base: Path, trainer: str, procs: int, steps: int, device: str, cores: int) -> dict:
    ws = base.parent / f"run-{trainer}-{procs}"
    if ws.exists():
        shutil.rmtree(ws)
    shutil.copytree(base, ws, ignore=shutil.ignore_patterns("datasets"))
    result = ws / "result.json"
    threads = max(cores // procs, 1)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    tail = [__file__, "--worker", trainer, "--workspace", str(ws), "--steps", str(steps), "--device", device,
            "--result", str(result)]
    cmd = ([sys.executable, *tail] if procs == 1 else
           [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs), *tail])
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    out = json.loads(result.read_text())
    shutil.rmtree(ws)
    return {**out, "processes": procs, "threads_per_process": threads}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--procs", type=int, default=2, help="processes of the distributed run")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--device", default="cpu")
    p.add_argument("--workspace", type=Path, default=None, help="base workspace (default: a temporary one)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/distributed"))
    p.add_argument("--worker", choices=TRAINERS, dest="trainer", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.trainer:
        worker(args)
        return
    base = args.workspace or Path(tempfile.mkdtemp(prefix="racer-ddp-")) / "base"
    os.environ.setdefault("MINARI_DATASETS_PATH", str(base.resolve() / "datasets"))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from quality import prepare  # the quality run's corpus, VQ-VAE, reward model and dataset

    prepare(base)
    cores = os.cpu_count() or 1
    rows = []
    for trainer in TRAINERS:
        single = timed(base, trainer, 1, args.steps, args.device, cores)
        multi = timed(base, trainer, args.procs, args.steps, args.device, cores)
        rows.append({"trainer": trainer, "single": single, "distributed": multi,
                     "speedup": multi["samples_per_second"] / single["samples_per_second"]})
        print(trainer, json.dumps(rows[-1]), flush=True)
    machine = (f"{platform.processor() or platform.machine()}, {cores} cores, torch {torch.__version__}, "
               f"device {args.device}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"machine": machine, "steps": args.steps, "rows": rows},
                                                        indent=2) + "\n")
    lines = [(f"| trainer | 1 process x {cores} threads (samples/s) | {args.procs} processes x "
             f"{max(cores // args.procs, 1)} threads (samples/s) | ratio |"), "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r['trainer']} | {r['single']['samples_per_second']:.1f} | "
              f"{r['distributed']['samples_per_second']:.1f} | {r['speedup']:.2f}x |" for r in rows]
    lines += ["", f"`demo` presets, same global batch, {args.steps} steps each, training loop only; {machine}."]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
