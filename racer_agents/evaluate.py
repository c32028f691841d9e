"""``racer evaluate W [--agent NAME] [--split test]``: agents beside reference systems on whole held-out clips.

Every system generates the motion of every clip of the split through the environment (whole clips, a_0 = the
clip's first ground-truth code) and is compared with the clip's real motion. Reference systems come first, so
that every agent figure can be read against what no learning, and what a perfect code choice, achieve:

* ``ground_truth``: the corpus motion itself (its mean reward: the reward model on the real motion);
* ``reconstruction``: the clip's ground-truth codes decoded by the VQ-VAE: the ceiling of any code-choosing agent;
* ``random``: uniformly random codes;
* ``nearest_neighbour``: at each step the code the speaker used at the training step with the nearest speech
  context (:mod:`racer_agents.retrieval`): retrieval without learning;
* then each agent asked for (default: every agent of the workspace; none is needed).

Figures: per-clip values are in the JSON (``per_clip``; on the built-in speaker also each clip's stroke and nod
counts, ``stroke_hits``, ``stroke_detected``, ``stroke_annotated`` and likewise ``nod_*``); each table figure is
computed over the clips of the split, and ``ci95`` holds its bootstrap 95 % interval over clips (the clips resampled with replacement, the figure
recomputed, the 2.5th and 97.5th percentiles). Corpora from the built-in speaker also get the rule-recovery
metrics (:mod:`racer_env.metrics.rules`). Audio beats are the onsets librosa detects in each clip's stored
onset-strength feature (so no raw audio is needed). Results go to ``W/eval/<split>.json`` and ``.md``; every
number carries its metric parameters.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from racer_agents.agent import Agent, RandomAgent, list_agents, load_agent
from racer_agents.generate import decode_long
from racer_agents.retrieval import NearestNeighbourAgent
from racer_env.corpus.store import Clip, Corpus
from racer_env.dataset.builder import normalised_score, reference_scores
from racer_env.envs.episode_data import (
    ClipData,
    EnvData,
    ObservationConfig,
    load_env_data,
    reward_input,
    rollout_codes,
    rollout_codes_batch,
)
from racer_env.envs.gesture import GestureSynthesisEnv
from racer_env.errors import RacerError
from racer_env.metrics import fgd as fgd_mod
from racer_env.metrics import rules
from racer_env.metrics.motion import audio_beats, l1_diversity, mad, maje
from racer_env.metrics.speech import speech_metrics
from racer_env.metrics.sync import SMOOTHING_S
from racer_env.motion.upper_body import find_roles
from racer_env.reward.scorer import RewardScorer
from racer_env.workspace import (
    Workspace,
    pause_point,
    remove_stale_temporaries,
    stage_lock,
    temporary_prefix,
    write_json_atomic,
    write_text_atomic,
)

REFERENCE_SYSTEMS = ("ground_truth", "reconstruction", "random", "nearest_neighbour")
#: metrics of every corpus (the first table).
METRICS = ("maje_mm", "mad_mm_s2", "fgd", "raw_fgd", "pmb_pct", "beat_align", "sync", "l1_div_mm", "jerk_mm_s3",
           "mean_reward")
#: rule-recovery metrics of corpora with synthetic annotations (the second table; None elsewhere).
RULE_METRICS = ("stroke_precision", "stroke_recall", "stroke_f1", "nod_f1", "rest_in_pauses_pct",
                "stroke_size_loudness_spearman")
#: per-clip means (the rest are pooled over the clips: FGD, diversity, rule metrics).
PER_CLIP = ("maje_mm", "mad_mm_s2", "pmb_pct", "beat_align", "sync", "jerk_mm_s3", "mean_reward")
BOOTSTRAP = 200  # resamples of the clips for each 95 % interval
RAW_FGD_BOOTSTRAP = 30  # of those, the first ones also recompute raw-space FGD (a 360-dim matrix square root each)


class _GroundTruthCodes(Agent):
    """Replays a clip's own codes: the reconstruction reference."""

    name = "reconstruction"

    def __init__(self, n_codes: int) -> None:
        self.n_codes, self.codes, self.t = n_codes, np.zeros(0, dtype=np.int64), 0

    def reset(self) -> None:
        self.t = 0

    def act(self, observation: dict) -> int:
        self.t += 1
        return int(self.codes[self.t])


