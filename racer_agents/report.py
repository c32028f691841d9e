"""``W/report.md`` and ``W/report.html``: what ``racer demo`` built, how well it works, and where every artefact is.

The report reads only files the pipeline wrote (the corpus manifest, the training logs, ``W/demo/evaluation.json``,
``W/demo/reward_panel.json`` and the generated videos), so it can be rewritten at any time without recomputing
anything. The HTML page shows the same text with the videos of the held-out clips playable in it; it and the
directory ``W/report/`` (plots and copies of the videos) are self-contained: they open from disk, with no server
and nothing fetched from a network.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

from racer_agents.evaluate import markdown_table
from racer_agents.reward_panel import panel_markdown
from racer_env.corpus.store import Corpus
from racer_env.workspace import Workspace, atomic_path, write_text_atomic


def plot_curves(log: Path, keys: tuple[str, ...], title: str, out: Path) -> Path:
    """One panel per logged series of a ``metrics.jsonl`` training log, written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 2.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        points = [(r["step"], r[key]) for r in rows if key in r]
        ax.plot([s for s, _ in points], [v for _, v in points], lw=1.2)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        with atomic_path(out, ".png") as tmp:
            fig.savefig(tmp, dpi=90)
    finally:
        plt.close(fig)
    return out


def _codebook_lines(codebook: dict) -> list[str]:
    return ["| codebook (VQ-VAE) | value |", "| --- | --- |",
            f"| held-out MAJE (mm) | {codebook['maje_mm']:.2f} |",
            f"| codes used (fraction of {codebook['params']['codebook_size']}) | {codebook['codes_used_frac']:.3f} |",
            f"| perplexity | {codebook['perplexity']:.1f} |",
            *([] if codebook.get("stroke_recall") is None else [
                f"| annotated strokes kept (recall, 0.1 s) | {codebook['stroke_recall']:.3f} |",
                f"| stroke peak hand speed, decoded / corpus | {codebook['stroke_peak_speed_ratio']:.3f} |",
                f"| annotated nods kept (recall, 0.1 s) | {codebook['nod_recall']:.3f} |"])]


def _reward_lines(reward: dict) -> list[str]:
    if "error" in reward:
        return [f"Reward-model retrieval not measured: {reward['error']}"]
    p = reward["params"]
    return ["| reward model | value |", "| --- | --- |",
            f"| R@1 among {p['candidates']} (chance {p['chance_r_at_1']:.3f}) | {reward['r_at_1']:.3f} |",
            f"| R@5 | {reward['r_at_5']:.3f} |",
            (f"| AUC, true vs motion shifted {p['shift_codes'][0]}-{p['shift_codes'][1]} codes | "
            f"{reward['auc_shifted']:.3f} |"),
            f"| AUC, true vs mismatched motion | {reward['auc_mismatched']:.3f} |"]


def report_outputs(ws: Workspace, curves: dict[str, tuple[str, ...]], stems: list[str]) -> list[Path]:
    """Every file :func:`write_report` writes: ``W/report.md``, ``W/report.html``, and in ``W/report/`` a plot per
    curve and a copy of every video the page plays. The report is current only while all of them are there."""
    plots_dir = ws.root / "report"
    return [ws.root / "report.md", ws.root / "report.html",
            *(plots_dir / f"{stage.replace('/', '-')}.png" for stage in curves),
            *(plots_dir / f"{stem}.mp4" for stem in stems)]


def _relative(ws: Workspace, path: Path | str) -> str:
    """``path`` relative to the workspace when it lies inside it (the report then stays right when W is moved or
    copied), else as it is."""
    try:
        return str(Path(path).relative_to(ws.root))
    except ValueError:
        return str(path)


def _panel_lines(path: Path) -> list[str]:
    """The reward-validity panel (``racer evaluate reward W --panel``) with what it tells, if the demo wrote one."""
    if not path.is_file():
        return []
    return ["### Does the reward rank gestures as the speaker's rules do?", "",
            ("The reward-validity panel (`racer evaluate reward W --panel`): systems of known quality scored by the "
             "reward model and by the rule metrics. A share is the fraction of the random -> reconstruction gap a "
             "system reaches; a valid reward gives every system about its stroke-F1 share."), "",
            panel_markdown(json.loads(path.read_text())).rstrip(), ""]


