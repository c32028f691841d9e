"""Online agents on the native vector environment: the paper's DQN and actor-critic ablations (Table 2).

``racer train agent W --algo dqn | actor-critic`` learns by interacting with ``GestureSynthesisVectorEnv`` instead of
from the offline dataset. Both use the GPT backbone of racer-cql and save it like the offline agents do, so
rollouts, ``racer evaluate`` and ``racer generate`` work on them unchanged.

* ``dqn``: the GPT Q-network, epsilon-greedy exploration (linear schedule), a replay buffer of whole episodes and a
  target network (hard updates); the loss is racer-cql's TD loss (double-DQN target) without the conservative
  term.
* ``actor-critic``: the paper's split of the GPT: its last 3 transformer layers plus the linear-softmax head are
  the actor (the layers below are shared), and 3 added transformer layers with a linear value head are the critic
  (A2C: advantages by GAE, entropy bonus, one update per batch of episodes).

An iteration collects one episode (H steps) in each of ``num_envs`` sub-environments, all stepped together (one
batched reward call per step), then updates the network. The environment is reset with a seed derived from
(seed, iteration) and exploration draws from (seed, iteration) too, so a resumed run equals an uninterrupted one.
Every ``eval_every`` iterations the greedy policy is evaluated: its mean episode return on validation segments
and its PMB on whole validation clips. All go to ``W/agents/<algo>/metrics.jsonl``.
"""

from __future__ import annotations

import copy
import re
import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from racer_agents.gpt import GPT_PRESETS, Block, GestureGPT, GPTConfig, audio_token_dim, block_mask
from racer_agents.losses import discrete_cql_loss
from racer_agents.segments import audio_tokens
from racer_env.checkpoint import corpus_meta
from racer_env.dataset.builder import normalised_score, reference_scores
from racer_env.envs.episode_data import (
    REWARD_KINDS,
    ObservationConfig,
    check_reward_kind,
    load_env_data,
    rollout,
)
from racer_env.envs.vector import GestureSynthesisVectorEnv
from racer_env.errors import RacerError
from racer_env.training import StageRun, config_for, option, resolve_device, step_rng, weight_settings
from racer_env.workspace import Workspace

ONLINE_ALGOS = ("dqn", "actor-critic")
EVAL_SEED = 10**6  # validation segments of the return evaluation: the same ones at every evaluation


@dataclass(frozen=True)
class OnlineTrainConfig:
    """What every online agent's settings hold; ``steps`` counts iterations (num_envs episodes collected, then
    updates). Each algorithm has its own subclass, so that a setting of one never makes the other stale."""

    algo: str = ""  # set by the subclass: dqn | actor-critic
    preset: str = "demo"
    steps: int = option(300, "iterations", low=1)
    num_envs: int = option(32, "online agents: episodes collected per iteration", low=1)
    segment_codes: int = 15  # H, actions per episode
    reward: str = option("contrastive", "online agents: the environment's reward", choices=REWARD_KINDS)
    lr: float = option(3e-4, "learning rate", low=0, exclusive_low=True)
    betas: tuple[float, float] = (0.5, 0.999)  # as racer-cql
    gamma: float = option(0.99, "discount", low=0)
    # bookkeeping
    eval_every: int = 25
    checkpoint_every: int = option(50, "iterations between checkpoints", low=1)
    log_every: int = 5
    seed: int = option(0, "seed of initialisation, episodes and batches", low=0)
    agent_name: str | None = option(None, "agent name, W/agents/<name>/ (default: the algorithm's)", flag="--name")
    stop_score: float | None = option(None, "online agents: stop at the first evaluation whose greedy normalised "
                                      "score on the validation clips (0: random codes, 100: the human speaker's "
                                      "codes) reaches this (the medium-replay dataset tier's DQN)")

    def __post_init__(self) -> None:
        expected = next((a for a, c in ONLINE_CONFIGS.items() if c is type(self)), None)
        if self.algo != expected:
            raise RacerError(f"online --algo must be one of {ONLINE_ALGOS}, got {self.algo!r}")
        if self.preset not in GPT_PRESETS:
            raise RacerError(f"unknown agent preset {self.preset!r}; choose one of {sorted(GPT_PRESETS)}")
        if self.agent_name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.agent_name):
            raise RacerError(f"--name must be letters, digits, '_', '.', '-' (a directory name), got {self.agent_name!r}")
        check_reward_kind(self.reward)
        if min(self.steps, self.num_envs, self.segment_codes) < 1:
            raise RacerError("steps, num_envs and segment_codes must be >= 1")
        if not 0 <= self.gamma <= 1:
            raise RacerError(f"need 0 <= gamma <= 1, got {self.gamma}")

    @property
    def name(self) -> str:
        return self.agent_name or self.algo

    def train(self, workspace: str | Workspace, **run) -> dict:
        """Train this agent online on the workspace's vector environment (``run``: resume, force, device, ...)."""
        return train_online(workspace, self, **run)


