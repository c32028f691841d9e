"""Training the contrastive reward model (``racer train reward W``).

Data: every window of W code steps of the training clips, motion decoded from the window's codes by the
frozen VQ-VAE, against the audio features of the same frames. Each batch holds B/2 random windows and, for
each, a window of the same clip shifted by ``shifts`` code steps, so in-batch negatives include the near
misses the reward must tell apart (a gesture late or early against its speech).

Two options shape what the reward attends to (both config fields, recorded in the checkpoint identity):

* ``shift_sigma`` > 0 grades the shifted partner instead of making it a hard negative: the InfoNCE target
  of an anchor gives its partner shifted by k code steps the weight exp(-k^2 / (2 sigma^2)) (then
  normalised), so one step off scores a little below the truth and two steps lower, a slope for a learner
  rather than a cliff.
* ``part_negatives`` adds, for every anchor, motion-only negatives made from the anchor itself with one
  body part (:data:`PARTS`: the arms, the head) changed: ``swap`` takes the part from a random other
  window, ``freeze`` holds it at its mean over the window (time-constant). Everything else of the window
  is the true motion, so the only way to tell such a negative from the positive is that part: the reward
  must look at the arms and at the head, not at whichever is easiest. ``rest`` instead adds, for every
  anchor, the same window decoded from its clip with the arms held at their rest pose (the training data's
  median arm pose) and encoded again by the VQ-VAE: exactly what arms that do not gesture look like to the
  reward. With a per-part reward (preset ``parts='arms_rest'``), a part negative only enters the loss of the
  part encoders whose channels it changed.

Two more options serve the per-part reward's arm encoder: ``still_head_arms`` feeds a fraction of the true
windows' arm channels from the clip decoded with the head held still (whole-body codes imprint the nods on
the decoded arm channels, a shortcut to the speech that ignores the arm strokes), and ``rest_pair_weight``
adds a per-anchor loss pushing the arms-at-rest version below the true window.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from racer_env.checkpoint import corpus_meta
from racer_env.corpus.store import Clip, Corpus
from racer_env.distributed import gather_rows_with_grad, setup
from racer_env.errors import RacerError
from racer_env.motion.upper_body import canonical_name
from racer_env.reward.model import RewardConfig, RewardModel
from racer_env.reward.windows import (
    WindowSet,
    build_windows,
    real_windows,
    lookup_windows,
    reordered_windows,
)
from racer_env.training import StageRun, config_for, option, step_rng, weight_settings
from racer_env.vqvae.tokenize import load_vqvae
from racer_env.workspace import Workspace

#: reward-model architecture presets (the paper gives none; ours).
REWARD_PRESETS: dict[str, dict] = {
    "paper": {"hidden": 256, "embed_dim": 128, "layers": 4},
    "demo": {"hidden": 128, "embed_dim": 64, "layers": 3},
    "tiny": {"hidden": 16, "embed_dim": 8, "layers": 2},
}
#: body parts of the part negatives: joint names of the Trinity/GENEA layout (any corpus must have them).
PARTS: dict[str, tuple[str, ...]] = {
    "arms": tuple(f"{side}{bone}" for side in ("Right", "Left") for bone in ("Shoulder", "Arm", "ForeArm", "Hand")),
    "head": ("Neck", "Neck1", "Head"),
}
#: the same joints in the other naming schemes the importer maps (racer_env.motion.upper_body: CMU 3dsMax's
#: Collar/Shoulder/Elbow/Wrist, Mixamo's prefixed names), compared as upper_body.canonical_name compares them.
PART_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "arms": {f"{side}{bone}": tuple(f"{side}{b}".lower() for b in names)
             for side in ("Right", "Left")
             for bone, names in (("Shoulder", ("Collar", "Shoulder")), ("Arm", ("Arm", "Shoulder")),
                                 ("ForeArm", ("ForeArm", "Elbow")), ("Hand", ("Hand", "Wrist")))},
    "head": {n: (n.lower(),) for n in PARTS["head"]},
}
PART_NEGATIVES = ("none", "swap", "freeze", "both", "rest")
CODE_NEGATIVES = ("none", "order", "lookup")  # motion-only negatives from other codes on the same speech (issue 24)


def part_channels(joint_names: list[str] | tuple[str, ...], part: str) -> np.ndarray:
    """Motion channels (joint-major rotation vectors, 3 per joint) of body part ``part``, in the order of
    :data:`PARTS`; each joint is found by its Trinity/GENEA name or an alias of another scheme.

    Raises:
        ValueError: the skeleton lacks a joint of the part.
    """
    canon = [canonical_name(n) for n in joint_names]
    found: dict[str, int] = {}
    for joint, aliases in PART_ALIASES[part].items():
        hit = next((canon.index(a) for a in aliases if a in canon and canon.index(a) not in found.values()), None)
        if hit is not None:
            found[joint] = hit
    missing = [n for n in PARTS[part] if n not in found]
    if missing:
        raise RacerError(f"the reward's body part {part!r} needs the joints {missing}; this corpus's skeleton has "
                         f"{list(joint_names)} (train with part_negatives='none', rest_pair_weight=0 and a "
                         f"whole-body preset)")
    return np.array([3 * found[n] + a for n in PARTS[part] for a in range(3)])


@dataclass(frozen=True)
class RewardTrainConfig:
    preset: str = "demo"
    window_codes: int = option(4, "code steps per reward window (W; 4 = 1.6 s)", flag="--window", low=1)
    # 4 (with order negatives, shift_sigma 0.5, real_motion 0.3) raised R@1 to 0.67 but made the reward erratic over
    # delays finer than a code step (2 frames late: 0.32 of the gap with every stroke kept; 4 frames below random,
    # 6 above 4); rho(reward, stroke F1) over the panel 0.66 (issue 24, demo validation clips)
    bins_per_code: int = option(1, "time bins per code step in the encoders' pooling (more: finer timing)", low=1)
    # 500 steps with part negatives cost about what 1500 plain steps did (the motion encoder sees 3x the
    # windows) and reach R@1 0.71 on the demo corpus (benchmarks/reward_ablations.py)
    steps: int = option(500, "training steps", low=1)
    batch_size: int = option(128, "windows per batch", low=1)
    lr: float = option(1e-3, "learning rate", low=0, exclusive_low=True)
    weight_decay: float = 1e-4
    checkpoint_every: int = option(250, "steps between checkpoints", low=1)
    log_every: int = 25
    seed: int = option(0, "seed of initialisation and batches", low=0)
    # defaults measured on the demo corpus (benchmarks/reward_ablations.py): hard negatives at 2-3 code steps
    # gave the true codes one step off a reward of -0.24, below random codes (0.06), a cliff; the graded
    # target gives 0.51-0.53 at one step and 0.41-0.42 at two (random 0.15)
    shifts: tuple[int, ...] = (-2, -1, 1, 2)  # code steps of the shifted partner windows
    # > 0: soft target exp(-k^2 / 2 sigma^2) for the partner shifted by k; 0: hard. Measured on the demo workspace's
    # validation clips (issue 24, with real_motion 0.3): 0.5 made the reward stricter on timing (the true codes one
    # step late kept 0.08 of the reward gap instead of 0.29; rho(reward, stroke F1) over the reward panel 0.88 vs
    # 0.86, R@1 0.57 vs 0.45) but blind to a third more of the arms (a clip without arm gestures kept 0.63 of the gap
    # instead of 0.39: issue 13's bound is 0.5); 0.75 kept 0.52 and its nods-free clip 0.55. So 1.0 stays.
    shift_sigma: float = 1.0
    # measured on the demo corpus (benchmarks/reward_ablations.py, seed 0): swap/freeze negatives left the arms
    # ignored (no_arms kept 101 % of the gap); arms-at-rest negatives with the paired loss at weight 6 bring
    # it to 39 % (2: 62 %, 4: 54 %; 8 flattens the shift slope: +-1 below random), at R@1 0.44 instead of 0.76
    part_negatives: str = "rest"  # none | swap | freeze | both | rest: motion-only negatives with a part changed
    # per-part reward only: the fraction of positive windows whose arm channels come from the clip decoded
    # with the head held still, so the arm encoder cannot match the speech through the nods' imprint on the
    # arm channels of whole-body codes (it must use the arms' own strokes)
    still_head_arms: float = 0.0
    # part_negatives rest only: weight of a paired loss per anchor, softplus(s(arms at rest) - s(true)) / T on
    # the arm part, which pushes each window's arms-at-rest version below it (InfoNCE, with hundreds of
    # competitors, hardly weighs that one negative)
    rest_pair_weight: float = 6.0
    # issue 24: for every window, a motion-only negative decoded from other codes on the same speech: "order" the
    # window's own codes in another order (the same gestures at the wrong moments), "lookup" the codes a
    # leave-one-clip-out nearest-neighbour lookup picks on its speech (plausible gestures without the speaker's
    # rules: the errors learned systems make). In-batch negatives (other speech) show neither. Measured on the demo
    # workspace's validation clips (reward panel, with real_motion 0.3 and shift_sigma 0.5), not kept: "order"
    # largest share gap 0.41 vs 0.43 without, rho 0.88 vs 0.88, at ~1.3x the training time; "lookup" (alone) taught
    # the reward the lookup's code junctions rather than timing: motion 6 frames late kept 0.50 of the reward gap
    # with none of its strokes, rho 0.73 (0.61 with code_pair_weight 6)
    code_negatives: str = option("none", "motion-only negatives decoded from other codes on each window's speech",
                                 choices=CODE_NEGATIVES)
    # code_negatives only: weight of a paired loss per window, as rest_pair_weight's, pushing each window's code
    # negative below it (one negative among hundreds hardly moves InfoNCE)
    code_pair_weight: float = option(0.0, "weight of the paired loss of the code negatives", low=0)
    # issue 24: the fraction of positive windows whose motion is the real (normalised) corpus motion instead of
    # its decoded codes, so the reward has seen real motion and scores it like its reconstruction
    # (0: the real motion kept 0.57 of its reconstruction's mean reward on the demo's validation clips; 0.3: 1.2,
    # with the reward panel's largest share gap 0.63 -> 0.49 and rho(reward, stroke F1) 0.72 -> 0.86)
    real_motion: float = option(0.3, "fraction of positive windows with the real motion instead of its decoded codes", low=0)

    def __post_init__(self) -> None:
        if not 0.0 <= self.real_motion <= 1.0:
            raise RacerError(f"real_motion must be a fraction in [0, 1], got {self.real_motion}")
        if not 0.0 <= self.still_head_arms <= 1.0:
            raise RacerError(f"still_head_arms must be a fraction in [0, 1], got {self.still_head_arms}")
        if self.code_negatives not in CODE_NEGATIVES:
            raise RacerError(f"code_negatives must be one of {CODE_NEGATIVES}, got {self.code_negatives!r}")
        if self.code_pair_weight and self.code_negatives == "none":
            raise RacerError(f"code_pair_weight needs code_negatives, got code_pair_weight={self.code_pair_weight}")
        if self.rest_pair_weight and self.part_negatives != "rest":
            raise RacerError(f"rest_pair_weight needs part_negatives='rest', got {self.part_negatives!r}")
        if self.part_negatives not in PART_NEGATIVES:
            raise RacerError(f"part_negatives must be one of {PART_NEGATIVES}, got {self.part_negatives!r}")
        if not self.shifts or 0 in self.shifts or self.shift_sigma < 0:
            raise RacerError(f"shifts must be non-zero code steps and shift_sigma >= 0; got {self.shifts}, "
                             f"{self.shift_sigma}")
        if self.preset not in REWARD_PRESETS:
            raise RacerError(f"unknown reward preset {self.preset!r}; choose one of {sorted(REWARD_PRESETS)}")
        if self.window_codes < 1 or self.batch_size < 4 or self.batch_size % 2 or self.steps < 1:
            raise RacerError(f"need window_codes >= 1, an even batch_size >= 4 (pairs of shifted windows) and "
                             f"steps >= 1; got {self.window_codes}, {self.batch_size}, {self.steps}")


TRAIN_DEFAULTS: dict[str, dict] = {
    "paper": {"steps": 20_000},
    "demo": {},
    "tiny": {"steps": 20, "batch_size": 16, "checkpoint_every": 10, "log_every": 5},
}


def reward_train_config_for(preset: str, **overrides) -> RewardTrainConfig:
    """The preset's training defaults with ``overrides`` (None values ignored) applied."""
    return config_for(RewardTrainConfig, TRAIN_DEFAULTS, preset, "reward", **overrides)


