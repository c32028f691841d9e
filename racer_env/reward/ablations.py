"""Does the reward see the arms and the head? Mean reward of held-out clips resynthesised without a part.

On corpora of the built-in speaker every clip's annotation (``W/synth/<clip id>.json``) holds the seed,
speaker, clip index and duration it was synthesised from, so the clip can be synthesised again with the same
speech and the same random draws but one ingredient changed (:func:`racer_env.corpus.synth.synthesize_clip`):

* ``no_arms``: both hands stay at rest (no arm gestures);
* ``no_nods``: no head nods;
* ``other_draw``: another valid gesture for the same speech (the per-phrase choices of hands, stroke
  direction and lateral position drawn from another stream; the stroke times stay on the stressed syllables).

Each variant's motion takes the corpus motion's path: written as BVH and WAV, imported by the importer's own
:func:`~racer_env.corpus.importer.import_pair` (60 -> 20 fps, upper-body rotation vectors), encoded by the
workspace's VQ-VAE, decoded and scored by :class:`~racer_env.reward.scorer.RewardScorer` exactly as the
environment scores r_t: every window of W consecutive codes against the clip's own audio features of the
same frames. Beside them: the real motion (its ground-truth codes), random codes (uniform over the codebook)
and the true codes shifted against the audio by -2 .. +2 code steps.

A reward that sees both parts loses much of the gap between the real motion and random codes without the
arms and without the nods, keeps most of it for another valid draw, and degrades with the timing error.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from racer_env.audio.features import AudioFeatureConfig
from racer_env.corpus.importer import ImportConfig, SourcePair, import_pair
from racer_env.corpus.store import Clip, Corpus, CorpusError
from racer_env.corpus.synth import synthesize_clip, write_clip
from racer_env.errors import RacerError
from racer_env.metrics.rules import annotation_path, load_annotation
from racer_env.reward.scorer import RewardScorer
from racer_env.vqvae.tokenize import encode_clip

#: resynthesis options of each ablation (keyword arguments of ``synthesize_clip``).
VARIANTS: dict[str, dict] = {"no_arms": {"arms": False}, "no_nods": {"nods": False}, "other_draw": {"gesture_draw": 1}}
SHIFTS = (-2, -1, 0, 1, 2)  # code steps the true codes are moved against the audio
RANDOM_DRAWS = 4  # random code sequences per clip (their mean reward)
AUDIO_ATOL = 1e-4  # resynthesised speech features must match the corpus clip's to this


def import_config_of(corpus: Corpus) -> ImportConfig:
    """The import settings the corpus was built with (its manifest's ``import_config``)."""
    recorded = dict(corpus.manifest["import_config"])
    return ImportConfig(**{**recorded, "audio": AudioFeatureConfig(**recorded["audio"])})


def annotations_of(workspace_root: str | Path, clip_ids: list[str]) -> list[dict] | None:
    """The synthetic annotation of every clip, or None for a corpus without any (a real one).

    Raises:
        CorpusError: some clips have an annotation and others not.
    """
    found = [load_annotation(workspace_root, c) for c in clip_ids]
    if all(a is None for a in found):
        return None
    missing = [str(annotation_path(workspace_root, c)) for c, a in zip(clip_ids, found) if a is None]
    if missing:
        raise CorpusError(f"synthetic annotations missing for some clips: {missing[:3]} (rebuild the corpus)")
    return found


def resynthesised_clip(clip: Clip, annotation: dict, config: ImportConfig, **variant) -> Clip:
    """``clip`` synthesised again from its annotation with ``variant`` options, imported like the corpus.

    Returns a clip with the variant's rotations and the corpus clip's own audio features.

    Raises:
        CorpusError: the annotation does not resynthesise this clip (its speech features differ).
    """
    synth = synthesize_clip(int(annotation["seed"]), int(annotation["speaker"]), int(annotation["clip"]),
                            float(annotation["duration_s"]), **variant)
    with tempfile.TemporaryDirectory(prefix="racer-ablation-") as tmp:
        info = write_clip(synth, Path(tmp), "clip")
        imported = import_pair(SourcePair(clip.speaker, "clip", info.wav, info.bvh), config)
    rotations, audio = imported["rotations"], imported["audio"]  # (T, J, 3), (T, F)
    if rotations.shape != clip.rotations.shape or not np.allclose(audio, clip.audio, atol=AUDIO_ATOL):
        raise CorpusError(f"clip {clip.id!r}: its annotation (seed {annotation['seed']}, speaker "
                          f"{annotation['speaker']}, clip {annotation['clip']}) does not resynthesise it")
    return replace(clip, rotations=rotations)


def window_rewards(scorer: RewardScorer, codes: np.ndarray, audio: np.ndarray, starts: np.ndarray,
                   shift: int = 0) -> np.ndarray:
    """(N,) r of codes[s+shift : s+shift+W] against the audio frames of code steps s .. s+W-1, s in ``starts``.

    Args:
        codes: (L,) code sequence of the clip.
        audio: (T, F) raw audio features of the clip, T >= 8L.
    """
    w, fpc = scorer.window_codes, scorer.frames_per_code
    c = torch.as_tensor(np.stack([codes[s + shift:s + shift + w] for s in starts]))  # (N, W)
    a = torch.as_tensor(np.stack([audio[s * fpc:(s + w) * fpc] for s in starts]))  # (N, 8W, F)
    return scorer.rewards(c, a).numpy()


def clip_ablations(scorer: RewardScorer, corpus: Corpus, clip: Clip, annotation: dict, config: ImportConfig,
                   rng: np.random.Generator) -> dict:
    """Mean reward of one clip's real motion, random codes, each variant and each shift of the true codes."""
    stats, w = corpus.stats, scorer.window_codes
    codes = encode_clip(scorer.vqvae, clip, stats)  # (L,)
    n = len(codes)
    if n < w + 2 * max(SHIFTS):
        raise RacerError(f"clip {clip.id!r} has {n} code steps; the shifted windows need at least "
                         f"{w + 2 * max(SHIFTS)} (W = {w})")
    every = np.arange(n - w + 1)
    out = {"real": float(window_rewards(scorer, codes, clip.audio, every).mean())}
    n_codes = scorer.vqvae.cfg.codebook_size
    out["random"] = float(np.mean([window_rewards(scorer, rng.integers(0, n_codes, n), clip.audio, every).mean()
                                   for _ in range(RANDOM_DRAWS)]))
    for name, variant in VARIANTS.items():
        variant_codes = encode_clip(scorer.vqvae, resynthesised_clip(clip, annotation, config, **variant), stats)
        out[name] = float(window_rewards(scorer, variant_codes, clip.audio, every).mean())
    inner = np.arange(max(SHIFTS), n - w + 1 - max(SHIFTS))  # starts every shift can use
    for k in SHIFTS:
        out[f"shift_{k:+d}"] = float(window_rewards(scorer, codes, clip.audio, inner, shift=k).mean())
    return out


def gap_kept(means: dict[str, float]) -> dict[str, float]:
    """Fraction of the (real - random) reward gap each other system keeps: 1 = as real, 0 = as random."""
    gap = means["real"] - means["random"]
    return {k: (v - means["random"]) / gap if gap != 0 else float("nan")
            for k, v in means.items() if k not in ("real", "random")}


def reward_ablations(workspace_root: str | Path, scorer: RewardScorer, corpus: Corpus, clip_ids: list[str],
                     seed: int = 0) -> dict | None:
    """The ablation table of ``clip_ids`` (None for a corpus without synthetic annotations).

    Returns:
        ``mean`` (system -> mean over clips of the clip's mean window reward), ``gap_kept`` (system ->
        fraction of the real - random gap), ``per_clip`` (clip id -> system -> mean reward) and ``params``.
    """
    annotations = annotations_of(workspace_root, clip_ids)
    if annotations is None:
        return None
    config = import_config_of(corpus)
    rng = np.random.default_rng(seed)
    per_clip = {c: clip_ablations(scorer, corpus, corpus.clip(c), a, config, rng)
                for c, a in zip(clip_ids, annotations)}
    systems = next(iter(per_clip.values())).keys()
    means = {s: float(np.mean([v[s] for v in per_clip.values()])) for s in systems}
    return {
        "mean": means,
        "gap_kept": gap_kept(means),
        "per_clip": per_clip,
        "params": {"clips": len(clip_ids), "window_codes": scorer.window_codes, "random_draws": RANDOM_DRAWS,
                   "variants": VARIANTS, "shifts": list(SHIFTS), "seed": seed,
                   "shift_windows": f"starts {max(SHIFTS)} .. L-W-{max(SHIFTS)} (every shift, the same audio)"},
    }


def format_ablations(ablations: dict) -> str:
    """A plain-text table of the ablations: system, mean reward, fraction of the gap kept."""
    lines = [f"{'system':<12} {'reward':>8} {'gap kept':>9}"]
    for name, value in ablations["mean"].items():
        kept = ablations["gap_kept"].get(name)
        lines.append(f"{name:<12} {value:>8.4f} {'' if kept is None else f'{kept:>9.3f}'}")
    return "\n".join(lines)
