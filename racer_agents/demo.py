"""``racer demo W``: the whole pipeline on the built-in corpus, one stage after another, ending in ``W/report.md``.

Stages: synthesise the corpus, train the VQ-VAE and the reward model, build the Minari dataset, train racer-cql and
the supervised baseline (bc), evaluate them (and the codebook and reward model) on the test split, the
reward-validity panel (``W/demo/reward_panel.json``), generate the gestures and videos of two held-out clips (beside
their real motion), write the report (markdown and HTML). Every stage skips itself when its inputs are unchanged:
the training stages through their own checkpoint checks, the last four through input checksums kept in
``W/demo/stamps.json``. A second run of the same command therefore takes seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from racer_env.checkpoint import read_checksum
from racer_env.corpus.store import Corpus
from racer_env.dataset.builder import minari_root
from racer_env.errors import RacerError
from racer_env.stage import RecordedStage
from racer_env.workspace import (
    Workspace,
    check_output_directory,
    remove_stale_temporaries,
    sha256_file,
    stage_lock,
    write_json_atomic,
)

AGENTS = ("racer-cql", "bc")
VIDEO_CLIPS = 2  # held-out clips the demo makes a video of (generated beside the real motion)
CURVES = {  # stage directory -> the logged series plotted in the report
    "vqvae": ("losses/rec", "codebook/used_frac"),
    "reward": ("losses/info_nce", "train/batch_r_at_1"),
    "agents/racer-cql": ("losses/td", "losses/conservative", "valid/score", "valid/stroke_f1"),
    "agents/bc": ("losses/cross_entropy", "valid/score", "valid/stroke_f1"),
}


@dataclass(frozen=True)
class DemoConfig:
    """What ``racer demo`` builds; :func:`demo_config` fills in a preset's values."""

    preset: str = "demo"  # model sizes: demo (the README's main job, <= 10 min on 2 cores) or tiny (tests)
    minutes: float = 60.0  # built-in corpus length: test and valid splits of 12 clips each
    speakers: int = 4
    clip_seconds: float = 30.0
    seed: int = 0  # seeds every stage
    agent_steps: int | None = 1000  # None: the agent preset's default
    split: str = "test"

    def __post_init__(self) -> None:
        if self.preset not in DEMO_PRESETS:
            raise RacerError(f"racer demo runs one of the presets {sorted(DEMO_PRESETS)}, got {self.preset!r}")
        if self.minutes <= 0 or self.speakers < 1 or self.clip_seconds <= 0:
            raise RacerError(f"need minutes > 0, speakers >= 1 and clip_seconds > 0, got {self.minutes}, "
                             f"{self.speakers}, {self.clip_seconds}")


DEMO_PRESETS: dict[str, dict] = {
    "demo": {},
    "tiny": {"minutes": 1.0, "speakers": 1, "clip_seconds": 10.0, "agent_steps": None},
}


def demo_config(preset: str = "demo", **overrides) -> DemoConfig:
    """The preset's settings with ``overrides`` (None values ignored) applied."""
    if preset not in DEMO_PRESETS:
        raise RacerError(f"racer demo runs one of the presets {sorted(DEMO_PRESETS)}, got {preset!r}")
    return DemoConfig(preset=preset, **{**DEMO_PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}})


@dataclass
class StageResult:
    name: str
    skipped: bool
    seconds: float
    detail: str = ""


def run_demo(workspace: str | Path, config: DemoConfig = DemoConfig(), device: str = "cpu", progress: bool = True,
             log: Callable[[str], None] = print) -> list[StageResult]:
    """Run (or skip, when current) every stage of the demo in ``workspace``; returns what each stage did."""
    ws = Workspace(workspace)
    check_output_directory(ws.root, "workspace")
    stages = _stages(ws, config, device, progress)
    results = []
    with stage_lock(ws.root, "demo"):  # each stage also takes its own lock: a concurrent `racer train` is refused
        for directory in [ws.root / "demo", *(ws.root / "demo").glob("*")]:
            remove_stale_temporaries(directory)  # of a killed demo (its plots, stamps and evaluation)
        for i, (name, run) in enumerate(stages, 1):
            log(f"[{i}/{len(stages)}] {name} ...")
            start = time.perf_counter()
            skipped, detail = run()
            result = StageResult(name, skipped, time.perf_counter() - start, detail)
            results.append(result)
            state = "up to date, skipped" if skipped else "done"
            log(f"[{i}/{len(stages)}] {name}: {state} in {result.seconds:.1f} s{' - ' + detail if detail else ''}")
    return results