def reward_arch_for(config: RewardTrainConfig, joint_names: list[str] | tuple[str, ...],
                    audio_channels: int) -> RewardConfig:
    """The preset's reward architecture for a skeleton; a per-part layout gets the arm channels from the
    joint names (ValueError naming the missing joints when the skeleton lacks an arm joint)."""
    preset = REWARD_PRESETS[config.preset]
    arms = part_channels(joint_names, "arms") if preset.get("parts", "whole") != "whole" else ()
    return RewardConfig(motion_channels=len(joint_names) * 3, audio_channels=audio_channels,
                        window_codes=config.window_codes, bins_per_code=config.bins_per_code,
                        arm_channels=tuple(arms), **preset)


def sample_pairs(windows: WindowSet, index: dict, rng: np.random.Generator, batch: int,
                 shifts: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Window indices: batch/2 anchors, each followed by a same-clip window shifted by one of ``shifts``
    code steps (or a random window where the clip has none there).

    Returns:
        (batch,) window indices and (batch/2,) the shift of each anchor's partner (0 for a random one).
    """
    anchors = rng.integers(0, len(windows), batch // 2)
    out, partner_shift = [], []
    for a in anchors:
        k = int(rng.choice(shifts))
        partner = index.get((int(windows.clip[a]), int(windows.start[a]) + k))
        partner_shift.append(0 if partner is None else k)
        out += [a, int(rng.integers(0, len(windows))) if partner is None else partner]
    return np.array(out), np.array(partner_shift)


def shift_targets(partner_shift: np.ndarray, sigma: float) -> torch.Tensor:
    """(B, B) soft InfoNCE targets of pairs (2i, 2i+1): weight exp(-k^2 / 2 sigma^2) on the partner shifted
    by k code steps, 1 on the window itself, rows normalised; sigma 0 (or no partner) = the identity."""
    b = 2 * len(partner_shift)
    target = torch.eye(b)
    if sigma > 0:
        k = torch.as_tensor(partner_shift, dtype=torch.float32)
        w = torch.where(k != 0, torch.exp(-k**2 / (2 * sigma**2)), torch.zeros_like(k))  # (B/2,)
        i = torch.arange(0, b, 2)
        target[i, i + 1] = w
        target[i + 1, i] = w
    return target / target.sum(1, keepdim=True)


def part_negatives(motion: torch.Tensor, donors: torch.Tensor, channels: dict[str, np.ndarray],
                   kind: str) -> torch.Tensor:
    """Motion-only negatives: each window with one part swapped from a donor window and/or frozen.

    Args:
        motion: (B, T, C) the windows.
        donors: (B, T, C) a random other window for each.
        channels: part name -> its motion channels.
        kind: swap | freeze | both.

    Returns:
        (n * B, T, C), n = parts x (2 if both else 1), grouped by part then kind.
    """
    out = []
    for ch in channels.values():
        c = torch.as_tensor(ch, dtype=torch.long)
        if kind in ("swap", "both"):
            x = motion.clone()
            x[:, :, c] = donors[:, :, c]
            out.append(x)
        if kind in ("freeze", "both"):
            x = motion.clone()
            x[:, :, c] = motion[:, :, c].mean(1, keepdim=True)  # time-constant at the window's mean
            out.append(x)
    return torch.cat(out)


def rest_pose_of(clips: list[Clip], joints: np.ndarray) -> np.ndarray:
    """(len(joints), 3) the median rotation of each joint over every frame of ``clips``: the rest pose of a
    part that rests most of the time (the arms hang in every pause and in phrases without gestures)."""
    return np.median(np.concatenate([c.rotations[:, joints] for c in clips]), axis=0)


def windows_with_part_at_rest(corpus: Corpus, vqvae, part: str, window_codes: int) -> torch.Tensor:
    """(N, 8W, C) decoded motion of every training window (aligned with :func:`build_windows`'s), from the
    clips with ``part`` held at its rest pose (:func:`rest_pose_of`) and encoded again by the VQ-VAE."""
    joints = part_channels(corpus.joint_names, part)[::3] // 3  # joint indices
    clips = [corpus.clip(c) for c in corpus.clip_ids("train")]
    return build_windows(corpus, vqvae, corpus.clip_ids("train"), window_codes,
                         transform=held_at_rest(joints, rest_pose_of(clips, joints))).motion


def held_at_rest(joints: np.ndarray, pose: np.ndarray):
    """A clip transform: ``joints`` held at ``pose`` (J', 3) in every frame, the rest unchanged."""
    def transform(clip: Clip) -> Clip:
        rotations = clip.rotations.copy()  # (T, J, 3)
        rotations[:, joints] = pose
        return replace(clip, rotations=rotations)
    return transform


def negative_part_mask(channels: dict[str, np.ndarray], kind: str, model_parts: list[list[int]],
                       per_group: int) -> torch.Tensor:
    """(n * per_group, P) which of the model's parts each part negative (:func:`part_negatives` order) is a
    negative for: those whose channels it changed (a negative with the head changed is, for an arms-only
    encoder, its positive)."""
    kinds = 2 if kind == "both" else 1
    rows = [[bool(np.intersect1d(ch, part).size) for part in model_parts] for ch in channels.values()
            for _ in range(kinds)]
    return torch.as_tensor(rows).repeat_interleave(per_group, dim=0)


def code_negatives_of(config: RewardTrainConfig, corpus: Corpus, vqvae, windows: WindowSet
                      ) -> tuple[torch.Tensor, np.ndarray] | None:
    """The code negatives ``config.code_negatives`` asks for: (N, 8W, C) motion per window and (N,) bool, which
    windows have one (a window whose codes cannot differ gets a random window instead); None for "none"."""
    if config.code_negatives == "order":
        return reordered_windows(vqvae, windows, np.random.default_rng(config.seed))
    if config.code_negatives == "lookup":
        return lookup_windows(corpus, vqvae, corpus.clip_ids("train"), windows)
    return None


def rest_pair_loss(model: RewardModel, paired: torch.Tensor, at_rest: torch.Tensor,
                   audio: torch.Tensor) -> torch.Tensor:
    """Mean softplus((s_rest - s_true) / T) of the first part (the arms, or the whole body): (B, P, E) true
    motion, (B, P, E) the same windows changed (the arms at rest; also used for the code negatives),
    (B, P, E) audio embeddings -> scalar."""
    scale = model.log_inv_temperature.clamp(max=math.log(100.0)).exp()
    s_true, s_rest = (paired[:, 0] * audio[:, 0]).sum(-1), (at_rest[:, 0] * audio[:, 0]).sum(-1)  # (B,)
    return torch.nn.functional.softplus(scale * (s_rest - s_true)).mean()


def train_reward(
    workspace: str | Workspace,
    config: RewardTrainConfig = RewardTrainConfig(),
    resume: bool = False,
    force: bool = False,
    device: str = "cpu",
    progress: bool = True,
    stop_after: int | None = None,
) -> dict:
    """Train (or resume, or skip when current) the reward model of ``workspace``."""
    ws = Workspace.of(workspace)
    corpus = Corpus.load(ws)
    ctx, dev = setup(device)
    vqvae, _, vqvae_sha = load_vqvae(ws, corpus, dev)
    arch = reward_arch_for(config, corpus.joint_names, corpus.n_audio_features)
    run = StageRun(ws.root / "reward", "reward", {"train": weight_settings(config), "arch": arch.to_dict(),
                                                  "corpus": corpus.checksum, "vqvae": vqvae_sha},
                   ctx.world_size, ctx.is_main)
    with run.locked():
        if run.is_current() and not force and not resume:
            return {"skipped": True, "model": str(run.model_path)}
        torch.manual_seed(config.seed)
        model = RewardModel(arch).to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        windows = build_windows(corpus, vqvae, corpus.clip_ids("train"), config.window_codes)  # (read, and checked, first)
        start, state = run.start(resume)
        if state is not None:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
        index = {(int(c), int(s)): i for i, (c, s) in enumerate(zip(windows.clip, windows.start))}
        channels = ({} if config.part_negatives == "none"
                    else {p: part_channels(corpus.joint_names, p) for p in PARTS
                          if config.part_negatives != "rest" or p == "arms"})
        at_rest = still_head = None
        if config.part_negatives == "rest":  # every window again, from the clip with the arms at rest, via the codes
            at_rest = windows_with_part_at_rest(corpus, vqvae, "arms", config.window_codes)  # (N, 8W, C)
        if config.still_head_arms > 0:
            if arch.parts == "whole":
                raise RacerError("still_head_arms needs a per-part reward (preset with parts='arms_rest')")
            still_head = windows_with_part_at_rest(corpus, vqvae, "head", config.window_codes)  # (N, 8W, C)
        real = real_windows(corpus, corpus.clip_ids("train"), windows) if config.real_motion > 0 else None
        code_negs = code_negatives_of(config, corpus, vqvae, windows)  # None or ((N, 8W, C), (N,) which differ)
        arm_ch = torch.as_tensor(arch.arm_channels, dtype=torch.long)
        extra = {"arch": arch.to_dict(), "train": asdict(config), "corpus": corpus_meta(corpus),
                 "vqvae_sha256": vqvae_sha, "seed": config.seed}
        net = ctx.wrap(model, dev)  # DistributedDataParallel under torchrun
        ctx.barrier()  # every rank has read the checkpoint before rank 0 writes the next one
        end, bar = run.steps(start, config.steps, stop_after, "train reward", progress)
        t0 = time.perf_counter()
        model.train()
        for step in bar:
            idx, partner_shift = sample_pairs(windows, index, step_rng(config.seed, step), config.batch_size,
                                              config.shifts)
            mine = ctx.shard(np.arange(config.batch_size), config.batch_size)  # this rank's share of the global batch
            motion = windows.motion[torch.as_tensor(idx[mine])]  # (b, 8W, C)
            if still_head is not None:
                rows = np.flatnonzero(step_rng(config.seed, step, stream=2).random(config.batch_size)[mine]
                                      < config.still_head_arms)
                swapped = motion[rows]  # (r, 8W, C): arm channels from the still-head decode, the rest real
                swapped[:, :, arm_ch] = still_head[torch.as_tensor(idx[mine][rows])][:, :, arm_ch]
                motion[rows] = swapped
            if real is not None:  # a fraction of the positives: the real motion of the window
                rows = np.flatnonzero(step_rng(config.seed, step, stream=3).random(config.batch_size)[mine]
                                      < config.real_motion)
                motion[rows] = real[torch.as_tensor(idx[mine][rows])]
            if channels:
                donors = step_rng(config.seed, step, stream=1).integers(0, len(windows), config.batch_size)[mine]
                motion = torch.cat([motion, at_rest[torch.as_tensor(idx[mine])] if at_rest is not None else
                                    part_negatives(motion, windows.motion[torch.as_tensor(donors)], channels,
                                                   config.part_negatives)])
            n_part = len(motion) - len(mine)  # motion-only negatives with a part changed
            if code_negs is not None:  # the window's speech with other codes (a random window where none)
                others = step_rng(config.seed, step, stream=5).integers(0, len(windows), config.batch_size)[mine]
                own = idx[mine]
                motion = torch.cat([motion, torch.where(torch.as_tensor(code_negs[1][own])[:, None, None],
                                                        code_negs[0][torch.as_tensor(own)],
                                                        windows.motion[torch.as_tensor(others)])])
            audio = windows.audio[torch.as_tensor(idx[mine])]  # (b, 8W, F)
            b = len(mine)
            motion_emb, audio_emb = net(motion.to(dev), audio.to(dev))
            # in-batch negatives from every rank: the loss (and its gradient) of the global batch
            paired, negatives = gather_rows_with_grad(motion_emb[:b]), gather_rows_with_grad(motion_emb[b:b + n_part])
            mask = (negative_part_mask(channels, config.part_negatives, arch.part_channels(), b)
                    .repeat(ctx.world_size, 1).to(dev) if channels else None)  # every rank's negatives, rank-major
            code_negatives = gather_rows_with_grad(motion_emb[b + n_part:])  # (B or 0, P, E): for every part
            if mask is not None and len(code_negatives):
                mask = torch.cat([mask, torch.ones(len(code_negatives), mask.shape[1], dtype=torch.bool, device=dev)])
            audio_all = gather_rows_with_grad(audio_emb)
            loss, logits = model.info_nce_of(torch.cat([paired, negatives, code_negatives]), audio_all,
                                             shift_targets(partner_shift, config.shift_sigma).to(dev), mask)
            if config.rest_pair_weight > 0:
                loss = loss + config.rest_pair_weight * rest_pair_loss(model, paired, negatives, audio_all)
            if config.code_pair_weight > 0:
                loss = loss + config.code_pair_weight * rest_pair_loss(model, paired, code_negatives, audio_all)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                target = torch.arange(config.batch_size, device=dev)
                acc = (logits[:config.batch_size].argmax(1) == target).float().mean().item()
                temperature = 1.0 / model.log_inv_temperature.exp().item()
                run.log(done, {"losses/info_nce": loss.item(), "train/batch_r_at_1": acc, "train/temperature": temperature})
                bar.set_postfix(loss=f"{loss.item():.3f}", r1=f"{acc:.2f}", temp=f"{temperature:.3f}")
            if done % config.checkpoint_every == 0 or done == end:
                run.save_checkpoint(done, {"model": model.state_dict(), "optimizer": opt.state_dict()}, extra)
        bar.close()
        result = run.finish(end, config.steps, {"model": model.state_dict()}, extra)
        if "stopped_at" in result:
            return result
        return {**result, "seconds": time.perf_counter() - t0, "windows": len(windows)}
