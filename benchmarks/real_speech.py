"""Gestures for real recordings: are they timed to the speech, and do real recordings look like the training speech?

For each recording given (any format ``racer generate`` reads), with a workspace's agent (default: the pretrained
demo weights shipped with racer, i.e. what ``racer generate --audio A`` uses):

* ``sync`` (racer_env.metrics.sync: zero-lag correlation of smoothed wrist speed and speech energy) of the agent's
  motion, against the same figure for uniformly random codes decoded by the same VQ-VAE on the same speech (mean
  of ``--random-draws`` draws): the target is agent >= 2 x random;
* where the audio features of the recording fall against the training corpus's normalisation statistics (the
  z-scores the agent sees): mean and spread of the z-scores of the log-mel bands, the onset strength and the log
  RMS, and the share of values beyond |z| > 3 and at the clip bound (|z| = 10); the training corpus has mean 0
  and standard deviation 1 per feature by construction. Also the recording's level (RMS, dBFS) and sample rate.

Usage:  python benchmarks/real_speech.py --audio A.wav [B.ogg ...] [--workspace W] [--agent NAME]
                                         [--out benchmarks/results/real_speech]
The recordings are read in place; only metric figures are written.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import librosa
import numpy as np
from common import machine, write_results

from racer_agents.agent import load_agent
from racer_agents.evaluate import positions as joint_positions
from racer_agents.generate import decode_long, prepare_audio, rest_code, rollout_codes, speech_clip
from racer_agents.pretrained import pretrained_workspace
from racer_env.corpus.store import Corpus
from racer_env.envs.episode_data import AUDIO_BOUND
from racer_env.metrics.sync import energy_from_features, sync
from racer_env.motion.upper_body import find_roles
from racer_env.vqvae.tokenize import load_vqvae
from racer_env.workspace import Workspace


def feature_range(raw: np.ndarray, corpus: Corpus) -> dict:
    """z-scores of a recording's (T, n_mels + 2) features against the corpus statistics, by feature group."""
    n_mels = int(corpus.manifest["audio_features"]["n_mels"])
    z = corpus.stats.normalise_audio(raw)  # (T, F)
    groups = {"log_mel": z[:, :n_mels], "onset": z[:, n_mels:n_mels + 1], "log_rms": z[:, n_mels + 1:]}
    out = {name: {"mean_z": float(g.mean()), "std_z": float(g.std()),
                  "beyond_3_pct": float(100 * (np.abs(g) > 3).mean()),
                  "clipped_pct": float(100 * (np.abs(g) >= AUDIO_BOUND).mean())} for name, g in groups.items()}
    out["per_band_mean_z"] = [float(v) for v in z[:, :n_mels].mean(0)]
    return out


def motion_sync(codes: np.ndarray, vqvae, corpus: Corpus, energy: np.ndarray, hands: tuple[int, int]) -> float:
    rotations = decode_long(vqvae, codes, corpus)
    positions = joint_positions(corpus.skeleton, rotations)  # (T, J, 3) mm
    n = min(len(positions), len(energy))
    return float(sync(positions[:n], hands, energy[:n], corpus.fps))


def measure(path: Path, ws: Workspace, agent_name: str | None, draws: int, seed: int) -> dict:
    corpus = Corpus.load(ws)
    rate = int(corpus.manifest["audio_features"]["sample_rate"])
    native_rate = int(librosa.get_samplerate(str(path)))
    y = prepare_audio(path, None, rate)
    clip = speech_clip(y, corpus)
    vqvae, _, _ = load_vqvae(ws, corpus, "cpu")
    agent = load_agent(ws, agent_name)
    roles = find_roles(corpus.skeleton, source=str(ws.root))
    hands = (roles["left_hand"], roles["right_hand"])
    energy = energy_from_features(clip.audio, int(corpus.manifest["audio_features"]["n_mels"]))
    codes = rollout_codes(agent, clip, rest_code(vqvae, corpus.frames_per_code), progress=False)
    agent_sync = motion_sync(codes, vqvae, corpus, energy, hands)
    rng = np.random.default_rng(seed)
    random_sync = [motion_sync(np.concatenate([codes[:1], rng.integers(0, agent.n_codes, len(codes) - 1)]), vqvae,
                               corpus, energy, hands) for _ in range(draws)]
    return {"file": path.name, "seconds": len(y) / rate, "native_sample_rate": native_rate,
            "rms_dbfs": float(20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2)) + 1e-12)),
            "agent": agent.name, "sync_agent": agent_sync, "sync_random_mean": float(np.mean(random_sync)),
            "sync_random_draws": random_sync, "distinct_codes": len(np.unique(codes)),
            "features": feature_range(clip.audio, corpus)}


def markdown(report: dict) -> str:
    lines = ["# Real speech: timing of the generated gestures and the range of the audio features", "",
             (f"`python benchmarks/real_speech.py --audio ...` with {report['workspace_label']}; "
              f"{report['random_draws']} random-code draws per recording; {report['machine']}; "
              f"{report['seconds']:.0f} s."), "",
             ("| recording | s | native rate | RMS dBFS | sync agent | sync random (mean) | agent / random | "
             "target >= 2x |"), "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["recordings"]:
        ratio = r["sync_agent"] / r["sync_random_mean"] if r["sync_random_mean"] > 0 else float("inf")
        met = r["sync_agent"] >= 2 * r["sync_random_mean"] and r["sync_agent"] > 0
        lines.append(f"| {r['file']} | {r['seconds']:.1f} | {r['native_sample_rate']} | {r['rms_dbfs']:.1f} | "
                     f"{r['sync_agent']:.3f} | {r['sync_random_mean']:.3f} | "
                     f"{'n/a (random <= 0)' if ratio == float('inf') else f'{ratio:.1f}'} | {'yes' if met else '**no**'} |")
    lines += ["", ("Audio features against the training corpus's statistics (z-scores; training: mean 0, sd 1 per "
              "feature). This is what an agent would read with the corpus normalisation; racer's agents read each "
              "feature standardised over the recording itself instead (mean 0, sd 1 by construction):"), "", "| recording | group | mean z | sd z | abs z > 3 (%) | clipped (%) |",
              "| --- | --- | --- | --- | --- | --- |"]
    for r in report["recordings"]:
        for group in ("log_mel", "onset", "log_rms"):
            f = r["features"][group]
            lines.append(f"| {r['file']} | {group} | {f['mean_z']:+.2f} | {f['std_z']:.2f} | {f['beyond_3_pct']:.1f} "
                         f"| {f['clipped_pct']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--audio", type=Path, nargs="+", required=True, help="speech recordings (read in place)")
    p.add_argument("--workspace", type=Path, default=None, help="workspace (default: the shipped demo weights)")
    p.add_argument("--agent", default=None, help="agent name (default: racer-cql)")
    p.add_argument("--random-draws", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/real_speech"))
    args = p.parse_args()
    for path in args.audio:
        if not path.is_file():
            raise SystemExit(f"{path}: no such audio file")
    ws = Workspace.of(args.workspace) if args.workspace else pretrained_workspace()
    start = time.perf_counter()
    recordings = [measure(path, ws, args.agent, args.random_draws, args.seed) for path in args.audio]
    report = {"workspace_label": "the shipped demo weights" if args.workspace is None else f"workspace {args.workspace}",
              "random_draws": args.random_draws, "seed": args.seed, "recordings": recordings,
              "machine": machine(),
              "seconds": time.perf_counter() - start}
    write_results(args.out, report, markdown)


if __name__ == "__main__":
    main()