def _stages(ws: Workspace, config: DemoConfig, device: str, progress: bool) -> list[tuple[str, Callable]]:
    from racer_agents.train import agent_config_for, train_agent
    from racer_env.corpus.build import synth_corpus
    from racer_env.dataset.builder import build_dataset
    from racer_env.reward.train import reward_train_config_for, train_reward
    from racer_env.vqvae.train import train_config_for, train_vqvae

    def corpus():
        result = synth_corpus(ws, minutes=config.minutes, speakers=config.speakers, seed=config.seed,
                              clip_seconds=config.clip_seconds, progress=progress)
        return result.skipped, f"{config.minutes:g} min of {config.speakers} speaker(s) in {ws.corpus}"

    def trained(train, cfg):
        def stage():
            result = train(ws, cfg, device=device, progress=progress)
            return result["skipped"], result["model"]
        return stage

    def dataset():
        result = build_dataset(ws, device=device, progress=progress)
        return result["skipped"], result["id"]

    def agent(algo):
        return trained(train_agent, agent_config_for(config.preset, algo=algo, seed=config.seed,
                                                    steps=config.agent_steps))

    return [
        ("corpus: synthesise the built-in speaker", corpus),
        ("VQ-VAE gesture codebook", trained(train_vqvae, train_config_for(config.preset, seed=config.seed))),
        ("contrastive reward model", trained(train_reward, reward_train_config_for(config.preset, seed=config.seed))),
        ("Minari dataset", dataset),
        ("agent racer-cql (offline RL)", agent("racer-cql")),
        ("agent bc (supervised baseline)", agent("bc")),
        (f"evaluation on the {config.split} split", lambda: _evaluate(ws, config, device, progress)),
        (f"reward panel on the {config.split} split", lambda: _reward_panel(ws, config, device, progress)),
        ("videos of held-out clips", lambda: _video(ws, config, device, progress)),
        ("report", lambda: _report(ws, config)),
    ]


# -- stages whose skipping this module decides ---------------------------------------------------------

def _stage(ws: Workspace, name: str, inputs: dict, outputs: list[Path]) -> RecordedStage:
    """A demo stage identified by ``inputs``, current when ``W/demo/stamps.json`` records them under ``name`` and
    its ``outputs`` are all still there (the demo holds its lock for all of them)."""
    return RecordedStage(outputs[0].parent, inputs, record=ws.root / "demo" / "stamps.json", outputs=tuple(outputs),
                         key=name)


def _model_inputs(ws: Workspace, config: DemoConfig) -> dict:
    """Checksums of everything the evaluation, the video and the report are computed from."""
    models = {name: read_checksum(ws.root / name / "model.pt") for name in ("vqvae", "reward")}
    models.update({a: read_checksum(ws.root / "agents" / a / "model.pt") for a in AGENTS})
    return {"corpus": Corpus.load(ws).checksum, "models": models, "config": asdict(config)}


def _evaluate(ws: Workspace, config: DemoConfig, device: str, progress: bool) -> tuple[bool, str]:
    from racer_agents.evaluate import evaluate, write_results
    from racer_env.reward.evaluate import evaluate_reward
    from racer_env.vqvae.evaluate import evaluate_codebook

    out = ws.root / "demo" / "evaluation.json"
    stage = _stage(ws, "evaluation", _model_inputs(ws, config), [out])
    if stage.is_current():
        return True, str(out)
    result = evaluate(ws, list(AGENTS), split=config.split, seed=config.seed, device=device, progress=progress)
    _json_path, md_path = write_results(ws, result)
    try:
        reward = evaluate_reward(ws, seed=config.seed, device=device)
    except ValueError as err:  # too few held-out windows for retrieval (tiny corpora): said so in the report
        reward = {"error": str(err)}
    summary = {"agents": result, "codebook": evaluate_codebook(ws, split=config.split, device=device),
               "reward": reward}
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, summary)
    stage.save_record()
    return False, f"{md_path}"


