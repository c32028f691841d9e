"""The corpus as stored in a workspace (``W/corpus/``) and read back.

Layout::

    W/corpus/manifest.json        format, config, skeletons, clips (with checksums), splits, stats checksum
    W/corpus/stats.npz            normalisation statistics over the training split
    W/corpus/clips/<speaker>/<name>.npz   audio (T, F) float32, rotations (T, J, 3) float32

Motion is stored as per-joint rotation vectors (exponential map, radians) of the upper-body joints at
``fps``; T is a whole number of code steps. Every clip file's SHA-256 is in the manifest and checked on load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from racer_env.errors import RacerError
from racer_env.motion.skeleton import Skeleton
from racer_env.workspace import Workspace, sha256_file

FORMAT_VERSION = 2  # 2: onset strength aligned with the log-mel frames
SPLITS = ("train", "valid", "test")
#: standard deviation floor used for normalisation, so near-constant channels (a joint that never
#: moves in the corpus) are not blown up into noise.
STD_FLOOR = 1e-3


class CorpusError(RacerError):
    """A corpus that cannot be built or read; the message names the file and the problem."""


@dataclass(eq=False)
class Clip:
    """One clip: aligned speech features and upper-body motion.

    Attributes:
        id: ``"<speaker>/<name>"``, unique in the corpus.
        speaker: speaker name.
        audio: (T, F) float32 speech features, one frame per motion frame.
        rotations: (T, J, 3) float32 joint rotation vectors (radians) relative to the parent.
        fps: motion (and feature) frame rate.
        skeleton: the upper-body skeleton of this clip's speaker.
        source: the source files (``wav``, ``bvh``) and their checksums.
    """

    id: str
    speaker: str
    audio: np.ndarray
    rotations: np.ndarray
    fps: float
    skeleton: Skeleton
    source: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return self.rotations.shape[0]

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps

    def motion_features(self) -> np.ndarray:
        """(T, J*3) flattened rotation vectors: the VQ-VAE's input before normalisation."""
        return self.rotations.reshape(self.n_frames, -1)


@dataclass(frozen=True, eq=False)
class NormStats:
    """Per-channel mean and std over the training split (std floored at ``STD_FLOOR``)."""

    motion_mean: np.ndarray  # (J*3,)
    motion_std: np.ndarray  # (J*3,)
    audio_mean: np.ndarray  # (F,)
    audio_std: np.ndarray  # (F,)

    @classmethod
    def from_arrays(cls, motions: list[np.ndarray], audios: list[np.ndarray]) -> NormStats:
        """Statistics over clips' (T, J*3) motion features and (T, F) audio features."""
        motion = np.concatenate(motions).astype(np.float64)
        audio = np.concatenate(audios).astype(np.float64)
        return cls(
            motion_mean=motion.mean(0).astype(np.float32),
            motion_std=np.maximum(motion.std(0), STD_FLOOR).astype(np.float32),
            audio_mean=audio.mean(0).astype(np.float32),
            audio_std=np.maximum(audio.std(0), STD_FLOOR).astype(np.float32),
        )

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:
            np.savez(f, **self.__dict__)

    @classmethod
    def load(cls, path: Path) -> NormStats:
        with np.load(path) as z:
            return cls(**{k: z[k] for k in ("motion_mean", "motion_std", "audio_mean", "audio_std")})

    def normalise_motion(self, x: np.ndarray) -> np.ndarray:
        return (x - self.motion_mean) / self.motion_std

    def denormalise_motion(self, x: np.ndarray) -> np.ndarray:
        return x * self.motion_std + self.motion_mean

    def normalise_audio(self, x: np.ndarray) -> np.ndarray:
        return (x - self.audio_mean) / self.audio_std


