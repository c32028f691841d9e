"""``racer evaluate reward W --panel``: does the reward rank gestures the way the speaker's rules do?

A panel of systems of known quality is run on the held-out clips of a split and each is scored twice: by the
workspace's reward model (the mean per-step reward, as the environment computes it) and by the rule metrics of
the evaluation (stroke F1, nod F1 and sync, :mod:`racer_agents.evaluate`). The systems:

* ``reconstruction``: the clip's human codes decoded (the ceiling of a code-choosing agent) and ``random``:
  uniformly random codes (``RANDOM_DRAWS`` draws per clip) - the two anchors;
* ``real_motion``: the corpus motion itself, scored by the reward model on the same windows;
* ``replaced_<p>``: the human codes with a fraction p of the steps replaced by random codes;
* ``codes_late_<k>``: the human codes k code steps late (the first code held);
* ``frames_late_<k>``: the decoded human codes' motion k frames late (finer than a code step; the first frame held),
  decoded whole as the evaluation decodes it and scored like the real motion (so even k = 0 would differ slightly
  from ``reconstruction``, whose windows the environment decodes one by one);
* ``mismatched``: another clip's human codes (mismatched speech);
* ``nearest_neighbour``: the lookup of :mod:`racer_agents.retrieval`, and every agent asked for, rolled out as
  ``racer evaluate`` does.

Every code sequence is an episode of the environment: it starts with the clip's first human code a_0 and its
reward is the mean of r_1 .. r_{L-1}. For each system the *share* is the fraction of the random -> reconstruction
gap it reaches, in mean reward and in stroke F1; a valid reward gives every system about its stroke share. The
targets (issue 24): every share gap <= 0.15, Spearman's rho(reward, stroke F1) over the panel >= 0.9, the real
motion's reward >= 0.9 x its reconstruction's, and retrieval R@1 among 32 >= 0.6. Corpora without the built-in
speaker's annotation have no stroke F1: their panel keeps the rewards, sync and shares of the reward alone, and
every figure it cannot give is null with the reason in ``reasons``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np

from racer_agents.agent import Agent, list_agents
from racer_agents.evaluate import (
    SystemOutput,
    evaluate_systems,
    motion_reward,
    reference_and_agents,
    rolled_out_once,
)
from racer_agents.generate import decode_long
from racer_env.corpus.store import Clip, Corpus
from racer_env.envs.episode_data import ClipData, EnvData, load_env_data, reward_input
from racer_env.envs.gesture import GestureSynthesisEnv
from racer_env.errors import RacerError
from racer_env.metrics import rules
from racer_env.workspace import Workspace

REPLACED = (0.1, 0.25, 0.5, 0.75)  # fractions of the human codes replaced by random codes
CODE_DELAYS = (1, 2, 4)  # code steps the human codes are late
FRAME_DELAYS = (2, 4, 6)  # frames the decoded human motion is late
ANCHORS = ("random", "reconstruction")  # share 0 and share 1
#: random code sequences per clip for the random anchor (its figures over all of them): two single draws' stroke F1
#: differed by 0.07 on the demo's 12 test clips (0.08 and 0.15), and every stroke share moves with it
RANDOM_DRAWS = 4
FIGURES = ("mean_reward", "stroke_f1", "nod_f1", "sync")  # each system's figures, from the evaluation
SHARE_GAP_TARGET = 0.15  # every system's |reward share - stroke share| at most this
SPEARMAN_TARGET = 0.9  # rho(mean reward, stroke F1) over the panel at least this
REAL_RATIO_TARGET = 0.9  # real motion's mean reward at least this fraction of its reconstruction's
R_AT_1_TARGET = 0.6  # retrieval R@1 among R_AT_1_CANDIDATES at least this
R_AT_1_CANDIDATES = 32
SPEARMAN_MIN_SYSTEMS = 5  # fewer systems with both figures: no rho


# -- the panel's code sequences -------------------------------------------------------------------------------
def _rng(seed: int, name: str, clip_index: int) -> np.random.Generator:
    """A generator of its own for every (system, clip): one system's draws never depend on another's."""
    return np.random.default_rng([seed, zlib.crc32(name.encode()), clip_index])


def random_codes(codes: np.ndarray, n_codes: int, rng: np.random.Generator) -> np.ndarray:
    """(L,) uniformly random codes after the human a_0."""
    out = rng.integers(0, n_codes, len(codes))
    out[0] = codes[0]
    return out


def replaced_codes(codes: np.ndarray, fraction: float, n_codes: int, rng: np.random.Generator) -> np.ndarray:
    """(L,) the human codes with round(fraction x (L-1)) of steps 1 .. L-1 (drawn without replacement) replaced by
    uniformly random codes."""
    out = codes.copy()
    steps = rng.choice(np.arange(1, len(codes)), int(round(fraction * (len(codes) - 1))), replace=False)
    out[steps] = rng.integers(0, n_codes, len(steps))
    return out


def delayed(sequence: np.ndarray, k: int) -> np.ndarray:
    """``sequence`` k entries late along its first axis, its first entry held for the first k (same length)."""
    if k == 0:
        return sequence.copy()
    return np.concatenate([np.repeat(sequence[:1], min(k, len(sequence)), axis=0), sequence[:-k]])[:len(sequence)]


def mismatched_codes(codes: np.ndarray, other: np.ndarray) -> np.ndarray:
    """(L,) another clip's human codes (repeated or cut to L) after this clip's a_0."""
    out = np.resize(other, len(codes)).astype(np.int64)
    out[0] = codes[0]
    return out


def codes_reward(data: EnvData, clip: ClipData, codes: np.ndarray, kind: str = "contrastive") -> float:
    """Mean reward of the episode a_0 .. a_{L-1} = ``codes`` on the whole clip, as the environment scores it: r_t on
    the last W codes up to step t (fewer at the start) and their audio, t = 1 .. L-1, in one batched call."""
    windows = [reward_input(kind, clip, 0, codes[:t + 1], data.scorer.window_codes, data.frames_per_code)
               for t in range(1, len(codes))]
    return float(np.mean(data.rewards(windows, kind)))


def _other_clip(data: EnvData, clip_ids: list[str], i: int) -> str | None:
    """The clip whose codes ``mismatched`` plays on clip i: the next clip of the split, else (a split of one clip)
    the first other clip of the corpus; None in a corpus of one clip."""
    if len(clip_ids) > 1:
        return clip_ids[(i + 1) % len(clip_ids)]
    return next((c for c in data.clips if c != clip_ids[i]), None)


def panel_systems(ws: Workspace, corpus: Corpus, split: str, agents: list[str], seed: int,
                  device: str) -> tuple[dict[str, SystemOutput], dict[str, str]]:
    """What every system of the panel makes of a clip (its motion and mean reward), in the panel's order, and the
    systems that cannot run on this corpus with the reason."""
    data = load_env_data(str(ws.root), device)
    vqvae, n_codes = data.scorer.vqvae, data.n_codes
    clip_ids = corpus.clip_ids(split)

    def from_codes(make: Callable[[int, ClipData], np.ndarray]) -> SystemOutput:
        def output(i: int, clip: Clip) -> tuple[np.ndarray, float]:
            clip_data = data.clip(clip.id)
            codes = make(i, clip_data)
            return decode_long(vqvae, codes, corpus), codes_reward(data, clip_data, codes)
        return output

    def from_motion(k: int) -> SystemOutput:
        def output(i: int, clip: Clip) -> tuple[np.ndarray, float]:
            rotations = delayed(decode_long(vqvae, data.clip(clip.id).codes, corpus), k)
            return rotations, motion_reward(data.scorer, rotations, clip.audio, corpus)
        return output

    def real(i: int, clip: Clip) -> tuple[np.ndarray, float]:
        return clip.rotations, motion_reward(data.scorer, clip.rotations, clip.audio, corpus)

    def rolled_out(agent: Agent) -> SystemOutput:
        cfg = agent.obs_cfg
        env = GestureSynthesisEnv(str(ws.root), split=split, segment_codes=None, past=cfg.past,
                                  lookahead=cfg.lookahead, history=cfg.history, device=device)

        rolled = rolled_out_once(env, agent, clip_ids)  # every clip of the split at the first one's turn, batched

        def output(i: int, clip: Clip) -> tuple[np.ndarray, float]:
            codes, reward = rolled(clip.id)
            return decode_long(vqvae, codes, corpus), reward
        return output

    systems: dict[str, SystemOutput] = {
        "reconstruction": from_codes(lambda i, c: c.codes.copy()),
        "random": from_codes(lambda i, c: random_codes(c.codes, n_codes, _rng(seed, "random", i))),
        "real_motion": real,
    }
    for p in REPLACED:
        name = f"replaced_{round(100 * p)}"
        systems[name] = from_codes(lambda i, c, p=p, name=name: replaced_codes(c.codes, p, n_codes,
                                                                                     _rng(seed, name, i)))
    for k in CODE_DELAYS:
        systems[f"codes_late_{k}"] = from_codes(lambda i, c, k=k: delayed(c.codes, k))
    for k in FRAME_DELAYS:
        systems[f"frames_late_{k}"] = from_motion(k)
    skipped = {}
    if _other_clip(data, clip_ids, 0) is None:
        skipped["mismatched"] = f"the corpus {corpus.directory} has one clip: no other clip's codes to play"
    else:
        systems["mismatched"] = from_codes(lambda i, c: mismatched_codes(
            c.codes, data.clip(_other_clip(data, clip_ids, i)).codes))
    reference = reference_and_agents(ws, corpus, agents, seed, device)
    for name in ["nearest_neighbour", *agents]:
        systems[name] = rolled_out(reference[name])
    return systems, skipped


# -- shares, rank correlation and targets ----------------------------------------------------------------------
def share(value: float | None, low: float | None, high: float | None) -> float | None:
    """Fraction of the low -> high gap ``value`` reaches (0 = low, 1 = high); None where a figure is missing or the
    gap is not positive (the anchors are not ordered: no scale to read a share on)."""
    if value is None or low is None or high is None or not high > low:
        return None
    return (value - low) / (high - low)


def _finite(value) -> float | None:
    """``value`` as a float, None for a missing or non-finite one (the panel's JSON is strict: no NaN)."""
    return None if value is None or not np.isfinite(value) else float(value)


def panel_summary(figures: dict[str, dict[str, float | None]], retrieval: dict | None = None,
                  has_rules: bool = True) -> dict:
    """The shares, their largest gap, Spearman's rho, the real/reconstruction ratio and the targets of a panel.

    Args:
        figures: system -> {"mean_reward", "stroke_f1", "nod_f1", "sync"} (None where not measured); must hold
            the anchors ``random`` and ``reconstruction`` (and ``real_motion`` for its target).
        retrieval: what :func:`racer_env.reward.evaluate.evaluate_reward` returned (or {"error": why}); None: not
            measured.
        has_rules: the corpus has the annotation the stroke F1 needs.

    Returns:
        {"systems": name -> figures + reward_share, stroke_share, share_gap; "max_share_gap", "max_share_gap_system",
        "spearman_reward_stroke_f1", "real_reconstruction_reward_ratio", "retrieval_r_at_1", "targets",
        "reasons" (why each null summary figure is null)}; strict JSON (no NaN).
    """
    missing = [a for a in ANCHORS if a not in figures]
    if missing:
        raise RacerError(f"the reward panel needs the anchor systems {list(ANCHORS)}; missing {missing}")
    figures = {name: {k: _finite(v.get(k)) for k in FIGURES} for name, v in figures.items()}
    low, high = figures["random"], figures["reconstruction"]
    reasons: dict[str, str] = {}
    systems = {}
    for name, f in figures.items():
        r = share(f["mean_reward"], low["mean_reward"], high["mean_reward"])
        s = share(f["stroke_f1"], low["stroke_f1"], high["stroke_f1"])
        systems[name] = {**f, "reward_share": r, "stroke_share": s,
                         "share_gap": None if r is None or s is None else abs(r - s)}
    if not has_rules:
        reasons["stroke_f1"] = ("the corpus has no synthetic annotation (W/synth/<clip>.json): no stroke F1, nod F1 "
                                "or stroke share")
    if share(1.0, low["mean_reward"], high["mean_reward"]) is None:
        reasons["reward_share"] = "the reward does not score reconstruction above random codes: no reward share"
    if has_rules and share(1.0, low["stroke_f1"], high["stroke_f1"]) is None:
        reasons["stroke_share"] = "reconstruction's stroke F1 is not above random codes': no stroke share"

    gaps = {n: v["share_gap"] for n, v in systems.items() if n not in ANCHORS}
    measured = {n: g for n, g in gaps.items() if g is not None}
    if measured and len(measured) == len(gaps):
        worst = max(measured, key=measured.get)
        max_gap, max_system = measured[worst], worst
    else:
        max_gap = max_system = None
        reasons["max_share_gap"] = (reasons.get("stroke_f1") or reasons.get("reward_share")
                                    or reasons.get("stroke_share")
                                    or f"no share gap for {sorted(n for n, g in gaps.items() if g is None)}")

    pairs = [(v["mean_reward"], v["stroke_f1"]) for v in systems.values()
             if v["mean_reward"] is not None and v["stroke_f1"] is not None]
    rho = rules.spearman([p[0] for p in pairs], [p[1] for p in pairs], minimum=SPEARMAN_MIN_SYSTEMS)
    if rho is None:
        reasons["spearman_reward_stroke_f1"] = reasons.get("stroke_f1") or (
            f"{len(pairs)} systems with both a reward and a stroke F1 (need {SPEARMAN_MIN_SYSTEMS}), or one of the "
            f"two is the same for all of them")

    real = systems.get("real_motion", {}).get("mean_reward")
    ratio = real / high["mean_reward"] if real is not None and high["mean_reward"] and high["mean_reward"] > 0 \
        else None
    if ratio is None:
        reasons["real_reconstruction_reward_ratio"] = ("no real-motion row" if real is None else
                                                       "reconstruction's mean reward is not positive: no ratio")

    r_at_1, why = _retrieval_r_at_1(retrieval)
    if why:
        reasons["retrieval_r_at_1"] = why
    targets = {
        "share_gap": _target(max_gap, SHARE_GAP_TARGET, "<=", "largest gap, reward share vs stroke share"),
        "spearman": _target(_finite(rho), SPEARMAN_TARGET, ">=",
                            "Spearman's rho(mean reward, stroke F1) over the panel"),
        "real_motion": _target(_finite(ratio), REAL_RATIO_TARGET, ">=",
                               "real motion's mean reward / reconstruction's"),
        "retrieval_r_at_1": _target(r_at_1, R_AT_1_TARGET, ">=", f"retrieval R@1 among {R_AT_1_CANDIDATES}"),
    }
    if r_at_1 is not None and why:  # (measured among other candidates: reported, not a pass)
        targets["retrieval_r_at_1"]["pass"] = False
    targets_met = all(t["pass"] for t in targets.values())
    return {"systems": systems, "max_share_gap": max_gap, "max_share_gap_system": max_system,
            "spearman_reward_stroke_f1": _finite(rho), "real_reconstruction_reward_ratio": _finite(ratio),
            "retrieval_r_at_1": r_at_1, "targets": {**targets, "all_pass": targets_met}, "reasons": reasons}


def _retrieval_r_at_1(retrieval: dict | None) -> tuple[float | None, str | None]:
    """R@1 of a retrieval result and why it cannot be read against the target (not measured, or among other than
    ``R_AT_1_CANDIDATES`` candidates), or None."""
    if retrieval is None:
        return None, "not measured (pass retrieval=evaluate_reward(...))"
    if "error" in retrieval:
        return None, f"not measured: {retrieval['error']}"
    candidates = retrieval.get("params", {}).get("candidates", R_AT_1_CANDIDATES)
    why = None if candidates == R_AT_1_CANDIDATES else (f"measured among {candidates} candidates; the target is R@1 "
                                                        f"among {R_AT_1_CANDIDATES}")
    return _finite(retrieval["r_at_1"]), why


def _target(value: float | None, threshold: float, op: str, what: str) -> dict:
    """One target: its value, threshold and ``pass`` (False where the value could not be measured)."""
    ok = value is not None and (value <= threshold if op == "<=" else value >= threshold)
    return {"value": value, "threshold": threshold, "op": op, "what": what, "pass": bool(ok)}


# -- the panel -------------------------------------------------------------------------------------------------
def reward_panel(workspace: str | Workspace, retrieval: dict | None = None, split: str = "test",
                 agents: list[str] | None = None, seed: int = 0, device: str = "cpu", progress: bool = True) -> dict:
    """The reward-validity panel of a workspace on the clips of ``split`` ("valid" or "test").

    Args:
        retrieval: the workspace's :func:`racer_env.reward.evaluate.evaluate_reward` result, for the R@1 target
            (None: that target is not measured and fails).
        agents: names of the workspace's agents to put on the panel (default: every agent of the workspace).
        seed: seeds the random codes and the replaced steps (each system and clip its own stream): the same seed,
            the same panel.

    Returns:
        :func:`panel_summary`'s result with ``split``, ``clips``, ``clip_ids``, ``skipped`` (system -> why it is
        not on the panel) and ``params``.
    """
    if split not in ("valid", "test"):
        raise RacerError(f"the reward panel runs on held-out clips: split must be 'valid' or 'test', got {split!r}")
    ws = Workspace.of(workspace)
    corpus = Corpus.load(ws)
    clips = corpus.clips(split)
    if not clips:
        raise RacerError(f"split {split!r} of {corpus.directory} has no clips")
    names = list(agents) if agents is not None else list_agents(ws)
    systems, skipped = panel_systems(ws, corpus, split, names, seed, device)
    order = list(systems)
    random = {"random": systems.pop("random")}  # (its draws are its clips, each clip RANDOM_DRAWS times)
    draws = [clip for clip in clips for _ in range(RANDOM_DRAWS)]
    metrics, _, ref = evaluate_systems(ws, corpus, clips, systems, seed=seed, bootstrap=0, raw_fgd=False,
                                       progress=progress, label="reward panel")
    metrics.update(evaluate_systems(ws, corpus, draws, random, seed=seed, bootstrap=0, raw_fgd=False,
                                    progress=progress, label="reward panel")[0])
    metrics = {name: metrics[name] for name in order}
    has_rules = any(a is not None for a in ref.annotations)
    summary = panel_summary({n: {k: m[k] for k in FIGURES} for n, m in metrics.items()}, retrieval, has_rules)
    summary["skipped"] = skipped
    for name, reason in skipped.items():
        summary["reasons"][name] = reason
    return {"split": split, "clips": len(clips), "clip_ids": [c.id for c in clips], **summary,
            "params": {"seed": seed, "random_draws": RANDOM_DRAWS, "replaced_fractions": list(REPLACED),
                       "code_delays": list(CODE_DELAYS), "frame_delays": list(FRAME_DELAYS), "anchors": list(ANCHORS),
                       "agents": names,
                       "mean_reward": "mean per-step reward r_1 .. r_{L-1} of each clip's episode (a_0 the human "
                                      "code), averaged over clips; real_motion and frames_late_*: the reward model "
                                      "on the motion of the same windows",
                       "share": "(system - random) / (reconstruction - random)",
                       "rules": rules.RULE_PARAMS if has_rules else None,
                       "spearman_min_systems": SPEARMAN_MIN_SYSTEMS}}


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def panel_markdown(panel: dict) -> str:
    """The panel as a markdown table (one row per system) with its summary figures and targets."""
    order = list(panel["systems"])
    rows = ["| system | mean reward | stroke F1 | nod F1 | sync | reward share | stroke share | gap |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name in order:
        s = panel["systems"][name]
        rows.append(f"| {name} | " + " | ".join(_cell(s[k]) for k in (*FIGURES, "reward_share", "stroke_share",
                                                                        "share_gap")) + " |")
    rows += ["", f"Split {panel['split']} ({panel['clips']} clips); share: fraction of the random -> reconstruction "
                 f"gap. Largest share gap {_cell(panel['max_share_gap'])}"
                 + (f" ({panel['max_share_gap_system']})" if panel["max_share_gap_system"] else "")
                 + f"; Spearman rho(reward, stroke F1) {_cell(panel['spearman_reward_stroke_f1'])}; real / "
                   f"reconstruction reward {_cell(panel['real_reconstruction_reward_ratio'])}; retrieval R@1 "
                   f"{_cell(panel['retrieval_r_at_1'])}.", "",
             "| target | value | needed | met |", "| --- | ---: | ---: | --- |"]
    for t in (v for k, v in panel["targets"].items() if k != "all_pass"):
        rows.append(f"| {t['what']} | {_cell(t['value'])} | {t['op']} {t['threshold']:g} | "
                    f"{'yes' if t['pass'] else 'no'} |")
    if panel["reasons"]:
        rows += [""] + [f"- {key}: {why}" for key, why in panel["reasons"].items()]
    return "\n".join(rows) + "\n"
