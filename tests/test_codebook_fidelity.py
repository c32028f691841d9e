"""Codebook fidelity: the stroke and nod figures of `racer evaluate codebook` on constructed motion."""

import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from racer_env.corpus import Corpus
from racer_env.metrics import rules
from racer_env.vqvae.evaluate import evaluate_codebook, gesture_events, gesture_fidelity, joint_positions
from racer_env.vqvae.kinematics import Kinematics, rotvec_to_matrix
from racer_env.vqvae.model import VQVAE
from racer_env.vqvae.tokenize import decode_normalised, gaussian_smooth
from racer_env.vqvae.train import position_losses, reconstruction_losses, train_config_for
from tests.conftest import copy_workspace

ARM_JOINTS = ("RightShoulder", "RightArm", "RightForeArm", "RightHand", "LeftShoulder", "LeftArm", "LeftForeArm",
              "LeftHand")


def _events(corpus: Corpus, ws, clip_id: str, rotations: np.ndarray) -> dict:
    """gesture_events of ``rotations`` (a variant of the clip's motion) and of the clip's own motion."""
    clip = corpus.clip(clip_id)
    ann = rules.load_annotation(ws, clip_id)
    ref = joint_positions(clip.skeleton, clip.rotations)
    rest = rules.rest_positions(rules.hands_of(ref, corpus.joint_names), rules.pause_mask(ann, len(ref), clip.fps))
    return {"decoded": gesture_events(joint_positions(clip.skeleton, rotations), rotations, corpus.joint_names, ann,
                                      clip.fps, rest),
            "corpus": gesture_events(ref, clip.rotations, corpus.joint_names, ann, clip.fps, rest)}


def _frozen(rotations: np.ndarray, names: list[str], joints: tuple[str, ...]) -> np.ndarray:
    """The motion with ``joints`` held at their first-frame rotation."""
    out = rotations.copy()
    for j in joints:
        out[:, names.index(j)] = rotations[0, names.index(j)]
    return out


def test_strokes_on_the_annotation_are_recalled_and_frozen_parts_are_not(tiny_workspace):
    corpus = Corpus.load(tiny_workspace)
    rows = {"same": [], "arms": [], "head": []}
    for clip_id in corpus.clip_ids():
        rot = corpus.clip(clip_id).rotations
        rows["same"].append(_events(corpus, tiny_workspace, clip_id, rot))
        rows["arms"].append(_events(corpus, tiny_workspace, clip_id, _frozen(rot, corpus.joint_names, ARM_JOINTS)))
        rows["head"].append(_events(corpus, tiny_workspace, clip_id,
                                    _frozen(rot, corpus.joint_names, rules.NOD_JOINTS)))
    assert sum(r["corpus"]["strokes"].annotated for r in rows["same"]) >= 5  # enough strokes to test
    same, arms, head = (gesture_fidelity(rows[k]) for k in ("same", "arms", "head"))
    # the motion itself: every annotated stroke and nod found, at the same speed
    assert same["stroke_recall"] == 1.0 and same["nod_recall"] == 1.0
    assert same["stroke_peak_speed_ratio"] == 1.0 and same["corpus_stroke_recall"] == 1.0
    # arms frozen: no stroke, hardly any downward speed (the spine still sways); the nods stay
    assert arms["stroke_recall"] == 0.0 and arms["stroke_peak_speed_ratio"] < 0.01 and arms["nod_recall"] == 1.0
    # head frozen: no nod; the strokes stay
    assert head["nod_recall"] == 0.0 and head["stroke_recall"] == 1.0


def test_evaluate_codebook_reports_gesture_fidelity_only_with_annotations(trained_workspace, tmp_path):
    metrics = evaluate_codebook(trained_workspace)
    for key in ("stroke_recall", "stroke_peak_speed_ratio", "nod_recall", "corpus_stroke_recall"):
        assert metrics[key] is not None and 0.0 <= metrics[key] <= (1.0 if "recall" in key else 10.0), key
    assert metrics["corpus_stroke_recall"] == 1.0 and metrics["params"]["annotated"]
    assert metrics["params"]["stroke"]["tolerance_s"] == 0.1 and metrics["params"]["nod"]["tolerance_s"] == 0.1
    (row,) = metrics["per_clip"].values()
    assert row["maje_mm"] == pytest.approx(metrics["maje_mm"]) and row["strokes_annotated"] >= 1
    # the same corpus without its annotations (a real corpus): the keys are there, None
    ws = copy_workspace(trained_workspace, tmp_path / "W")
    shutil.rmtree(ws / "synth")
    plain = evaluate_codebook(ws)
    assert plain["stroke_recall"] is None and plain["nod_recall"] is None and not plain["params"]["annotated"]
    assert plain["maje_mm"] == pytest.approx(metrics["maje_mm"])


