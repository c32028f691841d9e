"""``racer train agent W --algo racer-cql | bc | d3rlpy:<Name>``: agents trained on the workspace's Minari dataset.

* ``racer-cql``: the RACER agent, discrete CQL on the GPT backbone over windows of the episodes (Q for every
  position in one forward pass), target network updated every ``target_update_interval`` steps.
* ``bc``: the same backbone trained by cross-entropy on the ground-truth episodes only (the paper's
  "Supervised Learning" ablation).
* ``d3rlpy:<Name>``: any discrete d3rlpy algorithm through the bridge, with a GPT encoder of the same preset.

What makes the GPT agents generalise to speech they have never heard (measured on held-out clips, see
docs/agents.md and benchmarks/README.md): training windows drawn at any start step of the episodes, *history
dropout* (each previous-code input
replaced by a random code with probability ``history_dropout``, so that the agent reads the speech instead of
continuing the code sequence it memorised), soft targets (``soft_targets`` of each label spread over the action's
nearest codes in the codebook, in bc's cross-entropy and racer-cql's conservative term: a similar gesture is almost
as right, and the mass of a stroke no longer splits over its many variants), a moving average of the weights
(``ema``), and model selection on the
validation clips (every ``valid_every`` steps the averaged agent rolls out the whole validation clips; the weights
with the best ``valid/score`` (``select``: the mean reward) are kept and training stops after ``patience`` validations
without improvement).
"""

from __future__ import annotations

import copy
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from racer_agents.gpt import GPT_PRESETS, GestureGPT, GPTConfig
from racer_agents.losses import behaviour_cloning_loss, discrete_cql_loss, soft_target_matrix
from racer_agents.segments import GROUND_TRUTH, Segments, load_segments
from racer_env.checkpoint import corpus_meta, read_checksum
from racer_env.corpus.store import Corpus
from racer_env.dataset.builder import (
    DATASET_NAME,
    DatasetError,
    DatasetInfo,
    datasets_root,
    default_dataset_id,
    minari_root,
    parse_id,
)
from racer_env.distributed import setup
from racer_env.errors import RacerError
from racer_env.stage import RecordedStage
from racer_env.training import StageRun, config_for, option, step_rng, weight_settings
from racer_env.workspace import (
    Workspace,
    atomic_path,
)


#: the validation scores model selection can maximise (``AgentTrainConfig.select``): the sum of these figures.
#: The mean reward alone is the default: over the reward panel's systems on the demo's validation clips it follows
#: stroke F1 (Spearman 0.86) where sync does not (0.18: codes a step late keep their sync), and on the validation
#: curves of eight demo-preset runs it keeps weights of the same validation stroke F1 as mean reward + sync in five,
#: higher in two (+0.03, +0.08; test clips of the second: 0.52 against 0.33) and lower in one (0.505 vs 0.506).
#: Mean reward + sync was chosen before the reward saw real motion (issue 24), when the reward stayed flat while an
#: over-trained bc's strokes faded.
SELECTIONS: dict[str, tuple[str, ...]] = {"mean_reward": ("mean_reward",), "mean_reward+sync": ("mean_reward", "sync")}


