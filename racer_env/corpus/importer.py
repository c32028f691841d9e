"""Import a directory of ``name.wav`` + ``name.bvh`` pairs (the GENEA/Trinity layout) into ``W/corpus/``.

``SRC`` holds pairs directly (speaker = the directory's name) and/or one subdirectory per speaker holding
pairs. Audio may be .wav, .flac or .ogg at any rate and channel count; motion any BVH whose skeleton maps
to the upper body (see :mod:`racer_env.motion.upper_body`) at any frame rate. Each pair becomes one clip:
upper-body rotations resampled to ``fps`` and speech features at one frame per motion frame, trimmed to a
whole number of code steps.

Bad input stops the import with one error that lists every bad file and its problem; the corpus is built
in a temporary directory and renamed into place only when everything succeeded.
"""

from __future__ import annotations

import os
import signal
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from racer_env import __version__
from racer_env.audio.features import (
    AudioError,
    AudioFeatureConfig,
    align_to_code_steps,
    audio_features,
    load_audio,
)
from racer_env.corpus.store import FORMAT_VERSION, Corpus, CorpusError, NormStats
from racer_env.errors import RacerError
from racer_env.motion.bvh import BvhError
from racer_env.motion.skeleton import Skeleton
from racer_env.motion.upper_body import UnmappableSkeletonError, read_upper_body
from racer_env.stage import RecordedStage
from racer_env.workspace import (
    Workspace,
    check_output_directory,
    pause_point,
    remove_stale_temporaries,
    sha256_file,
    sha256_json,
    stage_lock,
    staged_directory,
    write_json_atomic,
)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")


@dataclass(frozen=True)
class ImportConfig:
    """How sources become a corpus. Recorded in the manifest; a different config rebuilds the corpus."""

    unit_mm: float = 10.0  # millimetres per BVH unit (GENEA/Trinity files are in cm)
    fps: int = 20  # motion rate of the corpus (the paper's)
    frames_per_code: int = 8  # three stride-2 VQ-VAE stages
    audio: AudioFeatureConfig = field(default_factory=AudioFeatureConfig)
    valid_frac: float = 0.1
    test_frac: float = 0.1
    seed: int = 0  # split assignment
    max_mismatch_s: float = 1.0  # audio and motion may differ by at most this; less is trimmed

    def __post_init__(self) -> None:
        if not self.unit_mm > 0:
            raise RacerError(f"unit_mm must be positive, got {self.unit_mm}")
        if not (0 <= self.valid_frac < 1 and 0 <= self.test_frac < 1 and self.valid_frac + self.test_frac < 1):
            raise RacerError(f"valid_frac + test_frac must be in [0, 1), got {self.valid_frac}, {self.test_frac}")
        if self.audio.fps != self.fps:
            raise RacerError(f"audio feature fps ({self.audio.fps}) must equal the motion fps ({self.fps})")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SourcePair:
    speaker: str
    name: str
    wav: Path
    bvh: Path

    @property
    def clip_id(self) -> str:
        return f"{self.speaker}/{self.name}"


def _pairs_in(directory: Path, speaker: str) -> tuple[list[SourcePair], list[str]]:
    audio: dict[str, list[Path]] = {}
    bvh: dict[str, Path] = {}
    for p in sorted(directory.iterdir()):
        if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS:
            audio.setdefault(p.stem, []).append(p)
        elif p.is_file() and p.suffix.lower() == ".bvh":
            bvh[p.stem] = p
    problems = []
    pairs = []
    for stem in sorted(set(audio) | set(bvh)):
        if stem not in bvh:
            problems.append(f"{audio[stem][0]}: no motion file {stem}.bvh beside it (missing pair)")
        elif stem not in audio:
            problems.append(f"{bvh[stem]}: no audio file {stem}.wav/.flac/.ogg beside it (missing pair)")
        elif len(audio[stem]) > 1:
            problems.append(f"{directory}: several audio files for {stem!r}: {[p.name for p in audio[stem]]}")
        else:
            pairs.append(SourcePair(speaker, stem, audio[stem][0], bvh[stem]))
    return pairs, problems


def problems_message(problems: list[str]) -> str:
    """One problem on one line; several as a list under "cannot import:"."""
    return problems[0] if len(problems) == 1 else "cannot import:\n  " + "\n  ".join(problems)


