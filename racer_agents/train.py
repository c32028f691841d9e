"""``racer train agent W --algo racer-cql | bc | d3rlpy:<Name>``: agents trained on the workspace's Minari dataset.

* ``racer-cql``: the RACER agent, discrete CQL on the GPT backbone over whole segments (Q for every position in
  one forward pass), target network updated every ``target_update_interval`` steps.
* ``bc``: the same backbone trained by cross-entropy on the ground-truth episodes only (the paper's
  "Supervised Learning" ablation).
* ``d3rlpy:<Name>``: any discrete d3rlpy algorithm through the bridge, with a GPT encoder of the same preset.
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from racer_agents.gpt import GPT_PRESETS, GestureGPT, GPTConfig
from racer_agents.losses import behaviour_cloning_loss, discrete_cql_loss
from racer_agents.segments import Segments, load_segments, observation_config
from racer_env.checkpoint import corpus_meta, read_checksum
from racer_env.corpus.store import Corpus
from racer_env.dataset.builder import DATASET_NAME, ID_PATTERN, default_dataset_id, minari_root
from racer_env.distributed import setup
from racer_env.training import StageRun, config_for, step_rng, weight_settings
from racer_env.workspace import Workspace, sha256_json, write_json_atomic

GROUND_TRUTH = 0  # index of "ground_truth" in the dataset's sources


@dataclass(frozen=True)
class AgentTrainConfig:
    """Training settings; the paper's values in comments (``paper`` preset defaults)."""

    algo: str = "racer-cql"  # racer-cql | bc | d3rlpy:<Name>
    preset: str = "demo"
    steps: int = 1500
    batch_size: int = 64  # segments per step (paper: 256)
    lr: float = 3e-4  # paper: 1e-4
    betas: tuple[float, float] = (0.5, 0.999)  # paper: Adam(0.5, 0.999)
    gamma: float = 0.99  # paper
    alpha: float = 1.0  # CQL conservative weight
    double_q: bool = True
    target_update_interval: int = 100
    checkpoint_every: int = 250
    log_every: int = 25
    seed: int = 0
    dataset: str | None = None  # Minari id; default: the newest racer dataset of this workspace
    agent_name: str | None = None  # W/agents/<name>/; default: the algorithm's name (racer-cql, bc, d3rlpy-<Name>)

    def __post_init__(self) -> None:
        if self.algo not in ("racer-cql", "bc") and not self.algo.startswith("d3rlpy:"):
            raise ValueError(f"--algo must be racer-cql, bc or d3rlpy:<Name>, got {self.algo!r}")
        if self.preset not in GPT_PRESETS:
            raise ValueError(f"unknown agent preset {self.preset!r}; choose one of {sorted(GPT_PRESETS)}")
        if self.agent_name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.agent_name):
            raise ValueError(f"--name must be letters, digits, '_', '.', '-' (a directory name), got {self.agent_name!r}")
        if not 0 <= self.gamma <= 1 or self.alpha < 0:
            raise ValueError(f"need 0 <= gamma <= 1 and alpha >= 0, got {self.gamma}, {self.alpha}")

    @property
    def name(self) -> str:
        return self.agent_name or self.algo.replace(":", "-")


TRAIN_DEFAULTS: dict[str, dict] = {
    "paper": {"steps": 50_000, "batch_size": 256, "lr": 1e-4, "target_update_interval": 1000},
    "demo": {},
    "tiny": {"steps": 20, "batch_size": 8, "checkpoint_every": 10, "log_every": 5, "target_update_interval": 5},
}


def agent_config_for(preset: str, **overrides) -> AgentTrainConfig:
    """The preset's training defaults with ``overrides`` (None values ignored) applied."""
    return config_for(AgentTrainConfig, TRAIN_DEFAULTS, preset, "agent", **overrides)


def find_dataset(workspace: Workspace, dataset_id: str | None):
    """The Minari dataset to train on: ``dataset_id``, or the newest version of the workspace's default id
    built from its current VQ-VAE and reward model."""
    import minari

    if dataset_id:
        return minari.load_dataset(dataset_id)
    base = ID_PATTERN.match(default_dataset_id(workspace))["base"]
    vqvae, reward = (read_checksum(workspace.root / d / "model.pt") for d in ("vqvae", "reward"))
    candidates = []
    for did in minari.list_local_datasets():
        m = ID_PATTERN.match(did)
        if m and m["base"] == base:
            meta = minari.load_dataset(did).storage.metadata
            if meta.get("vqvae_sha256") == vqvae and meta.get("reward_sha256") == reward:
                candidates.append((int(m["version"]), did))
    if not candidates:
        raise ValueError(f"no {DATASET_NAME} dataset built from this workspace's models; run racer dataset build "
                         f"{workspace.root} first")
    return minari.load_dataset(max(candidates)[1])


