"""``racer benchmark W --algo A``: an offline RL algorithm on the dataset tiers, scored on the held-out clips.

For every tier (``racer dataset build W --tier T``, built when missing) and seed, the algorithm is trained on the
tier's dataset (``W/agents/bench-<algo>-<tier>-s<seed>/``; a finished run is reused, so the same command twice gives
the same numbers at no cost) and rolled out on the whole test clips by ``racer evaluate``. Reported per tier:

* the **normalised score**: ``100 x minari.get_normalized_score(dataset, return)`` of each clip's return (the sum of
  its rewards; 0: uniformly random codes, 100: the human speaker's codes; averaged over clips it is the score of the
  mean return, as D4RL's; ``racer_env.dataset.builder.SCORE_PROTOCOL``);
* the key metrics: mean reward (per clip), stroke F1 (pooled over the clips; built-in corpus), sync (per clip) and
  FGD (pooled);
* 95 % bootstrap intervals: per-clip figures resample the seeds and the clips together (2,000 resamples: a
  seed-and-clip grid mean each), pooled figures the seeds (none with a single seed).

``--algo`` takes racer-cql, bc (here it clones every episode of the tier, as D4RL's BC does),
``d3rlpy:<Name>``, the online dqn and actor-critic (they learn from the environment,
not a dataset: one run per seed, reported under every tier), or ``module:Class``: any class with a constructor that
needs no arguments, the agent protocol (``act(observation) -> code``; ``reset()``, ``observe_reward(r)``, ``obs_cfg``
and ``name`` optional) and ``fit(dataset)`` (the Minari dataset; ``seed``, ``steps`` and ``device`` are passed when
``fit`` accepts them; a user's class is fitted again on every run). The JSON result holds every per-seed value and the protocol (corpus checksum, dataset ids and
checksums, reference scores, steps, seeds, clips, code version), so that two published numbers can be checked for
comparability.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from racer_agents.agent import Agent
from racer_env.dataset.builder import (
    SCORE_PROTOCOL,
    TIERS,
    DatasetInfo,
    check_tier,
    code_permalink,
    minari_root,
)
from racer_env.envs.episode_data import ObservationConfig
from racer_env.errors import RacerError
from racer_env.workspace import Workspace, stage_lock, strict_json, write_json_atomic, write_text_atomic

BUILT_IN = ("racer-cql", "bc", "dqn", "actor-critic")
ONLINE = ("dqn", "actor-critic")
RESAMPLES = 2000  # bootstrap resamples of each interval
METRICS = ("normalised_score", "mean_reward", "stroke_f1", "sync", "fgd")
PER_CLIP = ("normalised_score", "mean_reward", "sync")  # the rest are pooled over the clips


@dataclass(frozen=True)
class Protocol:
    """What a benchmark run is: the comparability key of its numbers."""

    algo: str
    tiers: tuple[str, ...]
    seeds: tuple[int, ...]
    steps: int | None
    preset: str
    batch_size: int | None = None  # offline algorithms' batch (None: the preset's)
    split: str = "test"


class UserAgent(Agent):
    """A user's ``module:Class`` seen through the agent protocol (the optional methods default to nothing)."""

    def __init__(self, inner, name: str, n_codes: int) -> None:
        self.inner, self.name, self.n_codes = inner, name, n_codes
        self.obs_cfg = getattr(inner, "obs_cfg", ObservationConfig())

    @property
    def reads_reward(self) -> bool:
        """The user's class's own ``reads_reward`` if it sets one; else True when it has ``observe_reward`` (it may
        condition on each step's reward: the step-by-step rollout, as before the attribute existed), False when it
        has none. Users' agents are rolled out one clip at a time (``batched`` False)."""
        if hasattr(self.inner, "reads_reward"):
            return bool(self.inner.reads_reward)
        return callable(getattr(self.inner, "observe_reward", None))

    def reset(self) -> None:
        if hasattr(self.inner, "reset"):
            self.inner.reset()

    def act(self, observation: dict) -> int:
        return self.inner.act(observation)  # (checked by the rollout: an integer code in range)

    def observe_reward(self, reward: float) -> None:
        if hasattr(self.inner, "observe_reward"):
            self.inner.observe_reward(reward)


def user_class(spec: str):
    """The class of ``module:Class``, checked for ``act`` and ``fit`` and made once (its constructor must need no
    arguments); a RacerError naming what is wrong."""
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise RacerError(f"--algo {spec}: expected module:Class, e.g. mypackage.agents:MyAgent")
    _importable_from_the_working_directory()
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as err:
        raise RacerError(f"--algo {spec}: cannot import {module_name} ({err})") from None
    except AttributeError:
        raise RacerError(f"--algo {spec}: module {module_name} has no {class_name}") from None
    return checked_class(cls, f"--algo {spec}: ")


