"""Gestures for real recordings: are they timed to the speech, and do real recordings look like the training speech?

For each recording given (any format ``racer generate`` reads), with a workspace's agent (default: the pretrained
demo weights shipped with racer, i.e. what ``racer generate --audio A`` uses):

* ``sync`` (racer_env.metrics.sync: zero-lag correlation of smoothed wrist speed and speech energy) of the agent's
  motion, against the same figure for uniformly random codes decoded by the same VQ-VAE on the same speech (mean
  of ``--random-draws`` draws) and against the same motion with the speech circularly shifted by ``--shift-s``
  (10 s; half the recording's length when it is shorter than twice that, marked in the table): motion timed to
  the speech scores well above both. Targets (issue 26): agent >= 2 x random and >= 2 x shifted (and above 0);
* the share of the speech time the figure spends at rest. Speech time comes from the recording's own energy:
  frames whose log RMS (smoothed over 0.1 s) is within 30 dB of its 95th percentile and at least 10 dB above its
  5th percentile (the noise floor), gaps under 0.3 s bridged.
  At rest is the rule metrics' definition (racer_env.metrics.rules): both wrists within 30 mm of their rest
  position and slower than 100 mm/s, the rest position being the wrists' place in the decoded rest code (the
  code of silence, ``rest_code``; the agent's hands come to rest within ~10 mm of it). Target: <= 50 %. The
  share of the pauses (the other frames) at rest is reported beside it;
* where the audio features of the recording fall against the training corpus's normalisation statistics (the
  z-scores the agent sees): mean and spread of the z-scores of the log-mel bands, the onset strength and the log
  RMS, and the share of values beyond |z| > 3 and at the clip bound (|z| = 10); the training corpus has mean 0
  and standard deviation 1 per feature by construction. Also the recording's level (RMS, dBFS) and sample rate.

Recordings: ``--audio`` files, and/or ``--voices DIR``: every file of DIR's manifest.json as written by
benchmarks/fetch_voices.py (its description, source and licence go into the results).

Usage:  python benchmarks/real_speech.py [--audio A.wav B.ogg ...] [--voices DIR] [--workspace W] [--agent NAME]
                                         [--shift-s 10] [--out benchmarks/results/real_speech]
The recordings are read in place; only metric figures are written.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import librosa
import numpy as np
from common import machine, write_results
from scipy.ndimage import binary_closing, gaussian_filter1d

from racer_agents.agent import load_agent
from racer_agents.evaluate import positions as joint_positions
from racer_agents.generate import decode_long, prepare_audio, rest_code, rollout_codes, speech_clip
from racer_agents.pretrained import pretrained_workspace
from racer_env.corpus.store import Corpus
from racer_env.envs.episode_data import AUDIO_BOUND
from racer_env.metrics import rules
from racer_env.metrics.sync import energy_from_features, hands_speed, sync_score
from racer_env.motion.upper_body import find_roles
from racer_env.vqvae.tokenize import load_vqvae
from racer_env.workspace import Workspace

SHIFT_S = 10.0  # the speech is shifted by this much against the motion (issue 26)
SPEECH_RANGE_DB = 30.0  # speech: log RMS within this many dB of the recording's 95th percentile...
SPEECH_FLOOR_DB = 10.0  # ...and at least this far above its 5th percentile (the noise floor)...
SPEECH_SMOOTHING_S = 0.1  # ...after Gaussian smoothing of this standard deviation...
SPEECH_BRIDGE_S = 0.3  # ...with shorter gaps (stops, short breaths) bridged
REST_TARGET_PCT = 50.0  # target: at most this share of the speech time at rest


def speech_mask(log_rms: np.ndarray, fps: float, range_db: float = SPEECH_RANGE_DB,
                floor_db: float = SPEECH_FLOOR_DB, smoothing_s: float = SPEECH_SMOOTHING_S,
                bridge_s: float = SPEECH_BRIDGE_S) -> np.ndarray:
    """(T,) natural-log RMS per frame -> (T,) True where the recording speaks.

    Defined from the recording alone, so that it holds for any level or microphone: frames whose smoothed level is
    within ``range_db`` of the recording's 95th percentile (its loud speech) and at least ``floor_db`` above its 5th
    percentile (the noise floor: in a noisy recording the noise between phrases is within 30 dB of the speech), with
    gaps shorter than ``bridge_s`` (closures of stops, short breaths) counted as speech. A recording whose level
    varies by less than ``floor_db`` is speech throughout."""
    log_rms = np.asarray(log_rms, dtype=np.float64)
    if log_rms.ndim != 1 or not np.isfinite(log_rms).all():
        raise ValueError(f"log RMS must be a finite 1-D array, got shape {log_rms.shape}")
    db = gaussian_filter1d(20.0 / np.log(10.0) * log_rms, smoothing_s * fps, mode="nearest")
    loud, floor = np.percentile(db, [95, 5])
    if loud - floor < floor_db:  # no pause stands out from the speech: all of it is speech time
        return np.ones(len(db), dtype=bool)
    mask = db >= max(loud - range_db, floor + floor_db)
    width = int(round(bridge_s * fps))
    if width > 1:
        padded = np.pad(mask, width, constant_values=False)  # silence at either end is not a gap
        mask = binary_closing(padded, structure=np.ones(width, dtype=bool))[width:-width] | mask
    return mask


def shift_frames(n_frames: int, fps: float, shift_s: float = SHIFT_S) -> tuple[int, bool]:
    """Frames to shift the speech by: ``shift_s`` s, or half the recording when it is shorter than twice that
    (a circular shift by more than half only mirrors a shorter one); also whether it was halved."""
    wanted = int(round(shift_s * fps))
    if n_frames < 2 * wanted:
        return n_frames // 2, True
    return wanted, False


def shifted_sync(speed: np.ndarray, energy: np.ndarray, fps: float, frames: int) -> float:
    """``sync`` of the hand speed against the speech energy circularly shifted by ``frames``: a floor for motion
    that moves in its own rhythm whatever is said."""
    return sync_score(speed, np.roll(np.asarray(energy, dtype=np.float64), frames), fps)


def rest_share(hands: dict[str, np.ndarray], rest: dict[str, np.ndarray], frames: np.ndarray,
               fps: float) -> float | None:
    """% of ``frames`` (a (T,) mask) with both hands at rest (rules.rest_in_pauses' definition); None if none."""
    return rules.rest_in_pauses(hands, rest, frames, fps)


def rest_hands(vqvae, corpus: Corpus, code: int) -> dict[str, np.ndarray]:
    """Each wrist's position (mm) in the decoded rest code: the middle of a run of that code, away from the
    decoder's edges."""
    n = 12
    positions = joint_positions(corpus.skeleton, decode_long(vqvae, np.full(n, code), corpus))
    mid = slice(corpus.frames_per_code * (n // 2 - 1), corpus.frames_per_code * (n // 2 + 1))
    return {side: h[mid].mean(axis=0) for side, h in rules.hands_of(positions, corpus.joint_names).items()}


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


def decoded_positions(codes: np.ndarray, vqvae, corpus: Corpus, n: int) -> np.ndarray:
    """(n, J, 3) joint positions (mm) of the decoded codes, cut to the speech's ``n`` frames."""
    return joint_positions(corpus.skeleton, decode_long(vqvae, codes, corpus))[:n]


def measure(path: Path, ws: Workspace, agent_name: str | None, draws: int, seed: int, shift_s: float = SHIFT_S,
            info: dict | None = None) -> dict:
    """Every figure of one recording (``info``: its manifest entry, copied into the result)."""
    corpus = Corpus.load(ws)
    cfg = corpus.manifest["audio_features"]
    rate, n_mels, fps = int(cfg["sample_rate"]), int(cfg["n_mels"]), corpus.fps
    native_rate = int(librosa.get_samplerate(str(path)))
    y = prepare_audio(path, None, rate)
    clip = speech_clip(y, corpus)
    vqvae, _, _ = load_vqvae(ws, corpus, "cpu")
    agent = load_agent(ws, agent_name)
    roles = find_roles(corpus.skeleton, source=str(ws.root))
    hands = (roles["left_hand"], roles["right_hand"])
    energy = energy_from_features(clip.audio, n_mels)
    first = rest_code(vqvae, corpus.frames_per_code)
    codes = rollout_codes(agent, clip, first, progress=False)
    n = min(len(energy), len(codes) * corpus.frames_per_code)
    energy = energy[:n]
    positions = decoded_positions(codes, vqvae, corpus, n)
    speed = hands_speed(positions, hands, fps)
    shift, halved = shift_frames(n, fps, shift_s)
    speech = speech_mask(clip.audio[:n, n_mels + 1], fps)
    wrists, rest = rules.hands_of(positions, corpus.joint_names), rest_hands(vqvae, corpus, first)
    rng = np.random.default_rng(seed)
    random_sync = [sync_score(hands_speed(decoded_positions(
        np.concatenate([codes[:1], rng.integers(0, agent.n_codes, len(codes) - 1)]), vqvae, corpus, n), hands, fps),
        energy, fps) for _ in range(draws)]
    return {"file": path.name, **({"what": info["what"], "source": info["source"], "paths": info.get("paths", []),
                                  "licence": info["licence"], "tts": info["tts"]} if info else {}),
            "seconds": len(y) / rate, "native_sample_rate": native_rate,
            "rms_dbfs": float(20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2)) + 1e-12)),
            "agent": agent.name, "sync_agent": float(sync_score(speed, energy, fps)),
            "sync_random_mean": float(np.mean(random_sync)), "sync_random_draws": random_sync,
            "shift_s": shift / fps, "shift_halved": halved, "sync_shifted": shifted_sync(speed, energy, fps, shift),
            "speech_pct": float(100 * speech.mean()), "rest_in_speech_pct": rest_share(wrists, rest, speech, fps),
            "rest_in_pauses_pct": rest_share(wrists, rest, ~speech, fps),
            "distinct_codes": len(np.unique(codes)), "features": feature_range(clip.audio, corpus)}