def clip_audio_beats(clip: Clip, corpus: Corpus) -> np.ndarray:
    """Onset times (s) detected in the clip's onset-strength feature column."""
    cfg = corpus.manifest["audio_features"]
    return audio_beats(clip.audio[:, cfg["n_mels"]], cfg["sample_rate"], corpus.fps)


def positions(skeleton, rotations: np.ndarray) -> np.ndarray:
    return skeleton.positions(rotations)


#: reward windows scored per batched call of a deferred rollout (bounds the memory of one call)
REWARD_CHUNK = 256
#: clips rolled out together in lock-step by a batched agent (bounds the batch of its cache and products)
MAX_LOCKSTEP = 64


def rollout_clip(env: GestureSynthesisEnv, agent: Agent, clip_id: str) -> tuple[np.ndarray, float]:
    """(codes a_0..a_L-1, mean reward) of the agent on a whole clip: :func:`rollout_clips` of one clip."""
    return rollout_clips(env, agent, [clip_id])[0]


def rollout_clips(env: GestureSynthesisEnv, agent: Agent, clip_ids: list[str],
                  batched: bool = True) -> list[tuple[np.ndarray, float]]:
    """(codes a_0..a_L-1, mean reward) of the agent on each whole clip: the rollout the environment would step
    (``racer_env.envs.episode_data.rollout_codes``, a_0 = the clip's first ground-truth code), each step scored with
    the environment's reward.

    The path depends on the agent (``batched=False``: the step-by-step path for every agent, the reference the
    others are tested against):

    * ``agent.reads_reward`` (decision transformers): step by step, one clip after the other, each step's reward
      scored alone and handed to ``observe_reward`` before the next choice;
    * else ``agent.batched`` (GPT agents on the CPU, the nearest-neighbour lookup): the clips in lock-step
      (:func:`racer_env.envs.episode_data.rollout_codes_batch`, up to :data:`MAX_LOCKSTEP` at a time), then every
      step's reward scored in batched calls (:func:`episode_rewards`);
    * else (random codes, users' agents): the codes of one clip after the other, then the rewards batched.

    An agent that does not read the reward is not handed it (``observe_reward`` is not called on the batched
    paths).

    Every path gives the same codes, and the same rewards to float rounding (a batch of windows rounds otherwise
    than one window; ``tests/test_batched_rollout.py`` bounds the mean rewards' difference by 1e-6).
    """
    data = env.data
    clips = [data.clip(c) for c in clip_ids]
    if not batched or agent.reads_reward:
        return [_rollout_step_by_step(env, agent, clip) for clip in clips]
    codes = _lockstep_codes(env, agent, clips) if agent.batched else [_clip_codes(env, agent, c) for c in clips]
    rewards = episode_rewards(data, env.reward, clips, codes)
    return [(c, float(np.mean(r))) for c, r in zip(codes, rewards)]


def _rollout_step_by_step(env: GestureSynthesisEnv, agent: Agent, clip: ClipData) -> tuple[np.ndarray, float]:
    """One clip, each step scored alone and handed to the agent before its next choice."""
    data = env.data
    rewards: list[float] = []

    def score(history: np.ndarray) -> None:
        window = reward_input(env.reward, clip, 0, history, data.scorer.window_codes, data.frames_per_code)
        rewards.append(float(data.rewards([window], env.reward)[0]))
        agent.observe_reward(rewards[-1])

    return _clip_codes(env, agent, clip, on_step=score), float(np.mean(rewards))


def _clip_codes(env: GestureSynthesisEnv, agent: Agent, clip: ClipData,
                on_step: Callable[[np.ndarray], None] | None = None) -> np.ndarray:
    """(L,) codes a_0..a_L-1 of one episode of the agent on the clip (``on_step``: as :func:`rollout_codes`'s)."""
    agent.reset()
    first = int(clip.codes[0])
    actions = rollout_codes(agent.act, clip, 0, clip.n_codes - 1, first, agent.obs_cfg, env.data.n_codes,
                            on_step=on_step, agent=agent.name)
    return np.concatenate([[first], actions]).astype(np.int64)


