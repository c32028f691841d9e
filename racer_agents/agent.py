"""One agent interface for environment rollouts, evaluation and generation.

An agent is reset at the start of an episode and then asked for one code per step::

    agent.reset()
    obs, _ = env.reset(...)
    while not done:
        obs, reward, terminated, truncated, _ = env.step(agent.act(obs))

``act`` takes the environment's Dict observation. GPT agents keep the episode in a key/value cache (they read
the newest audio token and code from each observation); d3rlpy agents act on the observation alone.

Evaluation rollouts (:func:`racer_agents.evaluate.rollout_clips`) read two more attributes of an agent:

* ``reads_reward``: whether the agent needs each step's reward (``observe_reward``) before its next choice. Only
  then are the clip's steps scored one at a time; for every other agent the codes are rolled out first and all of
  a clip's reward windows scored in a few batched calls.
* ``batched``: whether the agent steps many episodes together (``reset_batch(n)``, then
  ``act_batch(observations, episodes)`` once per step), so that evaluation rolls out many clips in lock-step. An
  agent that does not (the default) is rolled out one clip at a time.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from racer_agents.gpt import GestureGPT, GPTConfig, per_episode_linear, per_episode_step_is_exact
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

    ``reads_reward`` says whether the agent needs that reward before its next choice (default False; True for a
    subclass that overrides ``observe_reward`` without saying, so that an agent written before the attribute
    existed keeps getting every reward in time). ``batched`` says whether it implements ``reset_batch`` and
    ``act_batch`` (default False: rollouts step one episode at a time).
    """

    name: str = "agent"
    n_codes: int
    obs_cfg: ObservationConfig = ObservationConfig()
    #: True: evaluation hands each step's reward to ``observe_reward`` before the next ``act`` (the step-by-step
    #: rollout); False: the reward is not read, so a clip's rewards are scored together after its codes.
    reads_reward: bool = False
    #: True: the agent implements ``reset_batch`` / ``act_batch`` and evaluation rolls clips out in lock-step.
    batched: bool = False

    def __init_subclass__(cls, **kwargs) -> None:
        """A subclass that overrides ``observe_reward`` but does not set ``reads_reward`` is taken to read it: the
        conservative choice (its rollouts stay step by step, as before the attribute existed)."""
        super().__init_subclass__(**kwargs)
        defines = [k.__dict__ for k in cls.__mro__ if k is not Agent and issubclass(k, Agent)]
        if any("observe_reward" in d for d in defines) and not any("reads_reward" in d for d in defines):
            cls.reads_reward = True

    def reset(self) -> None:
        """Forget the previous episode."""

    @abstractmethod
    def act(self, observation: dict) -> int:
        """The next code for a Dict observation of GestureSynthesisEnv."""

    def observe_reward(self, reward: float) -> None:
        """The reward of the step just taken."""

    def reset_batch(self, n: int) -> None:
        """Start ``n`` episodes stepped together (agents with ``batched = True``; episodes are numbered 0 .. n-1)."""
        raise NotImplementedError(f"agent {self.name} does not step episodes in batches (batched = False)")

    def act_batch(self, observations: Sequence[dict], episodes: Sequence[int]) -> list[int]:
        """The next code of each running episode: ``observations[i]`` is episode ``episodes[i]``'s observation.

        ``episodes`` lists the episodes still running, in increasing order; an episode missing from a call has
        ended and is not asked again. Each code must be the one ``act`` would choose in that episode alone.
        """
        raise NotImplementedError(f"agent {self.name} does not step episodes in batches (batched = False)")


