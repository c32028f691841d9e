"""Gesture motion from the speech annotation: the synthetic speaker's body.

Hand paths are planned as key poses joined by minimum-jerk segments (zero velocity and acceleration at
both ends, speed peak at the middle of each segment), in the chest frame relative to each shoulder, then
turned into joint rotations by analytic two-bone inverse kinematics (shoulder, elbow; the elbow swivels
toward a fixed down-back-outward pole). The spine and head carry sway and nods. A *code step* is 0.4 s,
the duration one gesture code of the VQ-VAE covers.

Motion rules (numbered; docs/corpus.md copies them):

1. **Rest in pauses.** Outside a gesturing phrase both hands are at the rest pose (arms hanging, hands
   slightly in front of the hips). Preparation starts no earlier than the phrase start and retraction
   ends no later than the phrase end, so every pause frame has the hands at rest (only sway moves them,
   by millimetres).
2. **Strokes on stressed syllables.** A beat stroke is a minimum-jerk movement of 0.10 s, mostly
   downward (see rule 8 for the direction variants), centred on the stressed syllable's onset, so the
   hand-speed peak is at the onset. Between strokes the hand recoils upward to the next raised position
   over 0.3-0.6 s (at least three stroke durations, so recoil speed peaks are lower), then holds.
   Stressed syllables too close to the previous stroke (< 0.4 s), or too close to the phrase edges for
   preparation or retraction, get no stroke.
3. **Amplitude with loudness.** Stroke length (cm) = gesture_amplitude * (5 + 0.8 * (L + 1)), clipped to
   3.5-15 cm, where L is the syllable's loudness relative to the speaker's nominal level (dB).
4. **Hand height with pitch.** The raised hand (stroke start) is 21 - 1.6 * P cm below the shoulder
   (clipped to 6-28 cm), where P is the stressed syllable's pitch in semitones relative to the speaker's
   base f0, so higher pitch means a higher hand.
5. **Preparation and retraction span several code steps.** Preparation moves from rest to the first
   raised position over 0.8-1.2 s (two to three code steps) starting at or after the phrase start;
   retraction moves from the last stroke's end back to rest over max(0.8 s, time for a 0.35 m/s peak
   speed), ending by the phrase end. A phrase with no stressed syllable that leaves room for both gets
   no arm gesture (head nods only).
6. **Head nods.** On every stressed syllable the neck and head pitch forward by a Gaussian bump (width
   0.07 s, peak 0.06 s after the onset) of nod_deg * (0.6 + 0.04 * L) degrees, split 40 % neck and 60 %
   head.
7. **Idle sway.** The spine always sways: sums of two slow sinusoids (0.08-0.35 Hz, random phases) of
   sway_deg amplitude in yaw and roll on Spine/Spine1 and a smaller pitch on Spine2, and half of that on
   the head.
8. **One-to-many.** For each phrase the gesture is drawn at random among valid options: hands (right,
   left or both, weighted by the speaker's handedness), stroke direction (down, down-inward,
   down-forward) and lateral position (centre, middle, wide). The same speech therefore admits
   different motions, and the choice is recorded in the annotation.
9. **Per-speaker style** (see :mod:`racer_env.corpus.synth.speaker`): gesture amplitude, handedness
   weights, sway amplitude, nod size and body proportions differ between speakers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from racer_env.corpus.synth.speech import Phrase, Syllable, round4
from racer_env.motion.rotations import euler_to_matrix, rotvec_to_matrix
from racer_env.motion.skeleton import Skeleton, forward_kinematics

CODE_STEP_S = 0.4
STROKE_S = 0.10
RECOIL_MIN_S = 0.30
RECOIL_MAX_S = 0.60
PREP_MIN_S = 2 * CODE_STEP_S
PREP_MAX_S = 3 * CODE_STEP_S
RETRACT_MIN_S = 2 * CODE_STEP_S
RETRACT_PEAK_SPEED_CM_S = 35.0
MIN_STROKE_GAP_S = STROKE_S + RECOIL_MIN_S
REACH_FRACTION = 0.93  # key poses are kept within this fraction of the arm's length

HAND_OPTIONS = ("right", "left", "both")
DIRECTION_OPTIONS = ("down", "down_inward", "down_forward")
LATERAL_OPTIONS = ("centre", "middle", "wide")
#: stroke direction in the right arm's chest frame (x toward the body midline is +x for the right hand).
_DIRECTIONS = {
    "down": np.array([0.0, -1.0, 0.0]),
    "down_inward": np.array([0.42, -0.91, 0.0]),
    "down_forward": np.array([0.0, -0.94, 0.34]),
}
#: inward offset (cm, unit body) of the raised hand from the shoulder, per lateral option.
_LATERAL_IN = {"centre": 9.0, "middle": 3.0, "wide": -3.0}
#: right hand rest pose relative to the right shoulder joint, cm (unit body): slightly out, down, forward.
_REST = np.array([-2.0, -50.0, 5.0])
_RAISE_Z = 20.0
_POLE_RIGHT = np.array([-0.35, -0.55, -0.75])


@dataclass(frozen=True)
class GestureStyle:
    """The motion part of a speaker style."""

    gesture_amplitude: float = 1.0
    hand_weights: tuple[float, float, float] = (0.55, 0.15, 0.30)  # right, left, both
    sway_deg: float = 1.0
    nod_deg: float = 4.0


@dataclass
class GestureChoice:
    phrase: int
    hands: str  # right | left | both | none
    direction: str
    lateral: str
    strokes: list[int] = field(default_factory=list)  # indices into the stroke list


@dataclass
class Stroke:
    time: float  # s, velocity peak (= stressed syllable onset)
    hand: str  # right | left | both
    syllable: int
    phrase: int
    amplitude_cm: float
    raise_below_shoulder_cm: float
    loudness_rel_db: float
    pitch_st: float


@dataclass
class GestureTrack:
    local_rotations: np.ndarray  # (T, J, 3, 3)
    fps: float
    choices: list[GestureChoice]
    strokes: list[Stroke]

    def annotation(self) -> dict:
        r = round4
        return {
            "gestures": [
                {
                    "phrase": c.phrase,
                    "hands": c.hands,
                    "direction": c.direction,
                    "lateral": c.lateral,
                    "strokes": list(c.strokes),
                }
                for c in self.choices
            ],
            "strokes": [
                {
                    "time": r(s.time),
                    "hand": s.hand,
                    "syllable": s.syllable,
                    "phrase": s.phrase,
                    "amplitude_cm": r(s.amplitude_cm),
                    "raise_below_shoulder_cm": r(s.raise_below_shoulder_cm),
                    "loudness_rel_db": r(s.loudness_rel_db),
                    "pitch_st": r(s.pitch_st),
                }
                for s in self.strokes
            ],
        }


# -- paths ------------------------------------------------------------------------------------------------
def min_jerk_path(key_times: np.ndarray, key_points: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Piecewise minimum-jerk interpolation of (K, D) key points at increasing key times; held outside."""
    kt = np.asarray(key_times, dtype=np.float64)
    kp = np.asarray(key_points, dtype=np.float64)
    if kt.size == 1:
        return np.broadcast_to(kp[0], (times.size, kp.shape[1])).copy()
    idx = np.clip(np.searchsorted(kt, times, side="right") - 1, 0, kt.size - 2)
    span = kt[idx + 1] - kt[idx]
    tau = np.clip((times - kt[idx]) / span, 0.0, 1.0)
    s = tau**3 * (10.0 - 15.0 * tau + 6.0 * tau**2)
    return kp[idx] + s[:, None] * (kp[idx + 1] - kp[idx])


