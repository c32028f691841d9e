"""Plugging d3rlpy's discrete algorithms into the gesture MDP.

* :func:`minari_to_mdp_dataset`: a Minari gesture dataset as a ``d3rlpy.dataset.MDPDataset`` with tuple
  observations ``(audio, codes)``. d3rlpy's own ``get_minari`` cannot be used: it appends every episode's T+1
  observations against T actions, so episode k's observations are shifted by k rows, and it rejects Dict
  observations. Here each episode contributes ``observations[:-1]``; timeouts = truncated & ~terminated, and an
  episode that ends with neither gets a timeout on its last step so that d3rlpy splits episodes correctly.
* :class:`GestureEncoderFactory`: a registered d3rlpy encoder for the tuple observation (audio context per code
  step + code embeddings); importing this module registers it, so ``d3rlpy.load_learnable`` round-trips.
* :func:`algo_config`: a d3rlpy discrete algorithm config by name with the encoder set the way each needs it.
* Environment rollouts: wrap the env in ``racer_env.envs.wrappers.DictToTupleObservation``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import sys
from collections.abc import Sequence

import numpy as np
import structlog
import torch
from torch import nn

from racer_agents.algorithms import D3RLPY_ALGORITHMS as DISCRETE_ALGORITHMS
from racer_agents.algorithms import check_d3rlpy_algorithm as check_algorithm
from racer_env.envs.episode_data import DEFAULT_LOOKAHEAD
from racer_env.envs.wrappers import OBSERVATION_KEYS

# gym, which d3rlpy imports, prints a four-line notice that it is unmaintained on stderr: a library's note, not
# racer's output (a refusal after it would not be one line). Import racer's d3rlpy through this module.
with contextlib.redirect_stderr(io.StringIO()):
    import d3rlpy
    from d3rlpy.models.encoders import EncoderFactory, register_encoder_factory

# d3rlpy logs through structlog, which prints to stdout: its lines ("Parameters", "Model parameters are saved ...")
# would come before a command's own output, and before the JSON of --json. They are diagnostics: stderr.
structlog.configure(logger_factory=lambda *args: structlog.PrintLogger(sys.stderr))


def minari_to_mdp_dataset(dataset, n_codes: int | None = None) -> d3rlpy.dataset.MDPDataset:
    """Convert a Minari gesture dataset (Dict observations) to an aligned d3rlpy ``MDPDataset``."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in OBSERVATION_KEYS}
    actions, rewards, terminals, timeouts = [], [], [], []
    for episode in dataset.iterate_episodes():
        steps = len(episode.actions)
        for key in OBSERVATION_KEYS:
            parts[key].append(episode.observations[key][:steps])  # the observation before each action
        term = episode.terminations.astype(np.float32)
        trunc = (episode.truncations & ~episode.terminations).astype(np.float32)
        if not (term[-1] or trunc[-1]):
            trunc[-1] = 1.0  # an episode boundary d3rlpy can see
        actions.append(episode.actions)
        rewards.append(episode.rewards)
        terminals.append(term)
        timeouts.append(trunc)
    n_actions = n_codes if n_codes is not None else int(dataset.action_space.n)
    return d3rlpy.dataset.MDPDataset(
        observations=[np.concatenate(parts["audio"]).astype(np.float32), np.concatenate(parts["codes"]).astype(np.int64)],
        actions=np.concatenate(actions).astype(np.int64), rewards=np.concatenate(rewards).astype(np.float32),
        terminals=np.concatenate(terminals), timeouts=np.concatenate(timeouts),
        action_space=d3rlpy.ActionSpace.DISCRETE, action_size=n_actions,
    )


def _code_indices(codes: torch.Tensor, n_codes: int) -> torch.Tensor:
    """d3rlpy casts every observation to float32: back to indices, refusing codes outside 0..N (N = pad)."""
    idx = codes.long()
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) > n_codes):
        raise ValueError(f"code observation outside 0..{n_codes}: the encoder factory's n_codes ({n_codes}) must be "
                         f"the dataset's codebook size")
    return idx