def _reward_panel(ws: Workspace, config: DemoConfig, device: str, progress: bool) -> tuple[bool, str]:
    """``W/demo/reward_panel.json``: the reward-validity panel (:mod:`racer_agents.reward_panel`) of the demo's
    agents on the evaluated split, with the evaluation stage's retrieval figures for the R@1 target."""
    import json

    from racer_agents.reward_panel import reward_panel

    out, evaluation = ws.root / "demo" / "reward_panel.json", ws.root / "demo" / "evaluation.json"
    stage = _stage(ws, "reward_panel", {**_model_inputs(ws, config), "evaluation": sha256_file(evaluation)}, [out])
    if stage.is_current():
        return True, str(out)
    retrieval = json.loads(evaluation.read_text())["reward"]
    panel = reward_panel(ws, retrieval=retrieval, split=config.split, agents=list(AGENTS), seed=config.seed,
                         device=device, progress=progress)
    write_json_atomic(out, panel)
    stage.save_record()
    met = sum(t["pass"] for k, t in panel["targets"].items() if k != "all_pass")
    return False, f"{out} ({met} of {len(panel['targets']) - 1} targets met)"


def _held_out_clips(ws: Workspace, split: str, n: int = VIDEO_CLIPS) -> list[tuple[str, Path]]:
    """The first ``n`` clips of ``split`` and the paths of their speech."""
    corpus = Corpus.load(ws)
    ids = corpus.clip_ids(split)[:n]
    if not ids:
        raise RacerError(f"split {split!r} of {corpus.directory} has no clips")
    out = []
    for clip_id in ids:
        wav = Path(corpus.record(clip_id)["source"]["wav"])
        if not wav.is_file():
            raise RacerError(f"{wav}: the speech of held-out clip {clip_id} is missing (re-run racer demo "
                             f"after deleting {ws.corpus})")
        out.append((clip_id, wav))
    return out


def _video(ws: Workspace, config: DemoConfig, device: str, progress: bool) -> tuple[bool, str]:
    """racer-cql's gestures for the first held-out clips, each video with the real motion beside it and the
    clip's annotated stressed syllables on its timeline."""
    from racer_agents.generate import generate
    from racer_env.video import corpus_reference

    clips = _held_out_clips(ws, config.split)
    out = ws.root / "demo" / "video"
    videos = [out / f"{wav.stem}.mp4" for _, wav in clips]
    stage = _stage(ws, "video", {**_model_inputs(ws, config), "clips": [c for c, _ in clips]}, videos)
    if stage.is_current():
        return True, ", ".join(map(str, videos))
    corpus = Corpus.load(ws)
    for clip_id, wav in clips:
        reference, stressed = corpus_reference(ws.root, corpus.clip(clip_id))
        generate(ws, wav, agent="racer-cql", out_dir=out, device=device, progress=progress, reference=reference,
                 stressed=stressed)
    stage.save_record()
    return False, ", ".join(map(str, videos))


def _report(ws: Workspace, config: DemoConfig) -> tuple[bool, str]:
    from racer_agents.report import write_report
    from racer_agents.train import find_dataset

    path = ws.root / "report.md"
    clips = _held_out_clips(ws, config.split)
    videos = {wav.stem: sha256_file(ws.root / "demo" / "video" / f"{wav.stem}.mp4") for _, wav in clips}
    inputs = {**_model_inputs(ws, config), "evaluation": sha256_file(ws.root / "demo" / "evaluation.json"),
              "reward_panel": sha256_file(ws.root / "demo" / "reward_panel.json"),
              "videos": videos}  # (the page holds copies of them)
    stage = _stage(ws, "report", inputs, [path, ws.root / "report.html"])
    if stage.is_current():
        return True, f"{path}, {ws.root / 'report.html'}"
    with minari_root(ws) as root:
        dataset = f"{find_dataset(ws, None).spec.dataset_id} in {root}"
    write_report(ws, config, curves=CURVES, clips=[(c, wav.stem) for c, wav in clips],
                 video_dir=ws.root / "demo" / "video", dataset=dataset)
    stage.save_record()
    return False, f"{path}, {ws.root / 'report.html'}"