class _Keys:
    """Key poses of one hand; a key at the same time as the last replaces nothing (kept increasing)."""

    def __init__(self, rest: np.ndarray) -> None:
        self.t: list[float] = [-1.0]
        self.p: list[np.ndarray] = [rest]

    def add(self, t: float, p: np.ndarray) -> None:
        t = max(t, self.t[-1] + 1e-6)
        self.t.append(t)
        self.p.append(np.asarray(p, dtype=np.float64))


def _reachable(p: np.ndarray, reach: float) -> np.ndarray:
    d = np.linalg.norm(p)
    lim = REACH_FRACTION * reach
    return p if d <= lim else p * (lim / d)


# -- inverse kinematics -----------------------------------------------------------------------------------
def two_bone_ik(
    shoulder: np.ndarray,
    target: np.ndarray,
    parent_rot: np.ndarray,
    upper: float,
    lower: float,
    pole_local: np.ndarray,
    bone_axis: np.ndarray,
    hinge_axis: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Local rotations of the upper arm and forearm that put the wrist at ``target``.

    Args:
        shoulder: (T, 3) world position of the upper-arm joint.
        target: (T, 3) world wrist target (clamped to 99.9 % of the reach).
        parent_rot: (T, 3, 3) world rotation of the upper arm's parent.
        upper, lower: bone lengths (upper arm, forearm) in the same unit as the positions.
        pole_local: (3,) elbow pole direction in the parent frame.
        bone_axis: (3,) unit direction of the arm bones in the rest pose.
        hinge_axis: (3,) unit elbow hinge axis in the rest pose, perpendicular to ``bone_axis``.

    Returns:
        (T, 3, 3) upper-arm local rotation, (T, 3, 3) forearm local rotation.
    """
    d_vec = target - shoulder
    d = np.linalg.norm(d_vec, axis=-1, keepdims=True)
    e = d_vec / np.maximum(d, 1e-9)
    d = np.clip(d, abs(upper - lower) + 1e-3, 0.999 * (upper + lower))
    along = (upper**2 - lower**2 + d**2) / (2.0 * d)
    radius = np.sqrt(np.maximum(upper**2 - along**2, 0.0))
    pole = np.einsum("tij,j->ti", parent_rot, pole_local)
    q = pole - np.sum(pole * e, axis=-1, keepdims=True) * e
    q /= np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-9)
    elbow_rel = along * e + radius * q
    u = elbow_rel / upper
    v = (d * e - elbow_rel) / lower
    n = np.cross(q, e)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    target_frame = np.stack([u, n, np.cross(u, n)], axis=-1)  # columns
    rest_frame = np.stack([bone_axis, hinge_axis, np.cross(bone_axis, hinge_axis)], axis=-1)
    g_upper = target_frame @ rest_frame.T
    local_upper = np.einsum("tji,tjk->tik", parent_rot, g_upper)
    w = np.einsum("tji,tj->ti", g_upper, v)  # forearm direction in the upper arm's frame
    angle = np.arctan2(np.cross(bone_axis, w) @ hinge_axis, w @ bone_axis)
    local_lower = rotvec_to_matrix(angle[:, None] * hinge_axis[None, :])
    return local_upper, local_lower


# -- planning ---------------------------------------------------------------------------------------------
def _choose(rng: np.random.Generator, style: GestureStyle) -> tuple[str, str, str]:
    w = np.asarray(style.hand_weights, dtype=np.float64)
    hands = HAND_OPTIONS[int(rng.choice(3, p=w / w.sum()))]
    direction = DIRECTION_OPTIONS[int(rng.integers(3))]
    lateral = LATERAL_OPTIONS[int(rng.integers(3))]
    return hands, direction, lateral


def _stroke_amplitude(style: GestureStyle, loud_rel: float) -> float:
    return float(np.clip(style.gesture_amplitude * (5.0 + 0.8 * (loud_rel + 1.0)), 3.5, 15.0))


def _raise_below(pitch_st: float) -> float:
    return float(np.clip(21.0 - 1.6 * pitch_st, 6.0, 28.0))


def _retract_time(dist_cm: float) -> float:
    return max(RETRACT_MIN_S, 1.875 * dist_cm / RETRACT_PEAK_SPEED_CM_S)


def plan_phrase(
    phrase: Phrase,
    syllables: list[Syllable],
    style: GestureStyle,
    arm_scale: float,
    reach: float,
    direction: str,
    lateral: str,
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Strokes of one phrase as (syllable index, raised pose, end pose) in the right arm's chest frame."""
    stressed = [i for i in phrase.syllables if syllables[i].stressed]
    plan: list[tuple[int, np.ndarray, np.ndarray]] = []
    last_t = -np.inf
    for i in stressed:
        syl = syllables[i]
        if syl.onset - STROKE_S / 2 < phrase.start + PREP_MIN_S or syl.onset - last_t < MIN_STROKE_GAP_S:
            continue
        raise_p = np.array([_LATERAL_IN[lateral], -_raise_below(syl.pitch_st), _RAISE_Z]) * arm_scale
        raise_p = _reachable(raise_p, reach)
        amp = _stroke_amplitude(style, syl.loudness_rel_db) * arm_scale
        end_p = _reachable(raise_p + amp * _DIRECTIONS[direction], reach)
        plan.append((i, raise_p, end_p))
        last_t = syl.onset
    rest = _REST * arm_scale
    while plan:
        i, _, end_p = plan[-1]
        t_end = syllables[i].onset + STROKE_S / 2
        if t_end + _retract_time(float(np.linalg.norm(end_p - rest))) <= phrase.end:
            break
        plan.pop()
    return plan


def _mirror(p: np.ndarray) -> np.ndarray:
    return p * np.array([-1.0, 1.0, 1.0])


def synthesize_gestures(
    rng: np.random.Generator,
    skeleton: Skeleton,
    phrases: list[Phrase],
    syllables: list[Syllable],
    style: GestureStyle,
    n_frames: int,
    fps: float = 60.0,
    arms: bool = True,
    nods: bool = True,
    choice_rng: np.random.Generator | None = None,
) -> GestureTrack:
    """Joint rotations (T, J, 3, 3) for ``n_frames`` frames following rules 1-8.

    The ablation switches exist to test what a model of the motion attends to (the same speech, the same
    draws, one ingredient removed): ``arms=False`` keeps both hands at rest (rule 1 everywhere; the
    per-phrase choices are still drawn, so every other draw is unchanged, but no stroke is recorded),
    ``nods=False`` drops the head nods of rule 6. ``choice_rng`` draws the per-phrase choices of rule 8
    (hands, direction, lateral) from another stream than the sway's: another valid gesture for the same
    speech. The defaults give the corpus motion.
    """
    choice_rng = rng if choice_rng is None else choice_rng
    times = np.arange(n_frames) / fps
    names = skeleton.names
    j = {n: names.index(n) for n in names}
    n_joints = skeleton.n_joints
    euler = np.zeros((n_frames, n_joints, 3))  # (z, x, y) degrees in ZXY order

    # rule 7: idle sway on the spine (and a little on the head)
    def slow(amp: float) -> np.ndarray:
        f = rng.uniform(0.08, 0.35, 2)
        ph = rng.uniform(0.0, 2.0 * np.pi, 2)
        w = rng.uniform(0.5, 1.0, 2)
        return (
            amp
            * (
                w[0] * np.sin(2 * np.pi * f[0] * times + ph[0])
                + w[1] * np.sin(2 * np.pi * f[1] * times + ph[1])
            )
            / 1.5
        )

    sway = style.sway_deg
    euler[:, j["Spine"], 2] = slow(sway)  # yaw
    euler[:, j["Spine"], 0] = slow(0.6 * sway)  # roll
    euler[:, j["Spine1"], 0] = slow(0.5 * sway)
    euler[:, j["Spine2"], 1] = slow(0.4 * sway)  # pitch
    euler[:, j["Head"], 2] = slow(0.5 * sway)
    euler[:, j["Head"], 0] = slow(0.3 * sway)

    # rule 6: head nods on stressed syllables
    nod = np.zeros(n_frames)
    for syl in syllables:
        if syl.stressed and nods:
            amp = style.nod_deg * float(np.clip(0.6 + 0.04 * syl.loudness_rel_db, 0.4, 1.2))
            nod += amp * np.exp(-0.5 * ((times - syl.onset - 0.06) / 0.07) ** 2)
    euler[:, j["Neck"], 1] += 0.4 * nod
    euler[:, j["Head"], 1] += 0.6 * nod

    local = euler_to_matrix(euler, "ZXY")

    # chest frame and shoulder positions (arms at identity), in file units
    pos_mm, glob = forward_kinematics(skeleton, local)
    pos = pos_mm / skeleton.unit_mm
    sides = {"right": "Right", "left": "Left"}
    upper = {s: float(np.linalg.norm(skeleton.offsets[j[f"{p}ForeArm"]])) for s, p in sides.items()}
    lower = {s: float(np.linalg.norm(skeleton.offsets[j[f"{p}Hand"]])) for s, p in sides.items()}
    reach = min(upper["right"] + lower["right"], upper["left"] + lower["left"])
    arm_scale = reach / 57.0  # the pose constants are for a 57 cm arm (30 cm upper arm + 27 cm forearm)
    rest = _REST * arm_scale
    keys = {"right": _Keys(rest), "left": _Keys(_mirror(rest))}

    # rules 1-5, 8: per-phrase gesture plan
    choices: list[GestureChoice] = []
    strokes: list[Stroke] = []
    for phrase in phrases:
        hands, direction, lateral = _choose(choice_rng, style)
        plan = plan_phrase(phrase, syllables, style, arm_scale, reach, direction, lateral) if arms else []
        choice = GestureChoice(phrase.index, hands if plan else "none", direction, lateral)
        choices.append(choice)
        if not plan:
            continue
        active = ["right", "left"] if hands == "both" else [hands]
        first_t0 = syllables[plan[0][0]].onset - STROKE_S / 2
        prep_start = max(phrase.start, first_t0 - PREP_MAX_S)
        for side in active:
            m = (lambda p: p) if side == "right" else _mirror
            k = keys[side]
            k.add(prep_start, m(rest))
            prev_end_t = None
            for i, raise_p, end_p in plan:
                onset = syllables[i].onset
                t0, t1 = onset - STROKE_S / 2, onset + STROKE_S / 2
                if prev_end_t is not None:
                    recoil_end = min(t0, prev_end_t + max(RECOIL_MIN_S, min(RECOIL_MAX_S, t0 - prev_end_t)))
                    k.add(recoil_end, m(raise_p))
                k.add(t0, m(raise_p))
                k.add(t1, m(end_p))
                prev_end_t = t1
            end_p = plan[-1][2]
            k.add(prev_end_t + _retract_time(float(np.linalg.norm(end_p - rest))), m(rest))
        for i, raise_p, end_p in plan:
            syl = syllables[i]
            choice.strokes.append(len(strokes))
            strokes.append(
                Stroke(
                    time=syl.onset,
                    hand=hands,
                    syllable=i,
                    phrase=phrase.index,
                    amplitude_cm=float(np.linalg.norm(end_p - raise_p)),
                    raise_below_shoulder_cm=float(-raise_p[1]),
                    loudness_rel_db=syl.loudness_rel_db,
                    pitch_st=syl.pitch_st,
                )
            )

    # hand paths in the chest frame -> world targets -> IK
    for side, prefix in sides.items():
        k = keys[side]
        rel = min_jerk_path(np.array(k.t), np.stack(k.p), times)
        arm, fore, shoulder_joint = j[f"{prefix}Arm"], j[f"{prefix}ForeArm"], j[f"{prefix}Shoulder"]
        parent_rot = glob[:, shoulder_joint]
        target = pos[:, arm] + np.einsum("tij,tj->ti", parent_rot, rel)
        sign = -1.0 if side == "right" else 1.0
        bone_axis = np.array([sign, 0.0, 0.0])
        hinge_axis = np.array([0.0, -sign, 0.0])
        pole = _POLE_RIGHT if side == "right" else _mirror(_POLE_RIGHT)
        local[:, arm], local[:, fore] = two_bone_ik(
            pos[:, arm], target, parent_rot, upper[side], lower[side], pole, bone_axis, hinge_axis
        )
    return GestureTrack(local_rotations=local, fps=fps, choices=choices, strokes=strokes)
