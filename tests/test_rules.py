"""Rule-recovery metrics on constructed motion with known answers: the speaker's own motion recovers every rule,
the same motion shifted by 1 s does not, frozen arms have no strokes."""

from __future__ import annotations

import numpy as np
import pytest

from racer_env.corpus.synth import synthesize_clip
from racer_env.metrics import rules
from racer_env.motion.resample import resample_rotations
from racer_env.motion.rotations import matrix_to_rotvec
from racer_env.motion.skeleton import forward_kinematics

FPS = 20.0


@pytest.fixture(scope="module")
def clip():
    """A 30 s clip of the built-in speaker at 20 fps: (positions mm, rotation vectors, joint names, annotation)."""
    synth = synthesize_clip(seed=0, speaker=0, clip=0, duration_s=30.0)
    local = resample_rotations(synth.bvh.local_rotations(), synth.bvh.fps, FPS)  # (T, J, 3, 3)
    pos = forward_kinematics(synth.bvh.skeleton, local)[0]
    return pos, matrix_to_rotvec(local), list(synth.bvh.skeleton.names), synth.annotation


def _rules(pos, rot, names, ann, reference_pos=None):
    ref = pos if reference_pos is None else reference_pos
    rest = rules.rest_positions(rules.hands_of(ref, names), rules.pause_mask(ann, len(ref), FPS))
    return rules.pooled_rules([rules.clip_rules(pos, rot, names, ann, FPS, rest)])


def test_speaker_motion_recovers_every_rule(clip):
    pos, rot, names, ann = clip
    assert len(ann["strokes"]) >= 5
    m = _rules(pos, rot, names, ann)
    assert m["stroke_precision"] == 1.0 and m["stroke_recall"] == 1.0 and m["stroke_f1"] == 1.0
    assert m["nod_f1"] >= 0.9
    assert m["rest_in_pauses_pct"] >= 90.0


def test_motion_shifted_by_one_second_loses_the_timing(clip):
    pos, rot, names, ann = clip
    k = int(FPS)
    m = _rules(np.roll(pos, k, axis=0), np.roll(rot, k, axis=0), names, ann, reference_pos=pos)
    assert m["stroke_f1"] < 0.3 and m["nod_f1"] < 0.4


def test_frozen_arms_have_no_strokes(clip):
    pos, rot, names, ann = clip
    still = pos.copy()
    for side in ("Right", "Left"):
        for part in ("Arm", "ForeArm", "Hand"):
            j = names.index(f"{side}{part}")
            still[:, j] = pos[0, j]
    m = _rules(still, rot, names, ann)
    assert m["stroke_recall"] == 0.0 and m["stroke_precision"] is None and m["stroke_f1"] == 0.0


def test_match_events_is_one_to_one():
    m = rules.match_events(np.array([1.0, 1.05, 3.0]), np.array([1.02, 2.0]), tolerance=0.1)
    assert (m.hits, m.detected, m.annotated) == (1, 3, 2)
    assert m.precision == pytest.approx(1 / 3) and m.recall == 0.5 and m.f1 == pytest.approx(0.4)
    assert rules.match_events(np.zeros(0), np.zeros(0), 0.1).f1 is None


def test_detectors_refuse_skeletons_without_hands_or_head():
    with pytest.raises(ValueError, match="RightHand"):
        rules.hands_of(np.zeros((10, 2, 3)), ["Hips", "Spine"])
    with pytest.raises(ValueError, match="Head"):
        rules.head_pitch_deg(np.zeros((10, 2, 3)), ["Hips", "Spine"])
