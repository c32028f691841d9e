"""Checkpoint files: atomic, checksummed, and carrying the config and inputs they were made with.

File layout: the magic line ``RACERCKPT1``, the hex SHA-256 of the payload, a newline, then the payload
(``torch.save`` of ``{"meta": ..., "state": ...}``). A truncated or altered file fails the checksum and
is reported as corrupt; it is never partially loaded. The checksum doubles as the checkpoint's identity,
recorded by every later stage built from it (reward model, datasets, agents).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from pathlib import Path

import torch

from racer_env.errors import RacerError
from racer_env.workspace import write_bytes_atomic

MAGIC = b"RACERCKPT1\n"


class CheckpointError(RacerError):
    """A checkpoint that is missing, corrupt, or does not match the workspace it is used with."""


def save_checkpoint(path: str | os.PathLike, meta: dict, state: dict) -> str:
    """Write ``{"meta", "state"}`` to ``path`` atomically; returns the payload's SHA-256."""
    path = Path(path)
    buf = io.BytesIO()
    torch.save({"meta": meta, "state": state}, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, MAGIC + digest.encode() + b"\n" + payload)
    return digest


def read_checksum(path: str | os.PathLike) -> str:
    """The payload checksum recorded in a checkpoint's header (without verifying the payload)."""
    with open(path, "rb") as f:
        head = f.read(len(MAGIC) + 65)
    if not head.startswith(MAGIC) or len(head) < len(MAGIC) + 65:
        raise CheckpointError(f"{path}: not a racer checkpoint (bad header)")
    return head[len(MAGIC):len(MAGIC) + 64].decode()


def load_checkpoint(path: str | os.PathLike, kind: str) -> tuple[dict, dict, str]:
    """Read and verify a checkpoint of ``kind`` ('vqvae', 'reward', ...).

    Returns:
        (meta, state, checksum).

    Raises:
        CheckpointError: missing file, bad header, checksum mismatch (corrupt or truncated), wrong kind.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint here; train it first (racer train {kind} W)")
    data = path.read_bytes()
    header = len(MAGIC) + 65
    if not data.startswith(MAGIC) or len(data) < header:
        raise CheckpointError(f"{path}: not a racer checkpoint (bad header)")
    digest = data[len(MAGIC):len(MAGIC) + 64].decode(errors="replace")
    payload = data[header:]
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(f"{path}: checkpoint is corrupt or truncated (checksum mismatch); retrain or restore it")
    try:
        obj = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, TypeError) as err:
        # the checksum matched, so this is a version or format problem, not damage
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(err).__name__}: {err})") from None
    meta = obj.get("meta", {})
    if meta.get("kind") != kind:
        raise CheckpointError(f"{path}: a {meta.get('kind')!r} checkpoint, expected {kind!r}")
    return meta, obj["state"], digest


def load_stage_model(workspace, kind: str, corpus=None) -> tuple[dict, dict, str, Path]:
    """``W/<kind>/model.pt`` read, verified and checked against the workspace's corpus (``corpus``, else loaded):
    (meta, state, checksum, path)."""
    from racer_env.corpus.store import Corpus
    from racer_env.workspace import Workspace

    ws = Workspace.of(workspace)
    path = ws.root / kind / "model.pt"
    meta, state, checksum = load_checkpoint(path, kind)
    check_corpus_match(meta, corpus or Corpus.load(ws), path)
    return meta, state, checksum, path


def check_corpus_match(meta: dict, corpus, path: str | os.PathLike) -> None:
    """Refuse a checkpoint whose joints, frame rate or audio features differ from the workspace corpus, or that
    was trained on other corpus content (it would normalise with statistics it was not trained with)."""
    want = {"n_joints": corpus.n_joints, "fps": corpus.fps, "frames_per_code": corpus.frames_per_code,
            "n_audio_features": corpus.n_audio_features}
    have = {k: meta.get("corpus", {}).get(k) for k in want}
    if have != want:
        diffs = ", ".join(f"{k} {have[k]} vs {want[k]}" for k in want if have[k] != want[k])
        raise CheckpointError(
            f"{path} was made for a corpus with {have['n_joints']} joints at {have['fps']} fps, but "
            f"{corpus.directory} has {want['n_joints']} joints at {want['fps']} fps ({diffs}); "
            f"retrain on this workspace"
        )
    trained_on = meta.get("corpus", {}).get("content_sha256")
    if trained_on != corpus.checksum:
        raise CheckpointError(
            f"{path} is stale: it was trained on corpus {str(trained_on)[:12]}, but {corpus.directory} now holds "
            f"corpus {corpus.checksum[:12]} (its clips, splits or normalisation changed); retrain this stage"
        )


def corpus_meta(corpus) -> dict:
    """What a checkpoint records about the corpus it was trained on."""
    return {"n_joints": corpus.n_joints, "fps": corpus.fps, "frames_per_code": corpus.frames_per_code,
            "n_audio_features": corpus.n_audio_features, "joint_names": corpus.joint_names,
            "content_sha256": corpus.checksum}
