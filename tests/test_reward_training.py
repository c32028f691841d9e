"""Reward training options: graded shift targets and part negatives (arms / head swapped or frozen)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from racer_env.checkpoint import load_checkpoint
from racer_env.corpus.store import Clip, Corpus
from racer_env.reward.model import RewardConfig, RewardModel
from racer_env.reward.scorer import load_reward_model
from racer_env.reward.train import (
    PARTS,
    REWARD_PRESETS,
    held_at_rest,
    negative_part_mask,
    part_channels,
    part_negatives,
    rest_pair_loss,
    rest_pose_of,
    reward_arch_for,
    reward_train_config_for,
    shift_targets,
    train_reward,
)
from racer_env.reward.windows import (
    WindowSet,
    build_windows,
    decode_windows,
    lookup_codes,
    lookup_windows,
    real_windows,
    reordered_windows,
)
from racer_env.vqvae.tokenize import encode_clip, load_vqvae
from tests.conftest import TRINITY_UPPER, copy_workspace


def test_part_channels_follow_the_joint_names():
    names = list(TRINITY_UPPER)
    head = part_channels(names, "head")
    assert head.tolist() == [15, 16, 17, 18, 19, 20, 21, 22, 23]  # Neck, Neck1, Head are joints 5, 6, 7
    arms = part_channels(names[::-1], "arms")  # another order: channels follow the names, not positions
    assert len(arms) == 3 * len(PARTS["arms"]) and 3 * (len(names) - 1 - names.index("LeftHand")) in arms
    with pytest.raises(ValueError, match="Neck1"):
        part_channels([n for n in names if n != "Neck1"], "head")
    # the other naming schemes the importer maps: CMU 3dsMax (Collar/Shoulder/Elbow/Wrist) and Mixamo's prefix
    max_names = ["Hips", "Chest", "Neck", "Head"] + [f"{s}{b}" for s in ("Left", "Right")
                                                     for b in ("Collar", "Shoulder", "Elbow", "Wrist")]
    arm_joints = part_channels(max_names, "arms")[::3] // 3
    assert [max_names[j] for j in arm_joints] == [f"{s}{b}" for s in ("Right", "Left")
                                                  for b in ("Collar", "Shoulder", "Elbow", "Wrist")]
    mixamo = [f"mixamorig:{n}" for n in names]
    assert part_channels(mixamo, "arms").tolist() == part_channels(names, "arms").tolist()


def test_shift_targets_known_answers():
    assert torch.equal(shift_targets(np.array([2, -1]), 0.0), torch.eye(4))
    t = shift_targets(np.array([1, 0, 2]), 1.0)
    w1, w2 = math.exp(-0.5), math.exp(-2.0)
    assert t[0, 1].item() == pytest.approx(w1 / (1 + w1)) and t[1, 0].item() == pytest.approx(w1 / (1 + w1))
    assert t[2, 2].item() == 1.0 and t[2, 3].item() == 0.0  # no partner found: a plain positive
    assert t[4, 5].item() == pytest.approx(w2 / (1 + w2))
    assert t[4, 5] < t[0, 1]  # a farther shift, a smaller weight
    np.testing.assert_allclose(t.sum(1), 1.0, atol=1e-6)


def test_part_negatives_change_only_their_part():
    names = list(TRINITY_UPPER)
    channels = {p: part_channels(names, p) for p in PARTS}
    rng = torch.Generator().manual_seed(0)
    motion, donors = torch.randn(3, 16, 48, generator=rng), torch.randn(3, 16, 48, generator=rng)
    out = part_negatives(motion, donors, channels, "both")
    assert out.shape == (3 * 4, 16, 48)  # (arms, head) x (swap, freeze)
    arms, head = channels["arms"], channels["head"]
    rest = np.setdiff1d(np.arange(48), arms)
    swapped, frozen = out[0:3], out[3:6]
    assert torch.equal(swapped[:, :, arms], donors[:, :, arms]) and torch.equal(swapped[:, :, rest], motion[:, :, rest])
    assert torch.allclose(frozen[:, :, arms], frozen[:, :1, arms].expand(-1, 16, -1))  # time-constant
    assert torch.equal(frozen[:, :, rest], motion[:, :, rest])
    other = np.setdiff1d(np.arange(48), head)
    assert torch.equal(out[6:9][:, :, other], motion[:, :, other])


def test_info_nce_with_negatives_and_soft_targets():
    torch.manual_seed(0)
    model = RewardModel(RewardConfig(motion_channels=48, audio_channels=66, window_codes=4, hidden=16, embed_dim=8,
                                     layers=2))
    m, a = model.motion_encoder(torch.randn(6, 32, 48)), model.audio_encoder(torch.randn(4, 32, 66))
    hard, _ = model.info_nce_of(m[:4], a)
    same, _ = model.info_nce_of(m[:4], a, torch.eye(4))
    assert hard.item() == pytest.approx(same.item())
    with_negatives, logits = model.info_nce_of(m, a)
    assert logits.shape == (6, 4) and with_negatives.item() > hard.item()  # more competitors, higher loss


def test_reordered_windows_are_the_same_codes_in_another_order(trained_workspace):
    corpus = Corpus.load(trained_workspace)
    vqvae = load_vqvae(trained_workspace, corpus, "cpu")[0]
    codes = torch.tensor([[1, 2, 3, 4], [5, 5, 5, 5], [1, 1, 2, 2]])
    windows = WindowSet(decode_windows(vqvae, codes), torch.zeros(3, 32, 66), np.zeros(3, dtype=int),
                        np.arange(3), codes)
    motion, valid = reordered_windows(vqvae, windows, np.random.default_rng(0))
    assert valid.tolist() == [True, False, True]  # one repeated code has no other order
    assert motion.shape == windows.motion.shape and not torch.allclose(motion[0], windows.motion[0])


def test_lookup_codes_come_from_the_nearest_speech_of_other_clips(trained_workspace):
    corpus = Corpus.load(trained_workspace)
    vqvae = load_vqvae(trained_workspace, corpus, "cpu")[0]
    ids = corpus.clip_ids("train")[:3]
    own = [encode_clip(vqvae, corpus.clip(c), corpus.stats) for c in ids]
    picked = lookup_codes(corpus, vqvae, ids)
    assert [len(p) for p in picked] == [len(o) for o in own] and all(p[0] == o[0] for p, o in zip(picked, own))
    others = set(np.concatenate(own[1:]).tolist())
    assert set(picked[0][1:].tolist()) <= others  # every code from the other clips' steps
    # the same speech twice: the copy's steps are the nearest, so the lookup plays the human codes back
    twice = lookup_codes(corpus, vqvae, [ids[0], ids[0]])
    np.testing.assert_array_equal(twice[0], own[0])
    windows = build_windows(corpus, vqvae, [ids[0], ids[0]], 4, stride=4)
    motion, valid = lookup_windows(corpus, vqvae, [ids[0], ids[0]], windows)
    assert motion.shape == windows.motion.shape and not valid.any()  # the human codes: no negative


def test_real_windows_are_the_corpus_motion_of_each_window(trained_workspace):
    corpus = Corpus.load(trained_workspace)
    ids = corpus.clip_ids("train")[:2]
    windows = WindowSet(torch.zeros(3, 16, 48), torch.zeros(3, 16, 66), np.array([0, 1, 1]), np.array([0, 0, 1]))
    real = real_windows(corpus, ids, windows)
    expected = corpus.stats.normalise_motion(corpus.clip(ids[1]).motion_features())[8:24]
    np.testing.assert_allclose(real[2].numpy(), expected, rtol=1e-6)


def test_training_with_every_option(trained_workspace, tmp_path):
    ws = copy_workspace(trained_workspace, tmp_path / "W")
    cfg = reward_train_config_for("tiny", steps=4, shifts=(-2, -1, 1, 2), shift_sigma=1.0, part_negatives="both",
                                  rest_pair_weight=0.0)
    train_reward(ws, cfg, progress=False, force=True)
    meta = load_checkpoint(ws / "reward" / "model.pt", "reward")[0]
    assert meta["train"]["part_negatives"] == "both" and meta["train"]["shift_sigma"] == 1.0
    cfg = reward_train_config_for("tiny", steps=4, real_motion=0.5, code_negatives="order", code_pair_weight=1.0)
    train_reward(ws, cfg, progress=False, force=True)
    meta = load_checkpoint(ws / "reward" / "model.pt", "reward")[0]
    assert meta["train"]["real_motion"] == 0.5
    assert meta["train"]["code_negatives"] == "order"
    train_reward(ws, reward_train_config_for("tiny", steps=4, code_negatives="lookup"), progress=False, force=True)
    assert load_checkpoint(ws / "reward" / "model.pt", "reward")[0]["train"]["code_negatives"] == "lookup"
    with pytest.raises(ValueError, match="code_negatives"):
        reward_train_config_for("tiny", code_negatives="mirror")
    with pytest.raises(ValueError, match="code_pair_weight needs"):
        reward_train_config_for("tiny", code_pair_weight=1.0)
    with pytest.raises(ValueError, match="real_motion"):
        reward_train_config_for("tiny", real_motion=1.5)
    with pytest.raises(ValueError, match="part_negatives"):
        reward_train_config_for("tiny", part_negatives="legs")
    with pytest.raises(ValueError, match="shifts"):
        reward_train_config_for("tiny", shifts=(0, 1))


def per_part_config(combine: str) -> RewardConfig:
    return RewardConfig(motion_channels=48, audio_channels=66, window_codes=4, hidden=16, embed_dim=8, layers=2,
                        parts="arms_rest", combine=combine,
                        arm_channels=tuple(part_channels(list(TRINITY_UPPER), "arms")))


def test_per_part_scores_are_the_mean_or_min_of_the_part_cosines():
    torch.manual_seed(0)
    mean_model = RewardModel(per_part_config("mean")).eval()
    min_model = RewardModel(per_part_config("min")).eval()
    min_model.load_state_dict(mean_model.state_dict())  # same weights, another combination
    motion, audio = torch.randn(5, 32, 48), torch.randn(5, 32, 66)
    m, a = mean_model(motion, audio)  # (B, 2, E) arms, rest
    assert m.shape == (5, 2, 8) and a.shape == (5, 2, 8)
    cos = (m * a).sum(-1)  # (B, 2)
    with torch.no_grad():
        s_mean, s_min = mean_model.score(motion, audio), min_model.score(motion, audio)
        assert s_mean.shape == (5,) and (s_mean.abs() <= 1 + 1e-6).all() and (s_min.abs() <= 1 + 1e-6).all()
        torch.testing.assert_close(s_mean, cos.mean(1))
        torch.testing.assert_close(s_min, cos.amin(1))
        torch.testing.assert_close(torch.diagonal(min_model.similarity(m, a)), s_min)
    moved = motion.clone()
    moved[:, :, mean_model.cfg.arm_channels[0]] += 1.0  # an arm channel changes only the arm embedding
    m2, _ = mean_model(moved, audio)
    assert not torch.allclose(m2[:, 0], m[:, 0]) and torch.equal(m2[:, 1], m[:, 1])


def test_negatives_count_only_for_the_parts_they_changed():
    names = list(TRINITY_UPPER)
    channels = {p: part_channels(names, p) for p in PARTS}  # arms, head
    cfg = per_part_config("mean")
    mask = negative_part_mask(channels, "both", cfg.part_channels(), per_group=2)
    # rows: arms swap x2, arms freeze x2, head swap x2, head freeze x2; columns: arm encoder, rest encoder
    assert mask.tolist() == [[True, False]] * 4 + [[False, True]] * 4
    whole = RewardConfig(motion_channels=48, audio_channels=66)
    assert negative_part_mask(channels, "rest", whole.part_channels(), per_group=3).all()  # one encoder: all count
    assert negative_part_mask({"arms": channels["arms"]}, "rest", cfg.part_channels(), 1).tolist() == [[True, False]]


def test_arms_held_at_rest():
    arms = part_channels(list(TRINITY_UPPER), "arms")[::3] // 3  # joint indices
    assert [TRINITY_UPPER[j] for j in arms] == list(PARTS["arms"])
    rng = np.random.default_rng(0)
    still, moving = np.zeros((30, 16, 3)), rng.normal(size=(20, 16, 3))
    clips = [Clip(id="s/a", speaker="s", rotations=still, audio=np.zeros((30, 66)), fps=20.0, skeleton=None),
             Clip(id="s/b", speaker="s", rotations=moving, audio=np.zeros((20, 66)), fps=20.0, skeleton=None)]
    pose = rest_pose_of(clips, arms)
    np.testing.assert_array_equal(pose, np.zeros((8, 3)))  # the median: where the arms are most of the time
    held = held_at_rest(arms, pose + 1.0)(clips[1])
    assert (held.rotations[:, arms] == 1.0).all() and np.array_equal(np.delete(held.rotations, arms, 1),
                                                                     np.delete(moving, arms, 1))
    assert np.array_equal(clips[1].rotations, moving)  # the clip itself is unchanged


def test_per_part_layout_needs_the_arm_joints():
    names = [n for n in TRINITY_UPPER if n not in ("LeftHand", "RightForeArm")]
    cfg = reward_train_config_for("tiny")
    REWARD_PRESETS["h4_parts"] = {**REWARD_PRESETS["tiny"], "parts": "arms_rest"}
    try:
        with pytest.raises(ValueError, match="RightForeArm.*LeftHand"):
            reward_arch_for(dataclasses.replace(cfg, preset="h4_parts"), names, 66)
        assert reward_arch_for(cfg, names, 66).parts == "whole"  # a whole-body model needs no named joints
    finally:
        del REWARD_PRESETS["h4_parts"]
    with pytest.raises(ValueError, match="arm_channels"):
        RewardConfig(motion_channels=48, audio_channels=66, parts="arms_rest")


def test_per_part_training_is_recorded_and_old_checkpoints_load_as_whole(trained_workspace, tmp_path, monkeypatch):
    old_arch = load_checkpoint(trained_workspace / "reward" / "model.pt", "reward")[0]["arch"]
    old_arch = {k: v for k, v in old_arch.items() if k not in ("parts", "combine", "arm_channels")}
    old = RewardConfig(**old_arch)  # a checkpoint written before the option existed
    assert old.parts == "whole" and old.combine == "mean"
    RewardModel(old).load_state_dict(load_reward_model(trained_workspace)[0].state_dict())  # same layout
    ws = copy_workspace(trained_workspace, tmp_path / "W")
    monkeypatch.setitem(REWARD_PRESETS, "tiny", {**REWARD_PRESETS["tiny"], "parts": "arms_rest", "combine": "min"})
    train_reward(ws, reward_train_config_for("tiny", steps=3, still_head_arms=0.5), progress=False, force=True)
    model, meta, _ = load_reward_model(ws)
    assert meta["arch"]["parts"] == "arms_rest" and meta["arch"]["combine"] == "min"
    assert meta["train"]["part_negatives"] == "rest" and meta["train"]["still_head_arms"] == 0.5
    assert model.cfg.arm_channels == tuple(part_channels(meta["corpus"]["joint_names"], "arms"))


def test_rest_pair_loss_known_answers():
    model = RewardModel(RewardConfig(motion_channels=48, audio_channels=66))  # 1 / T = 1 / 0.07
    audio = F.normalize(torch.randn(4, 1, 8), dim=-1)
    assert rest_pair_loss(model, audio, audio, audio).item() == pytest.approx(math.log(2), rel=1e-5)  # a tie
    assert rest_pair_loss(model, audio, -audio, audio).item() < 1e-10  # at rest scores -1, the truth +1
    with pytest.raises(ValueError, match="rest_pair_weight"):
        reward_train_config_for("tiny", part_negatives="swap")  # the paired loss needs the at-rest negatives
