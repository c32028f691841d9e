"""Acceptance run of the codebook and reward stages on the built-in corpus, plus the `paper` step time.

Runs the real command line on a fresh workspace, on this machine, in one run:
  racer corpus synth W --minutes 10 --speakers 2 --seed 0
  racer train vqvae W --preset demo          (timed)   -> racer evaluate codebook W --json
  racer train reward W --preset demo         (timed)   -> racer evaluate reward W --json
and times training steps of the `paper` VQ-VAE preset at batch 64 x 120 frames.

Usage:  python benchmarks/codebook_reward.py [--workspace DIR] [--out benchmarks/results/codebook_reward]
Writes <out>.json and <out>.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from racer_agents.cli import main as racer
from racer_env.vqvae.model import VQVAE
from racer_env.vqvae.train import VQVAETrainConfig, vqvae_loss


def run(*argv: str) -> tuple[str, float]:
    """Run a racer command; returns its stdout and wall seconds (raises on a non-zero exit)."""
    buf = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(buf):
        code = racer(list(argv))
    elapsed = time.perf_counter() - start
    if code:
        raise SystemExit(f"racer {' '.join(argv)} exited {code}")
    return buf.getvalue(), elapsed


def paper_step_seconds(steps: int = 3, batch: int = 64, frames: int = 120, joints: int = 16) -> float:
    """Mean wall time of one VQ-VAE `paper` training step (forward, loss, backward, Adam) after a warm-up."""
    torch.manual_seed(0)
    model = VQVAE.from_preset("paper", n_joints=joints)
    opt = torch.optim.Adam(model.parameters(), lr=3e-5, betas=(0.9, 0.999))
    x = torch.randn(batch, joints * 3, frames)
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        loss, _, _ = vqvae_loss(model, x, VQVAETrainConfig().commitment)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:  # the first step pays one-off allocation costs
            times.append(time.perf_counter() - start)
    return sum(times) / len(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", type=Path, default=None, help="default: a temporary directory")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/codebook_reward"))
    args = p.parse_args()
    ws = str(args.workspace or Path(tempfile.mkdtemp(prefix="racer-bench-")) / "W")
    results: dict = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                 "python": platform.python_version(), "torch": torch.__version__,
                                 "platform": platform.platform()}, "workspace": ws}
    _, results["corpus_seconds"] = run("corpus", "synth", ws, "--minutes", "10", "--speakers", "2", "--seed", "0",
                                       "--quiet", "--force")
    _, results["vqvae_train_seconds"] = run("train", "vqvae", ws, "--preset", "demo", "--quiet", "--force")
    results["codebook"] = json.loads(run("evaluate", "codebook", ws, "--json")[0])
    _, results["reward_train_seconds"] = run("train", "reward", ws, "--preset", "demo", "--quiet", "--force")
    results["reward"] = json.loads(run("evaluate", "reward", ws, "--json")[0])
    results["paper_step_seconds"] = paper_step_seconds()
    for key in ("corpus_seconds", "vqvae_train_seconds", "reward_train_seconds", "paper_step_seconds"):
        print(f"{key}: {results[key]:.2f}")
    print(json.dumps({k: results["codebook"][k] for k in ("maje_mm", "codes_used_frac", "perplexity")}))
    print(json.dumps({k: results["reward"][k] for k in ("r_at_1", "r_at_5", "auc_shifted", "auc_mismatched")}))
    write_reports(results, args.out)


def write_reports(r: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(r, indent=2) + "\n")
    c, w, m = r["codebook"], r["reward"], r["machine"]
    lines = [
        "| stage | metric | value | target |",
        "| --- | --- | ---: | --- |",
        f"| VQ-VAE `demo` | training time (s) | {r['vqvae_train_seconds']:.0f} | <= 180 |",
        f"| | held-out MAJE (mm) | {c['maje_mm']:.2f} | <= 30 |",
        f"| | codes used (fraction of {c['params']['codebook_size']}) | {c['codes_used_frac']:.3f} | >= 0.5 |",
        f"| | perplexity | {c['perplexity']:.1f} | |",
        f"| reward `demo` | training time (s) | {r['reward_train_seconds']:.0f} | <= 120 |",
        f"| | R@1 among {w['params']['candidates']} (chance {w['params']['chance_r_at_1']:.3f}) | {w['r_at_1']:.3f} | >= 0.30 |",
        f"| | R@5 (chance {w['params']['chance_r_at_5']:.3f}) | {w['r_at_5']:.3f} | |",
        f"| | AUC true vs shifted 2-{w['params']['window_codes']} codes | {w['auc_shifted']:.3f} | >= 0.80 |",
        f"| | AUC true vs other clip | {w['auc_mismatched']:.3f} | |",
        f"| VQ-VAE `paper` | one training step, batch 64 x 120 frames (s) | {r['paper_step_seconds']:.2f} | (a figure) |",
        "",
        (f"Corpus: built-in, 10 min, 2 speakers, seed 0; held-out = {c['params']['split']} split for MAJE, "
        f"{'+'.join(w['params']['splits'])} for the reward ({w['params']['retrieval_windows']} retrieval windows)."),
        (f"Machine: {m['cpus']} CPUs ({m['torch_threads']} torch threads), Python {m['python']}, torch {m['torch']}, "
        f"{m['platform']}."),
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
