"""How good the codebook is: held-out reconstruction error in mm, codebook usage and perplexity, and, on
corpora of the built-in speaker, how many of the annotated beat strokes and head nods survive encode/decode.
"""

from __future__ import annotations

import numpy as np
import torch

from racer_env.corpus.store import Clip, Corpus
from racer_env.errors import RacerError
from racer_env.metrics import rules
from racer_env.vqvae.tokenize import SMOOTH_KERNEL, decode_codes, encode_clip, load_vqvae
from racer_env.vqvae.train import code_statistics
from racer_env.workspace import Workspace


def joint_positions(clip_skeleton, rotvecs: np.ndarray) -> np.ndarray:
    """(T, J, 3) rotation vectors -> (T, J, 3) joint positions in mm (root at its rest offset)."""
    return clip_skeleton.positions(rotvecs)


#: a decoded stroke or nod counts when it lies within this many seconds of the annotated one (issue 13's
#: codebook tolerance; the rule-recovery metrics match strokes at ``rules.STROKE_TOLERANCE_S``).
STROKE_TOLERANCE_S = 0.1
NOD_TOLERANCE_S = rules.NOD_TOLERANCE_S


def gesture_events(positions: np.ndarray, rotations: np.ndarray, joint_names: list[str], annotation: dict,
                   fps: float, rest: dict[str, np.ndarray]) -> dict:
    """Strokes and nods of one clip's motion measured against its synthetic annotation.

    Args:
        positions: (T, J, 3) joint positions in mm (Y up).
        rotations: (T, J, 3) local rotation vectors (radians) of the same motion.
        joint_names: the J joint names.
        annotation: the clip's annotation (``rules.load_annotation``).
        fps: frame rate.
        rest: each hand's rest position (``rules.rest_positions`` of the corpus motion).

    Returns:
        ``strokes`` and ``nods`` (``rules.Match`` against the annotated strokes and stressed onsets, by
        ``rules.clip_rules`` at ``STROKE_TOLERANCE_S`` / ``NOD_TOLERANCE_S``) and ``peak_speeds``
        ((n_strokes,) downward peak hand speed near each annotated stroke, mm/s).
    """
    found = rules.clip_rules(positions, rotations, joint_names, annotation, fps, rest,
                             stroke_tolerance=STROKE_TOLERANCE_S, nod_tolerance=NOD_TOLERANCE_S)
    speeds = rules.stroke_peak_speeds(rules.hands_of(positions, joint_names), annotation, fps)
    return {"strokes": found.strokes, "nods": found.nods, "peak_speeds": speeds}


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _median(x: list[np.ndarray]) -> float | None:
    values = np.concatenate(x) if x else np.zeros(0)
    return float(np.median(values)) if values.size else None


def gesture_fidelity(per_clip: list[dict]) -> dict:
    """Pooled stroke and nod figures of decoded motion from ``gesture_events`` of the decoded (``decoded``)
    and the corpus (``corpus``) motion of each clip."""
    def total(kind: str, which: str, attr: str) -> int:
        return sum(getattr(c[which][kind], attr) for c in per_clip)

    speed_dec = _median([c["decoded"]["peak_speeds"] for c in per_clip])
    speed_ref = _median([c["corpus"]["peak_speeds"] for c in per_clip])
    return {
        "stroke_recall": _ratio(total("strokes", "decoded", "hits"), total("strokes", "decoded", "annotated")),
        "stroke_peak_speed_ratio": speed_dec / speed_ref if speed_dec is not None and speed_ref else None,
        "nod_recall": _ratio(total("nods", "decoded", "hits"), total("nods", "decoded", "annotated")),
        "corpus_stroke_recall": _ratio(total("strokes", "corpus", "hits"), total("strokes", "corpus", "annotated")),
        "corpus_nod_recall": _ratio(total("nods", "corpus", "hits"), total("nods", "corpus", "annotated")),
        "stroke_peak_speed_mm_s": {"decoded": speed_dec, "corpus": speed_ref},
    }


def _clip_row(maje: float, events: dict | None) -> dict:
    """Per-clip JSON values: MAJE and, with an annotation, the counts behind the pooled gesture figures."""
    row: dict = {"maje_mm": maje}
    if events is not None:
        dec, ref = events["decoded"], events["corpus"]
        row.update({
            "strokes_annotated": dec["strokes"].annotated, "strokes_recalled": dec["strokes"].hits,
            "strokes_detected": dec["strokes"].detected, "stroke_recall": dec["strokes"].recall,
            "nods_annotated": dec["nods"].annotated, "nods_recalled": dec["nods"].hits,
            "nod_recall": dec["nods"].recall,
            "stroke_peak_speed_mm_s": {"decoded": _median([dec["peak_speeds"]]),
                                       "corpus": _median([ref["peak_speeds"]])},
        })
    return row


