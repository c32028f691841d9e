"""Training the gesture VQ-VAE on the corpus in a workspace (``racer train vqvae W``).

Loss (RACER, after Bailando): L1(x_hat, x) + L1 of their velocities + L1 of their accelerations
+ codebook loss + 0.1 * commitment loss, on random crops of normalised rotation-vector motion.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from racer_env.checkpoint import corpus_meta
from racer_env.corpus.store import Corpus, CorpusError
from racer_env.distributed import setup, sum_over_ranks
from racer_env.training import (
    StageRun,
    config_for,
    step_rng,
    step_torch_generator,
    weight_settings,
)
from racer_env.vqvae.model import PRESETS, VQVAE, preset_config
from racer_env.workspace import Workspace


@dataclass(frozen=True)
class VQVAETrainConfig:
    """How the VQ-VAE is trained. Per-preset defaults in ``TRAIN_DEFAULTS``; the paper's in its comments."""

    preset: str = "demo"
    steps: int = 1200
    batch_size: int = 64  # paper: 64
    crop_frames: int = 120  # paper: T = 120 frames (15 codes)
    lr: float = 1e-3  # paper: 3e-5 with Adam(0.9, 0.999); higher so `demo` trains in minutes
    lr_final_frac: float = 0.1  # cosine decay to lr * this
    commitment: float = 0.1  # paper: 0.1 x commitment
    ema: bool = False  # EMA codebook (documented option, off in the paper)
    dead_code_reset: bool = True  # re-seed unused codes from encoder outputs (documented option)
    checkpoint_every: int = 200
    log_every: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown VQ-VAE preset {self.preset!r}; choose one of {sorted(PRESETS)}")
        if self.crop_frames % 8 or self.crop_frames < 8:
            raise ValueError(f"crop_frames must be a positive multiple of 8, got {self.crop_frames}")
        for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


#: training steps over which codebook perplexity and usage are reported in the log.
USAGE_WINDOW = 20

TRAIN_DEFAULTS: dict[str, dict] = {
    "paper": {"steps": 100_000, "lr": 3e-5, "lr_final_frac": 1.0, "dead_code_reset": False},  # constant lr
    "demo": {},
    "tiny": {"steps": 40, "batch_size": 8, "crop_frames": 32, "checkpoint_every": 10, "log_every": 5},
}


def train_config_for(preset: str, **overrides) -> VQVAETrainConfig:
    """The preset's training defaults with ``overrides`` (None values ignored) applied."""
    return config_for(VQVAETrainConfig, TRAIN_DEFAULTS, preset, "VQ-VAE", **overrides)


def load_training_motion(corpus: Corpus, crop_frames: int) -> list[torch.Tensor]:
    """Normalised (J*3, T) motion of every training clip at least ``crop_frames`` long."""
    stats = corpus.stats
    clips = [torch.from_numpy(stats.normalise_motion(c.motion_features()).T.astype(np.float32).copy())
             for c in corpus.clips("train")]
    clips = [c for c in clips if c.shape[1] >= crop_frames]
    if not clips:
        raise CorpusError(f"{corpus.directory}: no training clip is at least {crop_frames} frames long")
    return clips


def sample_batch(clips: list[torch.Tensor], rng: np.random.Generator, batch: int, crop: int) -> torch.Tensor:
    """(B, J*3, crop) random crops; clips drawn in proportion to their length."""
    lengths = np.array([c.shape[1] - crop + 1 for c in clips], dtype=np.float64)
    idx = rng.choice(len(clips), size=batch, p=lengths / lengths.sum())
    starts = [int(rng.integers(0, lengths[i])) for i in idx]
    return torch.stack([clips[i][:, s:s + crop] for i, s in zip(idx, starts)])


def reconstruction_losses(x_hat: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """L1 on values, velocities and accelerations of (B, C, T) motion."""
    vel, vel_hat = x[..., 1:] - x[..., :-1], x_hat[..., 1:] - x_hat[..., :-1]
    acc, acc_hat = vel[..., 1:] - vel[..., :-1], vel_hat[..., 1:] - vel_hat[..., :-1]
    return {"rec": F.l1_loss(x_hat, x), "vel": F.l1_loss(vel_hat, vel), "acc": F.l1_loss(acc_hat, acc)}


def vqvae_loss(model, x: torch.Tensor, commitment_weight: float, generator: torch.Generator | None = None):
    """The training loss of a batch (B, J*3, T): returns (total, parts dict, codes (B, T/8))."""
    x_hat, codes, codebook_loss, commitment = model(x, generator)
    parts = reconstruction_losses(x_hat, x)
    total = parts["rec"] + parts["vel"] + parts["acc"] + codebook_loss + commitment_weight * commitment
    return total, {**parts, "codebook": codebook_loss, "commitment": commitment}, codes


def code_statistics(counts: torch.Tensor) -> tuple[float, float]:
    """(perplexity, fraction of codes used) of a code histogram."""
    p = counts / counts.sum().clamp_min(1)
    perplexity = torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum()).item()
    return perplexity, (counts > 0).float().mean().item()


