"""The pretrained demo weights shipped with racer: ``racer generate --audio speech.wav`` works without training.

``racer_agents/pretrained/demo/`` is a pruned workspace made by ``benchmarks/train_demo_weights.py`` from a
``racer demo`` run (the `demo` preset, seed 0, the 60-minute built-in corpus of 4 speakers): the corpus manifest and
normalisation statistics (no clips), the VQ-VAE and the racer-cql agent. ``pretrained.json`` records how it was
made, the demo's evaluation figures and the SHA-256 of every file, which is checked before the weights are used.
"""

from __future__ import annotations

import json
from pathlib import Path

from racer_env.checkpoint import CheckpointError
from racer_env.workspace import Workspace, sha256_file

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained" / "demo"
MANIFEST = "pretrained.json"
#: the files a pretrained workspace holds (relative paths), in the order they are listed in its manifest
FILES = ("corpus/manifest.json", "corpus/stats.npz", "vqvae/model.pt", "agents/racer-cql/model.pt")


def pretrained_info(directory: Path = PRETRAINED_DIR) -> dict:
    """The manifest of the shipped weights (how they were made, their figures, their checksums)."""
    path = directory / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"{path}: no pretrained weights here (racer was installed without its package data?)")
    return json.loads(path.read_text())


def pretrained_workspace(directory: Path = PRETRAINED_DIR) -> Workspace:
    """The shipped weights as a read-only workspace, after checking every file against its manifest."""
    info = pretrained_info(directory)
    for rel, expected in info["sha256"].items():
        path = directory / rel
        if not path.is_file():
            raise CheckpointError(f"{path}: missing from the pretrained weights; reinstall racer")
        if sha256_file(path) != expected:
            raise CheckpointError(f"{path}: checksum differs from {directory / MANIFEST} (changed or corrupt); "
                                  "reinstall racer")
    return Workspace(directory)