@dataclass(frozen=True)
class AgentTrainConfig:
    """Training settings; the paper's values in comments (``paper`` preset defaults)."""

    algo: str = "racer-cql"  # racer-cql | bc | d3rlpy:<Name>
    preset: str = "demo"
    steps: int = option(1500, "training steps", low=1)
    batch_size: int = option(64, "training windows per step (paper: 256)", low=1)
    lr: float = option(3e-4, "learning rate (paper: 1e-4)", low=0, exclusive_low=True)
    betas: tuple[float, float] = (0.5, 0.999)  # paper: Adam(0.5, 0.999)
    gamma: float = option(0.99, "discount (the paper's 0.99)", low=0)
    alpha: float = option(1.0, "CQL conservative weight", low=0)
    double_q: bool = True
    conservative_on: str = option("human", "racer-cql: the steps the conservative term covers: the human speaker's "
                                  "or every dataset step (standard CQL)", choices=("human", "all"))
    human_fraction: float = option(0.5, "racer-cql: share of every batch drawn from the human speaker's episodes "
                                   "(0: uniform over all windows)", low=0)
    window: int = option(15, "steps per training window, drawn at any start step (the GPT's context; the paper's "
                         "15)", low=1)
    soft_targets: float = option(0.3, "share of each label spread over the soft_neighbours nearest codes of the "
                                 "codebook (0: off)", low=0)
    soft_neighbours: int = 7  # nearest codes in the codebook that share a label's soft_targets mass
    history_dropout: float = option(0.8, "probability that a previous-code input is replaced by a random code in "
                                    "training (0: off)", low=0)
    weight_decay: float = option(0.0, "AdamW's decoupled weight decay", low=0)
    ema: float = option(0.99, "decay of the moving average of the weights that is validated and kept (0: the raw "
                        "weights)", flag="--ema-decay", low=0)
    valid_every: int = option(250, "steps between validation rollouts on the valid split; the weights with the "
                              "best validation score (--select) are kept (0: no validation, the last step is kept)",
                              low=0)
    select: str = option("mean_reward", "the validation score that selects the kept weights: the mean reward (it "
                         "tracks the agents' stroke timing, the reward panel shows) or mean reward + sync (before "
                         "issue 24)", choices=("mean_reward", "mean_reward+sync"))
    patience: int = option(3, "validations without improvement before training stops (0: never stop early)", low=0)
    bc_episodes: str = option("human", "bc: the episodes it clones: the human speaker's (the paper's supervised "
                              "baseline) or every episode of the dataset (D4RL's BC on a dataset tier)",
                              choices=("human", "all"))
    stop_score: float | None = option(None, "stop at the first validation whose normalised score (0: random codes, "
                                      "100: the human speaker's codes) reaches this, keeping the validated weights "
                                      "nearest to it (the medium dataset tier's bc)")
    target_update_interval: int = 100
    checkpoint_every: int = option(250, "steps between checkpoints", low=1)
    log_every: int = 25
    seed: int = option(0, "seed of initialisation and batches", low=0)
    dataset: str | None = option(None, "Minari dataset id (default: the workspace's newest racer dataset)")
    agent_name: str | None = option(None, "agent name, W/agents/<name>/ (default: the algorithm's, e.g. racer-cql, "
                                    "d3rlpy-DiscreteCQL)", flag="--name")

    def __post_init__(self) -> None:
        if self.algo not in ("racer-cql", "bc") and not self.algo.startswith("d3rlpy:"):
            raise RacerError(f"--algo must be racer-cql, bc, d3rlpy:<Name> (offline) or dqn, actor-critic (online), got {self.algo!r}")
        if self.algo.startswith("d3rlpy:"):  # (before any work: the name, not only the prefix)
            from racer_agents.algorithms import check_d3rlpy_algorithm as check_algorithm

            try:
                check_algorithm(self.algo.split(":", 1)[1])
            except RacerError as err:
                raise RacerError(f"--algo {self.algo}: {err}") from None
        if self.preset not in GPT_PRESETS:
            raise RacerError(f"unknown agent preset {self.preset!r}; choose one of {sorted(GPT_PRESETS)}")
        if self.agent_name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.agent_name):
            raise RacerError(f"--name must be letters, digits, '_', '.', '-' (a directory name), got {self.agent_name!r}")
        if not 0 <= self.gamma <= 1 or self.alpha < 0:
            raise RacerError(f"need 0 <= gamma <= 1 and alpha >= 0, got {self.gamma}, {self.alpha}")
        if not 0 <= self.human_fraction <= 1:
            raise RacerError(f"human_fraction must be in [0, 1] (0: uniform over all windows), got {self.human_fraction}")
        if self.conservative_on not in ("human", "all"):
            raise RacerError(f"conservative_on must be 'human' or 'all', got {self.conservative_on!r}")
        if not 0 <= self.soft_targets < 1 or self.soft_neighbours < 1:
            raise RacerError(f"need 0 <= soft_targets < 1 and soft_neighbours >= 1, got {self.soft_targets}, "
                             f"{self.soft_neighbours}")
        if not 0 <= self.ema < 1:
            raise RacerError(f"ema must be in [0, 1) (0: off), got {self.ema}")
        if not 0 <= self.history_dropout <= 1 or self.weight_decay < 0:
            raise RacerError(f"need 0 <= history_dropout <= 1 and weight_decay >= 0, got {self.history_dropout}, "
                             f"{self.weight_decay}")
        if self.stop_score is not None and self.algo.startswith("d3rlpy:"):
            raise RacerError("--stop-score is for the GPT agents (racer-cql, bc); d3rlpy algorithms do not validate")
        if self.select not in SELECTIONS:
            raise RacerError(f"select must be one of {sorted(SELECTIONS)}, got {self.select!r}")
        if self.bc_episodes not in ("human", "all"):
            raise RacerError(f"bc_episodes must be 'human' or 'all', got {self.bc_episodes!r}")
        if self.stop_score is not None and not self.valid_every:
            raise RacerError("--stop-score needs validation (--valid-every > 0)")
        if self.window < 1 or self.valid_every < 0 or self.patience < 0:
            raise RacerError(f"need window >= 1, valid_every >= 0 and patience >= 0, got {self.window}, "
                             f"{self.valid_every}, {self.patience}")

    @property
    def name(self) -> str:
        return self.agent_name or self.algo.replace(":", "-")

    def train(self, workspace: str | Workspace, **run) -> dict:
        """Train this agent on the workspace's dataset (``run``: resume, force, device, progress, stop_after)."""
        return train_offline(workspace, self, **run)