def test_torch_kinematics_match_numpy_and_position_loss_is_zero_on_the_target(tiny_workspace):
    corpus = Corpus.load(tiny_workspace)
    clip = corpus.clip(corpus.clip_ids("test")[0])
    kin = Kinematics(clip.skeleton, corpus.stats)
    x = torch.from_numpy(corpus.stats.normalise_motion(clip.motion_features()).T.astype(np.float32))[None]
    pos = kin(x)[0].numpy()  # (T, J + E, 3): joints, then End Sites
    np.testing.assert_allclose(pos[:, :corpus.n_joints], joint_positions(clip.skeleton, clip.rotations), atol=0.05)
    assert pos.shape[1] == corpus.n_joints + len(clip.skeleton.end_sites)
    head, top = corpus.joint_names.index("Head"), corpus.n_joints + sorted(clip.skeleton.end_sites).index(
        corpus.joint_names.index("Head"))
    length = np.linalg.norm(clip.skeleton.end_sites[head]) * clip.skeleton.unit_mm
    np.testing.assert_allclose(np.linalg.norm(pos[:, top] - pos[:, head], axis=-1), length, rtol=1e-4)
    assert all(v.item() == 0 for v in position_losses(kin, x, x).values())
    moved = x.clone()
    moved[:, corpus.joint_names.index("RightForeArm") * 3 + 1] += 1.0  # one std of the elbow
    assert position_losses(kin, moved, x)["pos_rec"].item() > 0
    # Rodrigues at and near zero angle: the identity, and the first-order term
    small = torch.tensor([[0.0, 0.0, 0.0], [1e-6, 0.0, 0.0]])
    np.testing.assert_allclose(rotvec_to_matrix(small)[0].numpy(), np.eye(3), atol=1e-7)
    assert rotvec_to_matrix(small)[1, 2, 1].item() == pytest.approx(1e-6, rel=1e-3)


def test_peak_weight_makes_a_missed_spike_cost_more_than_a_missed_drift():
    t = torch.zeros(1, 1, 41)
    spike = t.clone()
    spike[..., 20] = 10.0  # a 1-frame jump of the value: a velocity peak of 10 and -10
    drift = torch.linspace(0, 10, 41).reshape(1, 1, 41)  # the same displacement spread over the crop
    for target in (spike, drift):
        plain = reconstruction_losses(t, target)
        assert reconstruction_losses(t, target, peak_weight=0.0)["vel"] == plain["vel"]
    gain = {name: (reconstruction_losses(t, x, peak_weight=16.0)["vel"] / reconstruction_losses(t, x)["vel"]).item()
            for name, x in (("spike", spike), ("drift", drift))}
    assert gain["drift"] == pytest.approx(17.0) and gain["spike"] > 100  # constant speed: weight 1 + 16 everywhere
    assert reconstruction_losses(t, spike, norm="l2")["rec"].item() == pytest.approx(100.0 / 41)


def test_loss_options_are_validated_and_the_paper_preset_keeps_the_paper_loss():
    with pytest.raises(ValueError, match="loss_norm"):
        train_config_for("demo", loss_norm="huber")
    for name in ("position_weight", "peak_weight", "smooth_sigma", "derivative_weight"):
        with pytest.raises(ValueError, match=name):
            train_config_for("demo", **{name: -1.0})
    paper = train_config_for("paper")
    assert (paper.position_weight, paper.peak_weight, paper.smooth_sigma, paper.loss_norm) == (0.0, 0.0, 1.0, "l1")


def test_decode_smoothing_follows_the_model_config():
    codes = torch.tensor([[0, 3, 1, 2]])
    torch.manual_seed(0)
    sharp = VQVAE.from_preset("tiny", n_joints=4, smooth_sigma=0.0).eval()
    raw = sharp.decode(codes)  # (1, 12, 32)
    np.testing.assert_array_equal(decode_normalised(sharp, codes).numpy(), raw.transpose(1, 2).numpy())
    soft = VQVAE(replace(sharp.cfg, smooth_sigma=1.0)).eval()
    soft.load_state_dict(sharp.state_dict())
    np.testing.assert_allclose(decode_normalised(soft, codes).numpy(),
                               gaussian_smooth(raw, 5, 1.0).transpose(1, 2).numpy(), rtol=1e-6)