def write_report(ws: Workspace, config, curves: dict[str, tuple[str, ...]], clips: list[tuple[str, str]],
                 video_dir: Path, dataset: str) -> Path:
    """Write ``W/report.md``, ``W/report.html`` and their plots and videos in ``W/report/`` (the files of
    :func:`report_outputs`); returns the markdown report's path. ``clips`` holds (clip id, file stem) of the
    held-out clips whose videos are in ``video_dir``. Paths in the report are relative to ``W``, where it lives."""
    corpus = Corpus.load(ws)
    summary = corpus.summary()
    evaluation = json.loads((ws.root / "demo" / "evaluation.json").read_text())
    plots_dir = ws.root / "report"
    plots_dir.mkdir(parents=True, exist_ok=True)
    plots = [plot_curves(ws.root / stage / "metrics.jsonl", keys, stage, plots_dir / f"{stage.replace('/', '-')}.png")
             for stage, keys in curves.items()]
    videos = [(clip_id, _copy(video_dir / f"{stem}.mp4", plots_dir / f"{stem}.mp4")) for clip_id, stem in clips]
    rel = lambda path: _relative(ws, path)  # noqa: E731
    agents = evaluation["agents"]
    r, b = agents["systems"]["racer-cql"], agents["systems"]["bc"]
    head = [
        "# racer demo report", "",
        (f"Built by `racer demo W` (preset `{config.preset}`, seed {config.seed}) on the built-in synthetic "
        f"corpus: {summary['minutes']:.1f} min, {_count(summary['clips'], 'clip')}, "
        f"{_count(len(summary['speakers']), 'speaker')}; {_count(summary['splits']['train']['clips'], 'clip')} to "
        f"train on, evaluated on the {config.split} split ({_count(agents['clips'], 'clip')})."), "",
        "## Agents on held-out speech", "",
        ("Reference systems first: `ground_truth` is the corpus motion, `reconstruction` its ground-truth codes "
         "decoded (the ceiling of any code-choosing agent), `random` uniformly random codes, `nearest_neighbour` "
         "the code of the training step with the nearest speech (retrieval without learning). Brackets: 95 % "
         "bootstrap interval over clips."), "",
        markdown_table(agents).rstrip(), "",
        (f"racer-cql vs the supervised baseline (bc): FGD ratio {_ratio(r['fgd'], b['fgd'])}, PMB "
        f"{r['pmb_pct'] - b['pmb_pct']:+.1f} points, mean reward {r['mean_reward'] - b['mean_reward']:+.3f}. "
        "The paper's claim (FGD ratio <= 0.85, PMB >= +5) is checked over 3 seeds by benchmarks/quality.py; a "
        f"single demo run on {summary['minutes']:.0f} minutes of speech is noisy."), "",
        "## Held-out clips: racer-cql beside the real motion", "",
        VIDEO_NOTE, "",
    ]
    video_links = [f"- {clip_id}: [report/{v.name}](report/{v.name})" for clip_id, v in videos] + [""]
    tail = [
        "## Codebook and reward model", "",
        *_codebook_lines(evaluation["codebook"]), "",
        *_reward_lines(evaluation["reward"]), "",
        *_panel_lines(ws.root / "demo" / "reward_panel.json"),
        "## Learning curves", "",
        *[f"![{p.stem}](report/{p.name})" for p in plots], "",
        "## Artefacts", "",
        "Paths relative to the workspace directory `W` this report lies in.", "",
        f"- corpus: `{rel(ws.corpus)}` (checksum {corpus.checksum[:16]})",
        f"- VQ-VAE: `{rel(ws.root / 'vqvae' / 'model.pt')}`",
        f"- reward model: `{rel(ws.root / 'reward' / 'model.pt')}`",
        f"- Minari dataset: {dataset} (`minari show <id>`)",
        *[f"- agent {a}: `{rel(ws.root / 'agents' / a / 'model.pt')}`" for a in ("racer-cql", "bc")],
        (f"- evaluation: `{rel(ws.root / 'eval' / (config.split + '.json'))}`, "
         f"`{rel(ws.root / 'eval' / (config.split + '.md'))}`"),
        *[f"- held-out clip {clip_id} by racer-cql: " + ", ".join(
            f"`{rel(video_dir / (stem + '.' + ext))}`" for ext in ("mp4", "bvh", "npz")) for clip_id, stem in clips],
        f"- plots and video copies: `{rel(plots_dir)}`", "",
        "Generate gestures for your own recording: `racer generate W --audio speech.wav`.", "",
    ]
    path = ws.root / "report.md"
    write_text_atomic(path, "\n".join(head + video_links + tail))
    write_text_atomic(ws.root / "report.html", report_html(head, videos, tail))
    return path


#: what the videos show (the same words in both reports)
VIDEO_NOTE = ("Each video shows the real motion of the clip (left) and racer-cql's gestures for its speech "
              "(right), over a timeline of the speech that scrolls past the playhead: the loudness, the audio "
              "onsets (grey lines), the annotated stressed syllables (orange), and the strokes detected in each "
              "figure's hands (diamonds; a hand turns red during one). A gesture is in time when its diamond sits "
              "under a stressed syllable.")

#: the page's style: inline, so the page needs nothing but the files beside it
STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #222; max-width: 1000px; margin: 2em auto; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead { background: #f0efe9; }
img { max-width: 100%; display: block; margin: 0.6em 0; }
video { width: 100%; max-width: 960px; background: #000; display: block; }
figure { margin: 1em 0; }
code { background: #f3f2ee; padding: 0 3px; }
"""


def report_html(head: list[str], videos: list[tuple[str, Path]], tail: list[str]) -> str:
    """The HTML page of the report: the markdown of ``head`` and ``tail`` rendered, with a playable video of every
    held-out clip between them (paths relative to the page, so the page works wherever ``W`` is)."""
    import markdown

    def render(lines: list[str]) -> str:
        return markdown.markdown("\n".join(lines), extensions=["tables"], output_format="html")

    figures = "\n".join(
        f'<figure><video controls preload="metadata" src="report/{html.escape(v.name)}"></video>'
        f"<figcaption>{html.escape(clip_id)}: real motion (left), racer-cql (right)</figcaption></figure>"
        for clip_id, v in videos)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>racer demo report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"{render(head)}\n{figures}\n{render(tail)}\n</body>\n</html>\n")


def _copy(src: Path, dst: Path) -> Path:
    """``src`` copied to ``dst`` (atomically), unless ``dst`` already holds the same bytes."""
    if not (dst.is_file() and dst.stat().st_size == src.stat().st_size and dst.read_bytes() == src.read_bytes()):
        with atomic_path(dst, dst.suffix) as tmp:
            shutil.copyfile(src, tmp)
    return dst


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
