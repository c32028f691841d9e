"""One step of the pipeline and the one rule for skipping it: an artefact records the identity it was made with.

``Stage`` is what every stage shares (identity -> artefact, skip when current, the lock while it runs);
``RecordedStage`` keeps the identity in a JSON file (a d3rlpy agent's meta.json, a corpus manifest, the demo's
stamps); :class:`racer_env.training.StageRun` keeps it in a checkpoint (the trainers). Torch-free, so that the corpus
import does not load torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from racer_env.workspace import (
    remove_stale_temporaries,
    removed_if_left_empty,
    sha256_json,
    stage_lock,
    write_text_atomic,
)


class Stage:
    """One step of the pipeline, the one rule for skipping it, and its lock.

    ``identity`` is everything that defines the step's artefact (settings, seed, the checksums of its inputs). The
    artefact records the identity it was made with (how depends on the artefact: :meth:`recorded_identity`); when
    that equals this run's, the step is current and skipped (unless forced). While it runs, the step holds its lock
    (one run per stage and workspace), the temporaries of killed runs are removed, and a directory it created but
    left empty is removed again (:meth:`locked`).
    """

    directory: Path  # where the artefact lives
    identity: dict
    lock_name: str = ""  # default: the directory's name; the lock file lives beside the directory
    main: bool = True  # this process writes (rank 0 of a torchrun launch); the others only read

    @property
    def identity_sha(self) -> str:
        return sha256_json(self.identity)

    def recorded_identity(self) -> str | None:
        """The identity checksum the existing artefact was made with; None when there is none (or unreadable)."""
        raise NotImplementedError

    def is_current(self) -> bool:
        return self.recorded_identity() == self.identity_sha

    @contextmanager
    def locked(self) -> Iterator[None]:
        with stage_lock(self.directory.parent, self.lock_name or self.directory.name), \
                removed_if_left_empty(self.directory):
            if self.main:
                remove_stale_temporaries(self.directory)
            yield


@dataclass
class RecordedStage(Stage):
    """A stage whose artefact files are ``outputs`` and whose identity is recorded under ``key`` in the JSON file
    ``record`` (a d3rlpy agent's meta.json, the demo's stamps.json); :meth:`record` writes it after the run."""

    directory: Path
    identity: dict
    record: Path = Path()
    outputs: tuple[Path, ...] = ()
    key: str = "identity_sha256"
    lock_name: str = ""
    main: bool = True

    def recorded_identity(self) -> str | None:
        if not self.record.is_file() or not all(p.exists() for p in self.outputs):
            return None
        try:
            return json.loads(self.record.read_text(encoding="utf-8")).get(self.key)
        except (OSError, json.JSONDecodeError):
            return None

    def save_record(self, extra: dict | None = None) -> None:
        """Record this run's identity (merged into the record file with ``extra``), atomically."""
        current = {}
        if self.record.is_file():
            try:
                current = json.loads(self.record.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                current = {}
        self.record.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.record, json.dumps({**current, **(extra or {}), self.key: self.identity_sha},
                                                  indent=2, sort_keys=True) + "\n")