NO_ANNOTATION = {"stroke_recall": None, "stroke_peak_speed_ratio": None, "nod_recall": None,
                 "corpus_stroke_recall": None, "corpus_nod_recall": None,
                 "stroke_peak_speed_mm_s": {"decoded": None, "corpus": None}}


def evaluate_codebook(workspace: str | Workspace, split: str = "test", device: str = "cpu") -> dict:
    """Metrics of the workspace's VQ-VAE.

    * ``maje_mm``: mean over frames and joints of the Euclidean distance between joint positions of the
      ``split`` clips and of their reconstruction (encode, decode, smooth, de-normalise), via forward
      kinematics on each clip's skeleton.
    * ``codes_used_frac``, ``perplexity``: over the codes of every clip of the corpus (all splits; a small
      held-out split has fewer code steps than the codebook has codes).
    * On corpora of the built-in speaker (every ``split`` clip has an annotation), pooled over the clips:
      ``stroke_recall``: annotated beat strokes with a stroke detected in the reconstruction (both hands,
      ``rules.detect_strokes``, merged) within ``STROKE_TOLERANCE_S``, one-to-one; ``nod_recall``: stressed
      syllable onsets with a detected nod within ``NOD_TOLERANCE_S``; ``stroke_peak_speed_ratio``: median
      over strokes of the downward peak hand speed of the reconstruction over the same of the corpus
      motion; ``corpus_*``: the same detectors on the corpus motion (the ceiling). On other corpora these
      keys are None.
    * ``per_clip``: the figures of every ``split`` clip.
    """
    ws = Workspace.of(workspace)
    corpus = Corpus.load(ws)
    model, meta, checksum = load_vqvae(ws, corpus, device)
    stats = corpus.stats
    counts = torch.zeros(model.cfg.codebook_size)
    errors, per_clip, events = [], {}, []
    held_out = set(corpus.clip_ids(split))
    annotations = {c: rules.load_annotation(ws.root, c) for c in held_out}
    annotated = bool(annotations) and all(a is not None for a in annotations.values())
    for clip_id in corpus.clip_ids():
        clip = corpus.clip(clip_id)
        codes = encode_clip(model, clip, stats)
        counts += torch.bincount(torch.from_numpy(codes), minlength=model.cfg.codebook_size)
        if clip_id in held_out:
            rec = decode_codes(model, codes, stats)
            err, clip_events = _compare(clip, rec, corpus.joint_names, annotations[clip_id] if annotated else None)
            errors.append(err.reshape(-1))
            if clip_events is not None:
                events.append(clip_events)
            per_clip[clip_id] = _clip_row(float(err.mean()), clip_events)
    if not errors:
        raise RacerError(f"split {split!r} of {corpus.directory} has no clips to evaluate")
    perplexity, used = code_statistics(counts)
    return {
        "maje_mm": float(np.concatenate(errors).mean()),
        **(gesture_fidelity(events) if annotated else NO_ANNOTATION),
        "codes_used_frac": used,
        "perplexity": perplexity,
        "per_clip": per_clip,
        "params": {"split": split, "clips": len(held_out), "codebook_size": model.cfg.codebook_size,
                   "smoothing": {"kernel": SMOOTH_KERNEL, "sigma_frames": model.cfg.smooth_sigma},
                   "usage_over": "all clips", "preset": meta["train"]["preset"], "vqvae_sha256": checksum,
                   "annotated": annotated,
                   "stroke": {"tolerance_s": STROKE_TOLERANCE_S, "merge_hands_within_s": STROKE_TOLERANCE_S,
                              "min_down_speed_mm_s": rules.STROKE_DOWN_SPEED_MM_S,
                              "peak_speed": "largest downward hand speed within 0.1 s of the annotated stroke, "
                                            "in the annotated hand(s); median over strokes",
                              "matching": "one-to-one, nearest first"},
                   "nod": {"tolerance_s": NOD_TOLERANCE_S, "prominence_deg": rules.NOD_PROMINENCE_DEG,
                           "joints": list(rules.NOD_JOINTS), "events": "stressed syllable onsets"}},
    }


def _compare(clip: Clip, rec: np.ndarray, joint_names: list[str], annotation: dict | None):
    """(T, J) joint position error (mm) of a reconstruction, and the gesture events of both motions
    (None without an annotation)."""
    pos_rec, pos_ref = joint_positions(clip.skeleton, rec), joint_positions(clip.skeleton, clip.rotations)
    err = np.linalg.norm(pos_rec - pos_ref, axis=-1)  # (T, J)
    if annotation is None:
        return err, None
    rest = rules.rest_positions(rules.hands_of(pos_ref, joint_names),
                                rules.pause_mask(annotation, len(pos_ref), clip.fps))
    return err, {"decoded": gesture_events(pos_rec, rec, joint_names, annotation, clip.fps, rest),
                 "corpus": gesture_events(pos_ref, clip.rotations, joint_names, annotation, clip.fps, rest)}