def find_pairs(src: str | os.PathLike) -> list[SourcePair]:
    """Audio + BVH pairs in ``src`` (speaker = its name) and its subdirectories (speaker = subdirectory)."""
    src = Path(src)
    if not src.is_dir():
        raise CorpusError(f"{src}: not a directory of wav + bvh pairs")
    pairs, problems = _pairs_in(src, src.resolve().name)
    seen = {src.resolve(): src}
    for sub in sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".")):
        real = sub.resolve()
        if real in seen:  # a symbolic link back to src or to another speaker: its clips would be imported twice
            raise CorpusError(f"{sub}: a link to {seen[real]}, whose clips are already imported; remove the link")
        seen[real] = sub
        sub_pairs, sub_problems = _pairs_in(sub, sub.name)
        pairs += sub_pairs
        problems += sub_problems
    if problems:
        raise CorpusError(problems_message(problems))
    if not pairs:
        raise CorpusError(f"{src}: no name.wav + name.bvh pairs found (audio may be .wav, .flac or .ogg)")
    return pairs


def _ignore_interrupts() -> None:
    """Worker processes leave Ctrl-C to the main process, which reports it once and cleans up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def import_pair(pair: SourcePair, config: ImportConfig) -> dict:
    """Read one pair into arrays: the clip's upper-body skeleton, rotations, audio features and a report."""
    skeleton, rotations, bvh = read_upper_body(pair.bvh, config.fps, config.unit_mm)  # (T, J, 3)
    feats = audio_features(load_audio(pair.wav, config.audio.sample_rate), config.audio,  # (T_a, F)
                           source=str(pair.wav))
    feats, rotations, report = align_to_code_steps(
        feats, rotations, config.frames_per_code, config.fps, config.max_mismatch_s, source=str(pair.wav)
    )
    report.update(src_fps=round(bvh.fps, 6), src_frames=bvh.n_frames, src_joints=bvh.skeleton.n_joints)
    return {"skeleton": skeleton, "audio": feats, "rotations": rotations.astype(np.float32), "report": report}


def _import_or_error(args: tuple[SourcePair, ImportConfig]) -> dict | str:
    pair, config = args
    try:
        return import_pair(pair, config)
    except (BvhError, AudioError, UnmappableSkeletonError, CorpusError) as err:
        return str(err)


def assign_splits(pairs: list[SourcePair], config: ImportConfig) -> dict[str, list[str]]:
    """Per speaker, a seeded shuffle into train/valid/test; speakers with < 3 clips go to train only."""
    rng = np.random.default_rng(config.seed)
    splits: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for speaker in sorted({p.speaker for p in pairs}):
        ids = sorted(p.clip_id for p in pairs if p.speaker == speaker)
        ids = [ids[i] for i in rng.permutation(len(ids))]
        n_test = max(1, round(len(ids) * config.test_frac)) if len(ids) >= 3 and config.test_frac else 0
        n_valid = max(1, round(len(ids) * config.valid_frac)) if len(ids) >= 3 and config.valid_frac else 0
        splits["test"] += ids[:n_test]
        splits["valid"] += ids[n_test:n_test + n_valid]
        splits["train"] += ids[n_test + n_valid:]
    return {k: sorted(v) for k, v in splits.items()}


@dataclass
class ImportResult:
    corpus: Corpus
    skipped: bool  # True when the corpus was already current
    reports: dict[str, dict]


def import_corpus(
    src: str | os.PathLike,
    workspace: str | os.PathLike | Workspace,
    config: ImportConfig = ImportConfig(),
    force: bool = False,
    workers: int | None = None,
    progress: bool = True,
    source_info: dict | None = None,
) -> ImportResult:
    """Import every pair under ``src`` into ``W/corpus/``.

    Skipped (``skipped=True``) when the corpus there was built from the same source bytes and config. A
    corpus built from other inputs is replaced only with ``force``.

    Raises:
        CorpusError: listing every bad file; nothing is written in that case.
    """
    ws = Workspace.of(workspace)
    src = Path(src)
    pairs = find_pairs(src)
    check_output_directory(ws.root, "workspace")
    with stage_lock(ws.root, "corpus"):
        remove_stale_temporaries(ws.root)
        return _import_locked(src, ws, pairs, config, force, workers, progress, source_info)


def _complete(corpus: Corpus) -> bool:
    """Whether every file the manifest lists is there (the stage's outputs, checked as a set: a corpus of the same
    sources with a clip file gone is imported again, not reported up to date)."""
    files = [corpus.record(c)["file"] for c in corpus.clip_ids()] + ["stats.npz"]
    return all((corpus.directory / f).is_file() for f in files)


