"""``racer dataset build W``: the reward-labelled offline dataset as a Minari dataset, in D4RL-style tiers.

Where: ``$MINARI_DATASETS_PATH`` when it is set (Minari's own convention), else ``W/datasets/``. Ids look like
``racer/<corpus>/<tier>-v0`` (``augmented``, the paper's mix, by default); an id is never overwritten: a dataset
built from the same inputs and settings is reused, otherwise the default id moves to the next free version and an
explicit ``--id`` that exists is an error.

Tiers (:data:`TIERS`): ``augmented`` (the human speaker's episodes and their augmentations), ``expert`` (the human
speaker's episodes alone), ``random`` (uniformly random codes on the same segments), and three built from an
agent's episodes by ``racer_agents.tiers``: ``medium`` (a bc agent stopped at about half the expert's normalised
score), ``medium-replay`` (what an online DQN collected until it reached that level) and ``medium-expert``
(medium + expert). Every tier records the same ``ref_min_score`` / ``ref_max_score`` (:func:`reference_scores`:
random codes and the human speaker's codes on the whole test clips), so that ``minari.get_normalized_score`` of an
agent's score is 0 for random codes and 1 for the human speaker's codes.

Per episode Minari keeps the reset options ``{"clip": clip_id, "start": step}`` (with the seed) and a per-step
``source`` info (index into the ``sources`` list of the dataset metadata), so that
``env.reset(options=...)`` and the episode's actions reproduce its observations and rewards.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import gymnasium as gym
import numpy as np

from racer_env import __version__
from racer_env.dataset.episodes import (
    AUGMENTATIONS,
    GROUND_TRUTH,
    SOURCES,
    AugmentConfig,
    Episode,
    Policy,
    clip_episodes,
    label_episodes,
    make_episodes,
    policy_episodes,
    random_episodes,
)
from racer_env.envs.episode_data import (
    AUDIO_NORMALISATION,
    EnvData,
    ObservationConfig,
    check_reward_kind,
    load_env_data,
)
from racer_env.envs.gesture import observation_space
from racer_env.errors import RacerError
from racer_env.workspace import (
    Workspace,
    check_output_directory,
    pause_point,
    remove_stale_temporaries,
    removed_if_left_empty,
    sha256_json,
    stage_lock,
    temporary_prefix,
)

DATASET_NAME = "augmented"  # the default tier
TIERS = ("augmented", "expert", "random", "medium", "medium-replay", "medium-expert")
AGENT_TIERS = ("medium", "medium-replay", "medium-expert")  # built from an agent's episodes (racer_agents.tiers)
TIER_EPISODES = {  # what each tier holds (the datasets' descriptions)
    "augmented": "the human speaker's code trajectories and their augmentations",
    "expert": "the human speaker's code trajectories",
    "random": "uniformly random codes",
    "medium": "rollouts of a bc agent stopped at about half the human speaker's normalised score",
    "medium-replay": "the episodes an online DQN collected until it reached about half the human speaker's score",
    "medium-expert": "the medium tier's rollouts and the human speaker's code trajectories",
}
#: how ref_min_score / ref_max_score are measured; recorded in every dataset's inputs, so that datasets scored
#: otherwise are rebuilt rather than mixed. A "score" (an agent's return in the benchmark) is measured the same way.
SCORE_PROTOCOL = ("return (sum of the rewards) of each whole test clip (a_0 = its first true code), averaged over "
                  "clips; ref_min: uniformly random codes (seed 0), ref_max: the human speaker's codes")
SCORE_SPLITS = ("test", "valid", "train")  # where the reference scores are measured: the first split with clips


def parse_id(dataset_id: str) -> tuple[str | None, str, int]:
    """(namespace, name, version) of a versioned Minari dataset id, by Minari's own parser; a DatasetError for an
    id Minari would not accept or one without a version."""
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        return parse_dataset_id(dataset_id)
    except (ValueError, TypeError):  # (TypeError: Minari's parser on an id without -vN)
        raise DatasetError(f"dataset id must look like 'namespace/name-v0', got {dataset_id!r}") from None


class DatasetError(RacerError):
    """A dataset that cannot be built as asked."""


@dataclass(frozen=True)
class DatasetInfo:
    """What ``racer dataset build`` records in a Minari dataset's metadata, read in this one place."""

    dataset_id: str
    inputs: dict  # everything the dataset was built from (settings and the checksums of its inputs)
    inputs_sha256: str  # its identity: a dataset of the same inputs is reused, never rebuilt
    vqvae_sha256: str
    reward_sha256: str
    sources: tuple[str, ...]  # per-step info 'source' indexes this
    ref_min_score: float  # mean return of uniformly random codes
    ref_max_score: float  # mean return of the ground truth
    reward: str  # contrastive | distance

    @classmethod
    def of(cls, dataset) -> DatasetInfo:
        """The racer metadata of a loaded Minari dataset; a DatasetError for a dataset racer did not build."""
        meta = dataset.storage.metadata
        try:
            return cls(dataset.spec.dataset_id, meta["racer_inputs"], str(meta["racer_inputs_sha256"]),
                       meta["vqvae_sha256"], meta["reward_sha256"], tuple(meta.get("sources", ())),
                       float(meta["ref_min_score"]), float(meta["ref_max_score"]),
                       str(meta.get("racer_reward", "contrastive")))
        except KeyError as err:
            raise DatasetError(f"dataset {dataset.spec.dataset_id!r} was not built by 'racer dataset build' "
                               f"(no {err.args[0]} in its metadata)") from None

    @property
    def observation(self) -> ObservationConfig:
        """The observation settings the episodes were recorded with."""
        return ObservationConfig(**self.inputs["observation"])