TRAIN_DEFAULTS: dict[str, dict] = {
    "paper": {"steps": 50_000, "batch_size": 256, "lr": 1e-4, "target_update_interval": 1000},
    "demo": {"alpha": 5.0, "gamma": 0.9},  # measured on validation clips (docs/agents.md: what makes the GPT agents generalise)
    "tiny": {"steps": 20, "batch_size": 8, "checkpoint_every": 10, "log_every": 5, "target_update_interval": 5,
             "window": 6, "valid_every": 10},
}


def agent_config_for(preset: str, **overrides) -> AgentTrainConfig:
    """The preset's training defaults with ``overrides`` (None values ignored) applied."""
    return config_for(AgentTrainConfig, TRAIN_DEFAULTS, preset, "agent", **overrides)


def find_dataset(workspace: Workspace, dataset_id: str | None):
    """The Minari dataset to train on: ``dataset_id``, or the newest version of the workspace's default id
    built from its current VQ-VAE and reward model."""
    import minari

    root = datasets_root(workspace)
    if not root.is_dir():  # (checked first: Minari would create the directory)
        raise DatasetError(f"{root}: no datasets here; build one first: racer dataset build {workspace.root}")
    local = minari.list_local_datasets()
    if dataset_id:
        if dataset_id not in local:
            raise DatasetError(f"--dataset {dataset_id}: no such dataset in {root}; it holds "
                               f"{', '.join(sorted(local)) or 'none'}")
        return minari.load_dataset(dataset_id)
    base = parse_id(default_dataset_id(workspace))[:2]  # (namespace, name)
    vqvae, reward = (read_checksum(workspace.root / d / "model.pt") for d in ("vqvae", "reward"))
    candidates = []
    for did in local:
        try:
            *other, version = parse_id(did)
        except DatasetError:
            continue  # another project's dataset in a shared MINARI_DATASETS_PATH
        if tuple(other) == base:
            try:
                info = DatasetInfo.of(minari.load_dataset(did))
            except DatasetError:
                continue
            if (info.vqvae_sha256, info.reward_sha256) == (vqvae, reward):
                candidates.append((version, did))
    if not candidates:
        raise DatasetError(f"no {DATASET_NAME} dataset built from this workspace's models; run racer dataset build "
                         f"{workspace.root} first")
    return minari.load_dataset(max(candidates)[1])


def train_agent(workspace: str | Workspace, config=AgentTrainConfig(), resume: bool = False,
                force: bool = False, device: str = "cpu", progress: bool = True,
                stop_after: int | None = None) -> dict:
    """Train (or resume, or skip when current) an agent; it is saved in ``W/agents/<algo name>/``.

    ``config`` says how: an :class:`AgentTrainConfig` learns from the Minari dataset, an
    :class:`racer_agents.online.OnlineTrainConfig` (``dqn``, ``actor-critic``) on the vector environment."""
    return config.train(workspace, resume=resume, force=force, device=device, progress=progress,
                        stop_after=stop_after)