def _lockstep_codes(env: GestureSynthesisEnv, agent: Agent, clips: list[ClipData]) -> list[np.ndarray]:
    """(L,) codes of each clip, the clips rolled out together, :data:`MAX_LOCKSTEP` at a time."""
    out = []
    for lo in range(0, len(clips), MAX_LOCKSTEP):
        group = clips[lo:lo + MAX_LOCKSTEP]
        firsts = [int(c.codes[0]) for c in group]
        agent.reset_batch(len(group))
        actions = rollout_codes_batch(agent.act_batch, group, firsts, agent.obs_cfg, env.data.n_codes, agent.name)
        out += [np.concatenate([[f], a]).astype(np.int64) for f, a in zip(firsts, actions)]
    return out


def episode_rewards(data: EnvData, kind: str, clips: list[ClipData], codes: list[np.ndarray],
                    chunk: int = REWARD_CHUNK) -> list[np.ndarray]:
    """(L - 1,) rewards r_1 .. r_{L-1} of each clip's episode a_0 .. a_{L-1} = ``codes[i]``, as the environment
    scores each step (the last W codes up to the step, fewer at the start, and their audio or motion), the windows
    of all the clips scored ``chunk`` at a time (built chunk by chunk: the memory stays that of one chunk)."""
    steps = [(i, t) for i, c in enumerate(codes) for t in range(1, len(c))]
    flat = np.zeros(len(steps), dtype=np.float64)
    for lo in range(0, len(steps), chunk):
        windows = [reward_input(kind, clips[i], 0, codes[i][:t + 1], data.scorer.window_codes, data.frames_per_code)
                   for i, t in steps[lo:lo + chunk]]
        flat[lo:lo + len(windows)] = data.rewards(windows, kind)
    bounds = np.cumsum([0] + [len(c) - 1 for c in codes])
    return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


@torch.no_grad()
def motion_reward(scorer: RewardScorer, rotations: np.ndarray, audio: np.ndarray, corpus: Corpus) -> float:
    """Mean per-step reward of any motion of a clip, without codes: the reward model on the motion of the windows the
    environment scores for steps 1 .. L-1 (the last W code steps, fewer at the start), against their audio.

    Args:
        rotations: (T, J, 3) rotation vectors (the corpus motion, or decoded motion moved in time).
        audio: (T', F) raw audio features of the clip (T' >= the frames of whole code steps used).
    """
    fpc = corpus.frames_per_code
    n_codes = min(len(rotations), len(audio)) // fpc
    features = rotations[:n_codes * fpc].reshape(n_codes * fpc, -1)  # (8L, J * 3)
    motion = torch.from_numpy(corpus.stats.normalise_motion(features).astype(np.float32))
    audio = (torch.from_numpy(audio[:n_codes * fpc].astype(np.float32)) - scorer.audio_mean) / scorer.audio_std
    w, device = scorer.window_codes, next(scorer.reward_model.parameters()).device
    by_len: dict[int, list[int]] = {}
    for t in range(1, n_codes):
        by_len.setdefault(min(w, t + 1), []).append(t)
    total = 0.0
    for length, steps in by_len.items():
        frames = [slice((t + 1 - length) * fpc, (t + 1) * fpc) for t in steps]
        m = torch.stack([motion[f] for f in frames]).to(device)  # (B, 8 * length, J * 3)
        a = torch.stack([audio[f] for f in frames]).to(device)  # (B, 8 * length, F)
        total += float(scorer.reward_model.score(m, a).sum())
    return total / max(n_codes - 1, 1)


@dataclass
class _ClipResult:
    """One system's output on one clip and the per-clip parts of every metric."""

    motion: np.ndarray  # (T, J, 3) positions (mm)
    values: dict[str, float]  # the PER_CLIP metrics
    windows: np.ndarray  # (n, window, J, 3) FGD windows of the motion
    features: np.ndarray | None  # (n, d) extractor features of the windows
    rules: rules.ClipRules | None


