"""Reward ablations: the synthesis variants (no arms, no nods, another draw) and their evaluation keys."""

from __future__ import annotations

import numpy as np
import pytest

from racer_agents.cli import main
from racer_env.corpus import Corpus
from racer_env.corpus.store import CorpusError
from racer_env.corpus.synth import synthesize_clip
from racer_env.metrics.rules import detect_nods, detect_strokes, hands_of, head_pitch_deg
from racer_env.motion.rotations import matrix_to_rotvec
from racer_env.motion.skeleton import forward_kinematics
from racer_env.reward.ablations import (
    SHIFTS,
    VARIANTS,
    annotations_of,
    gap_kept,
    import_config_of,
    resynthesised_clip,
)
from racer_env.reward.evaluate import evaluate_reward

CLIP = (3, 0, 1, 12.0)  # seed, speaker, clip, seconds


@pytest.fixture(scope="module")
def clips():
    return {name: synthesize_clip(*CLIP, **kw) for name, kw in
            {"real": {}, "no_arms": {"arms": False}, "no_nods": {"nods": False}, "other": {"gesture_draw": 1}}.items()}


def _strokes(clip) -> int:
    bvh = clip.bvh
    pos, _ = forward_kinematics(bvh.skeleton, bvh.local_rotations(), translations=bvh.translations())
    return sum(len(detect_strokes(h, bvh.fps)) for h in hands_of(pos, bvh.skeleton.names).values())


def _pitch(clip) -> np.ndarray:
    return head_pitch_deg(matrix_to_rotvec(clip.bvh.local_rotations()), clip.bvh.skeleton.names)


def test_default_is_the_corpus_clip(clips):
    again = synthesize_clip(*CLIP, arms=True, nods=True, gesture_draw=0)
    assert np.array_equal(again.bvh.local_rotations(), clips["real"].bvh.local_rotations())
    assert again.annotation == clips["real"].annotation and "variant" not in again.annotation
    with pytest.raises(ValueError, match="gesture_draw"):
        synthesize_clip(*CLIP, gesture_draw=-1)


def test_every_variant_keeps_the_speech(clips):
    for name in ("no_arms", "no_nods", "other"):
        assert np.array_equal(clips[name].audio, clips["real"].audio), name
        assert clips[name].annotation["syllables"] == clips["real"].annotation["syllables"], name
        assert "variant" in clips[name].annotation


def test_no_arms_leaves_the_hands_at_rest(clips):
    assert _strokes(clips["real"]) > 0
    assert _strokes(clips["no_arms"]) == 0 and clips["no_arms"].annotation["strokes"] == []
    # the head still nods exactly as in the real clip: every other draw is the same
    np.testing.assert_allclose(_pitch(clips["no_arms"]), _pitch(clips["real"]), atol=1e-6)


def test_no_nods_leaves_head_pitch_flat(clips):
    assert len(detect_nods(_pitch(clips["real"]), 60.0)) > 0
    pitch = _pitch(clips["no_nods"])
    assert np.ptp(pitch) < 0.2 and len(detect_nods(pitch, 60.0)) == 0
    assert clips["no_nods"].annotation["strokes"] == clips["real"].annotation["strokes"]  # arms untouched


def test_another_draw_changes_the_choices_not_the_speech(clips):
    real, other = clips["real"].annotation["gestures"], clips["other"].annotation["gestures"]
    key = [(g["hands"], g["direction"], g["lateral"]) for g in real]
    assert key != [(g["hands"], g["direction"], g["lateral"]) for g in other]
    np.testing.assert_allclose(_pitch(clips["other"]), _pitch(clips["real"]), atol=1e-6)  # same nods and sway


def test_gap_kept_known_answers():
    kept = gap_kept({"real": 0.6, "random": 0.0, "no_arms": 0.3, "other_draw": 0.6, "shift_+1": -0.12})
    assert kept == pytest.approx({"no_arms": 0.5, "other_draw": 1.0, "shift_+1": -0.2})


def test_resynthesis_reproduces_the_corpus_clip(tiny_workspace):
    corpus = Corpus.load(tiny_workspace)
    clip_id = corpus.clip_ids("test")[0]
    clip = corpus.clip(clip_id)
    (annotation,) = annotations_of(tiny_workspace, [clip_id])
    again = resynthesised_clip(clip, annotation, import_config_of(corpus))
    np.testing.assert_array_equal(again.rotations, clip.rotations)
    wrong = {**annotation, "clip": annotation["clip"] + 1}
    with pytest.raises(CorpusError, match="does not resynthesise"):
        resynthesised_clip(clip, wrong, import_config_of(corpus))


def test_annotations_missing_for_a_real_corpus(tmp_path):
    assert annotations_of(tmp_path, ["a/b", "c/d"]) is None
    (tmp_path / "synth" / "a").mkdir(parents=True)
    (tmp_path / "synth" / "a" / "b.json").write_text("{}")
    with pytest.raises(CorpusError, match="missing"):
        annotations_of(tmp_path, ["a/b", "c/d"])


def test_evaluate_reward_reports_ablations(trained_workspace, capsys):
    metrics = evaluate_reward(trained_workspace, candidates=8)
    for key in ("r_at_1", "r_at_5", "auc_shifted", "auc_mismatched"):
        assert key in metrics
    table = metrics["ablations"]
    systems = ["real", "random", *VARIANTS, *(f"shift_{k:+d}" for k in SHIFTS)]
    assert list(table["mean"]) == systems
    assert set(table["gap_kept"]) == set(systems) - {"real", "random"}
    test_ids = Corpus.load(trained_workspace).clip_ids("test")
    assert list(table["per_clip"]) == test_ids
    assert all(-1.0 <= v <= 1.0 for clip in table["per_clip"].values() for v in clip.values())
    assert table["mean"]["shift_+0"] != table["mean"]["random"]
    assert main(["evaluate", "reward", str(trained_workspace), "--candidates", "8"]) == 0
    assert "no_arms" in capsys.readouterr().out