def train_offline(workspace: str | Workspace, config: AgentTrainConfig, resume: bool = False, force: bool = False,
                  device: str = "cpu", progress: bool = True, stop_after: int | None = None) -> dict:
    """An agent from the workspace's Minari dataset: racer-cql and bc (GPT), or a d3rlpy algorithm."""
    ws = Workspace.of(workspace)
    with minari_root(ws):
        dataset = find_dataset(ws, config.dataset)
        info = DatasetInfo.of(dataset)
        obs_cfg = info.observation
        segments = load_segments(dataset)
    corpus = Corpus.load(ws)
    extra = {"algo": config.algo, "train": asdict(config), "observation": asdict(obs_cfg),
             "dataset": info.dataset_id, "dataset_inputs_sha256": info.inputs_sha256,
             "vqvae_sha256": info.vqvae_sha256, "reward_sha256": info.reward_sha256,
             "corpus": corpus_meta(corpus), "seed": config.seed}
    gpt_cfg = GPTConfig(n_codes=int(dataset.action_space.n), audio_dim=segments.audio_dim,
                        max_steps=config.window, **GPT_PRESETS[config.preset])
    extra["gpt"] = gpt_cfg.to_dict()
    directory = ws.root / "agents" / config.name
    if config.algo.startswith("d3rlpy:"):
        result = _train_d3rlpy(directory, dataset, config, gpt_cfg, obs_cfg, extra, force, device, progress,
                               max_timestep=int(segments.lengths.max()))
    else:
        result = _train_gpt(ws, directory, segments, config, gpt_cfg, obs_cfg, extra, resume, force, device, progress,
                            stop_after)
    return {**result, "dataset": dataset.spec.dataset_id}


def history_noise(rng: np.random.Generator, shape: tuple[int, int], p: float, n_codes: int) -> torch.Tensor:
    """History dropout for a global batch (B, T): a uniformly random code where the previous-code input is dropped
    (probability ``p``), -1 where it is kept. Drawn from the step's numpy ``rng`` for the whole global batch, so
    every rank and a resumed run draw the same."""
    if p <= 0:
        return torch.full(shape, -1, dtype=torch.long)
    drop = rng.random(shape) < p
    return torch.from_numpy(np.where(drop, rng.integers(0, n_codes, shape), -1).astype(np.int64))


