"""``racer evaluate files --audio A.wav --motion M.bvh [--reference R.bvh]``: the metrics of any gesture take.

Benchmarks any gesture generator's output, not only racer's: a BVH whose skeleton maps to the upper body (see
:mod:`racer_env.motion.upper_body`) at any frame rate, and the speech it was made for, are read the way
``racer corpus import`` reads a pair (upper-body rotations resampled to 20 fps, speech features at one frame per
motion frame, both trimmed to one length, which may differ by at most 1 s) and measured:

* motion-only, against the speech: ``sync`` (:mod:`racer_env.metrics.sync`), PMB and beat alignment (motion
  beats against the onsets of the speech), jerk, L1 diversity (:mod:`racer_env.metrics.motion`);
* with a reference take of the same speech (``--reference``, e.g. the recorded motion): MAJE and MAD (the same
  upper-body joints are required), and FGD when the joints are those of the shipped FGD extractor (otherwise
  ``None`` and ``fgd_unavailable`` says why).

Every number carries its parameters in ``params``. Bad input (a missing or unreadable file, a skeleton without
an upper body, lengths differing by more than 1 s, non-finite values) raises an error naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from racer_env.audio.features import AudioError, AudioFeatureConfig
from racer_env.corpus.importer import ImportConfig, SourcePair, import_pair
from racer_env.errors import RacerError
from racer_env.metrics import fgd as fgd_mod
from racer_env.metrics.motion import (
    l1_diversity,
    mad,
    maje,
)
from racer_env.metrics.speech import speech_metrics
from racer_env.metrics.sync import SMOOTHING_S
from racer_env.motion.skeleton import Skeleton
from racer_env.motion.upper_body import find_roles, same_joints

MOTION_METRICS = ("sync", "pmb_pct", "beat_align", "jerk_mm_s3", "l1_div_mm")
REFERENCE_METRICS = ("maje_mm", "mad_mm_s2", "fgd")


@dataclass(frozen=True)
class Take:
    """One motion file read against one speech file, at the evaluation frame rate."""

    motion_path: Path
    skeleton: Skeleton  # the upper body
    positions: np.ndarray  # (T, J, 3) joint positions in mm
    features: np.ndarray  # (T, n_mels + 2) speech features, one frame per motion frame
    audio: AudioFeatureConfig
    fps: int
    hands: tuple[int, int]  # joint indices of the left and right wrist
    report: dict  # frames read and trimmed (see racer_env.audio.features.align_to_code_steps)


def load_take(audio: str | os.PathLike, motion: str | os.PathLike, unit_mm: float = 10.0,
              config: ImportConfig | None = None) -> Take:
    """Read a speech file and a BVH as ``racer corpus import`` reads a pair; errors name the file."""
    config = config or ImportConfig(unit_mm=unit_mm)
    audio, motion = Path(audio), Path(motion)
    if not motion.exists():
        raise RacerError(f"{motion}: no such motion file")  # (a directory or device: read_bvh says which)
    try:
        pair = import_pair(SourcePair("files", motion.stem, audio, motion), config)
    except AudioError as err:  # names the audio file only; the motion file is half of the problem
        raise AudioError(f"{err} (motion: {motion})") from None
    skeleton = pair["skeleton"]
    positions = skeleton.positions(pair["rotations"])  # (T, J, 3) mm
    if not np.isfinite(positions).all():
        raise RacerError(f"{motion}: joint positions are not finite (NaN or inf in the file)")
    roles = find_roles(skeleton, source=str(motion))
    return Take(motion, skeleton, positions, pair["audio"], config.audio, config.fps,
                (roles["left_hand"], roles["right_hand"]), pair["report"])


def motion_metrics(take: Take, sigma: float = 0.3, tolerance: float = 0.2, seed: int = 0) -> dict:
    """sync, PMB, beat alignment, jerk and L1 diversity of one take against its speech."""
    out = speech_metrics(take.positions, take.hands, take.features, take.audio.n_mels, take.audio.sample_rate,
                         take.fps, sigma, tolerance)
    return {**out, "l1_div_mm": l1_diversity([take.positions], seed=seed)}


def reference_metrics(take: Take, reference: Take) -> dict:
    """MAJE, MAD and (where the joints fit the shipped extractor) FGD of a take against a reference take."""
    if not same_joints(take.skeleton, reference.skeleton):
        raise RacerError(f"{take.motion_path} and {reference.motion_path} map to different upper-body joints "
                         f"({list(take.skeleton.names)} vs {list(reference.skeleton.names)}); MAJE, MAD and FGD "
                         f"need one skeleton layout (names compared without a namespace prefix such as mixamorig:)")
    n = min(len(take.positions), len(reference.positions))
    pred, truth = take.positions[:n], reference.positions[:n]
    out = {"maje_mm": maje(pred, truth), "mad_mm_s2": mad(pred, truth, take.fps), "fgd": None,
           "fgd_unavailable": None}
    try:
        extractor = fgd_mod.load_extractor(joint_names=list(take.skeleton.names))
    except ValueError as err:
        out["fgd_unavailable"] = str(err)
        return out
    real, generated = fgd_mod.windows(truth), fgd_mod.windows(pred)
    if min(len(real), len(generated)) < 2:
        out["fgd_unavailable"] = (f"FGD needs at least two {fgd_mod.WINDOW}-frame windows "
                                  f"({(fgd_mod.WINDOW + fgd_mod.STRIDE) / take.fps:g} s); the takes have {n} frames")
        return out
    out["fgd"] = fgd_mod.fgd(extractor, real, generated)
    return out


def evaluate_files(audio: str | os.PathLike, motion: str | os.PathLike, reference: str | os.PathLike | None = None,
                   unit_mm: float = 10.0, sigma: float = 0.3, tolerance: float = 0.2, seed: int = 0) -> dict:
    """All metrics of ``motion`` against the speech ``audio`` (and the reference take, if given)."""
    take = load_take(audio, motion, unit_mm)
    result = {"audio": str(audio), "motion": str(motion), "reference": None if reference is None else str(reference),
              "frames": len(take.positions), "seconds": len(take.positions) / take.fps,
              "joints": list(take.skeleton.names), "metrics": motion_metrics(take, sigma, tolerance, seed)}
    if reference is not None:
        result["metrics"].update(reference_metrics(take, load_take(audio, reference, unit_mm)))
    result["params"] = {
        "fps": take.fps, "unit_mm": unit_mm, "sync_smoothing_s": SMOOTHING_S,
        "sync": "Pearson r at zero lag of the mean wrist speed and the speech RMS energy, both Gaussian-smoothed",
        "pmb_tolerance_s": tolerance, "beat_sigma_s": sigma,
        "motion_beats": "local minima of mean joint speed after a drop >= 10% of its 5-95% range",
        "audio_beats": "librosa onset_detect on the onset-strength feature", "l1_div_window_frames": 40,
        "l1_div_pairs": 500, "seed": seed, "fgd_window_frames": fgd_mod.WINDOW, "fgd_stride_frames": fgd_mod.STRIDE,
        "fgd_extractor_sha256": fgd_mod.EXTRACTOR_SHA256,
    }
    return result


def format_result(result: dict) -> str:
    """Human-readable lines: one metric per line, then the parameters."""
    lines = [(f"{result['motion']} against {result['audio']}: {result['seconds']:.2f} s at {result['params']['fps']} "
             f"fps, {len(result['joints'])} upper-body joints")]
    for key in MOTION_METRICS + (REFERENCE_METRICS if result["reference"] else ()):
        value = result["metrics"][key]
        lines.append(f"{key:<12} " + ("n/a" if value is None else f"{value:.4f}"))
    if result["reference"] and result["metrics"]["fgd_unavailable"]:
        lines.append(f"fgd n/a: {result['metrics']['fgd_unavailable']}")
    return "\n".join(lines)
