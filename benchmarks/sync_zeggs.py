"""Can the metrics tell synchronised from unsynchronised motion? sync, PMB and beat alignment on a real take.

The ZEGGS take 067_Speech_2_x_1_0 (wav + bvh, 30 fps, cm; non-commercial no-derivatives data, read in place
and never copied) is read as ``racer evaluate files`` reads any take (upper body, 20 fps), then its real motion
is measured against its own speech and against the same speech circularly shifted by 5, 10, 20, 30 s and a few
seeded random shifts. A metric that sees synchrony scores the unshifted pair clearly higher (target for
``sync``: at least 2x every shifted score). Also reported: ``sync`` on 30-s pieces of the take (the length of
an evaluation clip), the lag profile, and the same contrast on the held-out clips of a synthetic corpus
(``--workspace W``: each clip's motion against its own speech, shifted by 5, 10, 15 s within the clip, and the
next clip's speech).

Usage:  python benchmarks/sync_zeggs.py --zeggs DIR [--workspace W] [--out benchmarks/results/sync_zeggs]
Exits 1 naming the path when the ZEGGS files are absent. Writes <out>.json and <out>.md.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from common import write_results

from racer_env.corpus.store import Corpus
from racer_env.evaluate_files import load_take
from racer_env.metrics.motion import audio_beats, beat_alignment, motion_beats, pmb
from racer_env.metrics.sync import SMOOTHING_S, energy_from_features, hands_speed, lag_profile, sync_score
from racer_env.motion.upper_body import find_roles

TAKE = "067_Speech_2_x_1_0"


@dataclass
class Args:
    zeggs: Path = Path("zeggs")  # the directory holding the take (required on the command line)
    workspace: Path | None = None  # a synthetic corpus workspace for the second table
    shifts_s: list[float] = field(default_factory=lambda: [0.0, 5.0, 10.0, 20.0, 30.0])
    random_shifts: int = 5  # extra seeded shifts in [2 s, length - 2 s]
    seed: int = 0
    piece_s: float = 30.0
    out: Path = Path("benchmarks/results/sync_zeggs")


def shifted_scores(speed: np.ndarray, positions: np.ndarray, features: np.ndarray, n_mels: int, sample_rate: int,
                   fps: int, shift_frames: int, piece: int) -> dict:
    """sync, PMB and beat alignment of the motion against the speech features rolled by ``shift_frames``."""
    feats = np.roll(features, shift_frames, axis=0)  # (T, F) the speech, circularly shifted
    energy = energy_from_features(feats, n_mels)
    beats_a = audio_beats(feats[:, n_mels], sample_rate, fps)
    beats_m = motion_beats(positions, fps)
    pieces = [sync_score(speed[s:s + piece], energy[s:s + piece], fps)
              for s in range(0, len(speed) - piece + 1, piece)]
    return {"sync": sync_score(speed, energy, fps), "sync_pieces": pieces, "pmb_pct": pmb(beats_m, beats_a),
            "beat_align": beat_alignment(beats_m, beats_a), "audio_beats_per_s": len(beats_a) * fps / len(speed)}


def zeggs_table(args: Args) -> dict:
    wav, bvh = args.zeggs / f"{TAKE}.wav", args.zeggs / f"{TAKE}.bvh"
    for path in (wav, bvh):
        if not path.is_file():
            sys.exit(f"sync_zeggs: {path} not found (the ZEGGS take is read in place from --zeggs DIR)")
    take = load_take(wav, bvh, unit_mm=10.0)
    fps, n_mels, sr = take.fps, take.audio.n_mels, take.audio.sample_rate
    speed = hands_speed(take.positions, take.hands, fps)
    n = len(speed)
    rng = np.random.default_rng(args.seed)
    shifts = list(args.shifts_s) + sorted(np.round(rng.uniform(2.0, n / fps - 2.0, args.random_shifts), 2).tolist())
    rows = {}
    for s in shifts:
        rows[f"{s:g}"] = shifted_scores(speed, take.positions, take.features, n_mels, sr, fps, round(s * fps),
                                        int(args.piece_s * fps))
    energy = energy_from_features(take.features, n_mels)
    lags = [-5.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 5.0]
    real = rows["0"]["sync"]
    ratios = {k: (real / v if v > 0 else None) for k, v in ((k, r["sync"]) for k, r in rows.items()) if k != "0"}
    return {"take": TAKE, "seconds": n / fps, "fps": fps, "shifts": rows,
            "lag_profile": {f"{k:g}": v for k, v in lag_profile(speed, energy, fps, lags).items()},
            "sync_ratio_real_over_shifted": ratios,
            "target_met": all(v is None or v >= 2.0 for v in ratios.values()) and real > 0}


def synthetic_table(workspace: Path, shifts_s: tuple[float, ...] = (5.0, 10.0, 15.0)) -> dict:
    """Per held-out clip: sync of the real motion against its own speech, shifted speech and the next clip's."""
    corpus = Corpus.load(workspace)
    cfg = corpus.manifest["audio_features"]
    fps, n_mels = int(corpus.fps), cfg["n_mels"]
    clips = corpus.clips("test")
    rows: dict[str, list[float]] = {"own": [], **{f"shift_{s:g}": [] for s in shifts_s}, "other_clip": []}
    pmb_rows: dict[str, list[float]] = {"own": [], "shift_5": []}
    for i, clip in enumerate(clips):
        positions = clip.skeleton.positions(clip.rotations)  # (T, J, 3) mm
        roles = find_roles(clip.skeleton)
        speed = hands_speed(positions, (roles["left_hand"], roles["right_hand"]), fps)
        energy = energy_from_features(clip.audio, n_mels)
        rows["own"].append(sync_score(speed, energy, fps))
        for s in shifts_s:
            rows[f"shift_{s:g}"].append(sync_score(speed, np.roll(energy, int(s * fps)), fps))
        other = energy_from_features(clips[(i + 1) % len(clips)].audio, n_mels)
        m = min(len(other), len(speed))
        rows["other_clip"].append(sync_score(speed[:m], other[:m], fps))
        beats_m = motion_beats(positions, fps)
        for key, shift in (("own", 0), ("shift_5", 5 * fps)):
            beats_a = audio_beats(np.roll(clip.audio[:, n_mels], shift), cfg["sample_rate"], fps)
            pmb_rows[key].append(pmb(beats_m, beats_a))
    return {"workspace": str(workspace), "corpus_sha256": corpus.checksum, "clips": len(clips),
            "sync_mean": {k: float(np.mean(v)) for k, v in rows.items()},
            "sync_per_clip": rows, "pmb_pct_mean": {k: float(np.mean(v)) for k, v in pmb_rows.items()}}