def _importable_from_the_working_directory() -> None:
    """Put the working directory on ``sys.path`` (last: it never shadows an installed module) as ``python -m`` does:
    the ``racer`` script's own directory is on the path instead, so ``--algo mymodule:MyAgent`` did not import
    from where the user stands without ``PYTHONPATH=.``."""
    cwd = os.getcwd()
    if not any(entry in ("", ".") or os.path.abspath(entry) == cwd for entry in sys.path):
        sys.path.append(cwd)
        importlib.invalidate_caches()


def checked_class(cls: type, where: str = "") -> type:
    """``cls`` if it has the ``act`` and ``fit`` a benchmark agent needs and can be made without arguments (it is
    made once here, before any tier is built); else a RacerError naming what is wrong."""
    if not isinstance(cls, type):
        raise RacerError(f"{where}{cls!r} is not a class")
    missing = [m for m in ("act", "fit") if not callable(getattr(cls, m, None))]
    if missing:
        raise RacerError(f"{where}{cls.__qualname__} lacks {' and '.join(missing)} (a benchmark agent needs "
                         f"act(observation) -> code and fit(dataset))")
    try:
        inspect.signature(cls).bind()
    except TypeError as err:
        raise RacerError(f"{where}{cls.__qualname__}() cannot be made without arguments ({err}); a benchmark agent's "
                         f"constructor takes none") from None
    except ValueError:  # (no signature to inspect: a class made in C)
        pass
    return cls


def resolve_algo(algo: str | type) -> tuple[str, type | None]:
    """(the algorithm's name, the user's class or None): ``algo`` is a built-in name, ``d3rlpy:<Name>``,
    ``module:Class``, or (from Python) the class itself."""
    if isinstance(algo, type):
        return f"{algo.__module__}:{algo.__qualname__}", checked_class(algo)
    if algo.startswith("d3rlpy:"):
        from racer_agents.algorithms import check_d3rlpy_algorithm as check_algorithm

        try:
            check_algorithm(algo.split(":", 1)[1])
        except RacerError as err:
            raise RacerError(f"--algo {algo}: {err}") from None
        return algo, None
    if algo in BUILT_IN:
        return algo, None
    if ":" in algo:
        return algo, user_class(algo)
    raise RacerError(f"--algo must be one of {', '.join(BUILT_IN)}, d3rlpy:<Name> or module:Class, got {algo!r}")


def agent_name(algo: str, tier: str | None, seed: int) -> str:
    """``bench-<algo>-<tier>-s<seed>`` (online agents: no tier), a directory name."""
    slug = algo.replace(":", "-").replace(".", "-")
    return f"bench-{slug}" + (f"-{tier}" if tier else "") + f"-s{seed}"


def train_one(ws: Workspace, algo: str, user: type | None, tier: str, dataset_id: str, seed: int, steps: int | None,
              preset: str, device: str, progress: bool, batch_size: int | None = None) -> Agent | str:
    """Train ``algo`` on one tier and seed; the trained agent's name in W/agents (or the fitted user agent)."""
    from racer_agents.train import agent_config_for, train_agent

    if user is not None:
        return _fit_user(ws, algo, user, tier, dataset_id, seed, steps, device)
    if algo in ONLINE:
        from racer_agents.online import online_config_for

        name = agent_name(algo, None, seed)
        train_agent(ws, online_config_for(preset, algo=algo, steps=steps, seed=seed, agent_name=name), device=device,
                    progress=progress)
        return name
    name = agent_name(algo, tier, seed)
    clone = "all" if algo == "bc" else None  # (bc clones the whole tier, as D4RL's BC)
    train_agent(ws, agent_config_for(preset, algo=algo, steps=steps, seed=seed, dataset=dataset_id, agent_name=name,
                                     batch_size=batch_size, bc_episodes=clone), device=device, progress=progress)
    return name


def _fit_user(ws: Workspace, algo: str, cls: type, tier: str, dataset_id: str, seed: int, steps: int | None,
              device: str) -> Agent:
    import minari
    import torch

    from racer_env.envs.episode_data import load_env_data

    np.random.seed(seed)  # (a user class that draws from the global generators is seeded too)
    torch.manual_seed(seed)
    inner = cls()
    wanted = inspect.signature(inner.fit).parameters
    given = {k: v for k, v in (("seed", seed), ("steps", steps), ("device", device)) if k in wanted}
    with minari_root(ws):
        inner.fit(minari.load_dataset(dataset_id), **given)
    return UserAgent(inner, agent_name(algo, tier, seed), load_env_data(str(ws.root), device).n_codes)


