"""The code examples of README.md and docs/*.md, run at tiny scale so that they stay true.

Every fenced ``bash`` and ``python`` block of README.md and of every page of docs/ is run in one fresh directory,
page after page in the order of ``PAGES`` (README first, then the docs pages in pipeline order: the README's
pipeline builds the workspace ``W`` that the later pages' examples read) and, within a page, in the order a reader
meets them: the shell blocks through ``racer``'s entry point, the Python blocks each in a fresh namespace. Blocks of
other languages (``text``: torchrun and SLURM scripts) are not run. Every page of docs/ must be listed in
``PAGES``, so an example on a new page cannot be skipped silently. The only changes are the size substitutions
below (demo -> tiny presets, fewer steps, a 1-minute corpus), and every one of them must apply somewhere, so an
example that drifts from these patterns fails here instead of silently running unchanged.
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

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS_ORDER = "corpus codebook reward environment dataset agents generate evaluation benchmark"
DOCS_ORDER += " troubleshooting deviations performance architecture"  # pages without examples
#: every page whose examples are run, in the order they are run (README first, then the pipeline's order).
PAGES = [README] + [ROOT / "docs" / f"{name}.md" for name in DOCS_ORDER.split()]

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
    ("candidates=32", "candidates=8"),
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
        assert argv[0] == "racer", f"documented shell examples are racer commands; got {line!r}"
        assert racer(argv[1:]) == 0, f"documented example failed: {line}"


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
    blocks = [
        (page.relative_to(ROOT).as_posix(), lang, code)
        for page in PAGES
        for lang, code in code_blocks(page.read_text())
        if lang in ("bash", "python")
    ]
    languages = [lang for _, lang, _ in blocks]
    assert languages.count("bash") >= 2 and languages.count("python") >= 4
    used: set[str] = set()
    for page, lang, code in blocks:
        if lang == "bash":
            if "trinity/" in code:
                real_corpus_source(tmp_path / "W", tmp_path / "trinity")
            run_shell(substitute(code, SHELL_SUBSTITUTIONS, used))
        else:
            code = compile(substitute(code, PYTHON_SUBSTITUTIONS, used), page, "exec")
            exec(code, {"__name__": "readme"})  # noqa: S102  (the documentation's own examples)
    unused = {p for p, _ in SHELL_SUBSTITUTIONS + PYTHON_SUBSTITUTIONS} - used
    assert not unused, f"documented examples changed: these size substitutions no longer apply: {unused}"
    # what the examples promise to leave behind
    assert (tmp_path / "W" / "eval" / "test.json").is_file()
    assert (tmp_path / "W" / "generated" / "speech" / "speech.mp4").is_file()
    assert (tmp_path / "side_by_side" / "clip_000.mp4").is_file() and (tmp_path / "held_out").is_dir()
    assert (tmp_path / "T" / "generated" / "speech" / "speech.bvh").is_file()
    evaluated = json.loads((tmp_path / "W" / "eval" / "test.json").read_text())["systems"]
    assert {"racer-cql", "bc", "racer-cql-distance", "dqn", "actor-critic", "d3rlpy-DiscreteCQL"} <= set(evaluated)


def test_every_docs_page_is_run():
    """A docs page missing from PAGES would have its examples skipped; a listed page that is gone is stale."""
    assert {p.name for p in (ROOT / "docs").glob("*.md")} == {p.name for p in PAGES[1:]}


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings (fenced blocks left out: their ``#`` lines are comments)."""
    text = re.sub(r"(?ms)^```.*?^```", "", page.read_text())
    headings = re.findall(r"(?m)^#+ (.+)$", text)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", [*PAGES, ROOT / "benchmarks" / "README.md"], ids=lambda p: p.name)
def test_relative_links_resolve(page):
    """Every relative link of the documentation names a file that exists, and a heading of it after ``#``."""
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.name}: link to a missing file {target}"
        if anchor:
            assert anchor in anchors(dest), f"{page.name}: link to a missing heading {target}"


@pytest.mark.parametrize("command", ["make demo", "make test"])
def test_readme_names_the_two_setup_commands(command):
    text = README.read_text()
    assert f"\n    {command}\n" in text
    assert command.split()[1] + ":" in (README.parent / "Makefile").read_text()
