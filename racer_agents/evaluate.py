"""``racer evaluate W [--agent NAME] [--split test]``: the metrics of agents on whole held-out clips.

Every system generates the motion of every clip of the split through the environment (whole clips, a_0 = the
clip's first ground-truth code) and is compared with the clip's real motion:

* ``ground_truth``: the real motion (its mean reward is that of its VQ-VAE codes);
* ``random``: uniformly random codes;
* each agent asked for (default: every agent of the workspace).

Audio beats are the onsets librosa detects in each clip's stored onset-strength feature (so no raw audio is
needed). Results go to ``W/eval/<split>.json`` and ``.md``; every number carries its metric parameters.
"""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
from tqdm.auto import tqdm

from racer_agents.agent import Agent, GPTAgent, RandomAgent, list_agents, load_agent
from racer_agents.generate import decode_long
from racer_env.corpus.store import Corpus
from racer_env.envs.episode_data import ObservationConfig
from racer_env.envs.gesture import GestureSynthesisEnv
from racer_env.metrics import fgd as fgd_mod
from racer_env.metrics.motion import beat_alignment, jerk, l1_diversity, mad, maje, motion_beats, pmb
from racer_env.motion.rotations import rotvec_to_matrix
from racer_env.motion.skeleton import forward_kinematics
from racer_env.vqvae.tokenize import load_vqvae
from racer_env.workspace import Workspace, write_json_atomic

METRICS = ("maje_mm", "mad_mm_s2", "fgd", "raw_fgd", "pmb_pct", "beat_align", "l1_div_mm", "jerk_mm_s3",
           "mean_reward")


class _GroundTruthCodes(Agent):
    """Replays a clip's own codes (for the reward of the real motion)."""

    name = "ground_truth"

    def __init__(self, n_codes: int) -> None:
        self.n_codes, self.codes, self.t = n_codes, np.zeros(0, dtype=np.int64), 0

    def reset(self) -> None:
        self.t = 0

    def act(self, observation: dict) -> int:
        self.t += 1
        return int(self.codes[self.t])


