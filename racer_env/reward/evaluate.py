"""Is the reward model a valid reward? Held-out retrieval and separation of true from wrong pairs."""

from __future__ import annotations

import numpy as np
import torch

from racer_env.corpus.store import Corpus
from racer_env.errors import RacerError
from racer_env.reward.ablations import reward_ablations
from racer_env.reward.model import RewardModel
from racer_env.reward.scorer import RewardScorer, load_reward_model
from racer_env.reward.windows import WindowSet, build_windows
from racer_env.vqvae.tokenize import load_vqvae
from racer_env.workspace import Workspace

MIN_SHIFT = 2  # code steps: a shifted negative is at least this far from the true alignment


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counting half (Mann-Whitney)."""
    pos, neg = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


@torch.no_grad()
def embed(model: RewardModel, windows: WindowSet, batch: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, P, E) motion and audio embeddings of each part (P = 1 for a whole-body reward model)."""
    m = torch.cat([model.motion_encoder.parts(windows.motion[i:i + batch]) for i in range(0, len(windows), batch)])
    a = torch.cat([model.audio_encoder.parts(windows.audio[i:i + batch]) for i in range(0, len(windows), batch)])
    return m, a


def retrieval(sim: np.ndarray, candidates: int, rng: np.random.Generator) -> tuple[float, float]:
    """R@1 and R@5: for each audio window (column), rank its motion among itself + candidates-1 others."""
    n = sim.shape[0]
    hits1 = hits5 = 0
    for i in range(n):
        others = rng.choice(np.delete(np.arange(n), i), candidates - 1, replace=False)
        scores = sim[np.concatenate([[i], others]), i]
        rank = int((scores[1:] > scores[0]).sum())
        hits1 += rank == 0
        hits5 += rank < 5
    return hits1 / n, hits5 / n


def evaluate_reward(workspace: str | Workspace, splits: tuple[str, ...] = ("valid", "test"), candidates: int = 32,
                    seed: int = 0, device: str = "cpu", ablations: bool = True) -> dict:
    """Validity of the workspace's reward model on held-out clips.

    * ``r_at_1``, ``r_at_5``: retrieval of the true motion window for an audio window among ``candidates``
      non-overlapping held-out windows (chance 1/32 = 0.031 and 5/32 = 0.156).
    * ``auc_shifted``: true pairs vs the same audio with the same clip's motion shifted by 2..W code steps
      (near misses: the shifted window still overlaps the true one).
    * ``auc_mismatched``: true pairs vs the same audio with motion from another clip.
    * ``ablations`` (corpora of the built-in speaker, with ``ablations``): the mean per-step reward of the
      test clips' real motion, random codes, the clips resynthesised without arm gestures, without nods and
      with another valid gesture draw, and the true codes shifted by -2 .. +2 code steps, with the fraction
      of the real - random gap each keeps (:mod:`racer_env.reward.ablations`).
    """
    ws = Workspace.of(workspace)
    corpus = Corpus.load(ws)
    vqvae, _, vqvae_sha = load_vqvae(ws, corpus, device)
    model, _, checksum = load_reward_model(ws, corpus, vqvae_sha, device)
    w = model.cfg.window_codes
    if w < MIN_SHIFT:
        raise RacerError(f"auc_shifted needs windows of at least {MIN_SHIFT} code steps; this reward model's are {w}")
    clip_ids = [c for s in splits for c in corpus.clip_ids(s)]
    windows = build_windows(corpus, vqvae, clip_ids, w, stride=1)
    m, a = (e.cpu() for e in embed(model, windows))
    rng = np.random.default_rng(seed)

    disjoint = np.flatnonzero(windows.start % w == 0)  # non-overlapping windows for retrieval
    if len(disjoint) < candidates:
        raise RacerError(f"held-out splits {splits} give {len(disjoint)} non-overlapping windows of {w} codes; "
                         f"retrieval among {candidates} needs more (a larger corpus or smaller --candidates)")
    sim = model.similarity(m, a).numpy()  # (N, N) reward of every (motion, audio) window pair
    r1, r5 = retrieval(sim[np.ix_(disjoint, disjoint)], candidates, rng)

    true = np.diag(sim)  # (N,) score of every true pair
    shifted, mismatched = [], []
    for i in range(len(windows)):
        gap = np.abs(windows.start - windows.start[i])
        same = np.flatnonzero((windows.clip == windows.clip[i]) & (gap >= MIN_SHIFT) & (gap <= w))
        other = np.flatnonzero(windows.clip != windows.clip[i])
        if len(same):
            shifted.append(float(sim[rng.choice(same), i]))
        if len(other):
            mismatched.append(float(sim[rng.choice(other), i]))
    result = {
        "r_at_1": r1,
        "r_at_5": r5,
        "auc_shifted": auc(true, np.array(shifted)),
        "auc_mismatched": auc(true, np.array(mismatched)),
        "mean_reward_true": float(true.mean()),
        "params": {"splits": list(splits), "clips": len(clip_ids), "window_codes": w, "candidates": candidates,
                   "retrieval_windows": len(disjoint), "pairs": len(windows), "shift_codes": [MIN_SHIFT, w],
                   "chance_r_at_1": 1 / candidates, "chance_r_at_5": 5 / candidates, "seed": seed,
                   "reward_sha256": checksum, "vqvae_sha256": vqvae_sha},
    }
    if ablations:
        scorer = RewardScorer(vqvae, model, corpus.stats.audio_mean, corpus.stats.audio_std, corpus.frames_per_code)
        table = reward_ablations(ws.root, scorer, corpus, corpus.clip_ids("test"), seed=seed)
        if table is not None:
            result["ablations"] = table
    return result