def targets(r: dict) -> dict[str, bool]:
    """Issue 26's targets for one recording: sync >= 2 x the random mean and >= 2 x the shifted sync (and above 0),
    at most 50 % of the speech time at rest."""
    positive = r["sync_agent"] > 0
    return {"random": positive and r["sync_agent"] >= 2 * r["sync_random_mean"],
            "shifted": positive and r["sync_agent"] >= 2 * r["sync_shifted"],
            "rest": r["rest_in_speech_pct"] is not None and r["rest_in_speech_pct"] <= REST_TARGET_PCT}


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def main_table(report: dict) -> list[str]:
    """The markdown rows of the timing and rest table (also what benchmarks/README.md shows)."""
    lines = ["| recording | kind | s | sync agent | random codes, mean ± sd | shifted speech | speech % | "
             "rest % of speech | rest % of pauses | >= 2x random | >= 2x shifted | rest <= 50 % |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |"]
    for r in report["recordings"]:
        t = targets(r)
        kind = "TTS" if r.get("tts") else "recorded"
        shifted = f"{r['sync_shifted']:.3f}" + (f" ({r['shift_s']:.1f} s)" if r["shift_halved"] else "")
        lines.append(f"| {r.get('what', r['file'])} | {kind} | {r['seconds']:.1f} | {r['sync_agent']:.3f} | "
                     f"{r['sync_random_mean']:.3f} ± {np.std(r['sync_random_draws']):.3f} | {shifted} | "
                     f"{r['speech_pct']:.0f} | {_pct(r['rest_in_speech_pct'])} | {_pct(r['rest_in_pauses_pct'])} | "
                     f"{_yes(t['random'])} | {_yes(t['shifted'])} | {_yes(t['rest'])} |")
    return lines