@dataclass
class _Reference:
    """The real motion of the split's clips and what every system is compared with."""

    clips: list[Clip]
    motions: list[np.ndarray]  # (T, J, 3) real positions per clip
    windows: list[np.ndarray]
    features: list[np.ndarray | None]
    annotations: list[dict | None]
    rest: list[dict | None]


def _reference(ws: Workspace, corpus: Corpus, clips: list[Clip], extractor) -> _Reference:
    motions = [positions(c.skeleton, c.rotations) for c in clips]
    windows = [fgd_mod.windows(m) for m in motions]
    annotations = [rules.load_annotation(ws.root, c.id) for c in clips]
    rest = [None if a is None else rules.rest_positions(rules.hands_of(m, corpus.joint_names),
                                                          rules.pause_mask(a, len(m), corpus.fps))
            for m, a in zip(motions, annotations)]
    return _Reference(clips, motions, windows, [extractor.features(w) if extractor else None for w in windows],
                      annotations, rest)


def _clip_result(ref: _Reference, i: int, motion: np.ndarray, rotations: np.ndarray, reward: float,
                 corpus: Corpus, extractor, sigma: float, tolerance: float) -> _ClipResult:
    clip, real, fps = ref.clips[i], ref.motions[i], corpus.fps
    roles = find_roles(clip.skeleton, source=clip.id)
    cfg = corpus.manifest["audio_features"]
    speech = speech_metrics(motion, [roles["right_hand"], roles["left_hand"]], clip.audio, cfg["n_mels"],
                            cfg["sample_rate"], fps, sigma, tolerance)
    windows = fgd_mod.windows(motion)
    values = {"maje_mm": maje(motion, real), "mad_mm_s2": mad(motion, real, fps),
              **{k: speech[k] for k in ("pmb_pct", "beat_align", "sync", "jerk_mm_s3")}, "mean_reward": reward}
    clip_rules = None
    if ref.annotations[i] is not None:
        clip_rules = rules.clip_rules(motion, rotations, corpus.joint_names, ref.annotations[i], fps, ref.rest[i])
    return _ClipResult(motion, values, windows, extractor.features(windows) if extractor else None, clip_rules)


def _aggregate(results: list[_ClipResult], ref: _Reference, idx: np.ndarray, seed: int, raw_fgd: bool = True) -> dict:
    """Every metric over the clips ``idx`` (a resample may repeat clips); ``raw_fgd=False`` leaves raw-space FGD
    out (None), the one slow figure."""
    out: dict[str, float | None] = {}
    for key in PER_CLIP:
        values = [results[i].values[key] for i in idx if results[i].values[key] is not None]
        out[key] = float(np.mean(values)) if values else None
    real_w = np.concatenate([ref.windows[i] for i in idx])
    gen_w = np.concatenate([results[i].windows for i in idx])
    out["raw_fgd"] = fgd_mod.raw_fgd(real_w, gen_w) if raw_fgd else None
    out["fgd"] = (fgd_mod.frechet_distance(np.concatenate([ref.features[i] for i in idx]),
                                           np.concatenate([results[i].features for i in idx]))
                  if results[0].features is not None else None)
    out["l1_div_mm"] = l1_diversity([results[i].motion for i in idx], seed=seed)
    clip_rules = [results[i].rules for i in idx if results[i].rules is not None]
    out.update(rules.pooled_rules(clip_rules) if clip_rules else dict.fromkeys(RULE_METRICS))
    return out


def _bootstrap(results: list[_ClipResult], ref: _Reference, point: dict, seed: int, n: int) -> dict:
    """95 % intervals of every metric over clips resampled with replacement."""
    rng = np.random.default_rng(seed)
    draws = [_aggregate(results, ref, rng.integers(0, len(results), len(results)), seed, k < RAW_FGD_BOOTSTRAP)
             for k in range(n)]
    ci = {}
    for key, value in point.items():
        samples = [d[key] for d in draws if d[key] is not None]
        ci[key] = None if value is None or not samples else [float(np.percentile(samples, 2.5)),
                                                             float(np.percentile(samples, 97.5))]
    return ci


