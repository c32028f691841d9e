"""Training the contrastive reward model (``racer train reward W``).

Data: every window of W code steps of the training clips, motion decoded from the window's codes by the
frozen VQ-VAE, against the audio features of the same frames. Each batch holds B/2 random windows and, for
each, a window of the same clip shifted by 2-3 code steps, so in-batch negatives include the near misses the
reward must tell apart (a gesture late or early against its speech).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from racer_env.checkpoint import corpus_meta
from racer_env.corpus.store import Corpus
from racer_env.distributed import gather_rows_with_grad, setup
from racer_env.reward.model import RewardConfig, RewardModel
from racer_env.reward.windows import WindowSet, build_windows
from racer_env.training import StageRun, config_for, step_rng, weight_settings
from racer_env.vqvae.tokenize import load_vqvae
from racer_env.workspace import Workspace

#: reward-model architecture presets (the paper gives none; ours).
REWARD_PRESETS: dict[str, dict] = {
    "paper": {"hidden": 256, "embed_dim": 128, "layers": 4},
    "demo": {"hidden": 128, "embed_dim": 64, "layers": 3},
    "tiny": {"hidden": 16, "embed_dim": 8, "layers": 2},
}
SHIFTS = (-3, -2, 2, 3)  # code steps of the shifted partner windows


@dataclass(frozen=True)
class RewardTrainConfig:
    preset: str = "demo"
    window_codes: int = 4  # W: 1.6 s at 8 frames per code and 20 fps
    steps: int = 1500
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    checkpoint_every: int = 250
    log_every: int = 25
    seed: int = 0

    def __post_init__(self) -> None:
        if self.preset not in REWARD_PRESETS:
            raise ValueError(f"unknown reward preset {self.preset!r}; choose one of {sorted(REWARD_PRESETS)}")
        if self.window_codes < 1 or self.batch_size < 4 or self.batch_size % 2 or self.steps < 1:
            raise ValueError(f"need window_codes >= 1, an even batch_size >= 4 (pairs of shifted windows) and "
                             f"steps >= 1; got {self.window_codes}, {self.batch_size}, {self.steps}")


TRAIN_DEFAULTS: dict[str, dict] = {
    "paper": {"steps": 20_000},
    "demo": {},
    "tiny": {"steps": 20, "batch_size": 16, "checkpoint_every": 10, "log_every": 5},
}


def reward_train_config_for(preset: str, **overrides) -> RewardTrainConfig:
    """The preset's training defaults with ``overrides`` (None values ignored) applied."""
    return config_for(RewardTrainConfig, TRAIN_DEFAULTS, preset, "reward", **overrides)


def sample_pairs(windows: WindowSet, index: dict, rng: np.random.Generator, batch: int) -> np.ndarray:
    """Window indices: batch/2 anchors, each followed by a same-clip window shifted 2-3 codes (or random)."""
    anchors = rng.integers(0, len(windows), batch // 2)
    out = []
    for a in anchors:
        key = (int(windows.clip[a]), int(windows.start[a]) + int(rng.choice(SHIFTS)))
        out += [a, index.get(key, int(rng.integers(0, len(windows))))]
    return np.array(out)


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
    arch = RewardConfig(motion_channels=corpus.n_joints * 3, audio_channels=corpus.n_audio_features,
                        window_codes=config.window_codes, **REWARD_PRESETS[config.preset])
    run = StageRun(ws.root / "reward", "reward", {"train": weight_settings(config), "arch": arch.to_dict(),
                                                  "corpus": corpus.checksum, "vqvae": vqvae_sha},
                   ctx.world_size, ctx.is_main)
    if run.is_current() and not force and not resume:
        return {"skipped": True, "model": str(run.model_path)}
    torch.manual_seed(config.seed)
    model = RewardModel(arch).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start, state = run.start(resume)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
    windows = build_windows(corpus, vqvae, corpus.clip_ids("train"), config.window_codes)
    index = {(int(c), int(s)): i for i, (c, s) in enumerate(zip(windows.clip, windows.start))}
    extra = {"arch": arch.to_dict(), "train": asdict(config), "corpus": corpus_meta(corpus),
             "vqvae_sha256": vqvae_sha, "seed": config.seed}
    net = ctx.wrap(model, dev)  # DistributedDataParallel under torchrun
    ctx.barrier()  # every rank has read the checkpoint before rank 0 writes the next one
    end = config.steps if stop_after is None else min(config.steps, start + stop_after)
    bar = tqdm(range(start, end), initial=start, total=config.steps, desc="train reward",
               disable=not progress or not ctx.is_main)
    t0 = time.perf_counter()
    model.train()
    for step in bar:
        idx = sample_pairs(windows, index, step_rng(config.seed, step), config.batch_size)
        batch = windows.subset(ctx.shard(idx, config.batch_size))  # this rank's share of the global batch
        motion_emb, audio_emb = net(batch.motion.to(dev), batch.audio.to(dev))
        # in-batch negatives from every rank: the loss (and its gradient) of the global batch
        loss, logits = model.info_nce_of(gather_rows_with_grad(motion_emb), gather_rows_with_grad(audio_emb))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done = step + 1
        if done % config.log_every == 0 or done == config.steps:
            acc = (logits.argmax(1) == torch.arange(len(logits), device=dev)).float().mean().item()
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
