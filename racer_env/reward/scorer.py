"""Loading the trained reward model and scoring code windows: the per-step reward of the gesture MDP.

Per-step reward (ours; the paper does not define one): r_t is the cosine similarity between the motion
decoded from the last W codes (a_{t-W+1} .. a_t; fewer at the start of an episode) and the audio features
of the same frames, both normalised with the corpus statistics. r_t is in [-1, 1].
"""

from __future__ import annotations

import numpy as np
import torch

from racer_env.checkpoint import CheckpointError, load_stage_model
from racer_env.corpus.store import Corpus
from racer_env.reward.model import RewardConfig, RewardModel
from racer_env.reward.windows import decode_windows
from racer_env.vqvae.model import VQVAE
from racer_env.vqvae.tokenize import load_vqvae
from racer_env.workspace import Workspace


def load_reward_model(workspace: str | Workspace, corpus: Corpus | None = None, vqvae_sha: str | None = None,
                      device: str | torch.device = "cpu"):
    """The trained reward model of a workspace, checked against its corpus and VQ-VAE.

    Returns:
        (model in eval mode, checkpoint meta, checkpoint checksum).
    """
    meta, state, checksum, path = load_stage_model(workspace, "reward", corpus)
    if vqvae_sha is not None and meta["vqvae_sha256"] != vqvae_sha:
        raise CheckpointError(
            f"{path} was trained on decoded motion of VQ-VAE {meta['vqvae_sha256'][:12]}, but the workspace's "
            f"VQ-VAE is {vqvae_sha[:12]}; retrain the reward model (racer train reward W)"
        )
    model = RewardModel(RewardConfig(**meta["arch"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), meta, checksum


class RewardScorer:
    """VQ-VAE decoder + reward model: rewards of many code windows in one batched call."""

    def __init__(self, vqvae: VQVAE, reward_model: RewardModel, audio_mean: np.ndarray, audio_std: np.ndarray,
                 frames_per_code: int = 8) -> None:
        self.vqvae = vqvae
        self.reward_model = reward_model
        self.frames_per_code = frames_per_code
        self.audio_mean = torch.as_tensor(audio_mean, dtype=torch.float32)
        self.audio_std = torch.as_tensor(audio_std, dtype=torch.float32)
        self.vqvae_sha256 = ""
        self.reward_sha256 = ""

    @classmethod
    def from_workspace(cls, workspace: str | Workspace, device: str | torch.device = "cpu") -> RewardScorer:
        ws = Workspace.of(workspace)
        corpus = Corpus.load(ws)
        vqvae, _, vqvae_sha = load_vqvae(ws, corpus, device)
        reward, _, reward_sha = load_reward_model(ws, corpus, vqvae_sha, device)
        scorer = cls(vqvae, reward, corpus.stats.audio_mean, corpus.stats.audio_std, corpus.frames_per_code)
        scorer.vqvae_sha256, scorer.reward_sha256 = vqvae_sha, reward_sha
        return scorer

    @property
    def window_codes(self) -> int:
        return self.reward_model.cfg.window_codes

    @torch.no_grad()
    def rewards(self, codes: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Rewards of B windows: codes (B, L) and raw audio features (B, 8L, F) -> (B,) in [-1, 1].

        L is usually W; shorter windows (the start of an episode) are accepted.
        """
        codes = torch.as_tensor(codes, dtype=torch.long)
        audio = torch.as_tensor(audio, dtype=torch.float32)
        if audio.shape[:2] != (codes.shape[0], codes.shape[1] * self.frames_per_code):
            raise ValueError(f"audio must be (B, {self.frames_per_code} x L, F) for codes (B, L); got codes "
                             f"{tuple(codes.shape)} and audio {tuple(audio.shape)}")
        device = next(self.reward_model.parameters()).device
        motion = decode_windows(self.vqvae, codes.to(device))  # (B, 8L, J*3)
        audio_n = ((audio - self.audio_mean) / self.audio_std).to(device)
        return self.reward_model.score(motion, audio_n).cpu()