def summary(report: dict) -> str:
    """One sentence: on how many recordings each target and all three are met."""
    rows = [targets(r) for r in report["recordings"]]
    n = len(rows)
    return (f"Targets met on {n} recordings: sync >= 2x random on {sum(t['random'] for t in rows)}, >= 2x shifted on "
            f"{sum(t['shifted'] for t in rows)}, rest <= 50 % of speech on {sum(t['rest'] for t in rows)}; all three "
            f"on {sum(all(t.values()) for t in rows)}.")


def markdown(report: dict) -> str:
    lines = ["# Real speech: timing of the generated gestures and the range of the audio features", "",
             (f"`python benchmarks/real_speech.py --audio ... --voices DIR` with {report['workspace_label']}; "
              f"{report['random_draws']} random-code draws per recording; speech shifted by {report['shift_s']:g} s "
              f"(half the length, in brackets, where shorter than {2 * report['shift_s']:g} s); {report['machine']}; "
              f"{report['seconds']:.0f} s."), "",
             ("Speech time: frames within 30 dB of the recording's 95th-percentile level and at least 10 dB above "
              "its 5th percentile (0.1-s smoothing, gaps under 0.3 s bridged). At rest: both wrists within 30 mm "
              "of the rest code's wrist positions and slower than 100 mm/s. Targets (issue 26): sync >= 2 x the "
              "random-code mean, >= 2 x the shifted sync (and above 0), <= 50 % of the speech time at rest."), "",
             *main_table(report), "", summary(report), ""]
    sourced = [r for r in report["recordings"] if "source" in r]
    if sourced:
        lines += ["Sources (fetched by `benchmarks/fetch_voices.py`, kept out of the repository):", "",
                  "| recording | file | source | path in the package | licence | native rate |",
                  "| --- | --- | --- | --- | --- | ---: |"]
        for r in sourced:
            paths = ", ".join(f"`{p}`" for p in r["paths"]) if len(r["paths"]) <= 2 else \
                f"`{r['paths'][0]}` and {len(r['paths']) - 1} more"
            lines.append(f"| {r['what']} | {r['file']} | {r['source']} | {paths or '-'} | {r['licence']} | "
                         f"{r['native_sample_rate']} |")
        lines.append("")
    lines += [("Audio features against the training corpus's statistics (z-scores; training: mean 0, sd 1 per "
               "feature). This is what an agent would read with the corpus normalisation; racer's agents read each "
               "feature standardised over the recording itself instead (mean 0, sd 1 by construction):"), "",
              "| recording | RMS dBFS | group | mean z | sd z | abs z > 3 (%) | clipped (%) |",
              "| --- | ---: | --- | --- | --- | --- | --- |"]
    for r in report["recordings"]:
        for group in ("log_mel", "onset", "log_rms"):
            f = r["features"][group]
            lines.append(f"| {r['file']} | {r['rms_dbfs']:.1f} | {group} | {f['mean_z']:+.2f} | {f['std_z']:.2f} | "
                         f"{f['beyond_3_pct']:.1f} | {f['clipped_pct']:.2f} |")
    return "\n".join(lines) + "\n"


