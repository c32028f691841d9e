"""The one error type for a user's mistakes.

Every error that is the user's input or environment (a bad file, a bad option, a busy workspace, a path that
cannot be written) is a :class:`RacerError`; the command line prints its message as one line and exits with
status 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


class RacerError(ValueError):
    """A user's mistake: the message names the file or option and what was expected.

    It is a ``ValueError`` so that code catching bad values keeps working; the CLI catches ``RacerError`` only.
    """


class Interrupted(KeyboardInterrupt):
    """Ctrl-C inside a training stage, carrying what the stage left: the checkpoint that ``--resume`` continues
    from, or None when the run was stopped before its first checkpoint and nothing of it was kept. Every trainer
    raises it the same way (:meth:`racer_env.training.StageRun.locked`), so that the command line says the same
    thing after any of them without knowing where each keeps its files."""

    def __init__(self, checkpoint: Path | None) -> None:
        super().__init__()
        self.checkpoint = checkpoint


#: OS errors that mean "this path cannot be used as asked", not a bug.
PATH_ERRNOS = {errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT,
               errno.ENOSPC, errno.ELOOP, errno.ENAMETOOLONG, errno.EDQUOT}


def path_error(err: OSError) -> RacerError | None:
    """The one-line RacerError for an OS error on a user's path, ``<path>: <reason>`` (``None`` when the error is
    not about a path: that one is a bug and keeps its traceback)."""
    if err.errno not in PATH_ERRNOS or err.filename is None:
        return None
    where = os.fsdecode(err.filename)
    if err.filename2 is not None:
        where += f" -> {os.fsdecode(err.filename2)}"
    return RacerError(f"{where}: {err.strerror or os.strerror(err.errno)}")
