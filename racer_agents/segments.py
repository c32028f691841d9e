"""Minari gesture episodes as whole-segment tensors for the GPT agents (one forward pass per segment)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from racer_env.envs.episode_data import ObservationConfig


@dataclass
class Segments:
    audio: torch.Tensor  # (E, T, audio_dim) audio token of every step: current step + lookahead
    prev_codes: torch.Tensor  # (E, T) long: the newest code before each action (a_0 at t = 0)
    actions: torch.Tensor  # (E, T) long
    rewards: torch.Tensor  # (E, T) float
    dones: torch.Tensor  # (E, T) float: 1 where the episode terminated
    source: np.ndarray  # (E,) int: index into the dataset's `sources`

    def __len__(self) -> int:
        return self.actions.shape[0]

    def subset(self, idx) -> Segments:
        t = torch.as_tensor(idx, dtype=torch.long)
        return Segments(self.audio[t], self.prev_codes[t], self.actions[t], self.rewards[t], self.dones[t],
                        self.source[np.asarray(idx)])


def audio_tokens(audio_context: np.ndarray, cfg: ObservationConfig) -> np.ndarray:
    """(..., context, 8, F) observation audio -> (..., (1 + lookahead) * 8 * F) tokens of the current step."""
    tok = audio_context[..., cfg.past:cfg.past + 1 + cfg.lookahead, :, :]
    return tok.reshape(tok.shape[:-3] + (-1,))


def observation_config(dataset) -> ObservationConfig:
    """The observation settings a racer Minari dataset was built with."""
    try:
        return ObservationConfig(**dataset.storage.metadata["racer_inputs"]["observation"])
    except KeyError:
        raise ValueError(f"dataset {dataset.spec.dataset_id!r} was not built by 'racer dataset build' "
                         f"(no racer_inputs in its metadata)") from None


def load_segments(dataset) -> Segments:
    """Every episode of a racer Minari dataset as one segment; all episodes must have the same length."""
    cfg = observation_config(dataset)
    parts: dict[str, list] = {k: [] for k in ("audio", "prev", "actions", "rewards", "dones", "source")}
    for ep in dataset.iterate_episodes():
        steps = len(ep.actions)
        parts["audio"].append(audio_tokens(ep.observations["audio"][:steps], cfg))
        parts["prev"].append(ep.observations["codes"][:steps, -1])
        parts["actions"].append(ep.actions)
        parts["rewards"].append(ep.rewards)
        parts["dones"].append(ep.terminations)
        parts["source"].append(int(ep.infos["source"][0]))
    lengths = {len(a) for a in parts["actions"]}
    if len(lengths) != 1:
        raise ValueError(f"episodes have different lengths {sorted(lengths)}; GPT agents train on equal segments")
    return Segments(
        audio=torch.from_numpy(np.stack(parts["audio"]).astype(np.float32)),
        prev_codes=torch.from_numpy(np.stack(parts["prev"]).astype(np.int64)),
        actions=torch.from_numpy(np.stack(parts["actions"]).astype(np.int64)),
        rewards=torch.from_numpy(np.stack(parts["rewards"]).astype(np.float32)),
        dones=torch.from_numpy(np.stack(parts["dones"]).astype(np.float32)),
        source=np.array(parts["source"]),
    )