def run_benchmark(workspace: str | Workspace, algo: str | type, tiers: tuple[str, ...] = TIERS, seeds: int = 3,
                  steps: int | None = None, preset: str = "demo", device: str = "cpu",
                  progress: bool = True, batch_size: int | None = None) -> dict:
    """Train ``algo`` (a name, ``module:Class``, or a class) on every tier and seed, evaluate on the test clips, and
    summarise; the result as a dict (also written to :func:`result_path`, ``.json`` and ``.md``)."""
    ws = Workspace.of(workspace)
    algo, user = resolve_algo(algo)  # (checked before any work)
    tiers = tuple(dict.fromkeys(check_tier(t) for t in tiers))
    if seeds < 1:
        raise RacerError(f"--seeds must be >= 1, got {seeds}")
    protocol = Protocol(algo, tiers, tuple(range(seeds)), steps, preset, batch_size)
    # One benchmark (or evaluation) of a workspace at a time: its lock is taken before any work, so that a second
    # one is refused at once, not at its evaluation after hours of training.
    with stage_lock(ws.root / "eval", "evaluate"):
        return _run(ws, protocol, user, device, progress)


def _run(ws: Workspace, protocol: Protocol, user: type | None, device: str, progress: bool) -> dict:
    """The benchmark of ``protocol`` (run_benchmark, under the evaluation lock)."""
    from racer_agents.evaluate import evaluate
    from racer_agents.tiers import build_tier

    algo, tiers, steps, preset, batch_size = (protocol.algo, protocol.tiers, protocol.steps, protocol.preset,
                                              protocol.batch_size)
    datasets = {}
    for tier in tiers:
        built = build_tier(ws, tier, preset=preset, device=device, progress=progress)
        with minari_root(ws):
            import minari

            info = DatasetInfo.of(minari.load_dataset(built["id"]))
        datasets[tier] = {"id": built["id"], "inputs_sha256": info.inputs_sha256, "ref_min_score": info.ref_min_score,
                          "ref_max_score": info.ref_max_score}
    agents: dict[tuple[str, int], Agent | str] = {}
    for tier in tiers:
        for seed in protocol.seeds:
            agents[tier, seed] = train_one(ws, algo, user, tier, datasets[tier]["id"], seed, steps, preset, device,
                                           progress, batch_size)
    systems = list(dict.fromkeys(agents.values()))  # (online agents: one per seed, shared by the tiers)
    result = evaluate(ws, systems, split=protocol.split, device=device, progress=progress, bootstrap=1)
    from racer_env.envs.episode_data import load_env_data

    data = load_env_data(str(ws.root), device)
    steps_per_clip = np.array([data.clip(c).n_codes - 1 for c in result["clip_ids"]], dtype=np.float64)
    report = _summarise(result, agents, datasets, protocol, steps_per_clip)
    report["protocol"] = {**report["protocol"], "corpus_sha256": _corpus_sha(ws), "code": code_permalink(),
                          "score": SCORE_PROTOCOL, "clips": result["clip_ids"]}
    out = result_path(ws, protocol)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, report)
    write_text_atomic(out.with_suffix(".md"), markdown(report))
    return report


def _corpus_sha(ws: Workspace) -> str:
    from racer_env.corpus.store import Corpus

    return Corpus.load(ws).checksum


def _summarise(result: dict, agents: dict, datasets: dict, protocol: Protocol, steps_per_clip: np.ndarray) -> dict:
    """Per tier: every seed's figures and the point estimates with their bootstrap intervals."""
    tiers = {}
    for tier in protocol.tiers:
        ref = datasets[tier]
        per_seed = {}
        for seed in protocol.seeds:
            agent = agents[tier, seed]
            name = agent if isinstance(agent, str) else agent.name
            clips = result["per_clip"][name]
            rewards = np.asarray(clips["mean_reward"], dtype=np.float64)
            returns = rewards * steps_per_clip
            pooled = result["systems"][name]
            per_seed[str(seed)] = {
                "agent": name,
                "per_clip": {"normalised_score": (100 * _normalised(returns, ref)).tolist(),
                             "return": returns.tolist(), "mean_reward": rewards.tolist(),
                             "sync": list(clips["sync"])},
                "stroke_f1": pooled.get("stroke_f1"), "fgd": pooled.get("fgd")}
        tiers[tier] = {"dataset": ref, "per_seed": per_seed, "summary": _intervals(per_seed, protocol.seeds)}
    return {"protocol": {"algo": protocol.algo, "tiers": list(protocol.tiers), "seeds": list(protocol.seeds),
                         "steps": protocol.steps, "preset": protocol.preset, "batch_size": protocol.batch_size,
                         "split": protocol.split,
                         "datasets": {t: datasets[t] for t in protocol.tiers}, "resamples": RESAMPLES},
            "tiers": tiers}