def train_agent(workspace: str | Workspace, config=AgentTrainConfig(), resume: bool = False,
                force: bool = False, device: str = "cpu", progress: bool = True,
                stop_after: int | None = None) -> dict:
    """Train (or resume, or skip when current) an agent; it is saved in ``W/agents/<algo name>/``.

    ``config`` may also be an :class:`racer_agents.online.OnlineTrainConfig` (``dqn``, ``actor-critic``): those
    learn on the vector environment instead of the dataset."""
    from racer_agents.online import OnlineTrainConfig, train_online

    if isinstance(config, OnlineTrainConfig):
        return train_online(workspace, config, resume=resume, force=force, device=device, progress=progress,
                            stop_after=stop_after)
    ws = Workspace.of(workspace)
    with minari_root(ws):
        dataset = find_dataset(ws, config.dataset)
        meta = dataset.storage.metadata
        obs_cfg = observation_config(dataset)
        segments = load_segments(dataset)
    corpus = Corpus.load(ws)
    extra = {"algo": config.algo, "train": asdict(config), "observation": asdict(obs_cfg),
             "dataset": dataset.spec.dataset_id, "dataset_inputs_sha256": meta["racer_inputs_sha256"],
             "vqvae_sha256": meta["vqvae_sha256"], "reward_sha256": meta["reward_sha256"],
             "corpus": corpus_meta(corpus), "seed": config.seed}
    gpt_cfg = GPTConfig(n_codes=int(dataset.action_space.n), audio_dim=segments.audio.shape[-1],
                        max_steps=segments.actions.shape[1], **GPT_PRESETS[config.preset])
    extra["gpt"] = gpt_cfg.to_dict()
    directory = ws.root / "agents" / config.name
    if config.algo.startswith("d3rlpy:"):
        result = _train_d3rlpy(directory, dataset, config, gpt_cfg, obs_cfg, extra, force, device, progress)
    else:
        result = _train_gpt(directory, segments, config, gpt_cfg, extra, resume, force, device, progress, stop_after)
    return {**result, "dataset": dataset.spec.dataset_id}


def _train_gpt(directory: Path, segments: Segments, config: AgentTrainConfig, gpt_cfg: GPTConfig, extra: dict,
               resume: bool, force: bool, device: str, progress: bool, stop_after: int | None) -> dict:
    ctx, dev = setup(device)
    run = StageRun(directory, "agent", {"train": weight_settings(config), "gpt": extra["gpt"],
                                        "dataset": extra["dataset_inputs_sha256"]}, ctx.world_size, ctx.is_main)
    if run.is_current() and not force and not resume:
        return {"skipped": True, "model": str(run.model_path)}
    if config.algo == "bc":
        segments = segments.subset(np.flatnonzero(segments.source == GROUND_TRUTH))
    torch.manual_seed(config.seed)
    model = GestureGPT(gpt_cfg).to(dev)
    target = copy.deepcopy(model).eval()
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas)
    start, state = run.start(resume)
    if state is not None:
        model.load_state_dict(state["model"])
        target.load_state_dict(state["target"])
        opt.load_state_dict(state["optimizer"])
    net = ctx.wrap(model, dev)  # DistributedDataParallel under torchrun
    ctx.barrier()  # every rank has read the checkpoint before rank 0 writes the next one
    end = config.steps if stop_after is None else min(config.steps, start + stop_after)
    bar = tqdm(range(start, end), initial=start, total=config.steps, desc=f"train {config.name}",
               disable=not progress or not ctx.is_main)
    t0 = time.perf_counter()
    model.train()
    for step in bar:
        rng = step_rng(config.seed, step)
        torch.manual_seed(int(rng.integers(2**62)))  # dropout depends on (seed, step) only: exact resume
        idx = rng.integers(0, len(segments), config.batch_size)
        batch = segments.subset(ctx.shard(idx, config.batch_size))  # this rank's share of the global batch
        out = net(batch.audio.to(dev), batch.prev_codes.to(dev))  # (B, T, N): every position in one pass
        if config.algo == "bc":
            loss = behaviour_cloning_loss(out, batch.actions.to(dev))
            metrics = {"losses/total": loss.item(), "losses/cross_entropy": loss.item()}
        else:
            with torch.no_grad():
                q_target = target(batch.audio.to(dev), batch.prev_codes.to(dev))
            parts = discrete_cql_loss(out, q_target, batch.actions.to(dev), batch.rewards.to(dev), batch.dones.to(dev),
                                      config.gamma, config.alpha, config.double_q)
            loss, metrics = parts.total, parts.metrics()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done = step + 1
        if config.algo != "bc" and done % config.target_update_interval == 0:
            target.load_state_dict(model.state_dict())
        if done % config.log_every == 0 or done == config.steps:
            metrics = ctx.mean_dict(metrics)  # over ranks: the global batch's figures
            run.log(done, metrics)
            bar.set_postfix({k.split("/")[-1]: f"{v:.3f}" for k, v in metrics.items() if k != "losses/total"})
        if done % config.checkpoint_every == 0 or done == end:
            run.save_checkpoint(done, {"model": model.state_dict(), "target": target.state_dict(),
                                       "optimizer": opt.state_dict()}, extra)
    bar.close()
    result = run.finish(end, config.steps, {"model": model.state_dict()}, extra)
    if "stopped_at" in result:
        return result
    seconds = time.perf_counter() - t0
    transitions = (config.steps - start) * config.batch_size * gpt_cfg.max_steps  # all ranks together
    return {**result, "seconds": seconds, "transitions_per_second": transitions / max(seconds, 1e-9)}


