"""Train the FGD feature extractor shipped in racer_env/metrics/data/fgd_extractor.pt.

It is trained on the built-in demo corpus (60 minutes, 4 speakers, seed 0, as ``racer corpus synth W``
makes it; ``--workspace W`` reuses such a corpus instead of synthesising one): windows of 32 frames at 20 fps of
joint positions relative to the root, in units of 100 mm, with their velocities, for the 16-joint Trinity/GENEA
layout; the features are then standardised by those training windows' features. Prints the checksum to put in
racer_env/metrics/fgd.py (EXTRACTOR_SHA256). ``benchmarks/fgd_range.py`` measures its range.

Usage:  python benchmarks/train_fgd_extractor.py [--workspace W] [--steps 3000]
                                                 [--out racer_env/metrics/data/fgd_extractor.pt]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from racer_env.corpus.build import synth_corpus
from racer_env.corpus.store import Corpus
from racer_env.metrics.fgd import EXTRACTOR_PATH
from racer_env.metrics.fgd_training import save_extractor, train_extractor


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", type=Path, default=None, help="a workspace holding the demo corpus")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=EXTRACTOR_PATH)
    args = p.parse_args()
    if args.workspace is None:
        ws = Path(tempfile.mkdtemp(prefix="racer-fgd-")) / "W"
        corpus = synth_corpus(ws, minutes=60, speakers=4, seed=0, progress=False).corpus
    else:
        corpus = Corpus.load(args.workspace)
    model, meta = train_extractor(corpus, steps=args.steps, dim=args.dim, seed=args.seed)
    checksum = save_extractor(args.out, model, meta)
    print(f"final reconstruction MSE {meta['final_mse']:.5f} on {meta['windows']} windows")
    print(f"wrote {args.out}  sha256 {checksum}")


if __name__ == "__main__":
    main()
