"""The workspace: one directory every pipeline stage reads from and writes to.

Layout: ``W/corpus/`` (clips, splits, statistics, manifest), ``W/synth/`` (the built-in speaker's wav + bvh
sources), ``W/vqvae/``, ``W/reward/``, ``W/datasets/``, ``W/agents/<name>/``, ``W/eval/``, ``W/generated/``.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from racer_env.errors import RacerError


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


@contextmanager
def temporary_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """A fresh temporary name beside ``path`` for this process (``.<name>.tmp<pid>-<n><suffix>``), removed on exit
    if it still exists. The pid in the name lets the next run of a stage tell a killed run's leftovers from a live
    run's files (:func:`remove_stale_temporaries`); ``suffix`` keeps an extension for writers that choose the format
    by it (ffmpeg, matplotlib)."""
    path = Path(path)
    tmp = path.with_name(f"{temporary_prefix(path)}{next(_TEMPORARY_COUNT)}{suffix}")
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """The one way racer writes a file: the block writes the temporary path it is given, which is renamed to
    ``path`` in one step when the block succeeds (readers see the old file or the new one, never a part) and
    removed when it fails."""
    with temporary_path(path, suffix) as tmp:
        yield tmp
        os.replace(tmp, path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_path`, flushed to disk before the rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


#: the reason given beside a value that was not a finite number (see :func:`strict_json`), where the code that
#: computed it gave none of its own.
NOT_FINITE = "not a finite number (NaN or infinite): the figure is undefined for these inputs"


def finite(obj):
    """``obj`` (dicts, lists, numbers, strings) with every NaN or infinite float replaced by None; a dict key whose
    value held one gains a sibling ``<key>_null_reason`` (unless the dict already says why), so that the JSON is
    strict (RFC 8259 has no NaN: ``jq`` and most parsers refuse it) and a null says why it is one."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            out[key] = finite(value)
            reason = f"{key}_null_reason"
            if _has_non_finite(value) and reason not in obj and isinstance(key, str):
                out[reason] = NOT_FINITE
        return out
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _has_non_finite(obj) -> bool:
    if isinstance(obj, (float, np.floating)):
        return not np.isfinite(obj)
    if isinstance(obj, (list, tuple)):
        return any(_has_non_finite(v) for v in obj)
    return False  # (a nested dict says why itself)


def strict_json(obj, indent: int | None = 2, sort_keys: bool = False) -> str:
    """The one JSON writer of racer's results: strict JSON (no NaN, see :func:`finite`)."""
    return json.dumps(finite(obj), indent=indent, sort_keys=sort_keys, allow_nan=False)


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """Write strict JSON (sorted keys, indented) to ``path`` atomically."""
    write_text_atomic(path, strict_json(obj, sort_keys=True) + "\n")