def _normalised(values: np.ndarray, ref: dict) -> np.ndarray:
    """minari.get_normalized_score's formula on the dataset's reference scores."""
    return (values - ref["ref_min_score"]) / (ref["ref_max_score"] - ref["ref_min_score"])


def _intervals(per_seed: dict, seeds: tuple[int, ...]) -> dict:
    """{metric: [point, low, high]}: per-clip metrics bootstrapped over seeds x clips, pooled ones over seeds (with
    one seed the bounds are None, and ``no_interval`` says why for each such metric)."""
    rng = np.random.default_rng(0)
    out: dict[str, list | None] = {}
    for metric in PER_CLIP:
        grid = np.array([per_seed[str(s)]["per_clip"][metric] for s in seeds], dtype=np.float64)  # (S, C)
        s_idx = rng.integers(0, grid.shape[0], (RESAMPLES, grid.shape[0]))
        c_idx = rng.integers(0, grid.shape[1], (RESAMPLES, grid.shape[1]))
        means = grid[s_idx[:, :, None], c_idx[:, None, :]].mean(axis=(1, 2))
        out[metric] = [float(grid.mean()), *map(float, np.percentile(means, [2.5, 97.5]))]
    for metric in ("stroke_f1", "fgd"):
        values = np.array([per_seed[str(s)][metric] for s in seeds if per_seed[str(s)][metric] is not None])
        if len(values) < 2:  # (no interval over seeds from one seed: the point alone)
            out[metric] = None if len(values) == 0 else [float(values[0]), None, None]
            out.setdefault("no_interval", {})[metric] = (
                "no value from any seed" if len(values) == 0 else
                f"pooled over the clips, so its interval is over seeds, and {len(values)} seed gave a value")
            continue
        means = values[rng.integers(0, len(values), (RESAMPLES, len(values)))].mean(axis=1)
        out[metric] = [float(values.mean()), *map(float, np.percentile(means, [2.5, 97.5]))]
    return out


def format_interval(v: list | None, digits: int = 3) -> str:
    """``point [low, high]``; the point alone without an interval; n/a for no value."""
    if v is None:
        return "n/a"
    if v[1] is None:
        return f"{v[0]:.{digits}f}"
    return f"{v[0]:.{digits}f} [{v[1]:.{digits}f}, {v[2]:.{digits}f}]"


def markdown(report: dict) -> str:
    """The result table: one row per tier."""
    p = report["protocol"]
    rows = ["| tier | normalised score | mean reward | stroke F1 | sync | FGD |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for tier, t in report["tiers"].items():
        cells = []
        for metric in METRICS:
            v = t["summary"][metric]
            digits = 1 if metric == "normalised_score" else 3
            cells.append(format_interval(v, digits))
        rows.append(f"| {tier} | " + " | ".join(cells) + " |")
    return "\n".join([
        (f"racer benchmark: `{p['algo']}`, seeds {p['seeds']}, steps {p['steps'] or 'preset default'} "
        f"(preset {p['preset']}), {p['split']} split ({len(p.get('clips', []))} whole clips)"), "",
        *rows, "",
        ("Normalised score of the clips' return: 0 = uniformly random codes, 100 = the human speaker's codes. "
         "Brackets: 95 % bootstrap interval over seeds and clips (stroke F1, FGD: over seeds)."), ""])


def print_report(report: dict, as_json: bool, file=None) -> None:
    """The report as strict JSON or as the markdown table, on ``file`` (default: stdout)."""
    print(strict_json(report) if as_json else markdown(report), file=file or sys.stdout)


def result_path(workspace: str | Path, protocol: Protocol | dict) -> Path:
    """Where run_benchmark writes the result of ``protocol`` (or a report's protocol dict):
    ``W/benchmark/<algo>_<tiers>_seeds<N>_steps<S>_<preset>[_batch<B>].json``. Everything that distinguishes two
    runs' numbers is in the name, so that a run never replaces the results of another (the same settings: the same
    file, and the same numbers). The tiers in their canonical order, ``all`` for the six."""
    p = protocol if isinstance(protocol, dict) else {"algo": protocol.algo, "tiers": protocol.tiers,
                                                     "seeds": protocol.seeds, "steps": protocol.steps,
                                                     "preset": protocol.preset, "batch_size": protocol.batch_size}
    algo = p["algo"].replace(":", "-").replace("/", "-")
    tiers = "all" if set(p["tiers"]) == set(TIERS) else "+".join(t for t in TIERS if t in p["tiers"])
    name = f"{algo}_{tiers}_seeds{len(p['seeds'])}_steps{p['steps'] or 'default'}_{p['preset']}"
    if p["batch_size"]:
        name += f"_batch{p['batch_size']}"
    return Workspace.of(workspace).root / "benchmark" / f"{name}.json"
