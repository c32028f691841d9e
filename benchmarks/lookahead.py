"""How much speech ahead does an agent need to place the beat strokes? The observation's look-ahead, measured.

Two parts, on a workspace built by ``racer demo W`` (the built-in corpus: its annotation says where the strokes are):

  * **probe** (seconds): a small classifier per look-ahead A predicts, for every code step of the training clips,
    whether the speaker's annotation puts a beat stroke in it, from the agent's observation audio (code steps
    k-3 .. k+A, standardised as the environment does) and, as the agent has them, the strokes of the 8 code steps
    before (its own earlier choices: given from the annotation while training, the probe's own predictions when
    scored); F1 of the stroke steps on the validation clips. Also a bidirectional GRU over the whole clip: the
    ceiling of what the speech says. What no reward can teach an agent is what its observation does not hold.
  * **agents** (``--agents A ...``; minutes each): for each of those look-aheads, a copy of W's corpus, VQ-VAE and
    reward model, a dataset built with ``racer dataset build --lookahead A``, bc and racer-cql trained on it with the
    demo defaults, and ``racer evaluate`` on the validation and test clips (stroke F1, nod F1, sync, mean reward).

Choose on the validation clips; the test clips are reported beside them.

Usage:  python benchmarks/lookahead.py W [--lookaheads 0 1 2 3 4 6] [--agents [A ...]] [--scratch DIR]
                                         [--out benchmarks/results/lookahead]
Writes <out>.json and <out>.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))

from common import machine, run_racer, write_results

from racer_env.corpus.store import Corpus
from racer_env.envs.episode_data import observation_audio
from racer_env.metrics.rules import load_annotation, stroke_times

HISTORY = 8  # code steps of earlier strokes the probe sees (the agent's 8 codes)
PAST = 3  # code steps of speech before the step (the observation's)
PROBE_STEPS, PROBE_BATCH = 3000, 256
GRU_STEPS, GRU_WINDOW = 1500, 64
SUMMARY = ("stroke_f1", "nod_f1", "sync", "mean_reward")


# -- the probe ----------------------------------------------------------------------------------------------
def stroke_steps(workspace: Path, corpus: Corpus, split: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per clip of ``split``: (K, 8 F) observation audio per code step and (K,) 1.0 where a stroke is annotated."""
    fpc, out = corpus.frames_per_code, []
    for clip in corpus.clips(split):
        z = observation_audio(clip.audio, corpus.stats, fpc)  # (K, 8, F)
        y = np.zeros(len(z), dtype=np.float32)
        for t in stroke_times(load_annotation(workspace, clip.id)):
            k = int(t * corpus.fps // fpc)
            if k < len(z):
                y[k] = 1.0
        out.append((torch.from_numpy(z.reshape(len(z), -1)), torch.from_numpy(y)))
    return out


def audio_windows(z: torch.Tensor, ahead: int) -> torch.Tensor:
    """(K, D) per-step audio -> (K, (PAST + 1 + ahead) D): steps k-PAST .. k+ahead, zeros beyond the clip."""
    k = len(z)
    padded = torch.zeros(PAST + ahead + k, z.shape[1])
    padded[PAST:PAST + k] = z
    return torch.stack([padded[i:i + PAST + 1 + ahead].reshape(-1) for i in range(k)])


def earlier(y: torch.Tensor) -> torch.Tensor:
    """(K,) strokes -> (K, HISTORY): the strokes of the HISTORY steps before each step."""
    padded = torch.cat([torch.zeros(HISTORY), y])
    return torch.stack([padded[i:i + HISTORY] for i in range(len(y))])


def f1(pred: torch.Tensor, truth: torch.Tensor) -> float:
    hits = float((pred * truth).sum())
    return 2 * hits / max(float(pred.sum() + truth.sum()), 1.0)


def probe(train: list, valid: list, ahead: int, seed: int) -> float:
    """Validation F1 of stroke steps predicted from steps k-3 .. k+ahead and the earlier strokes (autoregressive)."""
    torch.manual_seed(seed)
    x = torch.cat([torch.cat([audio_windows(z, ahead), earlier(y)], 1) for z, y in train])
    y = torch.cat([y for _, y in train])
    model = nn.Sequential(nn.Linear(x.shape[1], 256), nn.GELU(), nn.Dropout(0.1), nn.Linear(256, 256), nn.GELU(),
                          nn.Linear(256, 1))
    opt = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=1e-2)
    for _ in range(PROBE_STEPS):
        idx = torch.randint(len(x), (PROBE_BATCH,))
        loss = nn.functional.binary_cross_entropy_with_logits(model(x[idx])[:, 0], y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    preds = []
    with torch.no_grad():
        for z, truth in valid:  # the probe's own earlier strokes, as an agent has its own earlier codes
            audio, own = audio_windows(z, ahead), torch.zeros(len(truth))
            for k in range(len(truth)):
                feats = torch.cat([audio[k], torch.cat([torch.zeros(HISTORY), own])[k:k + HISTORY]])
                own[k] = float(model(feats[None])[0, 0] > 0)
            preds.append(own)
    return f1(torch.cat(preds), torch.cat([t for _, t in valid]))


class WholeClip(nn.Module):
    """Bidirectional GRU over a clip's per-step audio: every step sees the whole clip."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.inp, self.gru, self.out = nn.Linear(dim, 128), nn.GRU(128, 128, 2, batch_first=True, bidirectional=True), \
            nn.Linear(256, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, K, D) -> (B, K) logits
        return self.out(self.gru(torch.relu(self.inp(z)))[0])[..., 0]


def probe_whole_clip(train: list, valid: list, seed: int) -> float:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = WholeClip(train[0][0].shape[1])
    opt = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=1e-2)
    for _ in range(GRU_STEPS):
        z, y = train[rng.integers(len(train))]
        n = min(len(y), GRU_WINDOW)
        a = int(rng.integers(0, len(y) - n + 1))
        loss = nn.functional.binary_cross_entropy_with_logits(model(z[None, a:a + n])[0], y[a:a + n])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = torch.cat([(model(z[None])[0] > 0).float() for z, _ in valid])
    return f1(pred, torch.cat([y for _, y in valid]))


# -- agents per look-ahead ------------------------------------------------------------------------------------
def agents_at(workspace: Path, scratch: Path, ahead: int) -> dict:
    """bc and racer-cql trained on a dataset of look-ahead ``ahead`` (a copy of W's first stages); their figures."""
    ws = scratch / f"lookahead{ahead}"
    if not (ws / "corpus").is_dir():
        ws.mkdir(parents=True, exist_ok=True)
        for part in ("corpus", "vqvae", "reward", "synth"):
            shutil.copytree(workspace / part, ws / part)
    seconds = {"dataset": run_racer("dataset", "build", str(ws), "--lookahead", str(ahead), "--quiet")[1]}
    for algo in ("bc", "racer-cql"):
        seconds[algo] = run_racer("train", "agent", str(ws), "--algo", algo, "--quiet")[1]
    out = {"seconds": seconds}
    for split in ("valid", "test"):
        result = json.loads(run_racer("evaluate", "agents", str(ws), "--split", split, "--json", "--quiet")[0])
        out[split] = {name: {k: s.get(k) for k in SUMMARY} for name, s in result["systems"].items()}
    return out


def synthesis_seed(workspace: Path) -> int | None:
    """The built-in corpus's synthesis seed (``W/synth/params.json``)."""
    path = workspace / "synth" / "params.json"
    return json.loads(path.read_text())["params"]["seed"] if path.is_file() else None


def markdown(report: dict) -> str:
    a = report["args"]
    lines = ["# The observation's look-ahead", "",
             f"`python benchmarks/lookahead.py W --lookaheads {' '.join(map(str, a['lookaheads']))}"
             f"{' --agents ' + ' '.join(map(str, a['agents'])) if a['agents'] else ''}` on a `racer demo` workspace "
             f"(built-in corpus, seed {report['corpus_seed']}). {report['machine']}; {report['seconds']:.0f} s in all.", "",
             "## What the speech says: stroke steps predicted from the observation (validation clips)", "",
             "A classifier per look-ahead: speech of code steps k−3 … k+A and its own strokes of the 8 steps before → "
             "is there an annotated stroke in step k? F1 of the stroke steps.", "",
             "| look-ahead (code steps) | seconds | stroke-step F1 |", "| --- | --- | --- |"]
    for ahead, value in report["probe"].items():
        lines.append(f"| {ahead} | {0.4 * int(ahead):.1f} | {value:.3f} |")
    lines.append(f"| the whole clip (bidirectional GRU) | – | {report['probe_whole_clip']:.3f} |")
    if report.get("agents"):
        for split in ("valid", "test"):
            lines += ["", f"## Agents trained with each look-ahead ({split} clips, one training seed)", "",
                      "| look-ahead | system | stroke F1 | nod F1 | sync | mean reward |",
                      "| --- | --- | --- | --- | --- | --- |"]
            for ahead, res in report["agents"].items():
                for name, s in res[split].items():
                    if name in ("bc", "racer-cql", "nearest_neighbour") or ahead == min(report["agents"]):
                        cells = " | ".join("–" if s[k] is None else f"{s[k]:.3f}" for k in SUMMARY)
                        lines.append(f"| {ahead} | {name} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--lookaheads", type=int, nargs="+", default=[0, 1, 2, 3, 4, 6])
    parser.add_argument("--agents", type=int, nargs="*", default=None, metavar="A",
                        help="also train and evaluate agents at these look-aheads (default with no value: every one)")
    parser.add_argument("--scratch", type=Path, default=None, help="where the agents' workspaces go (default: "
                        "<out>_workspaces)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lookahead")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    corpus = Corpus.load(args.workspace)
    train, valid = stroke_steps(args.workspace, corpus, "train"), stroke_steps(args.workspace, corpus, "valid")
    agent_lookaheads = args.lookaheads if args.agents == [] else (args.agents or [])
    report = {"args": {"lookaheads": args.lookaheads, "agents": agent_lookaheads, "seed": args.seed},
              "corpus_seed": synthesis_seed(args.workspace), "machine": machine(),
              "probe": {str(a): probe(train, valid, a, args.seed) for a in args.lookaheads},
              "probe_whole_clip": probe_whole_clip(train, valid, args.seed)}
    print(json.dumps(report["probe"]), report["probe_whole_clip"], flush=True)
    if agent_lookaheads:
        scratch = args.scratch or args.out.parent / f"{args.out.name}_workspaces"
        report["agents"] = {str(a): agents_at(args.workspace, scratch, a) for a in agent_lookaheads}
    report["seconds"] = time.perf_counter() - start
    write_results(args.out, report, markdown)


if __name__ == "__main__":
    main()