@dataclass(frozen=True)
class DQNConfig(OnlineTrainConfig):
    """Online DQN: epsilon-greedy episodes into a replay memory, double-DQN updates on whole episodes."""

    algo: str = "dqn"
    batch_size: int = option(64, "episodes per update", low=1)
    updates_per_step: int = 2
    replay_capacity: int = 2048  # episodes
    learning_starts: int = 128  # episodes in the buffer before the first update
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_fraction: float = 0.5  # of the iterations over which epsilon decays linearly
    target_update_interval: int = 20  # updates

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.batch_size, self.replay_capacity) < 1:
            raise RacerError("batch_size and replay_capacity must be >= 1")
        if not 0 <= self.epsilon_end <= self.epsilon_start <= 1:
            raise RacerError(f"need 0 <= epsilon_end <= epsilon_start <= 1; got {self.epsilon_end}, "
                             f"{self.epsilon_start}")


@dataclass(frozen=True)
class ActorCriticConfig(OnlineTrainConfig):
    """Online advantage actor-critic (GAE) on the episodes just collected."""

    algo: str = "actor-critic"
    actor_layers: int = 3  # the GPT's last layers that belong to the actor (the rest are shared)
    critic_layers: int = 3  # transformer layers added for the critic
    gae_lambda: float = 0.95
    value_coef: float = 0.5
    entropy_coef: float = 0.01


ONLINE_CONFIGS: dict[str, type[OnlineTrainConfig]] = {"dqn": DQNConfig, "actor-critic": ActorCriticConfig}


#: per-preset defaults (``demo``: minutes on 2 CPU cores; ``paper``: the paper's GPT size).
ONLINE_DEFAULTS: dict[str, dict] = {
    "paper": {"steps": 5000, "num_envs": 64, "batch_size": 256, "lr": 1e-4, "replay_capacity": 20_000,
              "learning_starts": 1024, "target_update_interval": 200},
    "demo": {},
    "tiny": {"steps": 6, "num_envs": 4, "segment_codes": 6, "batch_size": 4, "learning_starts": 8,
             "replay_capacity": 32, "target_update_interval": 2, "eval_every": 3, "checkpoint_every": 3,
             "log_every": 1, "updates_per_step": 1},
}


def online_config_for(preset: str, algo: str = "dqn", **overrides) -> OnlineTrainConfig:
    """``algo``'s config with the preset's online defaults (those that are its settings) and ``overrides`` (None
    values ignored) applied; a setting of the other algorithm is an error that names it."""
    if algo not in ONLINE_CONFIGS:
        raise RacerError(f"online --algo must be one of {ONLINE_ALGOS}, got {algo!r}")
    cls = ONLINE_CONFIGS[algo]
    names = {f.name for f in fields(cls)}
    defaults = {p: {k: v for k, v in d.items() if k in names} for p, d in ONLINE_DEFAULTS.items()}
    return config_for(cls, defaults, preset, "agent", **overrides)


