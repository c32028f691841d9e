"""Training the FGD feature extractor: a convolutional autoencoder of root-relative position windows.

``benchmarks/train_fgd_extractor.py`` runs this on the built-in corpus and writes the shipped checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from racer_env.checkpoint import save_checkpoint
from racer_env.corpus.store import Corpus
from racer_env.errors import RacerError
from racer_env.metrics.fgd import FPS, SCALE_MM, STRIDE, VELOCITY_FPS, WINDOW, FeatureExtractor, windows


def corpus_windows(corpus: Corpus, split: str) -> np.ndarray:
    """Root-relative position windows (n, WINDOW, J, 3) in mm of every clip of ``split``."""
    if corpus.fps != FPS:
        raise RacerError(f"the FGD input is defined at {FPS:g} fps; the corpus is at {corpus.fps:g}")
    out = [windows(c.skeleton.positions(c.rotations)) for c in corpus.clips(split)]
    return np.concatenate(out)


def train_extractor(corpus: Corpus, steps: int = 2000, batch: int = 64, dim: int = 32, width: int = 64,
                    lr: float = 1e-3, velocity: bool = True, seed: int = 0,
                    progress: bool = True) -> tuple[FeatureExtractor, dict]:
    """Train on the corpus's training windows, then standardise the features by those windows' features;
    returns the model and its metadata (with the final loss)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    real = corpus_windows(corpus, "train")  # (n, WINDOW, J, 3) mm
    model = FeatureExtractor(corpus.n_joints, dim, width, velocity)
    data = model.prepare(real)  # (n, C, WINDOW)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss = torch.zeros(())
    for _ in tqdm(range(steps), desc="train FGD extractor", disable=not progress):
        x = data[torch.from_numpy(rng.integers(0, len(data), batch))]
        loss = torch.nn.functional.mse_loss(model.reconstruct(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.set_standardisation(real)
    meta = {"kind": "fgd_extractor", "joint_names": corpus.joint_names, "dim": dim, "width": width,
            "velocity": velocity, "velocity_fps": VELOCITY_FPS, "standardised": True,
            "window": WINDOW, "stride": STRIDE, "fps": FPS, "scale_mm": SCALE_MM, "seed": seed, "steps": steps,
            "final_mse": float(loss.item()), "corpus_sha256": corpus.checksum, "windows": len(data)}
    return model.eval(), meta


def save_extractor(path: Path, model: FeatureExtractor, meta: dict) -> str:
    """Write the checkpoint atomically; returns its SHA-256."""
    return save_checkpoint(path, meta, {"model": model.state_dict()})