class Corpus:
    """A corpus read from ``W/corpus/``; clips are loaded on demand and checked against the manifest."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        manifest_path = self.directory / "manifest.json"
        if not manifest_path.is_file():
            raise CorpusError(
                f"{self.directory}: no corpus here (manifest.json missing); build one with "
                f"'racer corpus synth W' or 'racer corpus import SRC W'"
            )
        try:
            self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise CorpusError(f"{manifest_path}: corrupt manifest ({err})") from None
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise CorpusError(
                f"{manifest_path}: corpus format {self.manifest.get('format_version')} but this version of "
                f"racer reads format {FORMAT_VERSION}; rebuild the corpus"
            )
        self._records = {c["id"]: c for c in self.manifest["clips"]}
        self._skeletons = {k: Skeleton.from_dict(v) for k, v in self.manifest["skeletons"].items()}
        self._stats: NormStats | None = None

    @classmethod
    def load(cls, workspace: str | Path | Workspace) -> Corpus:
        ws = Workspace.of(workspace)
        return cls(ws.corpus)

    # -- metadata ------------------------------------------------------------------------------------
    @property
    def fps(self) -> float:
        return float(self.manifest["fps"])

    @property
    def frames_per_code(self) -> int:
        return int(self.manifest["frames_per_code"])

    @property
    def joint_names(self) -> list[str]:
        return list(self.manifest["joint_names"])

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)

    @property
    def n_audio_features(self) -> int:
        return int(self.manifest["n_audio_features"])

    @property
    def skeleton(self) -> Skeleton:
        """The corpus's reference skeleton (the first clip's speaker)."""
        return self._skeletons[self.manifest["clips"][0]["skeleton"]]

    @property
    def checksum(self) -> str:
        """Identity of the corpus content: the SHA-256 of its clip checksums, splits and config."""
        return self.manifest["content_sha256"]

    def clip_ids(self, split: str | None = None) -> list[str]:
        if split is None:
            return list(self._records)
        if split not in SPLITS:
            raise RacerError(f"split must be one of {SPLITS}, got {split!r}")
        return list(self.manifest["splits"][split])

    def record(self, clip_id: str) -> dict:
        try:
            return self._records[clip_id]
        except KeyError:
            raise KeyError(f"no clip {clip_id!r} in {self.directory}; e.g. {list(self._records)[:3]}") from None

    @property
    def stats(self) -> NormStats:
        if self._stats is None:
            path = self.directory / "stats.npz"
            if sha256_file(path) != self.manifest["stats_sha256"]:
                raise CorpusError(f"{path}: checksum differs from the manifest (file changed or corrupt)")
            self._stats = NormStats.load(path)
        return self._stats

    # -- clips ---------------------------------------------------------------------------------------
    def clip(self, clip_id: str) -> Clip:
        """Load one clip, verifying its checksum."""
        rec = self.record(clip_id)
        path = self.directory / rec["file"]
        if not path.is_file():
            raise CorpusError(f"{path}: clip file missing")
        if sha256_file(path) != rec["sha256"]:
            raise CorpusError(f"{path}: checksum differs from the manifest (file changed or corrupt)")
        with np.load(path) as z:
            audio, rotations = z["audio"], z["rotations"]
        return Clip(
            id=clip_id,
            speaker=rec["speaker"],
            audio=audio,
            rotations=rotations,
            fps=self.fps,
            skeleton=self._skeletons[rec["skeleton"]],
            source=rec["source"],
        )

    def clips(self, split: str | None = None) -> list[Clip]:
        return [self.clip(i) for i in self.clip_ids(split)]

    # -- summary -------------------------------------------------------------------------------------
    def summary(self) -> dict:
        """What ``racer corpus info`` prints."""
        recs = self.manifest["clips"]
        minutes = lambda ids: round(sum(self._records[i]["frames"] for i in ids) / self.fps / 60.0, 3)
        return {
            "directory": str(self.directory),
            "clips": len(recs),
            "minutes": minutes([r["id"] for r in recs]),
            "speakers": sorted({r["speaker"] for r in recs}),
            "fps": self.fps,
            "frames_per_code": self.frames_per_code,
            "n_joints": self.n_joints,
            "joint_names": self.joint_names,
            "n_audio_features": self.n_audio_features,
            "splits": {s: {"clips": len(ids), "minutes": minutes(ids)} for s, ids in self.manifest["splits"].items()},
            "source": self.manifest.get("source", {}),
            "content_sha256": self.checksum,
        }