class ActorCriticGPT(nn.Module):
    """The paper's actor-critic on the GPT backbone.

    The actor is a whole :class:`GestureGPT` (so it is saved and used like any GPT agent): its lower layers are
    shared, its last ``actor_layers`` layers and linear head are the actor's. The critic reads the shared features
    through ``critic_layers`` added transformer layers and a linear value head.
    """

    def __init__(self, cfg: GPTConfig, actor_layers: int = 3, critic_layers: int = 3) -> None:
        super().__init__()
        self.actor = GestureGPT(cfg)
        self.shared = max(cfg.n_layer - actor_layers, 0)  # the layers below the actor's
        self.critic = nn.ModuleList([Block(cfg) for _ in range(critic_layers)])
        self.critic_ln = nn.LayerNorm(cfg.n_embd)
        self.value = nn.Linear(cfg.n_embd, 1)

    def forward(self, audio: torch.Tensor, prev_codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole episodes: audio (B, T, audio_dim), prev codes (B, T) -> logits (B, T, N), values (B, T)."""
        t = audio.shape[1]
        x = self.actor._tokens(audio, prev_codes, 0)  # (B, 2T, E)
        mask = block_mask(t, x.device)
        for block in self.actor.blocks[:self.shared]:
            x = block(x, mask)
        a, c = x, x
        for block in self.actor.blocks[self.shared:]:
            a = block(a, mask)
        for block in self.critic:
            c = block(c, mask)
        logits = self.actor.head(self.actor.ln_f(a[:, t:]))  # (B, T, N): the code stream
        return logits, self.value(self.critic_ln(c[:, t:])).squeeze(-1)


# -- collecting episodes on the vector environment ------------------------------------------------------------
@dataclass
class Episodes:
    """A batch of whole episodes as GPT inputs and targets (the layout of racer_agents.segments.Windows)."""

    audio: torch.Tensor  # (E, H, audio_dim)
    prev_codes: torch.Tensor  # (E, H) long
    actions: torch.Tensor  # (E, H) long
    rewards: torch.Tensor  # (E, H) float
    dones: torch.Tensor  # (E, H) float
    origins: tuple[tuple[str, int], ...] = ()  # (clip id, start step) of each episode, where known


@torch.no_grad()
def collect(envs: GestureSynthesisVectorEnv, choose, seed: int, horizon: int) -> Episodes:
    """One episode in every sub-environment, stepped together through the one rollout loop
    (:func:`racer_env.envs.episode_data.rollout`); ``choose(audio, prev, t)`` picks the actions (E,) from the
    episodes so far (audio tokens (E, t+1, D), previous codes (E, t+1): the GPT sees the whole episode)."""
    obs, _ = envs.reset(seed=seed)
    e, cfg = envs.num_envs, envs.obs_cfg
    dim = audio_token_dim(cfg.lookahead, envs.data.frames_per_code, envs.data.n_audio_features)
    audio = torch.zeros(e, horizon, dim)
    prev = torch.zeros(e, horizon, dtype=torch.long)
    actions = torch.zeros(e, horizon, dtype=torch.long)
    rewards, dones = torch.zeros(e, horizon), torch.zeros(e, horizon)
    t = 0  # the step being taken

    def policy(obs: dict) -> torch.Tensor:
        audio[:, t] = torch.from_numpy(audio_tokens(obs["audio"], cfg))
        prev[:, t] = torch.from_numpy(obs["codes"][:, -1])  # a_t-1 (a_0 at the first step)
        return choose(audio[:, :t + 1], prev[:, :t + 1], t)  # (E,)

    def step(act: torch.Tensor) -> dict:
        nonlocal t
        obs, reward, terminated, _, _ = envs.step(act.numpy())
        actions[:, t], rewards[:, t] = act, torch.from_numpy(reward).float()
        dones[:, t] = torch.from_numpy(terminated).float()
        t += 1
        return obs

    origins = envs.episode_origins()
    rollout(policy, obs, step, horizon)
    if not bool(dones[:, -1].all()):
        raise RuntimeError(f"episodes did not end after {horizon} steps; the vector env needs segment_codes="
                           f"{horizon}")
    return Episodes(audio, prev, actions, rewards, dones, origins)


@dataclass
class Collected:
    """Every episode an online run collected, as (clip id, start step, actions): what the medium-replay dataset
    tier replays (kept in the run's checkpoints and its model.pt)."""

    clips: list[str] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)  # (H,) int64 each

    def add(self, episodes: Episodes) -> None:
        for (clip, start), actions in zip(episodes.origins, episodes.actions.numpy()):
            self.clips.append(clip)
            self.starts.append(int(start))
            self.actions.append(actions.astype(np.int64))

    def state(self) -> dict:
        return {"clips": list(self.clips), "starts": torch.tensor(self.starts, dtype=torch.long),
                "actions": torch.from_numpy(np.stack(self.actions)) if self.actions else torch.zeros(0, 0)}

    @classmethod
    def from_state(cls, state: dict | None) -> Collected:
        if not state or not state["clips"]:
            return cls()
        return cls(list(state["clips"]), state["starts"].tolist(), list(state["actions"].numpy()))


class Replay:
    """A ring buffer of whole episodes (the DQN's replay memory)."""

    def __init__(self, capacity: int, horizon: int, dim: int) -> None:
        self.audio = torch.zeros(capacity, horizon, dim)
        self.prev_codes = torch.zeros(capacity, horizon, dtype=torch.long)
        self.actions = torch.zeros(capacity, horizon, dtype=torch.long)
        self.rewards = torch.zeros(capacity, horizon)
        self.dones = torch.zeros(capacity, horizon)
        self.size, self.next = 0, 0

    def add(self, ep: Episodes) -> None:
        idx = (self.next + torch.arange(len(ep.actions))) % len(self.actions)
        for name in ("audio", "prev_codes", "actions", "rewards", "dones"):
            getattr(self, name)[idx] = getattr(ep, name)
        self.next = int(idx[-1] + 1) % len(self.actions)
        self.size = min(self.size + len(ep.actions), len(self.actions))

    def sample(self, rng: np.random.Generator, batch: int) -> Episodes:
        idx = torch.from_numpy(rng.integers(0, self.size, batch))
        return Episodes(self.audio[idx], self.prev_codes[idx], self.actions[idx], self.rewards[idx], self.dones[idx])

    def state_dict(self) -> dict:
        return {"audio": self.audio[:self.size], "prev_codes": self.prev_codes[:self.size],
                "actions": self.actions[:self.size], "rewards": self.rewards[:self.size],
                "dones": self.dones[:self.size], "size": self.size, "next": self.next}

    def load_state_dict(self, state: dict) -> None:
        n = state["size"]
        for name in ("audio", "prev_codes", "actions", "rewards", "dones"):
            getattr(self, name)[:n] = state[name]
        self.size, self.next = n, state["next"]


def epsilon(cfg: DQNConfig, step: int) -> float:
    """Linear decay from epsilon_start to epsilon_end over the first epsilon_fraction of the iterations."""
    frac = min(step / max(cfg.epsilon_fraction * cfg.steps, 1), 1.0)
    return cfg.epsilon_start + frac * (cfg.epsilon_end - cfg.epsilon_start)


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) (E, H) of whole episodes by generalised advantage estimation."""
    adv = torch.zeros_like(rewards)
    last = torch.zeros(rewards.shape[0])
    for t in reversed(range(rewards.shape[1])):
        nonterminal = 1.0 - dones[:, t]
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * nonterminal * next_value - values[:, t]
        last = delta + gamma * lam * nonterminal * last
        adv[:, t] = last
    return adv, adv + values


# -- evaluation ---------------------------------------------------------------------------------------------------
def evaluate_greedy(model: GestureGPT, eval_envs: GestureSynthesisVectorEnv, horizon: int, workspace: str,
                    obs_cfg: ObservationConfig, device: torch.device, reward: str,
                    ref_scores: tuple[float, float] | None = None) -> dict:
    """Mean greedy return on fixed validation segments; PMB, mean reward and (given the validation clips'
    ``ref_scores``) the normalised score of the clips' mean return (0: random codes, 100: the human speaker's
    codes) on whole validation clips."""
    from racer_agents.agent import GPTAgent
    from racer_agents.evaluate import clip_audio_beats, positions, rollout_clips
    from racer_agents.generate import decode_long
    from racer_env.corpus.store import Corpus
    from racer_env.envs.gesture import GestureSynthesisEnv
    from racer_env.metrics.motion import motion_beats, pmb

    was_training = model.training
    model.eval()
    episodes = collect(eval_envs, lambda a, p, t: model(a.to(device), p.to(device))[:, -1].argmax(-1).cpu(),
                       EVAL_SEED, horizon)
    corpus = Corpus.load(workspace)
    env = GestureSynthesisEnv(workspace, split="valid", segment_codes=None, past=obs_cfg.past,
                              lookahead=obs_cfg.lookahead, history=obs_cfg.history, reward=reward)
    agent = GPTAgent(model, obs_cfg)
    scores, mean_rewards, returns = [], [], []
    clips = corpus.clips("valid")
    for clip, (codes, mean_reward) in zip(clips, rollout_clips(env, agent, [c.id for c in clips])):
        motion = positions(clip.skeleton, decode_long(env.data.scorer.vqvae, codes, corpus))
        scores.append(pmb(motion_beats(motion, corpus.fps), clip_audio_beats(clip, corpus), 0.2))
        mean_rewards.append(mean_reward)
        returns.append(mean_reward * (len(codes) - 1))
    model.train(was_training)
    out = {"eval/return": float(episodes.rewards.sum(1).mean()),
           "eval/pmb_pct": float(np.mean(scores)) if scores else float("nan")}
    if mean_rewards:
        out["eval/mean_reward"] = float(np.mean(mean_rewards))
        if ref_scores is not None:
            out["eval/normalised_score"] = normalised_score(float(np.mean(returns)), *ref_scores)
    return out


# -- training -----------------------------------------------------------------------------------------------------
def train_online(workspace: str | Workspace, config: OnlineTrainConfig, resume: bool = False, force: bool = False,
                 device: str = "cpu", progress: bool = True, stop_after: int | None = None) -> dict:
    """Train (or resume, or skip when current) an online agent; it is saved in ``W/agents/<algo>/``."""
    ws = Workspace.of(workspace)
    dev = resolve_device(device)
    data = load_env_data(str(ws.root), device)
    obs_cfg = ObservationConfig()
    envs = GestureSynthesisVectorEnv(config.num_envs, str(ws.root), "train", config.segment_codes,
                                     reward=config.reward, device=device)
    eval_envs = GestureSynthesisVectorEnv(config.num_envs, str(ws.root), "valid", config.segment_codes,
                                          reward=config.reward, device=device)
    dim = audio_token_dim(obs_cfg.lookahead, data.frames_per_code, data.n_audio_features)
    gpt_cfg = GPTConfig(n_codes=data.n_codes, audio_dim=dim, max_steps=config.segment_codes,
                        **GPT_PRESETS[config.preset])
    from racer_env.corpus.store import Corpus

    extra = {"algo": config.algo, "train": asdict(config), "observation": asdict(obs_cfg), "gpt": gpt_cfg.to_dict(),
             "vqvae_sha256": data.scorer.vqvae_sha256, "reward_sha256": data.scorer.reward_sha256,
             "corpus": corpus_meta(Corpus.load(ws)), "seed": config.seed, "dataset": None}
    run = StageRun(ws.root / "agents" / config.name, "agent", {
        "train": weight_settings(config), "gpt": extra["gpt"], "corpus": data.corpus_sha256,
        "vqvae": data.scorer.vqvae_sha256, "reward": data.scorer.reward_sha256})
    with run.locked():
        if run.is_current() and not force and not resume:
            return {"skipped": True, "model": str(run.model_path)}
        torch.manual_seed(config.seed)
        if config.algo == "dqn":
            learner = _DQN(config, gpt_cfg, dim, dev)
        else:
            learner = _ActorCritic(config, gpt_cfg, dev)
        start, state = run.start(resume)
        if state is not None:
            learner.load_state_dict(state)
        collected = Collected.from_state(state.get("collected") if state is not None else None)
        ref_scores = reference_scores(data, "valid", config.reward) if data.split_ids("valid") else None
        if config.stop_score is not None and ref_scores is None:
            raise RacerError("--stop-score needs validation clips (the corpus has no valid split)")
        end, bar = run.steps(start, config.steps, stop_after, f"train {config.name}", progress)
        t0, env_steps, stopped = time.perf_counter(), 0, None
        for step in bar:
            episodes = collect(envs, learner.chooser(step), int(step_rng(config.seed, step, 2).integers(2**31)),
                               config.segment_codes)
            env_steps += episodes.actions.numel()
            collected.add(episodes)
            metrics = learner.update(episodes, step)
            done = step + 1
            if done % config.eval_every == 0 or done == config.steps:
                metrics.update(evaluate_greedy(learner.policy, eval_envs, config.segment_codes, str(ws.root), obs_cfg,
                                               dev, config.reward, ref_scores))
                if config.stop_score is not None and metrics["eval/normalised_score"] >= config.stop_score:
                    stopped = done
            if done % config.log_every == 0 or done == config.steps or "eval/return" in metrics:
                elapsed = time.perf_counter() - t0
                run.log(done, {**metrics, "episode/return": float(episodes.rewards.sum(1).mean()),
                               "env_steps": done * config.num_envs * config.segment_codes, "time_s": elapsed})
                bar.set_postfix(ret=f"{episodes.rewards.sum(1).mean():.2f}", **{
                    k.split("/")[-1]: f"{v:.2f}" for k, v in metrics.items() if k.startswith("eval/")})
            if done % config.checkpoint_every == 0 or done == end or stopped:
                run.save_checkpoint(done, {**learner.state_dict(), "collected": collected.state()}, extra)
            if stopped:
                break
        bar.close()
        seconds = time.perf_counter() - t0
        result = run.finish(config.steps if stopped else end, config.steps,
                            {"model": learner.policy.state_dict(), "collected": collected.state()},
                            {**extra, "stopped_at_score": stopped})
        if "stopped_at" in result:
            return result
        return {**result, "seconds": seconds, "env_steps_per_second": env_steps / max(seconds, 1e-9),
                "stopped_early_at": stopped}


class _DQN:
    """Epsilon-greedy GPT Q-network with a replay buffer of episodes and a hard-updated target network."""

    def __init__(self, cfg: DQNConfig, gpt_cfg: GPTConfig, dim: int, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        self.policy = GestureGPT(gpt_cfg).to(device)
        self.target = copy.deepcopy(self.policy).eval()
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.replay = Replay(cfg.replay_capacity, cfg.segment_codes, dim)
        self.updates = 0

    def chooser(self, step: int):
        eps = epsilon(self.cfg, step)
        rng = step_rng(self.cfg.seed, step, 3)

        def choose(audio, prev, t):
            self.policy.eval()
            greedy = self.policy(audio.to(self.device), prev.to(self.device))[:, -1].argmax(-1).cpu()
            explore = torch.from_numpy(rng.random(len(greedy)) < eps)
            random = torch.from_numpy(rng.integers(0, self.policy.cfg.n_codes, len(greedy)))
            return torch.where(explore, random, greedy)
        return choose

    def update(self, episodes: Episodes, step: int) -> dict:
        self.replay.add(episodes)
        metrics = {"epsilon": epsilon(self.cfg, step)}
        if self.replay.size < self.cfg.learning_starts:
            return metrics
        self.policy.train()
        for k in range(self.cfg.updates_per_step):
            batch = self.replay.sample(step_rng(self.cfg.seed, step, 4 + k), self.cfg.batch_size)
            audio, prev = batch.audio.to(self.device), batch.prev_codes.to(self.device)
            q = self.policy(audio, prev)  # (B, H, N)
            with torch.no_grad():
                q_target = self.target(audio, prev)
            parts = discrete_cql_loss(q, q_target, batch.actions.to(self.device), batch.rewards.to(self.device),
                                      batch.dones.to(self.device), self.cfg.gamma, 0.0, True)
            self.opt.zero_grad(set_to_none=True)
            parts.td.backward()
            self.opt.step()
            self.updates += 1
            if self.updates % self.cfg.target_update_interval == 0:
                self.target.load_state_dict(self.policy.state_dict())
        m = parts.metrics()
        return {**metrics, "losses/td": m["losses/td"], "q/data": m["q/data"], "q/max": m["q/max"]}

    def state_dict(self) -> dict:
        return {"model": self.policy.state_dict(), "target": self.target.state_dict(),
                "optimizer": self.opt.state_dict(), "replay": self.replay.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["model"])
        self.target.load_state_dict(state["target"])
        self.opt.load_state_dict(state["optimizer"])
        self.replay.load_state_dict(state["replay"])
        self.updates = int(state["updates"])


class _ActorCritic:
    """A2C with the paper's actor/critic split of the GPT; sampling from the policy for exploration."""

    def __init__(self, cfg: ActorCriticConfig, gpt_cfg: GPTConfig, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        actor_layers = min(cfg.actor_layers, gpt_cfg.n_layer)
        self.net = ActorCriticGPT(gpt_cfg, actor_layers, cfg.critic_layers).to(device)
        self.policy = self.net.actor
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, betas=cfg.betas)

    def chooser(self, step: int):
        gen = torch.Generator().manual_seed(int(step_rng(self.cfg.seed, step, 3).integers(2**62)))

        def choose(audio, prev, t):
            self.net.eval()
            logits = self.policy(audio.to(self.device), prev.to(self.device))[:, -1].cpu()
            return torch.multinomial(F.softmax(logits, -1), 1, generator=gen).squeeze(1)
        return choose

    def update(self, episodes: Episodes, step: int) -> dict:
        self.net.train()
        torch.manual_seed(int(step_rng(self.cfg.seed, step, 4).integers(2**62)))  # dropout: exact resume
        logits, values = self.net(episodes.audio.to(self.device), episodes.prev_codes.to(self.device))
        rewards, dones = episodes.rewards.to(self.device), episodes.dones.to(self.device)
        adv, returns = gae(rewards.cpu(), values.detach().cpu(), dones.cpu(), self.cfg.gamma, self.cfg.gae_lambda)
        adv, returns = adv.to(self.device), returns.to(self.device)
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        logp = F.log_softmax(logits, -1)  # (E, H, N)
        logp_a = logp.gather(-1, episodes.actions.to(self.device)[..., None]).squeeze(-1)
        entropy = -(logp.exp() * logp).sum(-1).mean()
        policy_loss = -(logp_a * adv).mean()
        value_loss = F.mse_loss(values, returns)
        loss = policy_loss + self.cfg.value_coef * value_loss - self.cfg.entropy_coef * entropy
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"losses/total": loss.item(), "losses/policy": policy_loss.item(), "losses/value": value_loss.item(),
                "policy/entropy": entropy.item()}

    def state_dict(self) -> dict:
        return {"model": self.policy.state_dict(), "net": self.net.state_dict(), "optimizer": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["optimizer"])
