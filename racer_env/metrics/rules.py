"""Rule recovery on the built-in speaker: detect strokes and nods in motion and match them to the annotation.

The built-in speaker's clips carry an annotation (``W/synth/<clip id>.json``): stressed syllables (each gets
a head nod), beat strokes (a 0.10 s downward hand movement centred on the stressed syllable's onset), pauses
(hands at rest) and per-stroke loudness. These functions measure how much of that survives in any motion
(the corpus motion, its VQ-VAE reconstruction, an agent's output) given as joint positions in mm, Y up.

Detectors (one definition, shared by the tests of the speaker, the codebook and the evaluation):

* **stroke**: a local maximum of the hand speed whose downward velocity exceeds ``STROKE_DOWN_SPEED_MM_S``
  (450 mm/s). Its size is the distance between the hand positions at the speed minima around the peak.
* **nod**: a local maximum of the head pitch (the summed forward rotation of the neck and head joints,
  degrees) that rises at least ``NOD_PROMINENCE_DEG`` above the pitch around it.

Matching: a detected event matches an annotated one when they are within ``tolerance`` seconds; each
annotated event is matched at most once (greedy, nearest first), so precision, recall and F1 are counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import find_peaks
from scipy.stats import spearmanr

from racer_env.errors import RacerError

STROKE_DOWN_SPEED_MM_S = 450.0  # a detected stroke moves down faster than this at its speed peak
NOD_PROMINENCE_DEG = 0.5  # a detected nod rises this far above its surroundings (nods are 1.5-6 deg)
NOD_JOINTS = ("Neck", "Neck1", "Head")
REST_RADIUS_MM = 30.0  # a hand at rest is within this distance of its rest position...
REST_SPEED_MM_S = 100.0  # ...and slower than this
HANDS = ("right", "left")


@dataclass(frozen=True)
class DetectedStroke:
    """One stroke found in a hand trajectory."""

    frame: int  # frame of the speed peak
    size_mm: float  # distance between the positions at the speed minima around the peak
    start_frame: int  # the speed minimum before the peak
    down_speed_mm_s: float  # downward speed at the peak


def hand_speed(hand: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """(T, 3) positions (mm) -> velocity (T, 3) and speed (T,) in mm/s (central differences)."""
    vel = np.gradient(np.asarray(hand, dtype=np.float64), axis=0) * fps
    return vel, np.linalg.norm(vel, axis=1)


def detect_strokes(hand: np.ndarray, fps: float, min_down_speed: float = STROKE_DOWN_SPEED_MM_S) -> list[DetectedStroke]:
    """Strokes of one hand: speed peaks moving down (-Y) faster than ``min_down_speed`` mm/s."""
    if len(hand) < 3:
        return []
    vel, speed = hand_speed(hand, fps)
    out = []
    for t in range(1, len(speed) - 1):
        if speed[t] > speed[t - 1] and speed[t] >= speed[t + 1] and -vel[t, 1] > min_down_speed:
            a = t
            while a > 0 and speed[a - 1] < speed[a]:
                a -= 1
            b = t
            while b < len(speed) - 1 and speed[b + 1] < speed[b]:
                b += 1
            out.append(DetectedStroke(t, float(np.linalg.norm(hand[b] - hand[a])), a, float(-vel[t, 1])))
    return out


def hands_of(positions: np.ndarray, joint_names: list[str] | tuple[str, ...]) -> dict[str, np.ndarray]:
    """(T, J, 3) positions -> {"right": (T, 3), "left": (T, 3)} wrist positions."""
    names = list(joint_names)
    missing = [f"{s.capitalize()}Hand" for s in HANDS if f"{s.capitalize()}Hand" not in names]
    if missing:
        raise RacerError(f"rule metrics need the joints {missing}; this skeleton has {names}")
    return {s: positions[:, names.index(f"{s.capitalize()}Hand")] for s in HANDS}


def head_pitch_deg(rotations: np.ndarray, joint_names: list[str] | tuple[str, ...]) -> np.ndarray:
    """(T, J, 3) local rotation vectors -> (T,) summed pitch (X rotation, degrees) of the neck and head."""
    names = list(joint_names)
    idx = [names.index(n) for n in NOD_JOINTS if n in names]
    if not idx:
        raise RacerError(f"nod detection needs one of the joints {NOD_JOINTS}; this skeleton has {names}")
    return np.degrees(np.asarray(rotations, dtype=np.float64)[:, idx, 0].sum(axis=1))


def detect_nods(pitch_deg: np.ndarray, fps: float, prominence: float = NOD_PROMINENCE_DEG) -> np.ndarray:
    """Times (s) of the forward peaks of a (T,) head pitch signal with at least ``prominence`` degrees."""
    peaks, _ = find_peaks(np.asarray(pitch_deg, dtype=np.float64), prominence=prominence, wlen=max(3, int(fps)))
    return peaks / fps


@dataclass(frozen=True)
class Match:
    """Detected events against annotated ones at a tolerance."""

    hits: int  # annotated events with a detected event within the tolerance (one-to-one)
    detected: int
    annotated: int
    pairs: tuple[tuple[int, int], ...]  # (detected index, annotated index) of each hit

    @property
    def precision(self) -> float | None:
        return self.hits / self.detected if self.detected else None

    @property
    def recall(self) -> float | None:
        return self.hits / self.annotated if self.annotated else None

    @property
    def f1(self) -> float | None:
        if not self.detected and not self.annotated:
            return None
        return 2 * self.hits / (self.detected + self.annotated)


def match_events(detected: np.ndarray, annotated: np.ndarray, tolerance: float) -> Match:
    """One-to-one matching of detected to annotated times (s) within ``tolerance``, nearest pairs first."""
    d, a = np.asarray(detected, dtype=np.float64), np.asarray(annotated, dtype=np.float64)
    pairs: list[tuple[int, int]] = []
    if len(d) and len(a):
        gap = np.abs(d[:, None] - a[None, :])
        used_d, used_a = set(), set()
        for i, k in zip(*np.unravel_index(np.argsort(gap, axis=None), gap.shape)):
            if gap[i, k] > tolerance + 1e-9:
                break
            if i not in used_d and k not in used_a:
                used_d.add(i)
                used_a.add(k)
                pairs.append((int(i), int(k)))
    return Match(len(pairs), len(d), len(a), tuple(sorted(pairs)))


def merge_hands(strokes: dict[str, list[DetectedStroke]], fps: float, tolerance: float) -> list[DetectedStroke]:
    """Strokes of both hands as one list in time; a two-handed stroke (both within ``tolerance``) counts once,
    as its larger-size hand."""
    every = sorted((s for hand in strokes.values() for s in hand), key=lambda s: s.frame)
    out: list[DetectedStroke] = []
    for s in every:
        if out and (s.frame - out[-1].frame) / fps <= tolerance:
            if s.size_mm > out[-1].size_mm:
                out[-1] = s
            continue
        out.append(s)
    return out


# -- annotations ------------------------------------------------------------------------------------------
def annotation_path(workspace_root: str | Path, clip_id: str) -> Path:
    """Where the built-in speaker's annotation of ``clip_id`` lies in a workspace."""
    return Path(workspace_root) / "synth" / f"{clip_id}.json"