def voices_of(directory: Path) -> list[tuple[Path, dict]]:
    """(path, manifest entry) of every recording in ``directory``'s manifest.json (benchmarks/fetch_voices.py)."""
    manifest = directory / "manifest.json"
    if not manifest.is_file():
        raise SystemExit(f"{manifest}: no manifest (write one with python benchmarks/fetch_voices.py --out "
                         f"{directory})")
    try:
        entries = json.loads(manifest.read_text())["recordings"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise SystemExit(f"{manifest}: not a fetch_voices manifest ({err})") from err
    out = []
    for e in entries:
        path = directory / e["file"]
        if not path.is_file():
            raise SystemExit(f"{manifest}: lists {e['file']}, which is not in {directory} (run fetch_voices.py again)")
        out.append((path, e))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--audio", type=Path, nargs="+", default=[], help="speech recordings (read in place)")
    p.add_argument("--voices", type=Path, default=None,
                   help="a folder written by benchmarks/fetch_voices.py: every recording of its manifest")
    p.add_argument("--workspace", type=Path, default=None, help="workspace (default: the shipped demo weights)")
    p.add_argument("--agent", default=None, help="agent name (default: racer-cql)")
    p.add_argument("--random-draws", type=int, default=10)
    p.add_argument("--shift-s", type=float, default=SHIFT_S, help="shift of the speech against the motion (s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/real_speech"))
    args = p.parse_args()
    if not args.audio and args.voices is None:
        p.error("give recordings: --audio FILE ... and/or --voices DIR")
    for path in args.audio:
        if not path.is_file():
            raise SystemExit(f"{path}: no such audio file")
    inputs = [(path, None) for path in args.audio] + (voices_of(args.voices.expanduser()) if args.voices else [])
    ws = Workspace.of(args.workspace) if args.workspace else pretrained_workspace()
    start = time.perf_counter()
    recordings = [measure(path, ws, args.agent, args.random_draws, args.seed, args.shift_s, info)
                  for path, info in inputs]
    label = "the shipped demo weights" if args.workspace is None else f"workspace {args.workspace}"
    report = {"workspace_label": label,
              "random_draws": args.random_draws, "seed": args.seed, "shift_s": args.shift_s,
              "recordings": recordings, "machine": machine(), "seconds": time.perf_counter() - start}
    write_results(args.out, report, markdown)


if __name__ == "__main__":
    main()
