"""Train the FGD feature extractor shipped in racer_env/metrics/data/fgd_extractor.pt.

It is trained on the built-in corpus (10 minutes, 2 speakers, seed 0): windows of 32 frames at 20 fps of joint
positions relative to the root, in units of 100 mm, for the 16-joint Trinity/GENEA layout. Prints the checksum to
put in racer_env/metrics/fgd.py (EXTRACTOR_SHA256).

Usage:  python benchmarks/train_fgd_extractor.py [--steps 2000] [--out racer_env/metrics/data/fgd_extractor.pt]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from racer_env.corpus.build import synth_corpus
from racer_env.metrics.fgd import EXTRACTOR_PATH
from racer_env.metrics.fgd_training import save_extractor, train_extractor


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=EXTRACTOR_PATH)
    args = p.parse_args()
    ws = Path(tempfile.mkdtemp(prefix="racer-fgd-")) / "W"
    corpus = synth_corpus(ws, minutes=10, speakers=2, seed=0, progress=False).corpus
    model, meta = train_extractor(corpus, steps=args.steps, seed=args.seed)
    checksum = save_extractor(args.out, model, meta)
    print(f"final reconstruction MSE {meta['final_mse']:.5f} on {meta['windows']} windows")
    print(f"wrote {args.out}  sha256 {checksum}")


if __name__ == "__main__":
    main()