def load_annotation(workspace_root: str | Path, clip_id: str) -> dict | None:
    """The synthetic annotation of a clip, or None for a clip that has none (a real corpus)."""
    path = annotation_path(workspace_root, clip_id)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def stressed_onsets(annotation: dict) -> np.ndarray:
    """Onsets (s) of the stressed syllables: where rule 6 puts a nod."""
    return np.array([s["onset"] for s in annotation["syllables"] if s["stressed"]], dtype=np.float64)


def stroke_times(annotation: dict) -> np.ndarray:
    """Times (s) of the annotated beat strokes (the speed peak of each, rule 2)."""
    return np.array([s["time"] for s in annotation["strokes"]], dtype=np.float64)


def pause_mask(annotation: dict, n_frames: int, fps: float) -> np.ndarray:
    """(T,) True on frames inside an annotated pause."""
    frames = np.zeros(n_frames, dtype=bool)
    for p in annotation["pauses"]:
        frames[int(np.ceil(p["start"] * fps)): int(np.floor(p["end"] * fps)) + 1] = True
    return frames


# -- the rule metrics of one clip -------------------------------------------------------------------------
def peak_down_speed(hand: np.ndarray, fps: float, time: float, window: float = 0.1) -> float:
    """Largest downward hand speed (mm/s) within ``window`` s of ``time``."""
    vel, _ = hand_speed(hand, fps)
    a, b = max(0, int(np.floor((time - window) * fps))), min(len(hand), int(np.ceil((time + window) * fps)) + 1)
    return float(max(0.0, (-vel[a:b, 1]).max())) if b > a else 0.0


def stroke_peak_speeds(hands: dict[str, np.ndarray], annotation: dict, fps: float) -> np.ndarray:
    """(n_strokes,) downward peak speed (mm/s) near each annotated stroke, in the hand(s) the annotation names."""
    out = []
    for s in annotation["strokes"]:
        sides = HANDS if s["hand"] == "both" else (s["hand"],)
        out.append(max(peak_down_speed(hands[h], fps, s["time"]) for h in sides))
    return np.array(out, dtype=np.float64)


def rest_in_pauses(hands: dict[str, np.ndarray], rest: dict[str, np.ndarray], pauses: np.ndarray, fps: float,
                   radius: float = REST_RADIUS_MM, max_speed: float = REST_SPEED_MM_S) -> float | None:
    """% of pause frames where both hands are within ``radius`` mm of their rest position and slower than
    ``max_speed`` mm/s; None when the clip has no pause frame."""
    n = min(len(pauses), *(len(h) for h in hands.values()))
    frames = pauses[:n]
    if not frames.any():
        return None
    ok = np.ones(n, dtype=bool)
    for side, h in hands.items():
        _, speed = hand_speed(h[:n], fps)
        ok &= (np.linalg.norm(h[:n] - rest[side], axis=1) < radius) & (speed < max_speed)
    return float(100.0 * (ok & frames).sum() / frames.sum())