@contextmanager
def staged_directory(final: Path) -> Iterator[Path]:
    """Build a directory under a temporary name beside ``final``; on success replace ``final`` with it.

    On any error the temporary directory is removed and ``final`` is left as it was, so a failed stage
    never leaves partial output behind.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=temporary_prefix(final), dir=final.parent))
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


# -- temporary names ----------------------------------------------------------------------------------------
#: every temporary file or directory racer writes is named ``.<name>.tmp<pid>...`` (or ``.<name>.old-<pid>``)
#: beside its target, so that the next run can tell the leftovers of a killed run from a live run's files.
_TEMPORARY_COUNT = itertools.count()  # several temporaries of one process for one name stay distinct
_TEMPORARY = re.compile(r"^\..+\.(?:tmp|old-)(?P<pid>\d+)(?:[^0-9].*)?$")


def temporary_prefix(path: str | os.PathLike) -> str:
    """The name prefix of this process's temporaries for ``path`` (``.<name>.tmp<pid>-``)."""
    return f".{Path(path).name}.tmp{os.getpid()}-"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporaries that killed runs left in ``directory`` (their pid no longer runs); returns them.

    Called by each stage, under its lock, on the directories it writes; a live run's temporaries are kept.
    """
    directory = Path(directory)
    removed = []
    if not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        match = _TEMPORARY.match(entry.name)
        if match is None or _alive(int(match["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def pause_point(name: str) -> None:
    """A named point just before a stage publishes its output (renames its temporaries into place).

    With ``RACER_PAUSE_AT=<name>`` in the environment the process says so on stderr and waits there, so that
    tests deliver Ctrl-C or kill -9 to a real run at exactly this point (``tests/test_faults.py``); otherwise it
    does nothing.
    """
    if os.environ.get("RACER_PAUSE_AT") == name:
        print(f"racer: paused at {name} (pid {os.getpid()})", file=sys.stderr, flush=True)
        time.sleep(3600)


# -- destinations -------------------------------------------------------------------------------------------
def check_output_directory(path: str | os.PathLike, what: str = "output directory") -> Path:
    """Refuse, before any work, a directory racer could not create or write: an existing file, a path under a
    file, or a read-only place. Creates nothing; returns ``path``."""
    path = Path(path)
    probe = path
    while not probe.exists() and not probe.is_symlink() and probe != probe.parent:
        probe = probe.parent
    if probe.is_symlink() and not probe.exists():
        raise RacerError(f"{probe}: a dangling symbolic link, expected a directory for the {what} {path}")
    if not probe.is_dir():
        where = "is a file" if probe == path else f"lies under the file {probe}"
        raise RacerError(f"{path}: {where}; expected a directory for the {what}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RacerError(f"{probe}: not writable (permission denied); the {what} {path} cannot be written there")
    return path


# -- stage locks --------------------------------------------------------------------------------------------
class WorkspaceBusy(RacerError):
    """Another process is running the same stage on the same workspace."""


_HELD: dict[str, list] = {}  # lock path -> [file descriptor, depth] (re-entrant within a process)


def _lock_holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, json.JSONDecodeError):
        return "another process"
    return f"pid {info.get('pid', '?')}: {info.get('command', '?')}"


@contextmanager
def stage_lock(directory: str | os.PathLike, stage: str) -> Iterator[None]:
    """Hold the lock of ``stage`` on ``directory`` (a workspace, or an output directory) while the block runs.

    A second process asking for the same lock is refused at once with :class:`WorkspaceBusy`, naming the holder's
    pid and command. The lock is ``directory/.racer-<stage>.lock`` (``flock``, so it dies with its process, even
    under kill -9); the file is removed on release. Re-entrant within a process (``racer demo`` runs every stage
    under its own lock), and only rank 0 of a torchrun launch takes it (the other ranks are the same run).
    """
    if not _main_rank():
        yield
        return
    directory = Path(directory)
    path = directory / f".racer-{stage.replace('/', '-')}.lock"
    key = str(path.resolve())
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    with removed_if_left_empty(directory):
        directory.mkdir(parents=True, exist_ok=True)
        fd = _acquire(path, directory, stage)
        _HELD[key] = [fd, 1]
        try:
            yield
        finally:
            del _HELD[key]
            path.unlink(missing_ok=True)  # before closing: a waiter that opened this file re-checks the inode
            os.close(fd)


def _main_rank() -> bool:
    """True unless this is a non-zero rank of a torchrun launch (rank 0 writes, locks and cleans up for all)."""
    return int(os.environ.get("RANK", "0")) == 0


@contextmanager
def removed_if_left_empty(directory: str | os.PathLike) -> Iterator[Path]:
    """Run the block; if ``directory`` did not exist before it and is empty after it (a refused or interrupted
    run wrote nothing), remove it again, so that a failure leaves no empty output directory behind."""
    directory = Path(directory)
    if not _main_rank():  # another rank must not remove a directory rank 0 has just created and not yet written to
        yield directory
        return
    created = _missing_directories(directory)
    try:
        yield directory
    finally:
        _remove_if_empty(created)


def _missing_directories(directory: Path) -> list[Path]:
    """``directory`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    return missing


def _remove_if_empty(created: list[Path]) -> None:
    """The directories this run created and left empty (a refused or interrupted run) are removed again."""
    for directory in created:
        try:
            directory.rmdir()
        except OSError:
            return  # not empty (the stage wrote its output) or already gone: neither are its parents


def _command_line() -> str:
    """This process's command as a user typed it: ``racer train vqvae W``, ``python -m racer_agents ...``."""
    if not sys.argv or not sys.argv[0]:
        return "python"
    program = Path(sys.argv[0])
    name = f"python -m {program.parent.name}" if program.name == "__main__.py" else program.name
    return " ".join([name, *sys.argv[1:]])


def _acquire(path: Path, directory: Path, stage: str) -> int:
    """Open and flock ``path``; retries when the file was replaced between open and flock (released meanwhile)."""
    for _ in range(100):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WorkspaceBusy(
                f"{directory}: another racer process is running {stage} here ({_lock_holder(path)}); wait for it to "
                f"finish or stop it") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            command = _command_line()
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "command": command, "since": time.time()}).encode())
            return fd
        os.close(fd)  # the holder released and removed it between our open and flock: try the new file
    raise WorkspaceBusy(f"{directory}: could not take the {stage} lock {path}")