def reference_and_agents(ws: Workspace, corpus: Corpus, agents: list[str | Agent], seed: int,
                         device: str) -> dict[str, Agent]:
    """The reference systems, then the agents: names of the workspace's agents, or agents (by their name)."""
    data = load_env_data(str(ws.root), device)
    systems: dict[str, Agent | None] = {"ground_truth": None, "reconstruction": _GroundTruthCodes(data.n_codes),
                                        "random": RandomAgent(data.n_codes, seed),
                                        "nearest_neighbour": NearestNeighbourAgent(data)}
    for agent in agents:
        if isinstance(agent, str):
            systems[agent] = load_agent(ws, agent, device)
        else:
            systems[agent.name] = agent
    return systems


#: one system's output on one clip of the split: (clip index, clip) -> ((T, J, 3) rotation vectors of its motion,
#: its mean per-step reward on the clip)
SystemOutput = Callable[[int, Clip], tuple[np.ndarray, float]]


def evaluate_systems(ws: Workspace, corpus: Corpus, clips: list[Clip], systems: dict[str, SystemOutput],
                     extractor=None, sigma: float = 0.3, tolerance: float = 0.2, seed: int = 0,
                     bootstrap: int = BOOTSTRAP, raw_fgd: bool = True, progress: bool = True,
                     label: str = "evaluate") -> tuple[dict, dict, _Reference]:
    """Every metric of every system on ``clips``, each system given by what it makes of a clip (its motion and
    mean reward: codes decoded, an agent rolled out, motion moved in time, the corpus motion): the one place
    evaluation turns motions into figures, for ``racer evaluate`` and the reward panel alike.

    ``bootstrap`` = 0 gives no intervals (each None); ``raw_fgd=False`` leaves the one slow figure out (None).
    ``progress`` shows a bar per system, labelled ``<label> <system>``.

    Returns:
        (system -> metrics with ``ci95``, system -> per-clip values of :data:`PER_CLIP`, the real motion compared
        with).
    """
    ref = _reference(ws, corpus, clips, extractor)
    out, per_clip = {}, {}
    for name, system in systems.items():
        results = []
        for i, clip in enumerate(tqdm(clips, desc=f"{label} {name}", disable=not progress)):
            rotations, reward = system(i, clip)
            motion = positions(clip.skeleton, rotations)
            results.append(_clip_result(ref, i, motion, rotations, reward, corpus, extractor, sigma, tolerance))
        point = _aggregate(results, ref, np.arange(len(results)), seed, raw_fgd)
        out[name] = {**point, "ci95": _bootstrap(results, ref, point, seed, bootstrap)}
        per_clip[name] = {key: [r.values[key] for r in results] for key in PER_CLIP}
        if all(r.rules is not None for r in results):
            per_clip[name].update(_rule_counts(results))
    return out, per_clip, ref


def _rule_counts(results: list[_ClipResult]) -> dict[str, list[int]]:
    """Per clip, the event counts the pooled stroke and nod F1 are computed from (hits, detected, annotated): what a
    bootstrap over clips, or a paired comparison of two systems, needs."""
    out = {}
    for event in ("stroke", "nod"):
        matches = [getattr(r.rules, f"{event}s") for r in results]
        out.update({f"{event}_{part}": [int(getattr(m, part)) for m in matches]
                    for part in ("hits", "detected", "annotated")})
    return out


def rolled_out_once(env: GestureSynthesisEnv, agent: Agent,
                    clip_ids: list[str]) -> Callable[[str], tuple[np.ndarray, float]]:
    """clip id -> (codes, mean reward) of ``agent`` on that clip, all of ``clip_ids`` rolled out together by
    :func:`rollout_clips` when the first is asked for (so that a system evaluated clip by clip still gets the
    batched rollouts); each result is handed out once."""
    results: dict[str, tuple[np.ndarray, float]] = {}

    def result(clip_id: str) -> tuple[np.ndarray, float]:
        if not results:
            results.update(zip(clip_ids, rollout_clips(env, agent, clip_ids)))
        return results.pop(clip_id)

    return result


