"""What the benchmark scripts share: running the racer command line in-process and writing a result pair.

Imported by scripts run as ``python benchmarks/<name>.py`` (their directory is on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from racer_agents.cli import main as racer
from racer_env.workspace import write_json_atomic, write_text_atomic


def run_racer(*argv: str) -> tuple[str, float]:
    """Run a racer command in this process; returns its stdout and wall seconds (exits on a non-zero status)."""
    buf = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(buf):
        code = racer(list(argv))
    if code:
        raise SystemExit(f"racer {' '.join(argv)} exited {code}")
    return buf.getvalue(), time.perf_counter() - start


def machine() -> str:
    """The machine a figure was measured on, for the results files."""
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}"


def write_results(out: Path, report: dict, markdown: Callable[[dict], str]) -> None:
    """``out``.json (the whole report, atomically) and ``out``.md (its markdown), and print the markdown."""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out.with_suffix(".json"), report)
    text = markdown(report)
    write_text_atomic(out.with_suffix(".md"), text)
    print(text)
