"""The environment package stands without the agents: ``racer_env`` imports nothing from ``racer_agents``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_racer_env_source_never_imports_racer_agents():
    offenders = []
    for path in sorted((ROOT / "racer_env").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno}" for n in names if n.split(".")[0] == "racer_agents"]
    assert offenders == []


def test_importing_every_racer_env_module_loads_no_agent_code():
    script = ("import importlib, pkgutil, sys, racer_env\n"
              "for m in pkgutil.walk_packages(racer_env.__path__, 'racer_env.'):\n"
              "    importlib.import_module(m.name)\n"
              "print(sorted(n for n in sys.modules if n.split('.')[0] == 'racer_agents'))\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_the_declared_gymnasium_range_is_the_one_d3rlpy_installs():
    """pyproject's gymnasium range admits the version d3rlpy pins and the one installed, and nothing d3rlpy forbids."""
    from importlib.metadata import requires, version

    from packaging.requirements import Requirement

    ours = next(Requirement(r) for r in requires("racer") if Requirement(r).name == "gymnasium").specifier
    d3rlpy = next(Requirement(r) for r in requires("d3rlpy") if Requirement(r).name == "gymnasium").specifier
    assert version("gymnasium") in ours and version("gymnasium") in d3rlpy
    assert not any(v in ours and v not in d3rlpy for v in ("1.0.0", "1.1.0", "1.1.1", "1.2.0", "1.2.2"))
