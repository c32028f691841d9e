"""The workspace: one directory every pipeline stage reads from and writes to.

Layout: ``W/corpus/`` (clips, splits, statistics, manifest), ``W/synth/`` (the built-in speaker's wav + bvh
sources), ``W/vqvae/``, ``W/reward/``, ``W/datasets/``, ``W/agents/<name>/``, ``W/eval/``, ``W/generated/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Workspace:
    """Paths of one workspace directory (created on demand)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    @classmethod
    def of(cls, workspace: str | os.PathLike | Workspace) -> Workspace:
        """``workspace`` itself if it is a Workspace, else a Workspace of that directory."""
        return workspace if isinstance(workspace, Workspace) else cls(workspace)

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def synth(self) -> Path:
        return self.root / "synth"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj) -> str:
    """Hex SHA-256 of a JSON-serialisable object in canonical form (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """Write JSON to a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def staged_directory(final: Path) -> Iterator[Path]:
    """Build a directory under a temporary name beside ``final``; on success replace ``final`` with it.

    On any error the temporary directory is removed and ``final`` is left as it was, so a failed stage
    never leaves partial output behind.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
