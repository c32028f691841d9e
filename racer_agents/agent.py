"""One agent interface for environment rollouts, evaluation and generation.

An agent is reset at the start of an episode and then asked for one code per step::

    agent.reset()
    obs, _ = env.reset(...)
    while not done:
        obs, reward, terminated, truncated, _ = env.step(agent.act(obs))

``act`` takes the environment's Dict observation. GPT agents keep the episode in a key/value cache (they read
the newest audio token and code from each observation); d3rlpy agents act on the observation alone.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections import deque
from pathlib import Path

import numpy as np
import torch

from racer_agents.gpt import GestureGPT, GPTConfig
from racer_agents.segments import audio_tokens
from racer_env.checkpoint import CheckpointError, check_corpus_match, load_checkpoint
from racer_env.corpus.store import Corpus
from racer_env.envs.episode_data import ObservationConfig
from racer_env.errors import RacerError
from racer_env.workspace import Workspace


class Agent(ABC):
    """Chooses gesture codes from gesture-MDP observations: the one protocol every agent implements.

    ``obs_cfg`` is the observation shape the agent was trained with (environments and rollouts are built with
    it); ``observe_reward`` is called with each step's reward (decision transformers condition on it; the
    others ignore it).
    """

    name: str = "agent"
    n_codes: int
    obs_cfg: ObservationConfig = ObservationConfig()

    def reset(self) -> None:
        """Forget the previous episode."""

    @abstractmethod
    def act(self, observation: dict) -> int:
        """The next code for a Dict observation of GestureSynthesisEnv."""

    def observe_reward(self, reward: float) -> None:
        """The reward of the step just taken."""


class RandomAgent(Agent):
    """Uniformly random codes (the paper's lower reference)."""

    def __init__(self, n_codes: int, seed: int = 0) -> None:
        self.name, self.n_codes = "random", n_codes
        self.rng = np.random.default_rng(seed)

    def act(self, observation: dict) -> int:
        return int(self.rng.integers(self.n_codes))


class GPTAgent(Agent):
    """Greedy argmax over the GPT's outputs (Q-values for racer-cql, logits for bc), with a key/value cache.

    When the episode outgrows the context (``max_steps`` steps) the cache is rebuilt from the newest
    ``max_steps // 2`` steps, so memory and per-step cost stay bounded however long the episode is.
    ``use_cache=False`` recomputes the whole context every step instead (same outputs; for benchmarks).
    """

    def __init__(self, model: GestureGPT, obs_cfg: ObservationConfig, name: str = "gpt",
                 use_cache: bool = True) -> None:
        self.model = model.eval()
        self.obs_cfg = obs_cfg
        self.use_cache = use_cache
        self.name, self.n_codes = name, model.cfg.n_codes
        self.device = next(model.parameters()).device
        self.reset()

    def reset(self) -> None:
        self.caches: list[dict] = [{} for _ in self.model.blocks]
        self.position = 0
        self.recent: deque = deque(maxlen=self.model.cfg.max_steps // 2)
        self.window: list = []

    @torch.no_grad()
    def step_q(self, audio_token: torch.Tensor, prev_code: torch.Tensor) -> torch.Tensor:
        """Feed one step (audio (audio_dim,), previous code ()) and return the outputs (N,)."""
        if not self.use_cache:
            return self._step_without_cache(audio_token, prev_code)
        if self.position == self.model.cfg.max_steps:  # slide: re-prime the cache with the newest steps
            self.caches = [{} for _ in self.model.blocks]
            audio = torch.stack([a for a, _ in self.recent])[None]
            prev = torch.stack([c for _, c in self.recent])[None]
            self.model.prefill(audio, prev, self.caches)  # one pass for all of them
            self.position = len(self.recent)
        out = self.model.step(audio_token[None], prev_code[None], self.caches, self.position)[0]
        self.position += 1
        self.recent.append((audio_token, prev_code))
        return out

    def _step_without_cache(self, audio_token: torch.Tensor, prev_code: torch.Tensor) -> torch.Tensor:
        if self.position == self.model.cfg.max_steps:  # the same sliding context as the cached path
            self.window = self.window[-(self.model.cfg.max_steps // 2):]
            self.position = len(self.window)
        self.window.append((audio_token, prev_code))
        self.position += 1
        audio = torch.stack([a for a, _ in self.window])[None]
        prev = torch.stack([c for _, c in self.window])[None]
        return self.model(audio, prev)[0, -1]

    def act(self, observation: dict) -> int:
        audio = torch.from_numpy(audio_tokens(np.asarray(observation["audio"]), self.obs_cfg).astype(np.float32))
        prev = torch.as_tensor(int(observation["codes"][-1]), dtype=torch.long)
        return int(self.step_q(audio.to(self.device), prev.to(self.device)).argmax())


class D3rlpyAgent(Agent):
    """A trained d3rlpy discrete algorithm (tuple observations via the bridge)."""

    def __init__(self, algo, name: str = "d3rlpy", target_return: float | None = None,
                 obs_cfg: ObservationConfig | None = None) -> None:
        self.algo, self.name = algo, name
        self.obs_cfg = obs_cfg or ObservationConfig()
        self.n_codes = int(algo.action_size)
        self.target_return = target_return
        self.reset()

    def reset(self) -> None:
        self._reward = 0.0
        self._wrapper = None
        if type(self.algo).__name__ == "DiscreteDecisionTransformer":
            import d3rlpy

            self._wrapper = self.algo.as_stateful_wrapper(
                target_return=self.target_return or 0.0,
                action_sampler=d3rlpy.algos.GreedyTransformerActionSampler())

    def observe_reward(self, reward: float) -> None:
        """Decision transformers condition on the last reward; other algorithms ignore it."""
        self._reward = float(reward)

    def act(self, observation: dict) -> int:
        audio = np.asarray(observation["audio"], dtype=np.float32)
        codes = np.asarray(observation["codes"], dtype=np.int64)
        if self._wrapper is not None:
            return int(self._wrapper.predict((audio, codes), self._reward))
        return int(self.algo.predict([audio[None], codes[None]])[0])


def agents_dir(workspace: Workspace) -> Path:
    return workspace.root / "agents"


def list_agents(workspace: str | Workspace) -> list[str]:
    ws = Workspace.of(workspace)
    root = agents_dir(ws)
    return sorted(p.name for p in root.iterdir() if (p / "model.pt").is_file() or (p / "meta.json").is_file()) \
        if root.is_dir() else []


def _check_workspace(meta: dict, workspace: Workspace, path: Path) -> None:
    """Refuse an agent trained on another codebook or skeleton than the workspace's."""
    from racer_env.checkpoint import read_checksum

    corpus = Corpus.load(workspace)
    check_corpus_match(meta, corpus, path)
    vqvae_path = workspace.root / "vqvae" / "model.pt"
    current = read_checksum(vqvae_path) if vqvae_path.is_file() else None
    if current != meta["vqvae_sha256"]:
        raise CheckpointError(
            f"{path} acts on the codebook of VQ-VAE {meta['vqvae_sha256'][:12]}, but the workspace's VQ-VAE is "
            f"{(current or 'missing')[:12]}; retrain the agent on this workspace (racer train agent W)")


def load_agent(workspace: str | Workspace, name: str | None = None, device: str = "cpu") -> Agent:
    """The trained agent ``name`` of a workspace (default: racer-cql, else the only one), checked against it."""
    ws = Workspace.of(workspace)
    names = list_agents(ws)
    if name is None:
        if not names:
            raise CheckpointError(f"{ws.root}: no trained agent; train one with racer train agent W --algo racer-cql")
        name = "racer-cql" if "racer-cql" in names else names[0] if len(names) == 1 else None
        if name is None:
            raise RacerError(f"{ws.root} has several agents {names}; choose one with --agent")
    if name not in names:
        raise RacerError(f"no agent {name!r} in {agents_dir(ws)}; trained agents: {names or 'none'}")
    directory = agents_dir(ws) / name
    if (directory / "model.pt").is_file():
        meta, state, _ = load_checkpoint(directory / "model.pt", "agent")
        _check_workspace(meta, ws, directory / "model.pt")
        model = GestureGPT(GPTConfig(**meta["gpt"]))
        model.load_state_dict(state["model"])
        return GPTAgent(model.to(device), ObservationConfig(**meta["observation"]), name)
    meta = json.loads((directory / "meta.json").read_text())
    _check_workspace(meta, ws, directory / "meta.json")
    import racer_agents.d3rlpy_bridge  # noqa: F401  (first: it imports d3rlpy, and registers the encoder factories)
    import d3rlpy  # noqa: I001

    algo = d3rlpy.load_learnable(str(directory / "model.d3"), device=None if device == "cpu" else device)
    return D3rlpyAgent(algo, name, target_return=meta.get("target_return"),
                       obs_cfg=ObservationConfig(**meta["observation"]))  # the settings it was trained with