def _system_output(ws: Workspace, corpus: Corpus, agent: Agent | None, split: str, vqvae, name: str, videos: int,
                   device: str, pending_videos: dict[str, list[tuple[Clip, np.ndarray]]],
                   clips: list[Clip]) -> SystemOutput:
    """What ``racer evaluate`` makes of a clip of ``clips`` with ``agent`` (None: the corpus motion itself): the
    agent rolled out in an environment with its own observation shape (every clip at the first one's turn, see
    :func:`rolled_out_once`), its codes decoded; the first ``videos`` clips' motions are added to ``pending_videos``
    (system -> [(clip, rotations)]) for :func:`write_videos`."""
    obs_cfg = agent.obs_cfg if agent is not None else ObservationConfig()
    env = GestureSynthesisEnv(str(ws.root), split=split, segment_codes=None, past=obs_cfg.past,
                              lookahead=obs_cfg.lookahead, history=obs_cfg.history, device=device)
    rolled_out = rolled_out_once(env, agent, [c.id for c in clips]) if agent is not None else None

    def output(i: int, clip: Clip) -> tuple[np.ndarray, float]:
        if agent is None:
            return clip.rotations, motion_reward(env.data.scorer, clip.rotations, clip.audio, corpus)
        if isinstance(agent, _GroundTruthCodes):  # replays the clip it is given: one clip at a time
            agent.codes = env.data.clip(clip.id).codes
            codes, reward = rollout_clip(env, agent, clip.id)
        else:
            codes, reward = rolled_out(clip.id)
        rotations = decode_long(vqvae, codes, corpus)
        if i < videos:
            pending_videos.setdefault(name, []).append((clip, rotations))
        return rotations, reward

    return output


def evaluate(workspace: str | Workspace, agents: list[str | Agent] | None = None, split: str = "test",
             sigma: float = 0.3,
             tolerance: float = 0.2, seed: int = 0, device: str = "cpu", progress: bool = True,
             bootstrap: int = BOOTSTRAP, videos: int = 0) -> dict:
    """Metrics of the reference systems and of ``agents`` (names in the workspace, or agents; default: every agent
    of the workspace) on ``split``.

    ``videos`` > 0 also writes, for each system but the ground truth, the videos of the first ``videos`` clips with
    the real motion beside (``W/eval/videos/<system>/<clip>.mp4``, see :func:`clip_video`)."""
    ws = Workspace.of(workspace)
    corpus = Corpus.load(ws)
    clips = corpus.clips(split)
    if not clips:
        raise RacerError(f"split {split!r} of {corpus.directory} has no clips")
    names = agents if agents is not None else list_agents(ws)
    systems = reference_and_agents(ws, corpus, names, seed, device)
    try:
        extractor = fgd_mod.load_extractor(joint_names=corpus.joint_names)
    except ValueError:
        extractor = None  # another joint layout: only raw-space FGD
    vqvae = load_env_data(str(ws.root), device).scorer.vqvae
    pending_videos: dict[str, list[tuple[Clip, np.ndarray]]] = {}  # written together at the end
    outputs = {name: _system_output(ws, corpus, agent, split, vqvae, name, videos, device, pending_videos, clips)
               for name, agent in systems.items()}
    out, per_clip, ref = evaluate_systems(ws, corpus, clips, outputs, extractor=extractor, sigma=sigma,
                                          tolerance=tolerance, seed=seed, bootstrap=bootstrap, progress=progress)
    if pending_videos:
        write_videos(ws, corpus, pending_videos)
    return {"split": split, "clips": len(clips), "clip_ids": [c.id for c in clips], "systems": out,
            "per_clip": per_clip, "reference_systems": list(REFERENCE_SYSTEMS),
            "params": {"fps": corpus.fps, "pmb_tolerance_s": tolerance, "beat_sigma_s": sigma,
                       "motion_beats": "local minima of mean joint speed after a drop >= 10% of its 5-95% range",
                       "audio_beats": "librosa onset_detect on the onset-strength feature",
                       "fgd_window_frames": fgd_mod.WINDOW, "fgd_stride_frames": fgd_mod.STRIDE,
                       "fgd_extractor_sha256": fgd_mod.EXTRACTOR_SHA256 if extractor else None,
                       "raw_fgd": "every 4th frame, root-relative, 100 mm units", "l1_div_window_frames": 40,
                       "mean_reward": "mean per-step reward over each clip's episode, averaged over clips; "
                                      "ground_truth: the reward model on the real motion of the same windows",
                       "sync": f"zero-lag Pearson correlation of mean wrist speed and speech RMS energy, both smoothed "
                               f"by a Gaussian of sigma {SMOOTHING_S} s (racer_env.metrics.sync)", "rules": rules.RULE_PARAMS if any(ref.annotations) else None,
                       "nearest_neighbour": "code of the training step with the nearest normalised audio context "
                                            "(Euclidean, the observation's past/lookahead window)",
                       "ci95": f"bootstrap over clips, {bootstrap} resamples ({min(bootstrap, RAW_FGD_BOOTSTRAP)} for "
                               f"raw_fgd), 2.5-97.5 percentiles",
                       "aggregation": f"per-clip means: {', '.join(PER_CLIP)}; pooled over clips: the rest",
                       "seed": seed}}


