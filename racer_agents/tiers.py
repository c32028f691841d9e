"""``racer dataset build W --tier T``: the D4RL-style dataset tiers, including the ones an agent's episodes make.

``augmented``, ``expert`` and ``random`` come straight from the corpus (``racer_env.dataset.builder``). The other
three need an agent, trained here first and kept in the workspace like any other (so that a second build reuses it):

* ``medium``: the rollouts (one per training segment, from the true a_0) of ``bc-medium``, a bc agent trained on the
  ``expert`` tier that stops at its first validation (every 50 steps at most) whose normalised score reaches
  :data:`MEDIUM_SCORE` (50: half of the human speaker's, as D4RL's medium policies are early-stopped), keeping the
  validated weights nearest it;
* ``medium-replay``: every episode ``dqn-medium``, an online DQN on the training segments, collected until its
  greedy policy's normalised score on the validation clips reached the same level (its replay memory, as D4RL's
  medium-replay is the buffer of the run that trained the medium policy);
* ``medium-expert``: ``medium`` and ``expert`` together.

Scores are normalised as the benchmark scores them (``racer_env.dataset.builder.SCORE_PROTOCOL``), here on the
validation clips (the test clips are the benchmark's).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from racer_env.dataset.builder import AGENT_TIERS, DATASET_NAME, build_dataset, check_tier
from racer_env.dataset.episodes import AugmentConfig, Episode
from racer_env.envs.episode_data import ObservationConfig
from racer_env.errors import RacerError
from racer_env.workspace import Workspace

MEDIUM_SCORE = 50.0  # the medium agents' target: half of the human speaker's normalised score
MEDIUM_VALID_EVERY = 50  # bc-medium's validations (steps apart) at most: it stops at the first that reaches 50
MEDIUM_AGENTS = {"medium": "bc-medium", "medium-expert": "bc-medium", "medium-replay": "dqn-medium"}


def build_tier(workspace: str | Workspace, tier: str = DATASET_NAME, config: AugmentConfig | None = None,
               preset: str = "demo", steps: int | None = None, device: str = "cpu", progress: bool = True,
               reward: str = "contrastive", dataset_id: str | None = None,
               obs_config: ObservationConfig | None = None) -> dict:
    """Build (or reuse) the dataset of ``tier``, training its medium agent first when it needs one; returns
    :func:`~racer_env.dataset.builder.build_dataset`'s summary with ``agent`` (the medium agent's training summary)
    for the agent tiers. ``preset`` and ``steps`` size the medium agent (``steps``: its step budget; it usually stops
    before). ``obs_config`` (default: the environment's) sets the observation of the corpus tiers; the agent tiers
    record their agent's."""
    ws = Workspace.of(workspace)
    check_tier(tier)
    config = config or AugmentConfig()
    if tier not in AGENT_TIERS:
        return build_dataset(ws, dataset_id, config=config, obs_config=obs_config, tier=tier, device=device,
                             progress=progress, reward=reward)
    if obs_config is not None and obs_config != ObservationConfig():
        raise RacerError(f"tier {tier!r} records the observation its medium agent was trained with; another "
                         f"observation is for the corpus tiers (augmented, expert, random)")
    if reward != "contrastive":
        raise RacerError(f"tier {tier!r}: the medium agents are trained on the contrastive reward; the distance "
                         f"reward is for the corpus tiers (augmented, expert, random)")
    if tier == "medium-replay":
        trained = _medium_dqn(ws, preset, steps, config.seed, device, progress)
        replay = collected_episodes(ws, MEDIUM_AGENTS[tier], device)
        segment = replace(config, segment_codes=len(replay[0].actions), stride=len(replay[0].actions))
        result = build_dataset(ws, dataset_id, config=segment, tier=tier, replay=replay,
                               policy_id=trained["checksum"], device=device, progress=progress,
                               policy_info=_reached(ws, MEDIUM_AGENTS[tier], "eval/normalised_score", last=True))
    else:
        trained = _medium_bc(ws, preset, steps, config, device, progress)
        from racer_agents.agent import load_agent

        agent = load_agent(ws, MEDIUM_AGENTS[tier], device)
        result = build_dataset(ws, dataset_id, config=config, obs_config=agent.obs_cfg, tier=tier, policy=agent,
                               policy_id=trained["checksum"], device=device, progress=progress,
                               policy_info=_reached(ws, MEDIUM_AGENTS[tier], "valid/normalised_score"))
    return {**result, "agent": trained, "policy": result.get("policy_info")}


def _reached(ws: Workspace, name: str, key: str, last: bool = False) -> dict:
    """What the medium agent reached: its validation scores (step, normalised score) and the one kept (the nearest
    to the target, or with ``last`` the last: an online agent keeps its final weights), from its training log;
    recorded in the tier's metadata (``racer_policy``) and printed by the command."""
    import json

    rows = [json.loads(line) for line in (ws.root / "agents" / name / "metrics.jsonl").read_text().splitlines()
            if line.strip()]
    scores = [(int(r["step"]), float(r[key])) for r in rows if key in r]
    kept = (scores[-1] if last else min(scores, key=lambda s: abs(s[1] - MEDIUM_SCORE))) if scores else None
    return {"agent": name, "target_normalised_score": MEDIUM_SCORE, "validations": scores,
            "kept_step": kept[0] if kept else None, "kept_normalised_score": kept[1] if kept else None}


def _medium_bc(ws: Workspace, preset: str, steps: int | None, config: AugmentConfig, device: str,
               progress: bool) -> dict:
    """bc-medium: bc on the expert tier, stopped at the medium score (trained once, then reused)."""
    from racer_agents.train import agent_config_for, train_agent
    from racer_env.checkpoint import read_checksum

    expert = build_dataset(ws, config=config, tier="expert", device=device, progress=progress)
    every = min(agent_config_for(preset).valid_every, MEDIUM_VALID_EVERY)  # (validated often: stops near 50)
    cfg = agent_config_for(preset, algo="bc", steps=steps, seed=config.seed, dataset=expert["id"],
                           stop_score=MEDIUM_SCORE, agent_name=MEDIUM_AGENTS["medium"], valid_every=every)
    result = train_agent(ws, cfg, device=device, progress=progress)
    return {**result, "checksum": read_checksum(ws.root / "agents" / cfg.name / "model.pt")}


def _medium_dqn(ws: Workspace, preset: str, steps: int | None, seed: int, device: str, progress: bool) -> dict:
    """dqn-medium: online DQN stopped at the medium score (trained once, then reused)."""
    from racer_agents.online import online_config_for
    from racer_agents.train import train_agent
    from racer_env.checkpoint import read_checksum

    cfg = online_config_for(preset, algo="dqn", steps=steps, seed=seed, stop_score=MEDIUM_SCORE,
                            agent_name=MEDIUM_AGENTS["medium-replay"])
    result = train_agent(ws, cfg, device=device, progress=progress)
    return {**result, "checksum": read_checksum(ws.root / "agents" / cfg.name / "model.pt")}


def collected_episodes(ws: Workspace, name: str, device: str = "cpu") -> list[Episode]:
    """The episodes an online agent collected during its training, as dataset episodes (source ``replay``)."""
    from racer_env.checkpoint import load_checkpoint

    _, state, _ = load_checkpoint(ws.root / "agents" / name / "model.pt", "agent")
    collected = state.get("collected")
    if not collected or not collected["clips"]:
        raise RuntimeError(f"{ws.root / 'agents' / name}: the agent kept no collected episodes (retrain it)")
    actions = collected["actions"].numpy().astype(np.int64)
    return [Episode(c, int(s), a, "replay") for c, s, a in zip(collected["clips"], collected["starts"].tolist(),
                                                              actions)]
