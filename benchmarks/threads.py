"""Training speed on a quiet machine and beside another CPU-bound process, under three thread settings.

A training step of each of racer's two torch models at the `demo` preset (the VQ-VAE: forward, loss, backward and
Adam on a batch of 64 crops of 120 frames; the GPT Q-network: a CQL-sized forward/backward of 16 segments of 15
code steps), on random tensors so that no workspace is needed, in a fresh process per run:

  * settings: torch's defaults (libgomp's idle threads spin); ``racer`` (what the racer command and the test
    suite apply: racer_env.threads.DEFAULT_THREAD_ENV, OMP_WAIT_POLICY=PASSIVE); one thread (OMP_NUM_THREADS=1);
  * scenarios: alone; beside a twin (a second process training the same model with the same settings: two
    racer trainings side by side); beside a hog (a pure-Python busy loop, any other CPU-bound program).

Reported: wall and CPU seconds per step; under load, the ratio to the same settings' quiet time (issue 27's
target: at most 2.5) and, for twins, the time both take together over the time of running them one after the
other (target: at most 1.2). Every figure of one run comes from the same machine in the same sitting; run it
with nothing else running.

Usage:  python benchmarks/threads.py [--steps 12] [--out benchmarks/results/threads]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import machine, write_results  # noqa: E402

from racer_env.threads import DEFAULT_THREAD_ENV  # noqa: E402

#: environment of each setting, on top of the caller's environment with every thread variable removed.
SETTINGS = {
    "torch defaults": {},
    "racer": dict(DEFAULT_THREAD_ENV),
    "one thread": {"OMP_NUM_THREADS": "1"},
}
THREAD_VARS = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "GOMP_SPINCOUNT", "OPENBLAS_NUM_THREADS")
MODELS = ("vqvae", "gpt")


def _step_fn(model: str):
    """A closure running one training step of ``model`` at the demo preset (imports torch)."""
    import torch

    torch.manual_seed(0)
    if model == "vqvae":
        from racer_env.vqvae.model import VQVAE, preset_config
        from racer_env.vqvae.train import vqvae_loss

        net = VQVAE(preset_config("demo", 16))
        x = torch.randn(64, 48, 120)  # (B, J*3, T): the demo batch of 120-frame crops, 16 joints

        def loss():
            return vqvae_loss(net, x, 0.1)[0]
    else:
        from racer_agents.gpt import GPT_PRESETS, GestureGPT, GPTConfig

        net = GestureGPT(GPTConfig(n_codes=256, audio_dim=3 * 8 * 66, **GPT_PRESETS["demo"]))
        audio = torch.randn(16, 15, 3 * 8 * 66)  # (B, T, audio_dim): 16 segments of 15 code steps
        codes = torch.randint(0, 256, (16, 15))  # (B, T)

        def loss():
            q = net(audio, codes)  # (B, T, N)
            return torch.logsumexp(q, -1).mean() - q.gather(-1, codes[..., None]).mean()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step():
        value = loss()
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
    return step


def worker(model: str, steps: int) -> None:
    """Run in a child process: one warm-up step, then ``steps`` timed steps; prints one JSON line."""
    import torch

    step = _step_fn(model)
    step()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    print(json.dumps({"wall": (time.perf_counter() - wall) / steps, "cpu": (time.process_time() - cpu) / steps,
                      "threads": torch.get_num_threads()}))


def _env(setting: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    return {**env, **SETTINGS[setting]}


def _spawn(model: str, steps: int, setting: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--worker", model, "--steps", str(steps)],
                            env=_env(setting), stdout=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"a benchmark worker exited {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def _hog() -> subprocess.Popen:
    """A pure-Python busy loop: another CPU-bound program on the same cores, until it is killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def measure(model: str, setting: str, steps: int) -> dict:
    """Alone, beside a twin, beside a hog: seconds per step and the ratios to the quiet time."""
    alone = _result(_spawn(model, steps, setting))
    twins = [_spawn(model, steps, setting) for _ in range(2)]
    twin = [_result(p) for p in twins]
    hog = _hog()
    try:
        time.sleep(0.5)  # the hog is running before the measured process starts
        beside_hog = _result(_spawn(model, steps, setting))
    finally:
        hog.kill()
        hog.wait()
    slowest_twin = max(t["wall"] for t in twin)
    return {"alone": alone, "twin": twin, "hog": beside_hog,
            "twin_over_alone": slowest_twin / alone["wall"],
            "together_over_one_after_other": slowest_twin / (2 * alone["wall"]),
            "hog_over_alone": beside_hog["wall"] / alone["wall"]}


def markdown(report: dict) -> str:
    lines = [
        "# Training speed beside another CPU-bound process (`benchmarks/threads.py`)", "",
        f"Run: `python benchmarks/threads.py --steps {report['steps']}` on {report['machine']}, nothing else "
        "running. Seconds per training step (wall; CPU in brackets) of the demo-preset models; 'twin': two "
        "processes training the same model side by side; 'hog': beside a pure-Python busy loop. "
        "'together / in turn': the twins' time over running them one after the other (target <= 1.2); "
        "'x alone': the time under load over the same settings' quiet time (target <= 2.5).", "",
        "| model | settings | alone s/step | twin s/step | hog s/step | twin x alone | together / in turn | "
        "hog x alone |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for model, by_setting in report["results"].items():
        for setting, r in by_setting.items():
            twin = max(r["twin"], key=lambda t: t["wall"])
            lines.append(
                f"| {model} | {setting} | {r['alone']['wall']:.3f} ({r['alone']['cpu']:.2f}) | "
                f"{twin['wall']:.3f} ({twin['cpu']:.2f}) | {r['hog']['wall']:.3f} ({r['hog']['cpu']:.2f}) | "
                f"{r['twin_over_alone']:.2f} | {r['together_over_one_after_other']:.2f} | "
                f"{r['hog_over_alone']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=12, help="timed steps per run (after one warm-up step)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/threads"))
    p.add_argument("--worker", choices=MODELS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker, args.steps)
        return
    results = {}
    for model in MODELS:
        results[model] = {}
        for setting in SETTINGS:
            results[model][setting] = measure(model, setting, args.steps)
            print(model, setting, json.dumps({k: v for k, v in results[model][setting].items()
                                               if k.endswith("alone") or k.startswith("together")}), flush=True)
    write_results(args.out, {"machine": machine(), "steps": args.steps, "settings": SETTINGS,
                             "results": results}, markdown)


if __name__ == "__main__":
    main()