def markdown(result: dict) -> str:
    z = result["zeggs"]
    lines = ["# sync, PMB and beat alignment against shifted speech", "",
             (f"ZEGGS take {z['take']} ({z['seconds']:.1f} s, upper body at {z['fps']} fps): the real motion against "
             f"its own speech (shift 0) and against the same speech circularly shifted."), "",
             "| speech shift (s) | sync | sync on 30-s pieces | PMB (%) | beat align | audio beats/s |",
             "| --- | --- | --- | --- | --- | --- |"]
    for k, r in z["shifts"].items():
        pieces = ", ".join(f"{p:.2f}" for p in r["sync_pieces"])
        lines.append(f"| {k} | {r['sync']:.3f} | {pieces} | {r['pmb_pct']:.1f} | {r['beat_align']:.3f} | "
                     f"{r['audio_beats_per_s']:.2f} |")
    lines += ["", "Lag profile (motion at t + lag against speech at t, no wrap-around): " +
              ", ".join(f"{k} s: {v:.2f}" for k, v in z["lag_profile"].items()), "",
              f"sync real / shifted >= 2 at every shift: {'yes' if z['target_met'] else 'NO'}."]
    if result.get("synthetic"):
        s = result["synthetic"]
        lines += ["", f"Built-in corpus ({s['clips']} test clips, corpus checksum {s['corpus_sha256'][:16]}), mean over clips:", "",
                  "| speech | sync |", "| --- | --- |"]
        lines += [f"| {k} | {v:.3f} |" for k, v in s["sync_mean"].items()]
        lines += ["", "PMB (%) own speech {own:.1f}, shifted 5 s {shift_5:.1f}.".format(**s["pmb_pct_mean"])]
    p = result["params"]
    lines += ["", (f"sync: Pearson r at zero lag of mean wrist speed and speech RMS energy, both smoothed by a Gaussian "
              f"of sd {p['sync_smoothing_s']} s. PMB tolerance 0.2 s, beat alignment sigma 0.3 s; audio beats: librosa "
              f"onsets of the onset-strength feature.")]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zeggs", type=Path, required=True, help="directory holding the ZEGGS take's wav and bvh")
    p.add_argument("--workspace", type=Path, default=None)
    p.add_argument("--out", type=Path, default=Args.out)
    args = Args(**{k: v for k, v in vars(p.parse_args()).items()})
    result = {"zeggs": zeggs_table(args),
              "synthetic": synthetic_table(args.workspace) if args.workspace else None,
              "params": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(args).items() if k != "zeggs"},
                         "sync_smoothing_s": SMOOTHING_S}}
    write_results(args.out, result, markdown)


if __name__ == "__main__":
    main()