def _train_d3rlpy(directory: Path, dataset, config: AgentTrainConfig, gpt_cfg: GPTConfig, obs_cfg, extra: dict,
                  force: bool, device: str, progress: bool) -> dict:
    from d3rlpy.logging import NoopAdapterFactory

    from racer_agents.d3rlpy_bridge import GPTEncoderFactory, algo_config, minari_to_mdp_dataset

    identity = sha256_json({"train": weight_settings(config), "gpt": extra["gpt"],
                            "dataset": extra["dataset_inputs_sha256"]})
    meta_path = directory / "meta.json"
    if meta_path.is_file() and json.loads(meta_path.read_text()).get("identity_sha256") == identity and not force:
        return {"skipped": True, "model": str(directory / "model.d3")}
    name = config.algo.split(":", 1)[1]
    dt_cfg = replace(gpt_cfg, max_steps=obs_cfg.past + 1)
    encoder = GPTEncoderFactory(gpt_config=dt_cfg.to_dict(), past=obs_cfg.past, lookahead=obs_cfg.lookahead)
    ctx, dev = setup(device)
    torch.manual_seed(config.seed)
    if ctx.enabled:  # each rank samples its own share of transitions (d3rlpy draws batches from numpy's global RNG)
        np.random.seed(config.seed + ctx.rank)
    kwargs = {"batch_size": config.batch_size * gpt_cfg.max_steps // ctx.world_size, "gamma": config.gamma}
    if name in ("DiscreteCQL",):
        kwargs["alpha"] = config.alpha
    if name == "DiscreteDecisionTransformer":
        kwargs = {"batch_size": config.batch_size // ctx.world_size, "context_size": gpt_cfg.max_steps}
    # d3rlpy's own DDP (enable_ddp) under torchrun: it wraps its networks and averages their gradients
    algo = algo_config(name, encoder, max_timestep=gpt_cfg.max_steps + 1, **kwargs).create(
        device="cpu:0" if dev.type == "cpu" else str(dev), enable_ddp=ctx.enabled)
    mdp = minari_to_mdp_dataset(dataset)
    t0 = time.perf_counter()
    algo.fit(mdp, n_steps=config.steps, n_steps_per_epoch=min(config.steps, 1000),
             show_progress=progress and ctx.is_main,
             save_interval=10**9, experiment_name=config.name, with_timestamp=False,
             logger_adapter=NoopAdapterFactory())
    seconds = time.perf_counter() - t0
    transitions_per_second = config.steps * kwargs["batch_size"] * ctx.world_size / max(seconds, 1e-9)
    if not ctx.is_main:  # rank 0 writes the model
        return {"skipped": False, "model": str(directory / "model.d3"), "seconds": seconds,
                "transitions_per_second": transitions_per_second}
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".model.d3.tmp{os.getpid()}"
    algo.save(str(tmp))
    os.replace(tmp, directory / "model.d3")
    target_return = float(dataset.storage.metadata["ref_max_score"])
    write_json_atomic(meta_path, {**extra, "kind": "agent-d3rlpy", "identity_sha256": identity,
                                  "target_return": target_return})
    return {"skipped": False, "model": str(directory / "model.d3"), "checksum": identity, "seconds": seconds,
            "transitions_per_second": transitions_per_second}