class RandomAgent(Agent):
    """Uniformly random codes (the paper's lower reference).

    Not batched: its one generator draws the clips' codes in clip order, step by step, and a lock-step rollout
    would interleave the clips' draws (other codes for the same seed)."""

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

    Batched (``reset_batch`` / ``act_batch``) on the CPU with the cache: B episodes share one cache of batch B,
    one ``model.step`` per step with per-episode matrix products (:func:`racer_agents.gpt.per_episode_linear`), so
    every episode's outputs, and codes, are bit for bit those of the episode stepped alone (checked on this
    machine before the first lock-step rollout); the cache slide at ``max_steps`` re-primes each episode with its
    own one-episode ``prefill``. Elsewhere (no cache; a GPU, whose kernels are not checked for that identity; a
    machine where the check fails) one episode at a time.
    """

    def __init__(self, model: GestureGPT, obs_cfg: ObservationConfig, name: str = "gpt",
                 use_cache: bool = True) -> None:
        self.model = model.eval()
        self.obs_cfg = obs_cfg
        self.use_cache = use_cache
        self.name, self.n_codes = name, model.cfg.n_codes
        self.device = next(model.parameters()).device
        self._exact_products: dict[int, bool] = {}  # torch threads -> per_episode_step_is_exact here
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

    def _audio_token(self, observation: dict) -> torch.Tensor:
        """(audio_dim,) the observation's newest audio token."""
        return torch.from_numpy(audio_tokens(np.asarray(observation["audio"]), self.obs_cfg).astype(np.float32))

    def act(self, observation: dict) -> int:
        audio = self._audio_token(observation)
        prev = torch.as_tensor(int(observation["codes"][-1]), dtype=torch.long)
        return int(self.step_q(audio.to(self.device), prev.to(self.device)).argmax())

    # -- lock-step episodes ------------------------------------------------------------------------------------
    @property
    def batched(self) -> bool:
        """Lock-step rollouts: with the cache, on the CPU, and where this machine's per-episode products are checked
        to give the one-episode outputs bit for bit (:func:`racer_agents.gpt.per_episode_step_is_exact`, once per
        thread count). Otherwise the clips are rolled out one at a time: the same codes, without lock-step."""
        if not (self.use_cache and self.device.type == "cpu"):
            return False
        threads = torch.get_num_threads()
        if threads not in self._exact_products:
            self._exact_products[threads] = per_episode_step_is_exact(self.model)
        return self._exact_products[threads]

    def reset_batch(self, n: int) -> None:
        """Start ``n`` episodes: one empty cache of batch ``n``, each episode's own recent steps."""
        self.batch_caches: list[dict] = [{} for _ in self.model.blocks]
        self.batch_position = 0  # steps in the cache: the same for every running episode (they start together)
        self.batch_rows: list[int] = list(range(n))  # the episode of each cache row
        self.batch_recent: list[deque] = [deque(maxlen=self.model.cfg.max_steps // 2) for _ in range(n)]

    def act_batch(self, observations: Sequence[dict], episodes: Sequence[int]) -> list[int]:
        """Greedy codes of the running ``episodes``, one ``model.step`` for all of them."""
        self._keep_rows(list(episodes))
        audio = torch.stack([self._audio_token(o) for o in observations]).to(self.device)  # (B, audio_dim)
        prev = torch.as_tensor([int(o["codes"][-1]) for o in observations], dtype=torch.long).to(self.device)  # (B,)
        return [int(c) for c in self.step_q_batch(audio, prev).argmax(1)]

    def _keep_rows(self, episodes: list[int]) -> None:
        """Drop the cache rows of the episodes that have ended (those missing from ``episodes``)."""
        if episodes == self.batch_rows:
            return
        row = {e: i for i, e in enumerate(self.batch_rows)}
        keep = [row.get(e, -1) for e in episodes]
        if min(keep, default=0) < 0 or keep != sorted(keep):
            raise RacerError(f"agent {self.name}: act_batch for episodes {episodes}, but the running ones are "
                             f"{self.batch_rows} (an ended episode cannot come back; the order is increasing)")
        index = torch.as_tensor(keep, dtype=torch.long, device=self.device)
        for cache in self.batch_caches:
            for key in cache:
                cache[key] = cache[key].index_select(0, index)  # (B', H, tokens, hd)
        self.batch_recent = [self.batch_recent[i] for i in keep]
        self.batch_rows = episodes

    @torch.no_grad()
    def step_q_batch(self, audio: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """:meth:`step_q` of B episodes at once: audio (B, audio_dim), previous codes (B,) -> outputs (B, N)."""
        if self.batch_position == self.model.cfg.max_steps:  # slide, as step_q: each episode re-primed alone
            self.batch_caches = self._prefilled_caches()
            self.batch_position = len(self.batch_recent[0])
        out = self.model.step(audio, prev, self.batch_caches, self.batch_position, per_episode_linear)  # (B, N)
        self.batch_position += 1
        for recent, a, c in zip(self.batch_recent, audio, prev):
            recent.append((a, c))
        return out

    def _prefilled_caches(self) -> list[dict]:
        """The batch cache re-primed with each episode's newest steps: one ``prefill`` per episode, exactly the
        one-episode call of :meth:`step_q` (a slide is one step in ``max_steps // 2``), rows joined after."""
        per_episode = []
        for recent in self.batch_recent:
            caches: list[dict] = [{} for _ in self.model.blocks]
            audio = torch.stack([a for a, _ in recent])[None]  # (1, max_steps // 2, audio_dim)
            prev = torch.stack([c for _, c in recent])[None]  # (1, max_steps // 2)
            self.model.prefill(audio, prev, caches)
            per_episode.append(caches)
        return [{key: torch.cat([caches[layer][key] for caches in per_episode])  # (B, H, tokens, hd)
                 for key in per_episode[0][layer]} for layer in range(len(self.model.blocks))]


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

    @property
    def reads_reward(self) -> bool:
        """Decision transformers condition on the last reward; other algorithms ignore it."""
        return type(self.algo).__name__ == "DiscreteDecisionTransformer"

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