def _import_locked(src: Path, ws: Workspace, pairs: list[SourcePair], config: ImportConfig, force: bool,
                   workers: int | None, progress: bool, source_info: dict | None) -> ImportResult:
    sources = [[p.clip_id, sha256_file(p.wav), sha256_file(p.bvh)] for p in pairs]
    stage = RecordedStage(ws.corpus, {"config": config.to_dict(), "sources": sources, "format": FORMAT_VERSION},
                          record=ws.corpus / "manifest.json", key="inputs_sha256")
    inputs_sha = stage.identity_sha
    if stage.record.is_file():
        try:
            existing = Corpus(ws.corpus)
        except CorpusError as err:
            if not force:
                raise CorpusError(f"{err}; pass --force to replace it") from None
            existing = None  # unreadable: replaced below
        if existing is not None and stage.is_current() and _complete(existing):
            return ImportResult(existing, True, existing.manifest.get("reports", {}))
        if existing is not None and not force and not stage.is_current():
            raise CorpusError(f"{ws.corpus}: a corpus built from other sources or settings is already there; "
                              f"pass --force to replace it")

    workers = max(1, min(workers or os.cpu_count() or 1, len(pairs)))
    jobs = [(p, config) for p in pairs]
    bar = tqdm(total=len(pairs), desc="import clips", unit="clip", disable=not progress)
    if workers == 1:
        results = []
        for job in jobs:
            results.append(_import_or_error(job))
            bar.update()
    else:
        pool = ProcessPoolExecutor(workers, initializer=_ignore_interrupts)
        try:
            results = []
            for r in pool.map(_import_or_error, jobs, chunksize=1):
                results.append(r)
                bar.update()
        finally:  # on Ctrl-C or an error: drop the clips not started yet instead of importing them all first
            pool.shutdown(wait=True, cancel_futures=True)
    bar.close()

    problems = [r for r in results if isinstance(r, str)]
    if problems:
        raise CorpusError(problems_message(problems))
    reference: Skeleton = results[0]["skeleton"]
    for pair, r in zip(pairs, results):
        if not r["skeleton"].same_layout(reference):
            raise CorpusError(
                f"{pair.bvh}: upper-body joints {list(r['skeleton'].names)} differ from "
                f"{pairs[0].bvh}: {list(reference.names)}; one corpus needs one skeleton layout"
            )
    splits = assign_splits(pairs, config)
    with staged_directory(ws.corpus) as tmp:
        _write_corpus(tmp, pairs, results, splits, config, inputs_sha, source_info or {"kind": "import",
                                                                                    "src": str(src)})
        pause_point("corpus-publish")
    return ImportResult(Corpus(ws.corpus), False, {p.clip_id: r["report"] for p, r in zip(pairs, results)})


def _write_corpus(
    out: Path, pairs: list[SourcePair], results: list[dict], splits: dict, config: ImportConfig,
    inputs_sha: str, source_info: dict,
) -> None:
    skeletons: dict[str, dict] = {}
    records = []
    for pair, r in zip(pairs, results):
        skel_key = sha256_json(r["skeleton"].to_dict())[:12]
        skeletons.setdefault(skel_key, r["skeleton"].to_dict())
        rel = Path("clips") / pair.speaker / f"{pair.name}.npz"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        with open(out / rel, "wb") as f:
            np.savez(f, audio=r["audio"], rotations=r["rotations"])
        records.append({
            "id": pair.clip_id,
            "speaker": pair.speaker,
            "frames": int(r["rotations"].shape[0]),
            "file": rel.as_posix(),
            "sha256": sha256_file(out / rel),
            "skeleton": skel_key,
            "source": {"wav": str(pair.wav), "wav_sha256": sha256_file(pair.wav),
                       "bvh": str(pair.bvh), "bvh_sha256": sha256_file(pair.bvh)},
        })
    train = [r for p, r in zip(pairs, results) if p.clip_id in set(splits["train"])]
    if not train:
        raise CorpusError("no clip is left for the training split; lower --valid-frac/--test-frac or add clips")
    stats = NormStats.from_arrays([r["rotations"].reshape(len(r["rotations"]), -1) for r in train],
                                  [r["audio"] for r in train])
    stats.save(out / "stats.npz")
    stats_sha = sha256_file(out / "stats.npz")
    content = {"clips": [[r["id"], r["sha256"]] for r in records], "splits": splits,
               "stats": stats_sha, "config": config.to_dict()}
    manifest = {
        "format_version": FORMAT_VERSION,
        "created_by": f"racer {__version__}",
        "fps": config.fps,
        "frames_per_code": config.frames_per_code,
        "audio_features": config.audio.to_dict(),
        "n_audio_features": config.audio.n_features,
        "joint_names": list(results[0]["skeleton"].names),
        "import_config": config.to_dict(),
        "skeletons": skeletons,
        "clips": records,
        "splits": splits,
        "stats_sha256": stats_sha,
        "inputs_sha256": inputs_sha,
        "content_sha256": sha256_json(content),
        "source": source_info,
        "reports": {p.clip_id: r["report"] for p, r in zip(pairs, results)},
    }
    write_json_atomic(out / "manifest.json", manifest)

