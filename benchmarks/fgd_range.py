"""Does FGD have range? FGD of the decoded ground-truth codes against FGD of uniformly random codes.

On the held-out clips of a workspace with a trained VQ-VAE, the real motion's windows are compared with the
windows of (a) its ground-truth codes decoded (``reconstruction``: the ceiling of any code-choosing agent) and
(b) uniformly random codes decoded (``random``, seeded). Target: FGD(random) >= 20 x FGD(reconstruction), with
the shipped extractor. Also reported: the same with any other extractor checkpoints given (``--extractor``),
raw-space FGD, and the FGD of the training split's real motion (a floor: real against real).

Also reported: the held-out motion with only the decoder's smoothing applied (the reconstruction of a
codebook that loses nothing else), to separate the extractor's range from the codebook's losses.

Usage:  python benchmarks/fgd_range.py W [--extractor PATH ...] [--split test] [--seed 0]
                                         [--out benchmarks/results/fgd_range]
Writes <out>.json and <out>.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from common import write_results

from racer_env.corpus.store import Corpus
from racer_env.metrics import fgd as fgd_mod
from racer_env.metrics.fgd_training import corpus_windows
from racer_env.vqvae.tokenize import SMOOTH_KERNEL, decode_codes, encode_clip, gaussian_smooth, load_vqvae

SYSTEMS = ("train_real", "real_smoothed", "reconstruction", "random")


def smoothed_rotations(clip, stats, sigma: float) -> np.ndarray:
    """The clip's rotations with only the decoder's Gaussian smoothing (the model's sigma) applied, in the
    normalised space the decoder smooths in: what a codebook that loses nothing else would give back.
    (T, J, 3) rotation vectors."""
    x = torch.from_numpy(stats.normalise_motion(clip.motion_features()).T.astype(np.float32))[None]  # (1, J*3, T)
    smooth = (gaussian_smooth(x, SMOOTH_KERNEL, sigma) if sigma > 0 else x)[0].T.numpy()  # (T, J*3)
    return stats.denormalise_motion(smooth).reshape(len(smooth), -1, 3)


def system_windows(workspace: Path, split: str, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """Real windows of ``split`` and, per system, the windows of its decoded motion (n, WINDOW, J, 3) mm."""
    corpus = Corpus.load(workspace)
    model, meta, checksum = load_vqvae(workspace, corpus)
    rng = np.random.default_rng(seed)
    pos = lambda clip, rot: clip.skeleton.positions(rot)  # (T, J, 3) mm
    real, smooth, rec, rand = [], [], [], []
    for clip in corpus.clips(split):
        codes = encode_clip(model, clip, corpus.stats)  # (L,)
        real.append(fgd_mod.windows(pos(clip, clip.rotations)))
        smooth.append(fgd_mod.windows(pos(clip, smoothed_rotations(clip, corpus.stats, model.cfg.smooth_sigma))))
        rec.append(fgd_mod.windows(pos(clip, decode_codes(model, codes, corpus.stats))))
        random_codes = rng.integers(0, model.cfg.codebook_size, len(codes))
        rand.append(fgd_mod.windows(pos(clip, decode_codes(model, random_codes, corpus.stats))))
    systems = {"train_real": corpus_windows(corpus, "train"), "real_smoothed": np.concatenate(smooth),
               "reconstruction": np.concatenate(rec),
               "random": np.concatenate(rand)}
    info = {"corpus_sha256": corpus.checksum, "vqvae_sha256": checksum, "vqvae_arch": meta.get("arch"),
            "clips": len(corpus.clips(split)), "joint_names": corpus.joint_names}
    return np.concatenate(real), systems, info


def fgd_rows(extractor: fgd_mod.FeatureExtractor | None, real: np.ndarray, systems: dict[str, np.ndarray]) -> dict:
    """FGD (or raw-space FGD when ``extractor`` is None) of each system against ``real``, and the range ratio."""
    dist = (lambda w: fgd_mod.raw_fgd(real, w)) if extractor is None else (lambda w: fgd_mod.fgd(extractor, real, w))
    row = {name: dist(w) for name, w in systems.items()}
    row["random_over_reconstruction"] = row["random"] / row["reconstruction"] if row["reconstruction"] > 0 else None
    return row


def markdown(result: dict) -> str:
    lines = ["# FGD range: reconstruction vs random codes", "",
             (f"Held-out split `{result['split']}` ({result['info']['clips']} clips); VQ-VAE "
             f"{result['info']['vqvae_sha256'][:12]}; random codes seeded {result['seed']}."), "",
             ("| extractor | train real | real, decode smoothing only | reconstruction | random | "
             "random / reconstruction |"),
             "| --- | --- | --- | --- | --- | --- |"]
    for name, r in result["rows"].items():
        ratio = "n/a" if r["random_over_reconstruction"] is None else f"{r['random_over_reconstruction']:.1f}"
        lines.append(f"| {name} | {r['train_real']:.4f} | {r['real_smoothed']:.4f} | {r['reconstruction']:.4f} | {r['random']:.4f} | {ratio} |")
    shipped = result["rows"]["shipped"]["random_over_reconstruction"]
    lines += ["", ("train real: the training split's real motion (the floor: real against real); real, decode "
              "smoothing only: the held-out motion passed through the decoder's Gaussian smoothing alone (what a "
              "codebook that keeps everything else would score); reconstruction: the ground-truth codes decoded; "
              "random: uniformly random codes decoded."),
              "", (f"Target FGD(random) >= 20 x FGD(reconstruction) with the shipped extractor: "
              f"{'met' if shipped is not None and shipped >= 20 else 'NOT met'}.")]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workspace", type=Path)
    p.add_argument("--extractor", type=Path, action="append", default=[], help="other extractor checkpoints")
    p.add_argument("--split", default="test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/fgd_range"))
    args = p.parse_args()
    real, systems, info = system_windows(args.workspace, args.split, args.seed)
    extractors = {"shipped": fgd_mod.load_extractor(joint_names=info["joint_names"])}
    extractors.update({str(path): fgd_mod.load_extractor(path, info["joint_names"]) for path in args.extractor})
    rows = {name: fgd_rows(e, real, systems) for name, e in extractors.items()}
    rows["raw-space"] = fgd_rows(None, real, systems)
    result = {"split": args.split, "seed": args.seed, "info": info, "rows": rows,
              "params": {"window_frames": fgd_mod.WINDOW, "stride_frames": fgd_mod.STRIDE,
                         "extractor_sha256": fgd_mod.EXTRACTOR_SHA256}}
    write_results(args.out, result, markdown)


if __name__ == "__main__":
    main()