def datasets_root(workspace: Workspace) -> Path:
    """Where the workspace's datasets live: ``$MINARI_DATASETS_PATH`` when set, else ``W/datasets``."""
    return Path(os.environ.get("MINARI_DATASETS_PATH") or workspace.root / "datasets")


@contextmanager
def minari_root(workspace: Workspace):
    """Point Minari at W/datasets unless the user set MINARI_DATASETS_PATH."""
    if os.environ.get("MINARI_DATASETS_PATH"):
        yield Path(os.environ["MINARI_DATASETS_PATH"])
        return
    root = datasets_root(workspace)
    with _minari_pointed_at(root.resolve()):
        yield root


@contextmanager
def _minari_pointed_at(path: Path):
    """MINARI_DATASETS_PATH (Minari's only way to choose its root) set to ``path`` for the block, then restored."""
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(path)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


def default_dataset_id(workspace: Workspace, reward: str = "contrastive", tier: str = DATASET_NAME) -> str:
    """``racer/<corpus>/<tier>-v0``, e.g. ``racer/synth/augmented-v0`` (``augmented_distance`` for the distance
    reward)."""
    from racer_env.corpus.store import Corpus

    source = Corpus.load(workspace).manifest.get("source", {})
    name = "synth" if source.get("kind") == "synth" else Path(source.get("src", workspace.root.name)).name
    name = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "corpus"
    suffix = "" if reward == "contrastive" else f"_{reward}"
    return f"racer/{name}/{check_tier(tier)}{suffix}-v0"


def check_tier(tier: str) -> str:
    """``tier`` if it is one of :data:`TIERS`, else a DatasetError listing them."""
    if tier not in TIERS:
        raise DatasetError(f"unknown dataset tier {tier!r}; choose one of {', '.join(TIERS)}")
    return tier


def normalised_score(score: float, ref_min: float, ref_max: float) -> float:
    """D4RL's normalised score, x 100: 0 for random codes, 100 for the human speaker's codes."""
    if ref_max == ref_min:
        raise DatasetError(f"ref_min_score = ref_max_score = {ref_min}: the reward model scores random codes and the "
                           f"human speaker's alike on the held-out clips, so no score can be normalised")
    return 100.0 * (score - ref_min) / (ref_max - ref_min)


def _existing_inputs(dataset_id: str) -> str | None:
    """The inputs checksum of an existing dataset id, '' if it exists without one, None if absent."""
    import minari

    if dataset_id not in minari.list_local_datasets():
        return None if not minari.storage.get_dataset_path(dataset_id).exists() else ""
    try:
        return DatasetInfo.of(minari.load_dataset(dataset_id)).inputs_sha256
    except DatasetError:
        return ""  # not a racer dataset: never reused, never overwritten


