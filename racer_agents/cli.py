"""The ``racer`` command line. Every stage reads and writes one workspace directory ``W``.

    racer corpus synth W [--minutes M] [--speakers S] [--seed N]   built-in synthetic speaker
    racer corpus import SRC W [--unit cm]                          wav + bvh pairs (GENEA/Trinity layout)
    racer corpus info W [--json]                                   what the corpus holds
    racer train vqvae W [--preset demo] [--seed N] [--resume]      gesture codebook
    racer train reward W [--preset demo] [--seed N] [--resume]     contrastive reward model
    racer evaluate codebook W [--json]                             held-out MAJE, stroke/nod recall, code usage
    racer evaluate reward W [--json]                               held-out retrieval and AUCs
    racer evaluate reward W --panel [--split test] [--json]        the reward-validity panel and its targets
    racer evaluate files --audio A --motion M.bvh [--reference R.bvh]  metrics of any take against its speech
    racer dataset build W [--tier T] [--augment K] [--reward distance]  a Minari dataset (augmented, expert, random,
                                                                   medium, medium-replay, medium-expert)
    racer train agent W --algo racer-cql|bc|d3rlpy:<Name>          agents on the dataset
    racer train agent W --algo dqn|actor-critic                    online agents on the vector environment
    racer generate [W] --audio speech.wav [--agent NAME] [--out DIR] [--reference R.bvh]
                                                                   gestures for a recording (npz, bvh, mp4);
                                                                   without W: the shipped pretrained demo weights
    racer evaluate W [--agent NAME] [--split test] [--videos N]    metrics of agents on held-out clips
    racer benchmark W --algo A [--tier T] [--seeds N] [--json]     an offline RL algorithm on the dataset tiers
    racer demo W [--preset demo|tiny]                               all of the above on the built-in corpus,
                                                                   ending in W/report.md
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import time
from pathlib import Path

from racer_env.corpus.store import Corpus
from racer_env.errors import Interrupted, RacerError, path_error
from racer_env.motion.skeleton import UNITS_MM
from racer_env.threads import configure_threads
from racer_env.workspace import stage_lock, strict_json

#: exit status of a user's mistake (as argparse's), and of a run stopped by Ctrl-C (128 + SIGINT).
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
DEVICE_HELP = "cpu (default), cuda, cuda:N, mps or auto"


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (``racer train vqvae: error: argument --seed: ...``), exit 2."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def _number(kind: type, expected: str, valid):
    """An argparse type: ``kind(text)`` if ``valid`` of it holds, else an error saying ``expected``."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not valid(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    return parse


#: racer_env.dataset.builder.TIERS (repeated here so that parsing the command line imports no torch; a test checks)
TIER_CHOICES = ("augmented", "expert", "random", "medium", "medium-replay", "medium-expert")
_seed = _number(int, "an integer >= 0", lambda v: v >= 0)
_count = _seed  # (the same rule: an integer >= 0)
_positive_int = _number(int, "an integer >= 1", lambda v: v >= 1)
_positive_float = _number(float, "a positive number", lambda v: 0 < v < float("inf"))


def _device(text: str) -> str:
    """A device this machine has (checked before any work)."""
    from racer_env.training import resolve_device

    try:
        resolve_device(text)
    except RacerError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix(f"--device {text}: ")) from None
    return text


def _common_options(p: argparse.ArgumentParser, func) -> None:
    """What every command that computes takes: ``--device`` (checked before any work), ``--quiet``, and its
    function."""
    p.add_argument("--device", type=_device, default="cpu", help=DEVICE_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=func)


