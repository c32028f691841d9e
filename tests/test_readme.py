"""The README's code examples, run at tiny scale so that they stay true.

Every fenced ``bash`` and ``python`` block of README.md is run in a fresh directory, in the order a newcomer reads
them: the shell blocks through ``racer``'s entry point, the Python blocks each in a fresh namespace. The only
changes are the size substitutions below (demo -> tiny presets, fewer steps, a 1-minute corpus), and every one of
them must apply, so an example that drifts from these patterns fails here instead of silently running unchanged.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from racer_agents.cli import main as racer
from tests.conftest import JFK_WAV

README = Path(__file__).resolve().parent.parent / "README.md"

#: (pattern, replacement) per language: the examples' demo sizes -> tiny sizes.
SHELL_SUBSTITUTIONS = [
    ("--minutes 60 --speakers 4 --seed 0", "--minutes 1 --speakers 1 --clip-seconds 10 --seed 0 --workers 1"),
    ("--preset demo", "--preset tiny"),
    ("--steps 1000", "--steps 10 --preset tiny"),
    ("--steps 400", "--steps 4 --preset tiny"),
    ("--steps 300", "--steps 3 --preset tiny"),
    ("racer evaluate reward W", "racer evaluate reward W --candidates 8"),
    ("racer train agent T --algo racer-cql", "racer train agent T --algo racer-cql --preset tiny --steps 10"),
    ("racer corpus import trinity/ T --unit cm", "racer corpus import trinity/ T --unit cm --workers 1"),
]
PYTHON_SUBSTITUTIONS = [
    ("n_steps=10_000, n_steps_per_epoch=1_000", "n_steps=4, n_steps_per_epoch=2"),
    ("batch_size=256", "batch_size=8"),
]


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block, in order."""
    return [(m[1], m[2]) for m in re.finditer(r"(?ms)^```(\w+)\n(.*?)^```", text)]


def substitute(code: str, table: list[tuple[str, str]], used: set[str]) -> str:
    for pattern, replacement in table:
        if pattern in code:
            used.add(pattern)
            code = code.replace(pattern, replacement)
    return code


def run_shell(code: str) -> None:
    for line in code.splitlines():
        argv = shlex.split(line, comments=True)
        if not argv:
            continue
        assert argv[0] == "racer", f"README shell examples are racer commands; got {line!r}"
        assert racer(argv[1:]) == 0, f"README example failed: {line}"


def real_corpus_source(workspace: Path, dst: Path) -> None:
    """A GENEA/Trinity-like directory of wav + bvh pairs (the built-in speaker's files stand in for Trinity)."""
    dst.mkdir()
    for path in sorted((workspace / "synth" / "speaker_00").iterdir()):
        if path.suffix in (".wav", ".bvh"):
            shutil.copy(path, dst / path.name)


def test_readme_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MINARI_DATASETS_PATH", raising=False)  # the newcomer's default: W/datasets
    shutil.copy(JFK_WAV, tmp_path / "speech.wav")
    blocks = [(lang, code) for lang, code in code_blocks(README.read_text()) if lang in ("bash", "python")]
    assert sum(lang == "bash" for lang, _ in blocks) >= 2 and sum(lang == "python" for lang, _ in blocks) >= 4
    used: set[str] = set()
    for lang, code in blocks:
        if lang == "bash":
            if "trinity/" in code:
                real_corpus_source(tmp_path / "W", tmp_path / "trinity")
            run_shell(substitute(code, SHELL_SUBSTITUTIONS, used))
        else:
            code = compile(substitute(code, PYTHON_SUBSTITUTIONS, used), "README.md", "exec")
            exec(code, {"__name__": "readme"})  # noqa: S102  (the README's own examples)
    unused = {p for p, _ in SHELL_SUBSTITUTIONS + PYTHON_SUBSTITUTIONS} - used
    assert not unused, f"README examples changed: these size substitutions no longer apply: {unused}"
    # what the examples promise to leave behind
    assert (tmp_path / "W" / "eval" / "test.json").is_file()
    assert (tmp_path / "W" / "generated" / "speech" / "speech.mp4").is_file()
    assert (tmp_path / "T" / "generated" / "speech" / "speech.bvh").is_file()
    evaluated = json.loads((tmp_path / "W" / "eval" / "test.json").read_text())["systems"]
    assert {"racer-cql", "bc", "racer-cql-distance", "dqn", "actor-critic", "d3rlpy-DiscreteCQL"} <= set(evaluated)


@pytest.mark.parametrize("command", ["make demo", "make test"])
def test_readme_names_the_two_setup_commands(command):
    text = README.read_text()
    assert f"\n    {command}\n" in text
    assert command.split()[1] + ":" in (README.parent / "Makefile").read_text()