class GestureEncoder(nn.Module):
    """(audio (B, K, 8, F), codes (B, C)) -> (B, feature_size).

    Each code step's 8 audio frames are projected to one token, each code is embedded (index N is the pad),
    and the flattened tokens go through an MLP.
    """

    def __init__(self, audio_shape: Sequence[int], n_codes: int, history: int, embed_dim: int, hidden: int,
                 feature_size: int) -> None:
        super().__init__()
        context, frames, features = audio_shape
        self.audio_step = nn.Sequential(nn.Linear(frames * features, hidden), nn.ReLU())
        self.code_embedding = nn.Embedding(n_codes + 1, embed_dim)
        self.mlp = nn.Sequential(nn.Linear(context * hidden + history * embed_dim, feature_size), nn.ReLU())

    def forward(self, x: Sequence[torch.Tensor]) -> torch.Tensor:
        audio, codes = x
        a = self.audio_step(audio.flatten(2))  # (B, K, hidden)
        c = self.code_embedding(_code_indices(codes, self.code_embedding.num_embeddings - 1))  # (B, C, E)
        return self.mlp(torch.cat([a.flatten(1), c.flatten(1)], dim=1))


@dataclasses.dataclass()
class GestureEncoderFactory(EncoderFactory):
    """d3rlpy encoder factory for the gesture observation. ``feature_size`` must be divisible by the number
    of attention heads when used with DiscreteDecisionTransformer."""

    n_codes: int = 256  # N, the codebook size; the embedding has N + 1 rows (pad = N)
    embed_dim: int = 32
    hidden: int = 64
    feature_size: int = 256

    def __post_init__(self) -> None:
        # numpy integers (e.g. a gymnasium space's ``n``) would break d3rlpy's JSON config when it saves the model
        for name in ("n_codes", "embed_dim", "hidden", "feature_size"):
            setattr(self, name, int(getattr(self, name)))

    def create(self, observation_shape: Sequence[Sequence[int]]) -> GestureEncoder:
        audio_shape, codes_shape = observation_shape
        return GestureEncoder(audio_shape, self.n_codes, codes_shape[0], self.embed_dim, self.hidden,
                              self.feature_size)

    @staticmethod
    def get_type() -> str:
        return "racer_gesture"


register_encoder_factory(GestureEncoderFactory)


def algo_config(name: str, encoder: GestureEncoderFactory, max_timestep: int = 1000, **kwargs):
    """The d3rlpy config of a discrete algorithm ``name`` (e.g. 'DiscreteCQL') using ``encoder``.

    DiscreteSAC takes separate actor and critic encoders; DiscreteDecisionTransformer needs ``max_timestep`` at
    least the longest episode.
    """
    check_algorithm(name)
    config_cls = getattr(d3rlpy.algos, f"{name}Config")
    if name == "DiscreteSAC":
        return config_cls(actor_encoder_factory=encoder, critic_encoder_factory=encoder, **kwargs)
    if name == "DiscreteDecisionTransformer":
        return config_cls(encoder_factory=encoder, max_timestep=max_timestep, **kwargs)
    return config_cls(encoder_factory=encoder, **kwargs)


class GPTObservationEncoder(nn.Module):
    """The gesture GPT as a d3rlpy encoder: the observation's last ``past + 1`` steps as a sequence
    (audio tokens with their lookahead, and the codes before each step) -> the newest step's features (B, E)."""

    def __init__(self, gpt_config: dict, past: int, lookahead: int) -> None:
        super().__init__()
        from racer_agents.gpt import GestureGPT, GPTConfig

        self.gpt = GestureGPT(GPTConfig(**gpt_config))
        self.gpt.head = nn.Identity()  # d3rlpy adds its own heads; an unused one would break DDP (enable_ddp)
        self.past, self.lookahead = past, lookahead

    def forward(self, x: Sequence[torch.Tensor]) -> torch.Tensor:
        audio, codes = x  # (B, K, 8, F), (B, C) float32 (d3rlpy casts)
        steps = self.past + 1
        tokens = torch.stack([audio[:, j:j + 1 + self.lookahead].flatten(1) for j in range(steps)], 1)  # (B, S, D)
        n = self.gpt.cfg.n_codes
        prev = _code_indices(codes[:, -steps:], n)  # (B, S): the newest code before each of those steps
        return self.gpt.features(tokens, prev)[:, -1]


@dataclasses.dataclass()
class GPTEncoderFactory(EncoderFactory):
    """d3rlpy encoder factory wrapping :class:`racer_agents.gpt.GestureGPT` (for like-for-like comparisons)."""

    gpt_config: dict = dataclasses.field(default_factory=dict)  # GPTConfig fields (n_codes, audio_dim, ...)
    past: int = 3
    lookahead: int = DEFAULT_LOOKAHEAD

    def create(self, observation_shape: Sequence[Sequence[int]]) -> GPTObservationEncoder:
        return GPTObservationEncoder(self.gpt_config, self.past, self.lookahead)

    @staticmethod
    def get_type() -> str:
        return "racer_gpt"


register_encoder_factory(GPTEncoderFactory)