def train_vqvae(
    workspace: str | Workspace,
    config: VQVAETrainConfig = VQVAETrainConfig(),
    resume: bool = False,
    force: bool = False,
    device: str = "cpu",
    progress: bool = True,
    stop_after: int | None = None,
) -> dict:
    """Train (or resume, or skip when current) the VQ-VAE of ``workspace``; returns a summary.

    ``stop_after`` ends the run after that many steps of this call (used to test interruption); the
    checkpoint it leaves resumes to the same weights as an uninterrupted run.
    """
    ws = Workspace.of(workspace)
    corpus = Corpus.load(ws)
    arch = preset_config(config.preset, corpus.n_joints, ema=config.ema, dead_code_reset=config.dead_code_reset)
    ctx, dev = setup(device)
    run = StageRun(ws.root / "vqvae", "vqvae", {"train": weight_settings(config), "arch": arch.to_dict(),
                                                "corpus": corpus.checksum}, ctx.world_size, ctx.is_main)
    if run.is_current() and not force and not resume:
        return {"skipped": True, "model": str(run.model_path)}
    torch.manual_seed(config.seed)
    model = VQVAE(arch).to(dev)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, config))
    window = torch.zeros(USAGE_WINDOW, arch.codebook_size)  # code histograms of the last steps
    start, state = run.start(resume)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        window = state["usage_window"]
    clips = load_training_motion(corpus, config.crop_frames)
    net = ctx.wrap(model, dev)  # DistributedDataParallel under torchrun
    ctx.barrier()  # every rank has read the checkpoint before rank 0 writes the next one
    extra = {"arch": arch.to_dict(), "train": asdict(config), "corpus": corpus_meta(corpus), "seed": config.seed}
    end = config.steps if stop_after is None else min(config.steps, start + stop_after)
    bar = tqdm(range(start, end), initial=start, total=config.steps, desc="train vqvae",
               disable=not progress or not ctx.is_main)
    t0 = time.perf_counter()
    model.train()
    for step in bar:
        x = sample_batch(clips, step_rng(config.seed, step), config.batch_size, config.crop_frames)
        x = ctx.shard(x, config.batch_size).to(dev)  # this rank's share of the global batch
        loss, parts, codes = vqvae_loss(net, x, config.commitment, step_torch_generator(config.seed, step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        window[step % USAGE_WINDOW] = sum_over_ranks(torch.bincount(codes.flatten(), minlength=arch.codebook_size)).cpu()
        done = step + 1
        if done % config.log_every == 0 or done == config.steps:
            ppl, used = code_statistics(window.sum(0))
            losses = ctx.mean_dict({"losses/total": loss.item(), **{f"losses/{k}": v.item() for k, v in parts.items()}})
            metrics = {**losses, "codebook/perplexity": ppl, "codebook/used_frac": used, "lr": sched.get_last_lr()[0]}
            run.log(done, metrics)
            bar.set_postfix(loss=f"{losses['losses/total']:.3f}", rec=f"{losses['losses/rec']:.3f}", ppl=f"{ppl:.0f}",
                            used=f"{used:.2f}")
        if done % config.checkpoint_every == 0 or done == end:
            run.save_checkpoint(done, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                       "scheduler": sched.state_dict(), "usage_window": window}, extra)
    bar.close()
    result = run.finish(end, config.steps, {"model": model.state_dict()}, extra)
    if "stopped_at" in result:
        return result
    return {**result, "seconds": time.perf_counter() - t0, "steps": config.steps - start}


def _cosine(step: int, cfg: VQVAETrainConfig) -> float:
    frac = min(step / max(cfg.steps, 1), 1.0)
    return float(cfg.lr_final_frac + (1 - cfg.lr_final_frac) * 0.5 * (1 + np.cos(np.pi * frac)))