def audio_beats(clip, corpus: Corpus) -> np.ndarray:
    """Onset times (s) detected in the clip's onset-strength feature column."""
    cfg = corpus.manifest["audio_features"]
    envelope = clip.audio[:, cfg["n_mels"]].astype(np.float64)
    return librosa.onset.onset_detect(onset_envelope=envelope, sr=cfg["sample_rate"],
                                      hop_length=cfg["sample_rate"] // int(corpus.fps), units="time")


def positions(skeleton, rotations: np.ndarray) -> np.ndarray:
    return forward_kinematics(skeleton, rotvec_to_matrix(rotations))[0]


def rollout_clip(env: GestureSynthesisEnv, agent: Agent, clip_id: str) -> tuple[np.ndarray, float]:
    """(codes a_0..a_L-1, mean reward) of the agent on a whole clip."""
    agent.reset()
    obs, _ = env.reset(options={"clip": clip_id})
    codes, rewards, done = [int(obs["codes"][-1])], [], False
    while not done:
        action = agent.act(obs)
        obs, reward, done, truncated, _ = env.step(action)
        if hasattr(agent, "observe_reward"):
            agent.observe_reward(reward)
        codes.append(action)
        rewards.append(reward)
        done = done or truncated
    return np.array(codes), float(np.mean(rewards))


def evaluate(workspace: str | Workspace, agents: list[str] | None = None, split: str = "test", sigma: float = 0.3,
             tolerance: float = 0.2, seed: int = 0, device: str = "cpu", progress: bool = True) -> dict:
    ws = Workspace.of(workspace)
    corpus = Corpus.load(ws)
    vqvae, _, _ = load_vqvae(ws, corpus, device)
    names = agents if agents is not None else list_agents(ws)
    systems: dict[str, Agent] = {"ground_truth": _GroundTruthCodes(vqvae.cfg.codebook_size),
                                 "random": RandomAgent(vqvae.cfg.codebook_size, seed)}
    systems.update({name: load_agent(ws, name, device) for name in names})
    clips = corpus.clips(split)
    if not clips:
        raise ValueError(f"split {split!r} of {corpus.directory} has no clips")
    try:
        extractor = fgd_mod.load_extractor(joint_names=corpus.joint_names)
    except ValueError:
        extractor = None  # another joint layout: only raw-space FGD
    real = [positions(c.skeleton, c.rotations) for c in clips]
    real_windows = np.concatenate([fgd_mod.windows(p) for p in real])
    beats = [audio_beats(c, corpus) for c in clips]
    results = {}
    for name, agent in systems.items():
        obs_cfg = agent.obs_cfg if isinstance(agent, GPTAgent) else ObservationConfig()
        env = GestureSynthesisEnv(str(ws.root), split=split, segment_codes=None, past=obs_cfg.past,
                                  lookahead=obs_cfg.lookahead, history=obs_cfg.history, device=device)
        motions, rewards = [], []
        for clip, pos in tqdm(list(zip(clips, real)), desc=f"evaluate {name}", disable=not progress):
            if isinstance(agent, _GroundTruthCodes):
                agent.codes = env.data.clip(clip.id).codes
            codes, reward = rollout_clip(env, agent, clip.id)
            rewards.append(reward)
            motions.append(pos if name == "ground_truth" else positions(clip.skeleton, decode_long(vqvae, codes, corpus)))
        results[name] = _metrics(motions, real, real_windows, beats, rewards, extractor, corpus.fps, sigma,
                                 tolerance, seed)
    return {"split": split, "clips": len(clips), "systems": results,
            "params": {"fps": corpus.fps, "pmb_tolerance_s": tolerance, "beat_sigma_s": sigma,
                       "motion_beats": "local minima of mean joint speed after a drop >= 10% of its 5-95% range",
                       "audio_beats": "librosa onset_detect on the onset-strength feature",
                       "fgd_window_frames": fgd_mod.WINDOW, "fgd_stride_frames": fgd_mod.STRIDE,
                       "fgd_extractor_sha256": fgd_mod.EXTRACTOR_SHA256 if extractor else None,
                       "raw_fgd": "every 4th frame, root-relative, 100 mm units", "l1_div_window_frames": 40,
                       "mean_reward": "mean per-step reward over each clip's episode, averaged over clips",
                       "seed": seed}}


def _metrics(motions, real, real_windows, beats, rewards, extractor, fps, sigma, tolerance, seed) -> dict:
    windows = np.concatenate([fgd_mod.windows(m) for m in motions])
    motion_b = [motion_beats(m, fps) for m in motions]
    return {
        "maje_mm": float(np.mean([maje(m, r) for m, r in zip(motions, real)])),
        "mad_mm_s2": float(np.mean([mad(m, r, fps) for m, r in zip(motions, real)])),
        "fgd": fgd_mod.fgd(extractor, real_windows, windows) if extractor is not None else None,
        "raw_fgd": fgd_mod.raw_fgd(real_windows, windows),
        "pmb_pct": float(np.mean([pmb(mb, ab, tolerance) for mb, ab in zip(motion_b, beats)])),
        "beat_align": float(np.mean([beat_alignment(mb, ab, sigma) for mb, ab in zip(motion_b, beats) if len(ab)])),
        "l1_div_mm": l1_diversity(motions, seed=seed),
        "jerk_mm_s3": float(np.mean([jerk(m, fps) for m in motions])),
        "mean_reward": float(np.mean(rewards)),
    }


def markdown_table(result: dict) -> str:
    """The systems as rows, the metrics as columns."""
    head = "| system | " + " | ".join(METRICS) + " |"
    rows = [head, "|" + " --- |" * (len(METRICS) + 1)]
    for name, m in result["systems"].items():
        cells = ["n/a" if m[k] is None else f"{m[k]:.3f}" if abs(m[k]) < 100 else f"{m[k]:.1f}" for k in METRICS]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    p = result["params"]
    rows.append("")
    rows.append(f"Split {result['split']} ({result['clips']} clips), {p['fps']:g} fps; PMB tolerance "
                f"{p['pmb_tolerance_s']} s; beat alignment sigma {p['beat_sigma_s']} s; FGD on {p['fgd_window_frames']}"
                f"-frame windows every {p['fgd_stride_frames']} frames.")
    return "\n".join(rows) + "\n"


def write_results(workspace: Workspace, result: dict) -> tuple[Path, Path]:
    out = workspace.root / "eval"
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{result['split']}.json", out / f"{result['split']}.md"
    write_json_atomic(json_path, result)
    tmp = md_path.with_name(f".{md_path.name}.tmp")
    tmp.write_text(markdown_table(result), encoding="utf-8")
    tmp.replace(md_path)
    return json_path, md_path
