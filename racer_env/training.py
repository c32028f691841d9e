"""What every trainer shares: a stage directory with its config, resumable checkpoints and a metrics log.

A stage directory (``W/vqvae/``, ``W/reward/``) holds:

* ``model.pt``      the final model (checksummed checkpoint with config, seed and input checksums);
* ``checkpoint.pt`` the latest training state (model, optimiser, step), written atomically every N steps;
* ``metrics.jsonl`` one JSON line of namespaced metrics (``losses/total``, ``codebook/perplexity``) per log step,
  of the run that wrote ``model.pt``. A run in progress logs to ``metrics.running.jsonl`` (what ``--resume``
  continues), renamed to ``metrics.jsonl`` just before its model is written: a retraining (``--force``, other
  settings) that is interrupted leaves the previous model and its log as they were, never one without the other.

``identity`` is everything that defines a run (config, seed, checksums of its inputs): a finished run with
the same identity is skipped, a checkpoint with another identity is never resumed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import Field, asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from racer_env.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from racer_env.errors import Interrupted, RacerError
from racer_env.stage import Stage
from racer_env.workspace import (
    write_text_atomic,
)

#: training settings that do not change the weights, left out of a run's identity.
BOOKKEEPING = ("checkpoint_every", "log_every", "eval_every", "agent_name")
#: settings added after runs were made, left out of the identity at these values (what every earlier run did), so
#: that earlier runs stay current and resumable
LATER_SETTINGS = {"stop_score": None, "bc_episodes": "human", "select": "mean_reward+sync"}


def weight_settings(config) -> dict:
    """A training config as a dict without its bookkeeping fields (the part that defines the weights), and without
    the :data:`LATER_SETTINGS` at their old behaviour's values. A set ``stop_score`` makes ``eval_every`` part of the
    identity (it decides where the run stops)."""
    settings = {k: v for k, v in asdict(config).items()
                if k not in BOOKKEEPING and not (k in LATER_SETTINGS and v == LATER_SETTINGS[k])}
    if settings.get("stop_score") is not None and hasattr(config, "eval_every"):
        settings["eval_every"] = config.eval_every
    return settings


def option(default, help: str, flag: str | None = None, choices: tuple | None = None, low: float | None = None,
           exclusive_low: bool = False):
    """A config field that is also a command-line option: the dataclass is the CLI (CleanRL's habit). ``flag``
    overrides the ``--field-name`` spelling, ``choices`` and ``low`` (the smallest value; ``exclusive_low``: values
    must be above it) become argparse's checks, so that a bad value is refused naming the option before any work."""
    return field(default=default, metadata={"help": help, "flag": flag, "choices": choices, "low": low,
                                            "exclusive_low": exclusive_low})


def cli_options(config_cls) -> list[Field]:
    """The fields of ``config_cls`` declared with :func:`option`, in declaration order."""
    return [f for f in fields(config_cls) if "help" in f.metadata]


def option_flag(f: Field) -> str:
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def config_for(config_cls, defaults: dict[str, dict], preset: str, what: str, **overrides):
    """``config_cls`` with preset ``preset``'s defaults and ``overrides`` (None values ignored) applied."""
    if preset not in defaults:
        raise RacerError(f"unknown {what} preset {preset!r}; choose one of {sorted(defaults)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - {f.name for f in fields(config_cls)})
    if unknown:
        raise RacerError(f"{', '.join('--' + k.replace('_', '-') for k in unknown)}: not a setting of "
                         f"{config_cls.__name__}")
    return replace(config_cls(preset=preset, **defaults[preset]), **given)


def step_rng(seed: int, step: int, stream: int = 0) -> np.random.Generator:
    """The random generator of one training step: batches depend only on (seed, step), so resumed runs
    draw exactly the batches an uninterrupted run draws."""
    return np.random.default_rng([seed, step, stream])


def step_torch_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(step_rng(seed, step, 1).integers(2**62)))


@dataclass
class StageRun(Stage):
    """A training stage: model.pt records the identity, checkpoint.pt resumes, metrics.jsonl logs."""

    directory: Path
    kind: str  # 'vqvae', 'reward', 'agent'
    identity: dict
    world_size: int = 1  # processes of the run (racer_env.distributed); a checkpoint resumes only with the same
    main: bool = True  # this process writes the files (rank 0); the others only read
    lock_name: str = ""

    @property
    def model_path(self) -> Path:
        return self.directory / "model.pt"

    @property
    def checkpoint_path(self) -> Path:
        return self.directory / "checkpoint.pt"

    @property
    def metrics_path(self) -> Path:
        """The log of the run that wrote model.pt."""
        return self.directory / "metrics.jsonl"

    @property
    def running_log_path(self) -> Path:
        """The log of the run in progress (or interrupted, to be resumed)."""
        return self.directory / "metrics.running.jsonl"

    def recorded_identity(self) -> str | None:
        """The identity model.pt was trained with (None: no model, an unreadable one, or one whose log is gone: the
        stage's outputs are checked as a set)."""
        if not self.model_path.is_file() or not self.metrics_path.is_file():
            return None
        try:
            meta, _, _ = load_checkpoint(self.model_path, self.kind)
        except CheckpointError:
            return None
        return meta.get("identity_sha256")

    @contextmanager
    def locked(self) -> Iterator[None]:
        """:meth:`Stage.locked`, and the one interrupt path of every trainer: Ctrl-C becomes :class:`Interrupted`
        naming the checkpoint to resume from; a run stopped before its first checkpoint leaves nothing (its log is
        removed with it, and the directory too if the run created it), the previous model and log untouched."""
        with super().locked():
            try:
                yield
            except KeyboardInterrupt as err:
                if isinstance(err, Interrupted):
                    raise
                raise Interrupted(self._left_by_interrupt()) from None

    def _left_by_interrupt(self) -> Path | None:
        """The checkpoint an interrupted run can resume from; without one, its log is removed."""
        if self.checkpoint_path.is_file():
            return self.checkpoint_path
        if self.main:
            self.running_log_path.unlink(missing_ok=True)
        return None

    def start(self, resume: bool) -> tuple[int, dict | None]:
        """Prepare the directory; returns (first step, training state to restore or None). A fresh run removes the
        checkpoint and log of an earlier unfinished run, never the finished model and its log (replaced only when
        this run's model is complete, in :meth:`finish`)."""
        if not resume:
            if self.main:
                self.directory.mkdir(parents=True, exist_ok=True)
                for p in (self.checkpoint_path, self.running_log_path):
                    if p.exists():
                        p.unlink()
            return 0, None
        meta, state, _ = load_checkpoint(self.checkpoint_path, self.kind)
        if meta.get("identity_sha256") != self.identity_sha:
            differ = identity_differences(meta.get("identity", {}), self.identity)
            raise CheckpointError(
                f"{self.checkpoint_path} belongs to a run with other settings or inputs "
                f"({differ or 'its identity differs'}); resume with the same settings, or start afresh without "
                f"--resume"
            )
        if meta.get("world_size", 1) != self.world_size:
            raise CheckpointError(
                f"{self.checkpoint_path} was written by a run of {meta.get('world_size', 1)} process(es); resume it "
                f"with the same number (this run has {self.world_size})"
            )
        step = int(meta["step"])
        if self.main:
            if not self.running_log_path.exists() and self.metrics_path.is_file() and not self.model_path.exists():
                os.replace(self.metrics_path, self.running_log_path)  # (a run interrupted before the running log)
            self._truncate_metrics(step)
        return step, state

    def _truncate_metrics(self, step: int) -> None:
        """Drop log lines written after the checkpoint, so a resumed log reads like an uninterrupted one."""
        if not self.running_log_path.is_file():
            return
        kept = []
        for line in self.running_log_path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by the crash that made the resume necessary
            if row["step"] <= step:
                kept.append(line)
        write_text_atomic(self.running_log_path, "".join(ln + "\n" for ln in kept))

    def meta(self, step: int, extra: dict) -> dict:
        return {"kind": self.kind, "identity": self.identity, "identity_sha256": self.identity_sha,
                "step": step, "world_size": self.world_size, **extra}

    def save_checkpoint(self, step: int, state: dict, extra: dict) -> None:
        if self.main:
            save_checkpoint(self.checkpoint_path, self.meta(step, extra), state)

    def save_model(self, step: int, state: dict, extra: dict) -> str | None:
        """Publish this run's log as metrics.jsonl, then write model.pt (rank 0; other ranks get None) and return
        its checksum. In this order an interruption between the two leaves a model whose log is newer, which is
        not current (its identity or log differ) and is retrained; never a current model with another run's log."""
        if not self.main:
            return None
        if self.running_log_path.is_file():
            os.replace(self.running_log_path, self.metrics_path)
        else:  # (a run that logged nothing)
            write_text_atomic(self.metrics_path, "")
        return save_checkpoint(self.model_path, self.meta(step, extra), state)

    def steps(self, start: int, steps: int, stop_after: int | None, desc: str, progress: bool) -> tuple[int, tqdm]:
        """(end, progress bar over steps start .. end - 1) of this call: the run's ``steps``, or ``stop_after`` of them
        (tests of interruption); the bar shows on the writing rank only."""
        end = steps if stop_after is None else min(steps, start + stop_after)
        return end, tqdm(range(start, end), initial=start, total=steps, desc=desc, disable=not progress or not self.main)

    def finish(self, end: int, steps: int, model_state: dict, extra: dict) -> dict:
        """End of a training call that ran up to step ``end`` of ``steps``: the result of an interrupted run, or
        model.pt written (by rank 0) with its checksum. Every rank waits until rank 0's files are written, so no
        rank moves on to a stage that reads them too early (torch.distributed runs)."""
        _barrier()
        if end < steps:
            return {"skipped": False, "stopped_at": end, "checkpoint": str(self.checkpoint_path)}
        checksum = self.save_model(steps, model_state, extra)
        _barrier()
        return {"skipped": False, "model": str(self.model_path), "checksum": checksum}

    def log(self, step: int, metrics: dict) -> None:
        if not self.main:
            return
        row = {"step": step, **{k: round(float(v), 6) for k, v in metrics.items()}}
        with open(self.running_log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())


def identity_differences(old: dict, new: dict, prefix: str = "", limit: int = 4) -> str:
    """``"train.lr 0.001 -> 0.0002, corpus changed"``: what differs between two run identities (settings by
    name and value, input checksums as "changed"), for refusals that must say which setting differs."""
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            inner = identity_differences(a, b, f"{name}.", limit)
            diffs.extend(inner.split(", ") if inner else [])
        elif isinstance(a, str) and isinstance(b, str) and len(a) == len(b) == 64:
            diffs.append(f"{name} changed")  # a checksum of an input
        else:
            diffs.append(f"{name} {a!r} -> {b!r}")
    more = f", and {len(diffs) - limit} more" if len(diffs) > limit else ""
    return ", ".join(diffs[:limit]) + more


def _barrier() -> None:
    """Wait for every rank of a torch.distributed run (nothing to do in a single process)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:1``, or ``auto`` (cuda when available); a clear error if unavailable."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_device_name(name)
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RacerError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise RacerError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RacerError(f"--device {name}: Apple MPS is not available on this machine; use --device cpu")
    return device


DEVICE_TYPES = ("cpu", "cuda", "mps")


def check_device_name(name: str) -> str:
    """``name`` if it is ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; a RacerError naming ``--device``
    otherwise (torch's own names such as ``meta`` cannot hold trained weights)."""
    kind, _, index = str(name).partition(":")
    if name != "auto" and (kind not in DEVICE_TYPES or (index and not index.isdigit()) or (index and kind != "cuda")):
        raise RacerError(f"--device {name}: expected auto, cpu, cuda, cuda:N or mps")
    return name