def resolve_id(requested: str | None, default: str, inputs_sha: str) -> tuple[str, bool]:
    """(id to write, whether it already holds this exact dataset)."""
    from minari.dataset.minari_dataset import gen_dataset_id

    dataset_id = requested or default
    namespace, name, version = parse_id(dataset_id)
    while True:
        existing = _existing_inputs(dataset_id)
        if existing is None:
            return dataset_id, False
        if existing == inputs_sha:
            return dataset_id, True
        if requested:
            raise DatasetError(f"dataset {dataset_id!r} exists and was built from other inputs or settings; it is "
                               f"never overwritten: choose another id or version")
        version += 1
        dataset_id = gen_dataset_id(namespace, name, version)


def code_permalink() -> str:
    """The commit of this checkout when it is a git repository, else the package version."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        return f"racer {__version__} @ git {commit}"
    except (OSError, subprocess.SubprocessError):
        return f"racer {__version__}"


def build_dataset(
    workspace: str | Workspace,
    dataset_id: str | None = None,
    config: AugmentConfig | None = None,
    obs_config: ObservationConfig | None = None,
    policy: Callable[[dict], int] | None = None,
    policy_id: str | None = None,
    device: str = "cpu",
    progress: bool = True,
    reward: str = "contrastive",
    tier: str = DATASET_NAME,
    replay: list[Episode] | None = None,
    policy_info: dict | None = None,
) -> dict:
    """Build (or reuse) the workspace's Minari dataset of ``tier``; returns a summary with its id and figures.

    ``policy`` adds one rollout per ground-truth segment (the ``medium`` tiers: a :class:`Policy` or a function
    observation -> code); ``replay`` gives the episodes of the ``medium-replay`` tier; ``policy_id`` (required with
    either, e.g. an agent's checksum) identifies them, so a dataset of another policy is never mistaken for this
    one; ``policy_info`` (e.g. the score the medium agent reached) is stored in the metadata as ``racer_policy``.
    ``reward="distance"`` labels the steps with the negative pose distance to the ground truth (the distance-reward
    ablation; default id ``racer/<corpus>/augmented_distance-v0``).
    """
    check_reward_kind(reward)
    check_tier(tier)
    given = policy is not None or replay is not None
    if given != (policy_id is not None):
        raise RacerError("policy (or replay) and policy_id go together: pass both (policy_id names the policy) or "
                         "neither")
    needs = {"medium": "policy", "medium-expert": "policy", "medium-replay": "replay"}.get(tier)
    if (needs == "policy" and policy is None) or (needs == "replay" and replay is None):
        raise RacerError(f"tier {tier!r} is built from an agent's episodes: racer dataset build W --tier {tier}")
    if (replay is not None and tier != "medium-replay") or (
            policy is not None and tier not in ("medium", "medium-expert", DATASET_NAME)):
        raise RacerError(f"tier {tier!r} takes no {'replay' if replay is not None else 'policy'} episodes")
    ws = Workspace.of(workspace)
    config, obs_config = config or AugmentConfig(), obs_config or ObservationConfig()
    check_output_directory(datasets_root(ws), "dataset directory")
    start_time = time.perf_counter()
    data = load_env_data(str(ws.root), device)
    inputs = {"augment": asdict(config), "observation": asdict(obs_config), "audio": AUDIO_NORMALISATION,
              "corpus": data.corpus_sha256,
              "vqvae": data.scorer.vqvae_sha256, "reward": data.scorer.reward_sha256, "policy": policy_id,
              "tier": tier, "scores": SCORE_PROTOCOL}
    if reward != "contrastive":  # (absent for the contrastive reward: datasets built before the option stay current)
        inputs["reward_kind"] = reward
    score_split = next((sp for sp in SCORE_SPLITS if clip_episodes(data, data.split_ids(sp))), "train")
    if score_split != "test":  # (recorded, and part of the identity, only where it is not the protocol's)
        inputs["score_split"] = score_split
    inputs_sha = sha256_json(inputs)
    with minari_root(ws) as root, stage_lock(ws.root, "dataset"), removed_if_left_empty(root):
        remove_stale_temporaries(root)
        dataset_id, current = resolve_id(dataset_id, default_dataset_id(ws, reward, tier), inputs_sha)
        if current:
            return {"id": dataset_id, "skipped": True, "root": str(root)}
        episodes = tier_episodes(data, tier, config, obs_config, policy, replay)
        label_episodes(data, episodes, obs_config, progress=progress, reward=reward)
        if score_split != "test":
            warnings.warn(f"{ws.root}: no test clip; the reference scores are measured on the {score_split} clips",
                          stacklevel=2)
        ref_min, ref_max = reference_scores(data, score_split, reward)
        with _staging_root(root) as staging:
            _write(dataset_id, episodes, data, obs_config, config, inputs, inputs_sha, ref_min, ref_max, ws, reward,
                   policy_info)
            pause_point("dataset-publish")
            _publish(staging, root, dataset_id)
    counts = Counter(e.source for e in episodes)
    return {"id": dataset_id, "skipped": False, "root": str(root), "episodes": len(episodes),
            "steps": int(sum(len(e.actions) for e in episodes)), "sources": dict(counts),
            "ref_min_score": ref_min, "ref_max_score": ref_max, "seconds": time.perf_counter() - start_time,
            "policy_info": policy_info}


def tier_episodes(data: EnvData, tier: str, config: AugmentConfig, obs_config: ObservationConfig,
                  policy: Policy | Callable[[dict], int] | None = None,
                  replay: list[Episode] | None = None) -> list[Episode]:
    """The episodes (actions only) of a tier, on the training clips."""
    if tier == "medium-replay":
        return list(replay)
    human = make_episodes(data, data.split_ids("train"), config if tier == DATASET_NAME else replace(config, augment=0))
    if tier == "random":
        return random_episodes(data, human, config.seed)
    if policy is None:
        return human  # expert, augmented
    segments = [(e.clip, e.start, len(e.actions)) for e in human if e.source == GROUND_TRUTH]
    agent = policy_episodes(data, segments, policy, obs_config)
    return agent if tier == "medium" else human + agent  # medium-expert (and augmented with a policy's episodes)


def reference_scores(data: EnvData, split: str = "test", reward: str = "contrastive") -> tuple[float, float]:
    """(ref_min_score, ref_max_score) by :data:`SCORE_PROTOCOL`: the return of uniformly random codes and of the
    human speaker's codes on the whole clips of ``split``, averaged over clips."""
    truth = clip_episodes(data, data.split_ids(split))
    if not truth:
        raise DatasetError(f"split {split!r} has no clip of 2 code steps or more: no reference scores (the "
                           f"normalised score needs held-out clips)")
    random = random_episodes(data, truth, 0)
    label_episodes(data, truth + random, ObservationConfig(), progress=False, reward=reward)
    return (float(np.mean([e.rewards.sum() for e in random])), float(np.mean([e.rewards.sum() for e in truth])))


def _write(dataset_id: str, episodes: list[Episode], data: EnvData, obs_config: ObservationConfig,
           config: AugmentConfig, inputs: dict, inputs_sha: str, ref_min: float, ref_max: float,
           ws: Workspace, reward: str = "contrastive", policy_info: dict | None = None) -> None:
    """Create the Minari dataset (under the staging root Minari points at), then store our metadata."""
    with warnings.catch_warnings():  # Minari warns that no env was given: the specs are stored just below
        warnings.filterwarnings("ignore", message="env_spec is None")
        warnings.filterwarnings("ignore", message="`eval_env` is set to None")
        dataset = _create_minari_dataset(dataset_id, episodes, data, obs_config, config, reward, inputs["tier"])
    env_kwargs = {"workspace": str(ws.root.resolve()), "segment_codes": config.segment_codes, **asdict(obs_config)}
    env_id = "racer/GestureSynthesis-v0" if reward == "contrastive" else "racer/GestureSynthesisDistance-v0"
    spec, eval_spec = gym.spec(env_id), gym.spec("racer/GestureSynthesisClip-v0")
    dataset.storage.update_metadata({
        "env_spec": replace(spec, kwargs={**spec.kwargs, **env_kwargs}).to_json(),
        "eval_env_spec": replace(eval_spec, kwargs={**eval_spec.kwargs, "workspace": env_kwargs["workspace"],
                                                    **asdict(obs_config)}).to_json(),
        "ref_min_score": ref_min, "ref_max_score": ref_max, "racer_scores": SCORE_PROTOCOL,
        "racer_tier": inputs["tier"], "sources": list(SOURCES), "racer_reward": reward,
        **({"racer_policy": policy_info} if policy_info else {}),
        "racer_inputs": inputs, "racer_inputs_sha256": inputs_sha,
        "vqvae_sha256": inputs["vqvae"], "reward_sha256": inputs["reward"], "corpus_sha256": inputs["corpus"],
    })


@contextmanager
def _staging_root(root: Path):
    """A hidden Minari root inside ``root`` (Minari lists no hidden directories) that Minari writes to while the
    block runs; removed afterwards whatever happens, so a failed or interrupted build leaves nothing behind and
    never touches another run's dataset."""
    staging = Path(tempfile.mkdtemp(prefix=temporary_prefix(root / "build"), dir=root)).resolve()
    try:
        with _minari_pointed_at(staging):
            yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(staging: Path, root: Path, dataset_id: str) -> None:
    """Move the dataset built under ``staging`` to ``root`` with one rename, which fails rather than replace a
    dataset another run published under the same id meanwhile (a build that shares MINARI_DATASETS_PATH with
    another workspace; builds of one workspace hold its lock)."""
    for level in reversed(Path(dataset_id).parents[:-1]):  # the namespace directories, outermost first
        (root / level).mkdir(exist_ok=True)
        meta = root / level / "namespace_metadata.json"
        if not meta.exists():
            shutil.copyfile(staging / level / "namespace_metadata.json", meta)
    try:
        os.rename(staging / dataset_id, root / dataset_id)
    except OSError as err:
        if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        raise DatasetError(f"{root / dataset_id}: another run published dataset {dataset_id!r} while this one was "
                           f"building it; run the command again (it reuses an identical dataset, or takes the next "
                           f"version)") from None


def _create_minari_dataset(dataset_id: str, episodes: list[Episode], data: EnvData, obs_config: ObservationConfig,
                           config: AugmentConfig, reward: str = "contrastive", tier: str = DATASET_NAME):
    import minari
    from minari.data_collector import EpisodeBuffer

    source_index = {s: i for i, s in enumerate(SOURCES)}
    buffers = [
        EpisodeBuffer(
            id=i, seed=config.seed, options={"clip": e.clip, "start": int(e.start)},
            observations=e.observations, actions=e.actions.astype(np.int64), rewards=e.rewards.astype(np.float64),
            terminations=np.arange(len(e.actions)) == len(e.actions) - 1,
            truncations=np.zeros(len(e.actions), dtype=bool),
            infos={"source": np.full(len(e.actions), source_index[e.source], dtype=np.int64)},
        )
        for i, e in enumerate(episodes)
    ]
    return minari.create_dataset_from_buffers(
        dataset_id=dataset_id, buffer=buffers, env=None,
        observation_space=observation_space(data.n_codes, data.n_audio_features, data.frames_per_code, obs_config),
        action_space=gym.spaces.Discrete(data.n_codes),
        algorithm_name=f"racer {tier} tier",
        author="racer contributors", author_email="racer@users.noreply.github.com",
        code_permalink=code_permalink(),
        description=(f"RACER gesture MDP offline data, {tier} tier: {TIER_EPISODES[tier]}, on every training "
                     f"{'clip' if config.segment_codes is None else f'segment of {config.segment_codes} codes'}"
                     + (f" ({config.augment} augmented episodes per segment: {', '.join(AUGMENTATIONS)})"
                        if tier == DATASET_NAME else "") + ", rewards from "
                     f"{'the contrastive reward model' if reward == 'contrastive' else 'the negative pose distance to the ground truth'}. Per-step info "
                     f"'source' indexes metadata 'sources'; episode metadata 'options' are the reset options."),
        requirements=[f"racer>={__version__}"], data_format="hdf5",
    )
