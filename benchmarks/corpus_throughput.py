"""Corpus throughput: synthesis of the built-in speaker, import of wav + bvh pairs, BVH reading.

Measures, on this machine, in one run:
  * synthesis: seconds of corpus (wav + bvh written) per second of compute;
  * import: seconds of 20 fps motion + 16 kHz audio imported per second of compute (target >= 50x real
    time on 2 cores), serial and with all cores;
  * BVH reading: seconds to read a 100,000-frame file (ours, and bvhio for comparison with --bvhio).

Usage:  python benchmarks/corpus_throughput.py [--minutes 60] [--out benchmarks/results/corpus_throughput]
Writes <out>.json and <out>.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from racer_env.corpus.importer import ImportConfig, import_corpus
from racer_env.corpus.synth import synthesize_sources
from racer_env.motion.bvh import read_bvh


@dataclass
class Args:
    minutes: float = 60.0  # corpus size for synthesis and import
    speakers: int = 2
    seed: int = 0
    bvh_frames: int = 100_000  # frames of the long BVH file
    bvhio: bool = False  # also time bvhio on the long file
    out: str = "benchmarks/results/corpus_throughput"


def parse_args() -> Args:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, value in asdict(Args()).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            p.add_argument(flag, action="store_true")
        else:
            p.add_argument(flag, type=type(value), default=value)
    return Args(**vars(p.parse_args()))


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def long_bvh(src_bvh: Path, frames: int, dst: Path) -> Path:
    """A long file on the synthetic speaker's skeleton by tiling one clip's frames."""
    from racer_env.motion.bvh import Bvh, write_bvh

    clip = read_bvh(src_bvh)
    reps = int(np.ceil(frames / clip.n_frames))
    values = np.tile(clip.values, (reps, 1))[:frames]
    return write_bvh(dst, Bvh(clip.skeleton, clip.frame_time, values))


def main() -> None:
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="racer-bench-"))
    results: dict = {"args": asdict(args), "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                                        "platform": platform.platform()}}
    try:
        infos, t_synth = timed(lambda: synthesize_sources(tmp / "src", args.minutes, args.speakers, args.seed))
        audio_s = sum(i.duration_s for i in infos)
        results["synthesis"] = {"corpus_s": audio_s, "seconds": t_synth, "x_real_time": audio_s / t_synth}
        print(f"synthesis: {audio_s:.0f} s of corpus in {t_synth:.1f} s = {audio_s / t_synth:.1f}x real time")

        for workers in (1, os.cpu_count() or 1):
            ws = tmp / f"W{workers}"
            result, t_imp = timed(lambda ws=ws, n=workers: import_corpus(tmp / "src", ws, ImportConfig(), workers=n))
            motion_s = result.corpus.summary()["minutes"] * 60
            results[f"import_workers_{workers}"] = {"corpus_s": motion_s, "seconds": t_imp,
                                                     "x_real_time": motion_s / t_imp}
            print(f"import ({workers} worker(s)): {motion_s:.0f} s in {t_imp:.1f} s = {motion_s / t_imp:.1f}x real time")
            shutil.rmtree(ws)

        path = long_bvh(infos[0].bvh, args.bvh_frames, tmp / "long.bvh")
        bvh, t_read = timed(lambda: read_bvh(path))
        results["bvh_read"] = {"frames": bvh.n_frames, "joints": bvh.skeleton.n_joints,
                               "mbytes": path.stat().st_size / 1e6, "seconds": t_read}
        print(f"read_bvh: {bvh.n_frames} frames x {bvh.skeleton.n_joints} joints in {t_read:.2f} s")
        if args.bvhio:
            import bvhio

            _, t_bvhio = timed(lambda: bvhio.readAsBvh(str(path)))
            results["bvh_read"]["bvhio_seconds"] = t_bvhio
            print(f"bvhio.readAsBvh: {t_bvhio:.2f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_reports(results, Path(args.out))


def write_reports(results: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    rows = ["| measurement | corpus (s) | wall (s) | x real time |", "| --- | ---: | ---: | ---: |"]
    for key in [k for k in results if k == "synthesis" or k.startswith("import")]:
        r = results[key]
        rows.append(f"| {key} | {r['corpus_s']:.0f} | {r['seconds']:.1f} | {r['x_real_time']:.1f} |")
    b = results["bvh_read"]
    rows.append("")
    rows.append(f"read_bvh: {b['frames']} frames x {b['joints']} joints ({b['mbytes']:.0f} MB) in {b['seconds']:.2f} s"
                + (f"; bvhio.readAsBvh {b['bvhio_seconds']:.2f} s" if "bvhio_seconds" in b else ""))
    m = results["machine"]
    rows.append(f"\nMachine: {m['cpus']} CPUs, Python {m['python']}, {m['platform']}.")
    out.with_suffix(".md").write_text("\n".join(rows) + "\n")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