def write_videos(ws: Workspace, corpus: Corpus, videos: dict[str, list[tuple[Clip, np.ndarray]]]) -> list[Path]:
    """``W/eval/videos/<system>/<clip>.mp4`` of every system's clips (see :func:`clip_video`), written whole or not
    at all: into a hidden staging directory beside ``W/eval/videos`` first, then each system's folder renamed into
    place (replacing that system's earlier videos). An interrupted or failed run leaves no video and no empty
    folder (the staging directory is removed, or by the next evaluation if the run was killed)."""
    final = ws.root / "eval" / "videos"
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=temporary_prefix(final), dir=final.parent))
    try:
        written = [clip_video(ws, corpus, clip, rotations, system, staging / system)
                   for system, clips in videos.items() for clip, rotations in clips]
        pause_point("evaluate-videos-publish")
        final.mkdir(exist_ok=True)
        for system in videos:
            old = final / f".{system}.old-{os.getpid()}"
            if (final / system).exists():
                os.replace(final / system, old)
            os.replace(staging / system, final / system)
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [final / p.parent.name / p.name for p in written]


def clip_video(ws: Workspace, corpus: Corpus, clip: Clip, rotations: np.ndarray, system: str,
               directory: Path | None = None) -> Path:
    """``<directory>/<clip>.mp4`` (default ``W/eval/videos/<system>/``): ``rotations`` generated for ``clip`` beside
    its real motion, with the clip's speech and (built-in corpus) its annotated stressed syllables on the
    timeline."""
    from racer_env.audio.features import load_audio
    from racer_env.export import write_video
    from racer_env.video import corpus_reference

    rate = int(corpus.manifest["audio_features"]["sample_rate"])
    audio = load_audio(corpus.record(clip.id)["source"]["wav"], rate)
    reference, stressed = corpus_reference(ws.root, clip)
    path = (directory or ws.root / "eval" / "videos" / system) / f"{clip.id.replace('/', '-')}.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, rotations, corpus.skeleton, corpus.fps, audio, rate, label=f"generated: {system}",
                       reference=reference, stressed=stressed, progress=False)


