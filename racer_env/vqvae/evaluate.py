"""How good the codebook is: held-out reconstruction error in mm, codebook usage and perplexity."""

from __future__ import annotations

import numpy as np
import torch

from racer_env.corpus.store import Corpus
from racer_env.motion.rotations import rotvec_to_matrix
from racer_env.motion.skeleton import forward_kinematics
from racer_env.vqvae.tokenize import SMOOTH_KERNEL, SMOOTH_SIGMA, decode_codes, encode_clip, load_vqvae
from racer_env.vqvae.train import code_statistics
from racer_env.workspace import Workspace


def joint_positions(clip_skeleton, rotvecs: np.ndarray) -> np.ndarray:
    """(T, J, 3) rotation vectors -> (T, J, 3) joint positions in mm (root at its rest offset)."""
    return forward_kinematics(clip_skeleton, rotvec_to_matrix(rotvecs))[0]


def evaluate_codebook(workspace: str | Workspace, split: str = "test", device: str = "cpu") -> dict:
    """Metrics of the workspace's VQ-VAE.

    * ``maje_mm``: mean over frames and joints of the Euclidean distance between joint positions of the
      ``split`` clips and of their reconstruction (encode, decode, smooth, de-normalise), via forward
      kinematics on each clip's skeleton.
    * ``codes_used_frac``, ``perplexity``: over the codes of every clip of the corpus (all splits; a small
      held-out split has fewer code steps than the codebook has codes).
    """
    ws = Workspace.of(workspace)
    corpus = Corpus.load(ws)
    model, meta, checksum = load_vqvae(ws, corpus, device)
    stats = corpus.stats
    counts = torch.zeros(model.cfg.codebook_size)
    errors = []
    held_out = set(corpus.clip_ids(split))
    for clip_id in corpus.clip_ids():
        clip = corpus.clip(clip_id)
        codes = encode_clip(model, clip, stats)
        counts += torch.bincount(torch.from_numpy(codes), minlength=model.cfg.codebook_size)
        if clip_id in held_out:
            rec = decode_codes(model, codes, stats)
            err = np.linalg.norm(joint_positions(clip.skeleton, rec) - joint_positions(clip.skeleton, clip.rotations),
                                 axis=-1)  # (T, J)
            errors.append(err.reshape(-1))
    if not errors:
        raise ValueError(f"split {split!r} of {corpus.directory} has no clips to evaluate")
    perplexity, used = code_statistics(counts)
    return {
        "maje_mm": float(np.concatenate(errors).mean()),
        "codes_used_frac": used,
        "perplexity": perplexity,
        "params": {"split": split, "clips": len(held_out), "codebook_size": model.cfg.codebook_size,
                   "smoothing": {"kernel": SMOOTH_KERNEL, "sigma_frames": SMOOTH_SIGMA},
                   "usage_over": "all clips", "preset": meta["train"]["preset"], "vqvae_sha256": checksum},
    }