def with_history_noise(prev_codes: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """(B, T) previous codes with the dropped ones (``noise`` >= 0) replaced by ``noise``."""
    return torch.where(noise >= 0, noise, prev_codes)


def rank_balanced_order(n_human: int, batch: int, world: int) -> np.ndarray:
    """(batch,) positions of a batch drawn human windows first (``n_human`` of them, a multiple of ``world``),
    reordered so that each of the ``world`` contiguous shards holds the same number of human windows. Each rank
    then averages the conservative term over as many human steps as every other, and the mean over ranks equals
    the one-process loss."""
    human = np.split(np.arange(n_human), world)
    other = np.split(np.arange(n_human, batch), world)
    return np.concatenate([np.concatenate([h, o]) for h, o in zip(human, other)])


@dataclass
class _Selection:
    """Validation-based model selection: the best validation figure so far, its step and weights."""

    best: float = -float("inf")
    best_step: int = 0
    stale: int = 0  # validations since the last improvement
    state: dict | None = None  # the best weights (None: no validation yet)

    def update(self, step: int, score: float, model: torch.nn.Module) -> None:
        if score > self.best:
            self.best, self.best_step, self.stale = score, step, 0
            self.state = copy.deepcopy(model.state_dict())
        else:
            self.stale += 1

    def to_dict(self) -> dict:
        return {"best": self.best, "best_step": self.best_step, "stale": self.stale, "state": self.state}


@torch.no_grad()
def update_average(average: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """average <- decay * average + (1 - decay) * model, parameter by parameter (decay 0: a copy of the model)."""
    for avg, new in zip(average.parameters(), model.parameters()):
        avg.lerp_(new, 1.0 - decay)


def _soft_targets(ws: Workspace, config: AgentTrainConfig) -> torch.Tensor | None:
    """The (N, N) soft label distributions over the workspace codebook's nearest codes, or None when off."""
    if config.soft_targets <= 0:
        return None
    from racer_env.dataset.episodes import nearest_codes
    from racer_env.vqvae.tokenize import load_vqvae

    vqvae, _, _ = load_vqvae(ws, Corpus.load(ws), "cpu")
    neighbours = nearest_codes(vqvae.quantizer.codebook.detach().cpu(), config.soft_neighbours)
    return soft_target_matrix(torch.from_numpy(neighbours), config.soft_targets)


def _validate(validation, model: GestureGPT, obs_cfg, config: AgentTrainConfig) -> dict[str, float]:
    from racer_agents.agent import GPTAgent

    return validation(GPTAgent(model, obs_cfg, config.name))


def _train_gpt(ws: Workspace, directory: Path, segments: Segments, config: AgentTrainConfig, gpt_cfg: GPTConfig,
               obs_cfg, extra: dict, resume: bool, force: bool, device: str, progress: bool,
               stop_after: int | None) -> dict:
    from racer_agents.evaluate import Validation

    ctx, dev = setup(device)
    run = StageRun(directory, "agent", {"train": weight_settings(config), "gpt": extra["gpt"],
                                        "dataset": extra["dataset_inputs_sha256"]}, ctx.world_size, ctx.is_main)
    with run.locked():
        if run.is_current() and not force and not resume:
            return {"skipped": True, "model": str(run.model_path)}
        if config.algo == "bc" and config.bc_episodes == "human":
            segments = segments.of_source(GROUND_TRUTH)
        firsts = segments.window_starts(config.window)  # (W,) every window of every episode
        human = segments.human_steps()[torch.from_numpy(firsts)].numpy() > 0  # (W,) windows of human episodes
        if config.algo != "bc" and config.human_fraction > 0 and 0 < human.sum() < len(firsts):
            pools = (firsts[human], firsts[~human])  # each batch: a fixed share of human windows, the rest augmented
            n_human = ctx.world_size * round(config.human_fraction * config.batch_size / ctx.world_size)
        else:
            pools, n_human = (firsts, firsts[:0]), config.batch_size
        order = rank_balanced_order(n_human, config.batch_size, ctx.world_size)
        validation = Validation(ws, obs_cfg, "valid", device, SELECTIONS[config.select]) if config.valid_every else None
        targets = _soft_targets(ws, config)
        torch.manual_seed(config.seed)
        model = GestureGPT(gpt_cfg).to(dev)
        target = copy.deepcopy(model).eval()
        average = copy.deepcopy(model).eval()  # the moving average of the weights (what is validated and kept)
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
        selection = _Selection()
        start, state = run.start(resume)
        if state is not None:
            model.load_state_dict(state["model"])
            average.load_state_dict(state["average"])
            target.load_state_dict(state["target"])
            opt.load_state_dict(state["optimizer"])
            selection = _Selection(**state["selection"])
        net = ctx.wrap(model, dev)  # DistributedDataParallel under torchrun
        ctx.barrier()  # every rank has read the checkpoint before rank 0 writes the next one
        end, bar = run.steps(start, config.steps, stop_after, f"train {config.name}", progress)
        t0 = time.perf_counter()
        model.train()
        stopped_early = None
        for step in bar:
            rng = step_rng(config.seed, step)
            torch.manual_seed(int(rng.integers(2**62)))  # dropout depends on (seed, step) only: exact resume
            chosen = np.concatenate([pools[0][rng.integers(0, len(pools[0]), n_human)],
                                     pools[1][rng.integers(0, max(len(pools[1]), 1), config.batch_size - n_human)]])
            noise = history_noise(rng, (config.batch_size, config.window), config.history_dropout, gpt_cfg.n_codes)
            chosen, noise = chosen[order], noise[torch.from_numpy(order)]  # every rank: the same share of human windows
            batch = segments.windows(ctx.shard(chosen, config.batch_size), config.window)  # this rank's share
            inputs = with_history_noise(batch.prev_codes, ctx.shard(noise, config.batch_size))  # (B, T)
            out = net(batch.audio.to(dev), inputs.to(dev))  # (B, T, N): every position in one pass
            if config.algo == "bc":
                loss = behaviour_cloning_loss(out, batch.actions.to(dev), targets)
                metrics = {"losses/total": loss.item(), "losses/cross_entropy": loss.item()}
            else:
                with torch.no_grad():
                    q_target = target(batch.audio.to(dev), inputs.to(dev))
                parts = discrete_cql_loss(out, q_target, batch.actions.to(dev), batch.rewards.to(dev), batch.dones.to(dev),
                                          config.gamma, config.alpha, config.double_q,
                                          batch.human.to(dev) if config.conservative_on == "human" else None, targets)
                loss, metrics = parts.total, parts.metrics()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            update_average(average, model, config.ema)
            done = step + 1
            if config.algo != "bc" and done % config.target_update_interval == 0:
                target.load_state_dict(model.state_dict())
            if validation is not None and (done % config.valid_every == 0 or done == config.steps):
                figures = _validate(validation, average, obs_cfg, config)
                reached = config.stop_score is not None and figures["valid/normalised_score"] >= config.stop_score
                selection.update(done, figures["valid/score"] if config.stop_score is None else
                                 -abs(figures["valid/normalised_score"] - config.stop_score), average)
                metrics = {**metrics, **figures, "valid/best_step": selection.best_step}
                if reached or (config.patience and config.stop_score is None and selection.stale >= config.patience):
                    stopped_early = done
            if done % config.log_every == 0 or done == config.steps or stopped_early or (
                    validation is not None and done % config.valid_every == 0):
                metrics = ctx.mean_dict(metrics)  # over ranks: the global batch's figures
                run.log(done, metrics)
                bar.set_postfix({k.split("/")[-1]: f"{v:.3f}" for k, v in metrics.items()
                                 if k in ("losses/cross_entropy", "losses/td", "valid/score")})
            if done % config.checkpoint_every == 0 or done == end or stopped_early:
                run.save_checkpoint(done, {"model": model.state_dict(), "target": target.state_dict(),
                                           "average": average.state_dict(),
                                           "optimizer": opt.state_dict(), "selection": selection.to_dict()}, extra)
            if stopped_early:
                break
        bar.close()
        final = selection.state if selection.state is not None else average.state_dict()
        metric = ("valid/score = " + " + ".join(f"valid/{k}" for k in SELECTIONS[config.select]) if config.stop_score is None
                  else f"-|valid/normalised_score - {config.stop_score:g}|")
        extra = {**extra, "selection": {"metric": metric,
                                        "best": selection.best,
                                        "best_step": selection.best_step, "stopped_early_at": stopped_early}
                 if validation is not None else None}
        result = run.finish(config.steps if stopped_early else end, config.steps, {"model": final}, extra)
        if "stopped_at" in result:
            return result
        seconds = time.perf_counter() - t0
        last = stopped_early or config.steps
        transitions = (last - start) * config.batch_size * gpt_cfg.max_steps  # all ranks together
        return {**result, "seconds": seconds, "transitions_per_second": transitions / max(seconds, 1e-9),
                "best_step": selection.best_step if validation is not None else None, "stopped_early_at": stopped_early}


def _train_d3rlpy(directory: Path, dataset, config: AgentTrainConfig, gpt_cfg: GPTConfig, obs_cfg, extra: dict,
                  force: bool, device: str, progress: bool, max_timestep: int) -> dict:
    """``max_timestep``: the longest episode (a decision transformer embeds the timestep)."""
    stage = RecordedStage(directory, {"train": weight_settings(config), "gpt": extra["gpt"],
                                      "dataset": extra["dataset_inputs_sha256"]},
                          record=directory / "meta.json", outputs=(directory / "model.d3",))
    with stage.locked():
        if stage.is_current() and not force:
            return {"skipped": True, "model": str(directory / "model.d3")}
        return _fit_d3rlpy(stage, dataset, config, gpt_cfg, obs_cfg, extra, device, progress, max_timestep)


def _fit_d3rlpy(stage: RecordedStage, dataset, config: AgentTrainConfig, gpt_cfg: GPTConfig, obs_cfg, extra: dict,
                device: str, progress: bool, max_timestep: int) -> dict:
    from racer_agents.d3rlpy_bridge import GPTEncoderFactory, algo_config, minari_to_mdp_dataset  # (first: d3rlpy)
    from d3rlpy.logging import NoopAdapterFactory  # noqa: I001

    directory = stage.directory
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
    algo = algo_config(name, encoder, max_timestep=max(max_timestep, gpt_cfg.max_steps) + 1, **kwargs).create(
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
    with atomic_path(directory / "model.d3") as tmp:
        algo.save(str(tmp))
    stage.save_record({**extra, "kind": "agent-d3rlpy", "target_return": DatasetInfo.of(dataset).ref_max_score})
    return {"skipped": False, "model": str(directory / "model.d3"), "checksum": stage.identity_sha,
            "seconds": seconds,
            "transitions_per_second": transitions_per_second}