class Validation:
    """The validation figures of a training run: greedy rollouts of an agent on the whole clips of ``split`` (the
    validation split: never the test split), with the evaluation's own metrics (mean reward, sync, and the
    rule-recovery F1s where the corpus has the built-in speaker's annotation). Built once per run; each call
    evaluates the agent as it is now.
    """

    def __init__(self, workspace: str | Workspace, obs_cfg: ObservationConfig, split: str = "valid",
                 device: str = "cpu", select: tuple[str, ...] = ("mean_reward",)) -> None:
        """``select``: the figures (of ``mean_reward``, ``sync``; defined on every corpus) whose sum is
        ``valid/score``, what model selection maximises (``racer_agents.train.SELECTIONS``)."""
        if not select or set(select) - {"mean_reward", "sync"}:
            raise RacerError(f"select must name some of mean_reward, sync; got {select!r}")
        self.select = tuple(select)
        ws = Workspace.of(workspace)
        self.corpus = Corpus.load(ws)
        self.clips = self.corpus.clips(split)
        if not self.clips:
            raise RacerError(f"split {split!r} of {self.corpus.directory} has no clips to validate on; train without "
                             f"validation (--valid-every 0) or use a corpus with a {split} split")
        self.split = split
        self.ref = _reference(ws, self.corpus, self.clips, None)
        self.env = GestureSynthesisEnv(str(ws.root), split=split, segment_codes=None, past=obs_cfg.past,
                                       lookahead=obs_cfg.lookahead, history=obs_cfg.history, device=device)
        self.vqvae = self.env.data.scorer.vqvae
        self.ref_scores = reference_scores(self.env.data, split)  # random codes' and the truth's, for the score

    def __call__(self, agent: Agent) -> dict[str, float]:
        """{"valid/mean_reward", "valid/sync", "valid/score" (what selection maximises), "valid/normalised_score"
        (the mean return normalised as the benchmark does: 0 random codes, 100 the human speaker's codes), and
        "valid/stroke_f1", "valid/nod_f1" where the corpus is annotated}."""
        results = []
        returns = []
        rolled_out = rollout_clips(self.env, agent, [c.id for c in self.clips])  # batched where the agent allows
        for i, (clip, (codes, reward)) in enumerate(zip(self.clips, rolled_out)):
            returns.append(reward * (len(codes) - 1))  # (mean reward per step -> the episode's return)
            rotations = decode_long(self.vqvae, codes, self.corpus)
            motion = positions(clip.skeleton, rotations)
            results.append(_clip_result(self.ref, i, motion, rotations, reward, self.corpus, None, 0.3, 0.2))
        out = {f"valid/{k}": float(np.mean([r.values[k] for r in results])) for k in ("mean_reward", "sync")}
        out["valid/score"] = sum(out[f"valid/{k}"] for k in self.select)
        out["valid/normalised_score"] = normalised_score(float(np.mean(returns)), *self.ref_scores)
        clip_rules = [r.rules for r in results if r.rules is not None]
        if clip_rules:
            pooled = rules.pooled_rules(clip_rules)
            out.update({f"valid/{k}": pooled[k] for k in ("stroke_f1", "nod_f1") if pooled[k] is not None})
        return out


def _cell(value: float | None, ci: list[float] | None) -> str:
    if value is None:
        return "n/a"
    fmt = (lambda v: f"{v:.3f}") if abs(value) < 100 else (lambda v: f"{v:.1f}")
    return fmt(value) + (f" [{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "")


def _table(result: dict, keys: tuple[str, ...]) -> list[str]:
    rows = ["| system | " + " | ".join(keys) + " |", "|" + " --- |" * (len(keys) + 1)]
    # reference systems first, then the agents (a result read back from sorted-key JSON has lost the order)
    names = sorted(result["systems"], key=lambda n: REFERENCE_SYSTEMS.index(n) if n in REFERENCE_SYSTEMS
                   else len(REFERENCE_SYSTEMS))
    for name in names:
        m = result["systems"][name]
        rows.append(f"| {name} | " + " | ".join(_cell(m[k], m["ci95"].get(k)) for k in keys) + " |")
    return rows


def markdown_table(result: dict) -> str:
    """The systems as rows, the metrics as columns (95 % intervals over clips in brackets)."""
    rows = _table(result, METRICS)
    if result["params"]["rules"] is not None:
        rows += ["", "Rule recovery (built-in speaker's annotation):", ""] + _table(result, RULE_METRICS)
    p = result["params"]
    rows.append("")
    rows.append(f"Split {result['split']} ({result['clips']} clips), {p['fps']:g} fps; PMB tolerance "
                f"{p['pmb_tolerance_s']} s; beat alignment sigma {p['beat_sigma_s']} s; FGD on {p['fgd_window_frames']}"
                f"-frame windows every {p['fgd_stride_frames']} frames; [95 % bootstrap interval over clips].")
    return "\n".join(rows) + "\n"


def write_results(workspace: Workspace, result: dict) -> tuple[Path, Path]:
    out = workspace.root / "eval"
    json_path, md_path = out / f"{result['split']}.json", out / f"{result['split']}.md"
    with stage_lock(out, "evaluate"):
        remove_stale_temporaries(out)
        write_json_atomic(json_path, result)
        write_text_atomic(md_path, markdown_table(result))
    return json_path, md_path