def rest_positions(hands: dict[str, np.ndarray], pauses: np.ndarray) -> dict[str, np.ndarray]:
    """Each hand's rest position: its median position over the pause frames (the real motion's, normally)."""
    n = min(len(pauses), *(len(h) for h in hands.values()))
    frames = pauses[:n]
    if not frames.any():
        return {side: np.median(h, axis=0) for side, h in hands.items()}
    return {side: np.median(h[:n][frames], axis=0) for side, h in hands.items()}


def spearman(x: list[float] | np.ndarray, y: list[float] | np.ndarray, minimum: int = 5) -> float | None:
    """Spearman's rho of paired values, or None with fewer than ``minimum`` pairs or a constant side."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < minimum or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(spearmanr(x, y)[0])


# -- per-clip rule recovery, pooled over clips --------------------------------------------------------------
STROKE_TOLERANCE_S = 0.2  # rule-recovery stroke precision/recall/F1
NOD_TOLERANCE_S = 0.1  # nod F1 (a nod peaks 0.06 s after its syllable's onset)


@dataclass(frozen=True)
class ClipRules:
    """What one clip's motion recovers of its annotation: event counts and stroke (loudness, size) pairs."""

    strokes: Match
    nods: Match
    rest_pct: float | None  # % of pause frames with both hands at rest; None without pauses
    loudness_size: tuple[tuple[float, float], ...]  # (annotated loudness dB, detected size mm) of matched strokes


def clip_rules(positions: np.ndarray, rotations: np.ndarray, joint_names: list[str] | tuple[str, ...],
               annotation: dict, fps: float, rest: dict[str, np.ndarray],
               stroke_tolerance: float = STROKE_TOLERANCE_S, nod_tolerance: float = NOD_TOLERANCE_S) -> ClipRules:
    """Rule recovery of one clip's motion: (T, J, 3) positions (mm), (T, J, 3) local rotation vectors, against the
    clip's annotation; ``rest`` holds each hand's rest position (from the real motion: :func:`rest_positions`)."""
    hands = hands_of(positions, joint_names)
    detected = merge_hands({s: detect_strokes(h, fps) for s, h in hands.items()}, fps, stroke_tolerance)
    annotated = annotation["strokes"]
    strokes = match_events(np.array([s.frame for s in detected]) / fps, stroke_times(annotation), stroke_tolerance)
    nods = match_events(detect_nods(head_pitch_deg(rotations, joint_names), fps), stressed_onsets(annotation),
                        nod_tolerance)
    rest_pct = rest_in_pauses(hands, rest, pause_mask(annotation, len(positions), fps), fps)
    pairs = tuple((float(annotated[k]["loudness_rel_db"]), detected[i].size_mm) for i, k in strokes.pairs)
    return ClipRules(strokes, nods, rest_pct, pairs)


def pooled_rules(clips: list[ClipRules]) -> dict[str, float | None]:
    """Rule-recovery metrics pooled over clips (event counts summed, then precision/recall/F1)."""
    def pool(matches: list[Match]) -> Match:
        return Match(sum(m.hits for m in matches), sum(m.detected for m in matches),
                     sum(m.annotated for m in matches), ())

    strokes, nods = pool([c.strokes for c in clips]), pool([c.nods for c in clips])
    rest = [c.rest_pct for c in clips if c.rest_pct is not None]
    pairs = [p for c in clips for p in c.loudness_size]
    return {
        "stroke_precision": strokes.precision, "stroke_recall": strokes.recall, "stroke_f1": strokes.f1,
        "nod_f1": nods.f1,
        "rest_in_pauses_pct": float(np.mean(rest)) if rest else None,
        "stroke_size_loudness_spearman": spearman([p[0] for p in pairs], [p[1] for p in pairs]),
    }


RULE_PARAMS = {
    "stroke_detector": f"hand-speed peak moving down faster than {STROKE_DOWN_SPEED_MM_S:g} mm/s; both hands, "
                       f"two-handed strokes within the tolerance counted once",
    "stroke_tolerance_s": STROKE_TOLERANCE_S,
    "nod_detector": f"forward peak of the summed {'/'.join(NOD_JOINTS)} pitch with prominence >= "
                    f"{NOD_PROMINENCE_DEG:g} deg (1 s window)",
    "nod_events": "stressed syllable onsets",
    "nod_tolerance_s": NOD_TOLERANCE_S,
    "rest": f"both hands within {REST_RADIUS_MM:g} mm of the real motion's median pause position and slower than "
            f"{REST_SPEED_MM_S:g} mm/s, % of annotated pause frames",
    "stroke_size_loudness": "Spearman rho of annotated loudness (dB re. nominal) vs detected stroke size (mm) over "
                            "matched strokes of every clip (None below 5 pairs)",
    "pooling": "event counts summed over clips; rest averaged over clips",
}
