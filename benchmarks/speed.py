"""Speed run: every speed figure of the project in one run, each measurement in its own process so that its peak
memory (max RSS) is its own. Reuses the measurement functions of env_dataset.py and agents_generation.py.

  * env steps/s: single env, SyncVectorEnv of 64, native vector env of 64;
  * training transitions/s: racer-cql vs d3rlpy DiscreteCQL (same-size GPT encoder);
  * generation real-time factor: `demo` and `paper` presets, with and without the KV cache;
  * `racer generate` of 10 minutes of speech with every format, mp4 included (generate_speed.py: its phases, and
    side by side with another commit).

Usage:  python benchmarks/speed.py [--workspace DIR] [--out benchmarks/results/speed]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import agents_generation as ag
import env_dataset as ed
import generate_speed as gs


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not getrusage's ru_maxrss: on Linux that survives exec, so a
    spawned child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM in /proc/self/status (peak memory is measured on Linux only)")


def _measure(queue, fn_name: str, ws: str) -> None:
    import gymnasium as gym

    from racer_env.envs.gesture import GestureSynthesisEnv
    from racer_env.envs.vector import GestureSynthesisVectorEnv

    if fn_name == "env_single":
        value = ed.steps_per_second(GestureSynthesisEnv(ws), 1, 300)
    elif fn_name == "env_sync_64":
        value = ed.steps_per_second(gym.vector.SyncVectorEnv([lambda: GestureSynthesisEnv(ws) for _ in range(64)]),
                                    64, 20)
    elif fn_name == "env_native_64":
        value = ed.steps_per_second(GestureSynthesisVectorEnv(num_envs=64, workspace=ws), 64, 60)
    elif fn_name == "train_transitions":
        value = ag.training_throughput(ws)
    elif fn_name == "generate_all_formats":
        value = gs.run_once(Path(ws) / GENERATE_SPEECH)["x_real_time"]
    else:
        preset, cache = fn_name.split("_", 2)[1:]
        y = ag.speech(120.0)
        value = (ag.demo_rtf if preset == "demo" else ag.paper_rtf)(ws, y, cache == "cache")
    queue.put((value, peak_rss_mb()))


MEASUREMENTS = ("env_single", "env_sync_64", "env_native_64", "train_transitions", "rtf_demo_cache",
                "rtf_demo_nocache", "rtf_paper_cache", "rtf_paper_nocache", "generate_all_formats")
GENERATE_SPEECH = "generate_speed_speech.npy"  # in the workspace: the speech of generate_all_formats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", type=Path, default=None)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/speed"))
    args = p.parse_args()
    ws = str(args.workspace or Path(tempfile.mkdtemp(prefix="racer-bench-")) / "W")
    os.environ.setdefault("MINARI_DATASETS_PATH", str(Path(ws).resolve() / "datasets"))
    ag.prepare(ws)
    np.save(Path(ws) / GENERATE_SPEECH, gs.speech_audio(600.0))  # (made here: not in that measurement's peak memory)
    ctx = mp.get_context("spawn")
    results = {}
    for name in MEASUREMENTS:
        queue = ctx.Queue()
        proc = ctx.Process(target=_measure, args=(queue, name, ws))
        proc.start()
        value, peak_mb = queue.get()
        proc.join()
        results[name] = {"value": value, "peak_rss_mb": peak_mb}
        print(name, json.dumps(results[name]), flush=True)
    r = {"results": results, "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                         "platform": platform.platform()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(r, indent=2) + "\n")
    t = results["train_transitions"]["value"]
    rows = ["| measurement | value | peak RSS (MB) |", "| --- | ---: | ---: |"]
    rows += [f"| env steps/s, {k.split('_', 1)[1].replace('_', ' ')} | {results[k]['value']:.0f} | "
             f"{results[k]['peak_rss_mb']:.0f} |" for k in MEASUREMENTS[:3]]
    rows += [f"| training transitions/s, {a} | {v:.0f} | {results['train_transitions']['peak_rss_mb']:.0f} |"
             for a, v in t.items()]
    rows += [f"| generation x real time, {k[4:].replace('_', ', ').replace('nocache', 'no cache').replace('cache', 'KV cache')}"
             f" | {results[k]['value']:.0f} | {results[k]['peak_rss_mb']:.0f} |" for k in MEASUREMENTS[4:8]]
    g = results["generate_all_formats"]
    rows += [f"| racer generate, 10 min of speech, npz + bvh + mp4, x real time | {g['value']:.1f} | "
             f"{g['peak_rss_mb']:.0f} |"]
    rows += ["", f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}. Each row ran in its own process."]
    args.out.with_suffix(".md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
