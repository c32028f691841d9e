"""The built-in corpus: synthesise the speaker's wav + bvh sources, then import them like any other corpus."""

from __future__ import annotations

import json
import os
from pathlib import Path

from racer_env import __version__
from racer_env.corpus.importer import ImportConfig, ImportResult, import_corpus
from racer_env.corpus.store import Corpus, CorpusError
from racer_env.workspace import (
    Workspace,
    check_output_directory,
    remove_stale_temporaries,
    stage_lock,
    staged_directory,
    write_json_atomic,
)


def _synth_params(minutes: float, speakers: int, seed: int, clip_seconds: float) -> dict:
    return {"minutes": minutes, "speakers": speakers, "seed": seed, "clip_seconds": clip_seconds,
            "generator": f"racer {__version__}"}


def _sources_current(directory: Path, params: dict) -> bool:
    params_file = directory / "params.json"
    if not params_file.is_file():
        return False
    recorded = json.loads(params_file.read_text(encoding="utf-8"))
    return recorded.get("params") == params and all((directory / f).is_file() for f in recorded.get("files", []))


def synth_corpus(
    workspace: str | os.PathLike | Workspace,
    minutes: float = 60.0,
    speakers: int = 4,
    seed: int = 0,
    clip_seconds: float = 30.0,
    config: ImportConfig | None = None,
    force: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> ImportResult:
    """Synthesise the built-in speaker into ``W/synth/`` and import it into ``W/corpus/``.

    Sources already synthesised with the same parameters are reused; the import is skipped when the
    corpus is current. A corpus that came from a real import is replaced only with ``force``; one from an
    earlier synthesis is replaced.
    """
    ws = Workspace.of(workspace)
    config = config or ImportConfig()
    params = _synth_params(minutes, speakers, seed, clip_seconds)
    check_output_directory(ws.root, "workspace")
    with stage_lock(ws.root, "corpus"):
        remove_stale_temporaries(ws.root)
        return _synth_locked(ws, config, params, minutes, speakers, seed, clip_seconds, force, workers, progress)


def _synth_locked(ws: Workspace, config: ImportConfig, params: dict, minutes: float, speakers: int, seed: int,
                  clip_seconds: float, force: bool, workers: int | None, progress: bool) -> ImportResult:
    from racer_env.corpus.synth import synthesize_sources

    if not _sources_current(ws.synth, params):
        with staged_directory(ws.synth) as tmp:
            infos = synthesize_sources(tmp, minutes=minutes, speakers=speakers, seed=seed,
                                       clip_seconds=clip_seconds, progress=progress)
            files = sorted(str(p.relative_to(tmp)) for i in infos for p in (i.wav, i.bvh, i.json))
            write_json_atomic(tmp / "params.json", {"params": params, "files": files})
    if (ws.corpus / "manifest.json").is_file() and not force:
        try:
            force = Corpus(ws.corpus).manifest.get("source", {}).get("kind") == "synth"
        except CorpusError:
            pass  # unreadable: import_corpus says so and asks for --force
    return import_corpus(ws.synth, ws, config, force=force, workers=workers, progress=progress,
                         source_info={"kind": "synth", "params": params})