def _add_import_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=_seed, default=0, help="seed of the synthesis and the train/valid/test split")
    p.add_argument("--valid-frac", type=float, default=0.1, help="fraction of each speaker's clips for validation")
    p.add_argument("--test-frac", type=float, default=0.1, help="fraction of each speaker's clips for testing")
    p.add_argument("--workers", type=_positive_int, default=None, help="import processes (default: all cores)")
    p.add_argument("--force", action="store_true", help="replace a corpus built from other inputs")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser(stage: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or (``stage`` given) without the options of the other stages' training commands:
    those are read from the config classes, whose modules import torch, so ``racer corpus info`` and every other
    non-training command start without loading it."""
    parser = _Parser(prog="racer", description="RACER co-speech gesture synthesis")
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    corpus = stages.add_parser("corpus", help="build or inspect the corpus in a workspace")
    verbs = corpus.add_subparsers(dest="verb", required=True, metavar="VERB")

    synth = verbs.add_parser("synth", help="synthesise the built-in speaker into W/synth and import it")
    synth.add_argument("workspace", type=Path, help="workspace directory W")
    synth.add_argument("--minutes", type=_positive_float, default=60.0, help="total minutes of speech")
    synth.add_argument("--speakers", type=_positive_int, default=4, help="number of synthetic speakers")
    synth.add_argument("--clip-seconds", type=_positive_float, default=30.0, help="length of each clip")
    _add_import_options(synth)
    synth.set_defaults(func=cmd_synth)

    imp = verbs.add_parser("import", help="import name.wav + name.bvh pairs from SRC into W/corpus")
    imp.add_argument("src", type=Path, help="directory of pairs, or of one subdirectory of pairs per speaker")
    imp.add_argument("workspace", type=Path, help="workspace directory W")
    unit = imp.add_mutually_exclusive_group()
    unit.add_argument("--unit", choices=sorted(UNITS_MM), default="cm", help="unit of the BVH offsets (default cm)")
    unit.add_argument("--unit-mm", type=_positive_float, help="millimetres per BVH unit, for other units")
    _add_import_options(imp)
    imp.set_defaults(func=cmd_import)

    info = verbs.add_parser("info", help="print what the corpus in W holds")
    info.add_argument("workspace", type=Path, help="workspace directory W")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(func=cmd_info)
    _add_train_parsers(stages, with_verbs=stage in (None, "train"))
    _add_evaluate_parsers(stages)
    _add_dataset_parsers(stages)
    gen = stages.add_parser("generate", help="gestures for a speech recording: npz, bvh and mp4")
    gen.add_argument("workspace", type=Path, nargs="?", default=None,
                     help="workspace directory W (its VQ-VAE, skeleton and agents); omitted: the pretrained demo "
                          "weights shipped with racer")
    gen.add_argument("--audio", type=Path, required=True, help="speech recording (wav, flac, ogg; any rate)")
    gen.add_argument("--agent", default=None, help="agent name in W/agents (default: racer-cql)")
    gen.add_argument("--out", type=Path, default=None,
                     help="output directory (default: W/generated/<name>, or ./generated/<name> without W)")
    gen.add_argument("--formats", default="npz,bvh,mp4", help="comma-separated: npz, bvh, mp4")
    gen.add_argument("--reference", type=Path, default=None, metavar="R.bvh",
                     help="a take to show beside the generated motion in the video (e.g. the real motion of the same "
                          "speech; any BVH skeleton with a head and two hands)")
    _common_options(gen, cmd_generate)
    demo = stages.add_parser("demo", help="the whole pipeline on the built-in corpus, ending in W/report.md")
    demo.add_argument("workspace", type=Path, help="workspace directory W")
    demo.add_argument("--preset", default="demo", choices=["demo", "tiny"],
                      help="model sizes: demo (default, <= 10 min on 2 cores) or tiny (a smoke test)")
    demo.add_argument("--minutes", type=_positive_float, default=None,
                      help="minutes of built-in speech (default 60; 1 with --preset tiny)")
    demo.add_argument("--seed", type=_seed, default=0, help="seed of every stage")
    _common_options(demo, cmd_demo)
    bench = stages.add_parser("benchmark", help="an offline RL algorithm on the dataset tiers, with normalised scores")
    bench.add_argument("workspace", type=Path, help="workspace directory W (corpus, VQ-VAE and reward model trained)")
    bench.add_argument("--algo", required=True,
                       help="racer-cql, bc, d3rlpy:<Name>, dqn, actor-critic, or module:Class (your own agent: act and "
                            "fit(dataset); see docs/benchmark.md)")
    bench.add_argument("--tier", action="append", default=None, choices=TIER_CHOICES,
                       help="dataset tier (repeatable; default: all six)")
    bench.add_argument("--seeds", type=_positive_int, default=3, help="training seeds 0..N-1 (default 3)")
    bench.add_argument("--steps", type=_positive_int, default=None,
                       help="training steps (online: iterations; default: the preset's)")
    bench.add_argument("--preset", default="demo", choices=["tiny", "demo", "paper"],
                       help="model sizes of the agents (default demo)")
    bench.add_argument("--batch-size", type=_positive_int, default=None,
                       help="offline algorithms' training batch (default: the preset's)")
    bench.add_argument("--json", action="store_true", help="print the whole result as JSON")
    _common_options(bench, cmd_benchmark)
    return parser


def cmd_benchmark(args: argparse.Namespace) -> int:
    from racer_agents.benchmark import print_report, result_path, run_benchmark

    report = run_benchmark(args.workspace, args.algo, tuple(args.tier or TIER_CHOICES), args.seeds, args.steps,
                           args.preset, args.device, progress=not args.quiet, batch_size=args.batch_size)
    print_report(report, args.json, file=_json_stream(args))
    if not args.json:
        print(result_path(args.workspace, report["protocol"]))
    return 0


def _add_dataset_parsers(stages) -> None:
    dataset = stages.add_parser("dataset", help="build the offline dataset (Minari)")
    verbs = dataset.add_subparsers(dest="verb", required=True, metavar="VERB")
    build = verbs.add_parser("build", help="reward-labelled episodes as a Minari dataset, in D4RL-style tiers")
    build.add_argument("workspace", type=Path, help="workspace directory W")
    build.add_argument("--tier", default="augmented", choices=TIER_CHOICES,
                       help="augmented (default: the human speaker's episodes and their augmentations), expert (the "
                            "human speaker's alone), random (uniform codes), medium (a bc agent stopped at half the "
                            "expert's normalised score), medium-replay (an online DQN's episodes up to that level), "
                            "medium-expert (medium + expert); id racer/<corpus>/<tier>-vN")
    build.add_argument("--preset", default="demo", choices=["tiny", "demo", "paper"],
                       help="size of the medium tiers' agent (default demo)")
    build.add_argument("--steps", type=_positive_int, default=None,
                       help="step budget of the medium tiers' agent (default: its preset's; it stops earlier at the "
                            "medium score)")
    build.add_argument("--augment", type=int, default=4, help="augmented episodes per ground-truth segment")
    build.add_argument("--id", dest="dataset_id", default=None,
                       help="dataset id, e.g. racer/synth/augmented-v0 (default: derived from the corpus)")
    build.add_argument("--segment-codes", type=_positive_int, default=None,
                       help="actions per episode (H); default: one episode per whole clip (agents draw their "
                            "training windows at any step of it)")
    build.add_argument("--stride", type=_positive_int, default=None,
                       help="code steps between segments (default H; only with --segment-codes)")
    build.add_argument("--seed", type=_seed, default=0, help="seed of the augmentations")
    build.add_argument("--lookahead", type=_count, default=None,
                       help="code steps (0.4 s each) of speech after the step being chosen in every observation "
                            "(default: the environment's, 3 = 1.2 s); agents trained on the dataset keep it (corpus "
                            "tiers)")
    build.add_argument("--reward", default="contrastive", choices=["contrastive", "distance"],
                       help="step rewards: the contrastive model (default) or the negative pose distance to the "
                            "ground truth (the paper's distance-reward ablation; id .../augmented_distance-v0)")
    _common_options(build, cmd_dataset_build)


def _add_train_parsers(stages, with_verbs: bool = True) -> None:
    train = stages.add_parser("train", help="train a model of the pipeline")
    if not with_verbs:
        return
    verbs = train.add_subparsers(dest="verb", required=True, metavar="MODEL")
    from racer_env.reward.train import reward_train_config_for
    from racer_env.vqvae.train import train_config_for

    for name, help_text, func, config in (
            ("vqvae", "the gesture codebook (VQ-VAE)", cmd_train_vqvae, train_config_for("demo")),
            ("reward", "the contrastive speech-gesture reward model", cmd_train_reward, reward_train_config_for("demo"))):
        p = verbs.add_parser(name, help=help_text)
        p.add_argument("workspace", type=Path, help="workspace directory W")
        p.add_argument("--preset", default="demo", choices=["paper", "demo", "tiny"], help="model size (default demo)")
        _add_config_options(p, [config])
        _training_options(p, func)


    agent = verbs.add_parser("agent", help="an agent on the workspace's Minari dataset")
    agent.add_argument("workspace", type=Path, help="workspace directory W")
    agent.add_argument("--algo", default="racer-cql", help="racer-cql (default), bc, d3rlpy:<Name> (e.g. "
                       "d3rlpy:DiscreteCQL) on the dataset, or dqn, actor-critic online on the environment")
    agent.add_argument("--preset", default="demo", choices=["paper", "demo", "tiny"], help="GPT size (default demo)")
    _add_config_options(agent, _agent_configs())
    _training_options(agent, cmd_train_agent)


def _training_options(p: argparse.ArgumentParser, func) -> None:
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint of the same run "
                   "(not d3rlpy agents)")
    p.add_argument("--force", action="store_true", help="retrain even if the model is up to date")
    _common_options(p, func)


def _agent_configs() -> list:
    """The agent configs of the ``demo`` preset: the offline one, then one per online algorithm."""
    from racer_agents.online import ONLINE_ALGOS, online_config_for
    from racer_agents.train import agent_config_for

    return [agent_config_for("demo"), *(online_config_for("demo", algo=a) for a in ONLINE_ALGOS)]


def _add_config_options(p: argparse.ArgumentParser, configs: list) -> None:
    """One option per config field declared with ``training.option`` (the first config that has a field gives its
    help, and its value as the default shown); the parsed default is None, meaning the preset's value."""
    from racer_env.training import cli_options, option_flag

    seen = set()
    for config in configs:
        for f in cli_options(type(config)):
            if f.name in seen:
                continue
            seen.add(f.name)
            meta = f.metadata
            value = getattr(config, f.name)
            if str(f.type) == "bool":  # a switch that sets the other value than the preset's
                p.add_argument(option_flag(f), dest=f.name, action="store_const", const=not f.default, default=None,
                               help=("turn off: " if f.default else "") + meta["help"])
                continue
            kind = {"int": int, "float": float}.get(str(f.type).removesuffix(" | None"), str)
            low = meta["low"]
            parse = kind if low is None else _number(
                kind, f"{'a number' if kind is float else 'an integer'} {'>' if meta['exclusive_low'] else '>='} {low:g}",
                (lambda v, lo=low: v > lo) if meta["exclusive_low"] else (lambda v, lo=low: v >= lo))
            default = f" (demo preset: {value})" if value is not None else ""
            flag = option_flag(f)
            p.add_argument(flag, dest=f.name, type=parse, default=None, choices=meta["choices"],
                           metavar=None if meta["choices"] else flag[2:].replace("-", "_").upper(),
                           help=meta["help"] + default)


def _given_options(args: argparse.Namespace, config_cls) -> dict:
    """The options of ``config_cls`` given on the command line (None: not given, the preset's value)."""
    from racer_env.training import cli_options

    return {f.name: getattr(args, f.name) for f in cli_options(config_cls) if getattr(args, f.name) is not None}


def _add_evaluate_parsers(stages) -> None:
    evaluate = stages.add_parser("evaluate", help="evaluate a trained stage")
    verbs = evaluate.add_subparsers(dest="verb", required=True, metavar="WHAT")
    code = verbs.add_parser("codebook", help="held-out reconstruction (MAJE, mm), code usage, perplexity; on "
                            "built-in corpora the stroke/nod recall and stroke peak speed ratio")
    code.add_argument("workspace", type=Path)
    code.add_argument("--split", default="test", choices=["train", "valid", "test"])
    code.add_argument("--json", action="store_true")
    _common_options(code, cmd_evaluate_codebook)
    rew = verbs.add_parser("reward", help="held-out retrieval R@1/R@5 and AUCs against shifted/mismatched motion; "
                           "--panel: the reward-validity panel (reward beside stroke F1 for degraded and learned "
                           "systems)")
    rew.add_argument("workspace", type=Path)
    rew.add_argument("--candidates", type=_positive_int, default=32, help="retrieval candidates (default 32)")
    rew.add_argument("--seed", type=_seed, default=0)
    rew.add_argument("--panel", action="store_true",
                     help="the reward-validity panel on the held-out clips of --split, with its targets")
    rew.add_argument("--split", default="test", choices=["valid", "test"], help="the panel's clips (default test)")
    rew.add_argument("--agent", action="append", default=None,
                     help="agent of W on the panel (repeatable; default: every agent)")
    rew.add_argument("--json", action="store_true")
    _common_options(rew, cmd_evaluate_reward)
    agents = verbs.add_parser("agents", help="agents on whole held-out clips (also: racer evaluate W)")
    agents.add_argument("workspace", type=Path)
    agents.add_argument("--agent", action="append", default=None,
                        help="agent name in W/agents (repeatable; default: every agent)")
    agents.add_argument("--split", default="test", choices=["train", "valid", "test"])
    agents.add_argument("--sigma", type=_positive_float, default=0.3, help="beat alignment sigma in seconds")
    agents.add_argument("--seed", type=_seed, default=0)
    agents.add_argument("--videos", type=_count, default=0, metavar="N",
                        help="also write the videos of the first N clips, each system beside the real motion "
                             "(W/eval/videos/<system>/<clip>.mp4)")
    agents.add_argument("--json", action="store_true")
    _common_options(agents, cmd_evaluate_agents)
    files = verbs.add_parser("files", help="motion-only metrics of any BVH against its speech (and a reference take)")
    files.add_argument("--audio", type=Path, required=True, help="the speech (wav, flac or ogg)")
    files.add_argument("--motion", type=Path, required=True, help="the gesture take to measure (BVH)")
    files.add_argument("--reference", type=Path, default=None, help="a reference take of the same speech (BVH)")
    files.add_argument("--unit", choices=sorted(UNITS_MM), default="cm", help="unit of the BVH offsets (default cm)")
    files.add_argument("--sigma", type=_positive_float, default=0.3, help="beat alignment sigma in seconds")
    files.add_argument("--seed", type=_seed, default=0)
    files.add_argument("--json", action="store_true")
    files.set_defaults(func=cmd_evaluate_files)


def _import_config(args: argparse.Namespace, unit_mm: float):
    from racer_env.corpus.importer import ImportConfig

    return ImportConfig(unit_mm=unit_mm, seed=args.seed, valid_frac=args.valid_frac, test_frac=args.test_frac)


def _report_import(result, elapsed: float) -> None:
    if result.skipped:
        print(f"corpus in {result.corpus.directory} is up to date (same sources and settings); skipped")
        return
    trimmed = {k: r["trimmed_s"] for k, r in result.reports.items() if r["trimmed_s"] > 0}
    summary = result.corpus.summary()
    print(f"imported {summary['clips']} clips ({summary['minutes']:.2f} min) in {elapsed:.1f} s "
          f"into {result.corpus.directory}")
    if trimmed:
        worst = max(trimmed.values())
        print(f"trimmed audio/motion ends of {len(trimmed)} clips to whole code steps (at most {worst:.2f} s)")


def cmd_import(args: argparse.Namespace) -> int:
    from racer_env.corpus.importer import import_corpus

    unit_mm = args.unit_mm if args.unit_mm is not None else UNITS_MM[args.unit]
    start = time.perf_counter()
    result = import_corpus(args.src, args.workspace, _import_config(args, unit_mm), force=args.force,
                           workers=args.workers, progress=not args.quiet)
    _report_import(result, time.perf_counter() - start)
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from racer_env.corpus.build import synth_corpus

    start = time.perf_counter()
    result = synth_corpus(args.workspace, minutes=args.minutes, speakers=args.speakers, seed=args.seed,
                          clip_seconds=args.clip_seconds, config=_import_config(args, 10.0), force=args.force,
                          workers=args.workers, progress=not args.quiet)
    _report_import(result, time.perf_counter() - start)
    return cmd_info(argparse.Namespace(workspace=args.workspace, json=False))


def cmd_info(args: argparse.Namespace) -> int:
    summary = Corpus.load(args.workspace).summary()
    if args.json:
        _print_json(args, summary)
        return 0
    print(f"corpus      {summary['directory']}")
    print(f"clips       {summary['clips']} ({summary['minutes']:.2f} min)")
    print(f"speakers    {len(summary['speakers'])}: {', '.join(summary['speakers'])}")
    print(f"rate        {summary['fps']:g} fps, {summary['frames_per_code']} frames per code step")
    print(f"joints      {summary['n_joints']}: {', '.join(summary['joint_names'])}")
    print(f"audio       {summary['n_audio_features']} features per frame")
    for name, s in summary["splits"].items():
        print(f"{name:<11} {s['clips']} clips, {s['minutes']:.2f} min")
    print(f"checksum    {summary['content_sha256'][:16]}")
    return 0


def _print_train_result(stage: str, result: dict) -> bool:
    """Print what a trainer did (rank 0 of a torchrun launch only); returns whether it printed."""
    if int(os.environ.get("RANK", "0")) != 0:
        return False
    if result["skipped"]:
        print(f"{stage} in {result['model']} is up to date (same settings and inputs); skipped (--force retrains)")
    elif "stopped_at" in result:
        print(f"{stage}: stopped at step {result['stopped_at']}; resume with --resume")
    else:
        print(f"{stage}: trained in {result['seconds']:.1f} s -> {result['model']} ({result['checksum'][:12]})")
    return True


def cmd_train_vqvae(args: argparse.Namespace) -> int:
    from racer_env.vqvae.train import VQVAETrainConfig, train_config_for, train_vqvae

    cfg = train_config_for(args.preset, **_given_options(args, VQVAETrainConfig))
    _print_train_result("vqvae", train_vqvae(args.workspace, cfg, resume=args.resume, force=args.force,
                                             device=args.device, progress=not args.quiet))
    return 0


def cmd_train_reward(args: argparse.Namespace) -> int:
    from racer_env.reward.train import RewardTrainConfig, reward_train_config_for, train_reward

    cfg = reward_train_config_for(args.preset, **_given_options(args, RewardTrainConfig))
    _print_train_result("reward", train_reward(args.workspace, cfg, resume=args.resume, force=args.force,
                                               device=args.device, progress=not args.quiet))
    return 0


def cmd_train_agent(args: argparse.Namespace) -> int:
    from racer_agents.online import ONLINE_ALGOS, ONLINE_CONFIGS, online_config_for
    from racer_agents.train import AgentTrainConfig, agent_config_for, train_agent
    from racer_env.training import cli_options, option_flag

    online = args.algo in ONLINE_ALGOS
    config = ONLINE_CONFIGS[args.algo] if online else AgentTrainConfig
    options = {f.name: f for c in _agent_configs() for f in cli_options(type(c))}
    given = {name: getattr(args, name) for name in options if getattr(args, name) is not None}
    own = {f.name for f in cli_options(config)}
    foreign = [option_flag(options[name]) for name in given if name not in own]
    if foreign:
        kind = "learns online on the environment" if online else "learns from the dataset"
        raise RacerError(f"--algo {args.algo} {kind}: {', '.join(foreign)} do not apply")
    make = online_config_for if online else agent_config_for
    cfg = make(args.preset, algo=args.algo, **given)
    result = train_agent(args.workspace, cfg, resume=args.resume, force=args.force, device=args.device,
                         progress=not args.quiet)
    if _print_train_result(f"agent {cfg.name}", result) and "dataset" in result:
        print(f"dataset {result['dataset']}")
        if result.get("best_step") is not None:
            early = result.get("stopped_early_at")
            score = getattr(cfg, "select", "mean_reward").replace("_", " ").replace("+", " + ")
            print(f"kept the weights of step {result['best_step']} (best validation {score})"
                  + (f"; stopped early at step {early}" if early else ""))
    if int(os.environ.get("RANK", "0")) == 0 and "transitions_per_second" in result:
        print(f"{result['transitions_per_second']:.0f} transitions/s")
    if "env_steps_per_second" in result:
        print(f"{result['env_steps_per_second']:.0f} environment steps/s")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from racer_agents.generate import generate
    from racer_env.export import check_formats

    try:
        formats = check_formats(f for f in args.formats.split(",") if f.strip())
    except RacerError as err:
        raise RacerError(f"--formats {args.formats}: {err}") from None
    result = generate(args.workspace, args.audio, agent=args.agent, out_dir=args.out, formats=formats,
                      device=args.device, progress=not args.quiet, reference=args.reference)
    note = " (silent input: rest pose)" if result.silent else ""
    print(f"{result.duration_s:.1f} s of motion from {len(result.codes)} codes in {result.seconds:.2f} s "
          f"({result.real_time_factor:.0f}x real time){note}")
    for kind, path in result.files.items():
        print(f"{kind:<4} {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from racer_agents.demo import demo_config, run_demo

    start = time.perf_counter()
    config = demo_config(args.preset, minutes=args.minutes, seed=args.seed)
    results = run_demo(args.workspace, config, device=args.device, progress=not args.quiet)
    skipped = sum(r.skipped for r in results)
    print(f"racer demo: {len(results)} stages ({skipped} up to date) in {time.perf_counter() - start:.0f} s; "
          f"report: {args.workspace / 'report.md'}")
    return 0


def _json_stream(args: argparse.Namespace):
    """Where a command's JSON goes: the stdout that :func:`_stdout_for_json` kept for it (the process's stdout
    otherwise)."""
    return getattr(args, "json_stream", None) or sys.stdout


def _print_json(args: argparse.Namespace, obj) -> None:
    """``obj`` as strict JSON (no NaN: null and the reason beside it) on the command's JSON stream."""
    print(strict_json(obj), file=_json_stream(args))


@contextlib.contextmanager
def _stdout_for_json():
    """Under ``--json`` stdout carries the JSON alone: while the command runs, everything else written to stdout (a
    library's log lines, from Python or from C) goes to stderr. Yields the stream the JSON is printed on."""
    sys.stdout.flush()
    try:
        fd, err_fd = sys.stdout.fileno(), sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a stream without a file (captured): Python's writes only
        real = sys.stdout
        with contextlib.redirect_stdout(sys.stderr):
            yield real
        return
    saved = os.dup(fd)
    real = open(saved, "w", closefd=False, encoding=sys.stdout.encoding)
    sys.stderr.flush()
    os.dup2(err_fd, fd)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield real
    finally:
        sys.stdout.flush()  # (what was written through the original object, still to stderr)
        real.flush()
        real.close()
        os.dup2(saved, fd)
        os.close(saved)


def _print_metrics(args: argparse.Namespace, metrics: dict) -> None:
    if args.json:
        _print_json(args, metrics)
        return
    for key, value in metrics.items():
        if key not in ("params", "per_clip"):  # per-clip values: --json
            print(f"{key:<18} " + (f"{value:.4f}" if isinstance(value, float) else json.dumps(value)))
    print("params             " + json.dumps(metrics["params"]))


def cmd_evaluate_agents(args: argparse.Namespace) -> int:
    from racer_agents.evaluate import evaluate, markdown_table, write_results
    from racer_env.workspace import Workspace

    with stage_lock(Workspace(args.workspace).root / "eval", "evaluate"):  # one evaluation at a time writes W/eval
        result = evaluate(args.workspace, args.agent, split=args.split, sigma=args.sigma, seed=args.seed,
                          device=args.device, progress=not args.quiet, videos=args.videos)
        json_path, md_path = write_results(Workspace(args.workspace), result)
    if args.json:
        _print_json(args, result)
    else:
        print(markdown_table(result) + f"\n{json_path}\n{md_path}")
    return 0


def cmd_evaluate_files(args: argparse.Namespace) -> int:
    from racer_env.evaluate_files import evaluate_files, format_result

    result = evaluate_files(args.audio, args.motion, args.reference, unit_mm=UNITS_MM[args.unit], sigma=args.sigma,
                            seed=args.seed)
    if args.json:
        _print_json(args, result)
    else:
        print(format_result(result))
    return 0


def cmd_evaluate_codebook(args: argparse.Namespace) -> int:
    from racer_env.vqvae.evaluate import evaluate_codebook

    _print_metrics(args, evaluate_codebook(args.workspace, split=args.split, device=args.device))  # (fast: no bar)
    return 0


def cmd_evaluate_reward(args: argparse.Namespace) -> int:
    from racer_env.reward.ablations import format_ablations
    from racer_env.reward.evaluate import evaluate_reward

    if args.panel:
        return cmd_reward_panel(args)
    if args.agent is not None or args.split != "test":
        raise RacerError("--agent and --split choose the clips and agents of the reward panel: add --panel")
    metrics = evaluate_reward(args.workspace, candidates=args.candidates, seed=args.seed, device=args.device)
    ablations = None if args.json else metrics.pop("ablations", None)
    _print_metrics(args, metrics)
    if ablations is not None:
        print(format_ablations(ablations))
    return 0


def cmd_reward_panel(args: argparse.Namespace) -> int:
    """``racer evaluate reward W --panel``: retrieval on the panel's clips (for its target; too few held-out windows:
    said so), then the panel, as markdown or strict JSON."""
    from racer_agents.reward_panel import panel_markdown, reward_panel
    from racer_env.checkpoint import CheckpointError
    from racer_env.reward.evaluate import evaluate_reward

    try:
        retrieval = evaluate_reward(args.workspace, splits=(args.split,), candidates=args.candidates, seed=args.seed,
                                    device=args.device, ablations=False)
    except CheckpointError:
        raise
    except RacerError as err:  # (a corpus too small for retrieval among --candidates: the panel says so)
        retrieval = {"error": str(err)}
    panel = reward_panel(args.workspace, retrieval=retrieval, split=args.split, agents=args.agent, seed=args.seed,
                         device=args.device, progress=not args.quiet)
    if args.json:
        _print_json(args, panel)
    else:
        print(panel_markdown(panel), end="")
    return 0


def cmd_dataset_build(args: argparse.Namespace) -> int:
    from racer_agents.tiers import build_tier
    from racer_env.dataset.episodes import AugmentConfig
    from racer_env.envs.episode_data import ObservationConfig

    if args.augment < 0:
        raise RacerError(f"--augment must be >= 0, got {args.augment}")
    if args.stride is not None and args.segment_codes is None:
        raise RacerError("--stride needs --segment-codes (whole-clip episodes have no stride)")
    cfg = AugmentConfig(segment_codes=args.segment_codes, stride=args.stride or args.segment_codes or 15,
                        augment=args.augment, seed=args.seed)
    obs = None if args.lookahead is None else ObservationConfig(lookahead=args.lookahead)
    result = build_tier(args.workspace, args.tier, cfg, preset=args.preset, steps=args.steps, device=args.device,
                        progress=not args.quiet, reward=args.reward, dataset_id=args.dataset_id, obs_config=obs)
    if "agent" in result:
        agent, policy = result["agent"], result.get("policy") or {}
        kept = policy.get("kept_normalised_score")
        print(f"medium agent: {agent['model']}" + (" (up to date, reused)" if agent.get("skipped") else "")
              + ("" if kept is None else f"; normalised score {kept:.1f} on the validation clips at step "
                                         f"{policy['kept_step']} (target {policy['target_normalised_score']:g})"))
    if result["skipped"]:
        print(f"dataset {result['id']} in {result['root']} is up to date (same inputs and settings); skipped")
        return 0
    print(f"dataset {result['id']}: {result['episodes']} episodes, {result['steps']} steps in "
          f"{result['seconds']:.1f} s -> {result['root']}")
    print("sources: " + ", ".join(f"{k} {v}" for k, v in result["sources"].items()))
    print(f"ref_min_score (random codes) {result['ref_min_score']:.4f}, "
          f"ref_max_score (ground truth) {result['ref_max_score']:.4f} (mean return of a whole test clip)")
    if result["ref_max_score"] <= result["ref_min_score"]:
        print("warning: the reward model does not score the human speaker's codes above random codes on the test "
              "clips; normalised scores of this workspace mean little")
    return 0


EVALUATE_VERBS = ("codebook", "reward", "agents", "files", "-h", "--help")


def main(argv: list[str] | None = None) -> int:
    """Run one racer command; returns its exit status: 0, 2 for a user's mistake (one line on stderr, no
    traceback), 130 for Ctrl-C. Anything else is a bug and keeps its traceback."""
    configure_threads()  # before anything loads torch: idle OpenMP threads sleep instead of spinning
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and argv[0] == "evaluate" and argv[1] not in EVALUATE_VERBS:
        argv.insert(1, "agents")  # racer evaluate W ... is racer evaluate agents W ...
    args = build_parser(argv[0] if argv else "").parse_args(argv)
    try:
        if not getattr(args, "json", False):
            return args.func(args)
        with _stdout_for_json() as args.json_stream:
            return args.func(args)
    except RacerError as err:
        return _fail(str(err))
    except OSError as err:
        user_error = path_error(err)
        if user_error is None:
            raise
        return _fail(str(user_error))
    except KeyboardInterrupt as err:
        print(f"racer: {interrupted_message(argv, err)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        from racer_env.distributed import teardown

        teardown()  # leave the torchrun process group, if this command joined one


def _fail(message: str) -> int:
    print(f"racer: error: {message}", file=sys.stderr)
    return EXIT_USER_ERROR


def interrupted_message(argv: list[str], err: KeyboardInterrupt) -> str:
    """What Ctrl-C left and how to go on: a trainer (:class:`Interrupted`) says which checkpoint ``--resume``
    continues from, or that it stopped before its first one; every other stage writes its output whole or not at
    all, so running it again starts it afresh (finished stages are skipped)."""
    command = shlex.join(["racer", *argv])
    trainer = isinstance(err, Interrupted) and argv[:1] == ["train"]  # (a trainer inside another stage: that stage
    if trainer and err.checkpoint is not None:                        # starts it afresh, it has no --resume)
        resume = command if "--resume" in argv else f"{command} --resume"
        return f"interrupted; `{resume}` continues from the last checkpoint"
    if trainer:
        return f"interrupted before the first checkpoint; nothing of this run was kept: run `{command}` again"
    return f"interrupted; nothing partial was kept: `{command}` starts it again (finished stages are skipped)"


if __name__ == "__main__":
    sys.exit(main())
