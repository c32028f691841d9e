"""The gesture video: each take in a three-quarter perspective view, over a scrolling strip of the speech.

A frame (960 x 540) holds one panel per take, side by side and labelled (the real motion on the left when there is
a reference, the generated motion beside it), and under them the speech timeline: the loudness envelope, the audio
onsets, the annotated stressed syllables when the clip has an annotation (the built-in corpus), and the strokes
detected in each take's hands, scrolling past a fixed playhead, so that one can see whether the hands move on the
stressed syllables.

A figure has a head (with a nose dot that shows where it faces, so nods and turns read), hands, arms coloured by
side, joints, and its shadow on a floor grid under the hips (the depth cue). Every take is turned to face the camera
(from its rest pose), and all panels share one scale, so that two takes of one skeleton compare in size.

Drawing is Pillow's (C code): the static parts (the panels' grids and labels, the whole strip, the playhead) are
drawn once. A frame is the static picture with only what changes drawn into it: the figures (a few dozen primitives
each, drawn at twice the size and reduced, for smooth edges) in the box they cover, where the background is
restored after them; the strip's window; the clock. The points of a chunk of frames are projected in one call. The
frames equal, pixel for pixel, those of drawing each frame whole (``tests/test_video.py`` keeps that renderer).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from racer_env.errors import RacerError
from racer_env.metrics.rules import detect_strokes, merge_hands
from racer_env.motion.rotations import rotvec_to_matrix
from racer_env.motion.skeleton import Skeleton, forward_kinematics
from racer_env.motion.upper_body import find_roles

FRAME_SIZE = (960, 540)  # (width, height) of a video frame
STRIP_HEIGHT = 150  # the speech timeline under the panels
LABEL_WIDTH = 132  # the strip's fixed column of row labels, left of the scrolling window
STRIP_SECONDS = 5.0  # seconds of speech the strip's window shows (the playhead in its middle)
SUPERSAMPLE = 2  # figures are drawn at this multiple of the frame size and reduced (anti-aliasing)
STROKE_HIGHLIGHT_S = 0.15  # a hand is drawn in the highlight colour this long either side of its detected stroke
STROKE_MERGE_S = 0.2  # strokes of both hands closer than this count once (as in the rule metrics)

BACKGROUND = (246, 245, 240)
PANEL = (252, 251, 248)
GRID = (214, 212, 204)
SHADOW = (206, 204, 196)
TEXT = (40, 40, 48)
BODY = (70, 72, 88)
LEFT = (46, 110, 190)  # the figure's left arm
RIGHT = (214, 96, 40)  # the figure's right arm
HIGHLIGHT = (230, 30, 60)  # a hand during a detected stroke
ENVELOPE = (150, 170, 200)
ONSET = (110, 120, 140)
STRESS = (235, 140, 0)
PLAYHEAD = (220, 30, 50)
#: marker colours of the takes' strokes in the strip, in panel order
TAKE_COLOURS = ((60, 140, 80), (120, 60, 170), (30, 120, 160))

HEAD_RADIUS_MM = 95.0
HAND_RADIUS_MM = 45.0
HAND_LENGTH_MM = 70.0  # the palm's centre lies this far beyond the wrist, along the forearm
BONE_WIDTH_MM = 38.0
JOINT_RADIUS_MM = 26.0
FLOOR_GAP_MM = 120.0  # the floor lies this far under the lowest the body goes (1st percentile)
GRID_MM = (-600.0, 600.0, 200.0)  # the floor grid's lines: from, to, spacing (about the root)


@dataclass(frozen=True)
class Take:
    """One motion to show: its label, (T, J, 3) local rotation vectors (radians) on ``skeleton``."""

    label: str
    rotations: np.ndarray
    skeleton: Skeleton


@dataclass(frozen=True)
class Speech:
    """What the strip shows of the speech: (N,) mono audio at ``sample_rate``, and the annotated stressed
    syllables' onsets (s) when the clip has an annotation."""

    audio: np.ndarray
    sample_rate: int
    stressed: np.ndarray | None = None


def corpus_reference(workspace_root, clip) -> tuple[Take, np.ndarray | None]:
    """A corpus clip's real motion as a video's reference take, and its annotated stressed syllables' onsets (s;
    None for a clip without an annotation: a real corpus)."""
    from racer_env.metrics.rules import load_annotation, stressed_onsets

    annotation = load_annotation(workspace_root, clip.id)
    return (Take("real (corpus motion)", clip.rotations, clip.skeleton),
            None if annotation is None else stressed_onsets(annotation))


@dataclass(frozen=True)
class Camera:
    """A perspective camera looking at the chest from the front, turned by ``yaw_deg`` about the vertical (the
    three-quarter view) and looking down by ``pitch_deg``; ``distance_mm`` sets the strength of the perspective."""

    yaw_deg: float = 40.0
    pitch_deg: float = 20.0
    distance_mm: float = 3200.0

    def view(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) points (mm, x left of the figure, y up, z forward, origin at the look-at point) -> (..., 3)
        camera coordinates: screen x right, screen y up, depth away from the camera."""
        yaw, pitch = np.radians(self.yaw_deg), np.radians(self.pitch_deg)
        ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
        rx = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
        p = points @ (rx @ ry).T
        return np.stack([p[..., 0], p[..., 1], self.distance_mm - p[..., 2]], axis=-1)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(..., 3) points -> (..., 2) normalised screen coordinates (x right, y up) and (...,) depths."""
        v = self.view(points)
        depth = np.maximum(v[..., 2], 1.0)
        return v[..., :2] * (self.distance_mm / depth)[..., None], depth


@dataclass
class _Figure:
    """A take ready to draw: positions turned to face the camera and centred on the root's rest position."""

    label: str
    positions: np.ndarray  # (T, J, 3) mm
    parents: tuple[int, ...]
    side: np.ndarray  # (J,) colour of the bone ending at each joint
    head: np.ndarray  # (T, 3) centre of the head
    nose: np.ndarray  # (T, 3) a point on the head's front
    hands: np.ndarray  # (2, T, 3) palm centres (left, right)
    hand_joints: tuple[int, int]
    floor_y: float  # the height of the floor grid: just under the lowest the hands go
    stroke_times: np.ndarray  # (n,) s, strokes detected in the hands
    highlight: np.ndarray  # (2, T) bool: a stroke of the hand (left, right) is under way

    @property
    def n_frames(self) -> int:
        return len(self.positions)


def figure_of(take: Take, fps: float) -> _Figure:
    """Forward kinematics of a take, its head, hands and strokes, turned to face the camera."""
    sk, rot = take.skeleton, np.asarray(take.rotations, dtype=np.float64)
    if rot.ndim != 3 or rot.shape[0] < 1 or rot.shape[1:] != (sk.n_joints, 3) or not np.isfinite(rot).all():
        raise RacerError(f"{take.label}: rotations must be finite (T >= 1, {sk.n_joints}, 3), got {rot.shape}")
    roles = find_roles(sk, take.label)
    pos, glob = forward_kinematics(sk, rotvec_to_matrix(rot))  # (T, J, 3) mm, (T, J, 3, 3)
    rest = sk.positions(np.zeros((1, sk.n_joints, 3)))[0]  # (J, 3)
    left, right, head = roles["left_hand"], roles["right_hand"], roles["head"]
    across = rest[left] - rest[right]  # the figure's left, in the rest pose
    forward = np.cross(across, [0.0, 1.0, 0.0])
    forward /= max(np.linalg.norm(forward), 1e-9)
    turn = _yaw_to_z(forward)  # (3, 3): the figure faces +z
    centre = np.array([rest[0, 0], 0.0, rest[0, 2]])
    aligned = (pos - centre) @ turn.T  # (T, J, 3)

    neck = sk.parents[head] if sk.parents[head] >= 0 else head
    up = _unit(aligned[:, head] - aligned[:, neck], fallback=(0.0, 1.0, 0.0))  # (T, 3)
    head_centre = aligned[:, head] + up * HEAD_RADIUS_MM
    face = np.einsum("ij,tjk,k->ti", turn, glob[:, head], forward)  # (T, 3) the head's forward in the aligned frame
    nose = head_centre + _unit(face, fallback=(0.0, 0.0, 1.0)) * HEAD_RADIUS_MM
    hands = np.stack([_palm(aligned, j, sk.parents[j]) for j in (left, right)])

    left_chain = set(sk.path_from_root(left)) - set(sk.path_from_root(head))
    right_chain = set(sk.path_from_root(right)) - set(sk.path_from_root(head))
    side = np.array([1 if j in left_chain else 2 if j in right_chain else 0 for j in range(sk.n_joints)])
    per_hand = {h: detect_strokes(pos[:, j], fps) for h, j in (("left", left), ("right", right))}
    frames = np.array([s.frame for s in merge_hands(per_hand, fps, STROKE_MERGE_S)], dtype=np.int64)
    highlight = np.stack([_near(len(pos), [s.frame for s in per_hand[h]], STROKE_HIGHLIGHT_S * fps)
                          for h in ("left", "right")])
    floor = float(np.percentile(np.concatenate([aligned[..., 1].ravel(), hands[..., 1].ravel()]), 1)) - FLOOR_GAP_MM
    return _Figure(take.label, aligned, sk.parents, side, head_centre, nose, hands, (left, right), floor,
                   frames / fps, highlight)


def _near(n_frames: int, events: list[int], radius: float) -> np.ndarray:
    """(n_frames,) bool: within ``radius`` frames of one of ``events``."""
    if not events:
        return np.zeros(n_frames, dtype=bool)
    return (np.abs(np.arange(n_frames)[:, None] - np.asarray(events)[None, :]) <= radius).any(axis=1)


def _yaw_to_z(forward: np.ndarray) -> np.ndarray:
    """The rotation about the vertical that turns the horizontal part of ``forward`` to +z."""
    angle = np.arctan2(forward[0], forward[2])
    c, s = np.cos(-angle), np.sin(-angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _unit(v: np.ndarray, fallback: Sequence[float]) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(n > 1e-9, v / np.maximum(n, 1e-9), np.asarray(fallback, dtype=np.float64))


def _palm(positions: np.ndarray, hand: int, parent: int) -> np.ndarray:
    """(T, 3) the palm's centre: beyond the wrist along the forearm."""
    if parent < 0:
        return positions[:, hand]
    return positions[:, hand] + _unit(positions[:, hand] - positions[:, parent], (0.0, -1.0, 0.0)) * HAND_LENGTH_MM


# -- layout ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Panel:
    """Where a figure is drawn: its box in the frame and the map from normalised screen to pixel coordinates."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels
    scale: float  # pixels per normalised screen unit (mm at the look-at distance)
    offset: np.ndarray  # (2,) the normalised screen point at the box's centre

    def pixels(self, screen: np.ndarray) -> np.ndarray:
        """(..., 2) normalised screen coordinates -> (..., 2) pixel coordinates (x right, y down) at SUPERSAMPLE."""
        x0, y0, x1, y1 = self.box
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2 + 12])
        px = (screen - self.offset) * self.scale
        return (centre + px * np.array([1.0, -1.0])) * SUPERSAMPLE


def _layout(figures: list[_Figure], camera: Camera) -> list[_Panel]:
    """Side-by-side panels with one common scale that fits every figure's motion (1st-99th percentile)."""
    width, height = FRAME_SIZE[0], FRAME_SIZE[1] - STRIP_HEIGHT
    n = len(figures)
    boxes = [(round(i * width / n), 0, round((i + 1) * width / n), height) for i in range(n)]
    extents, offsets = [], []
    for fig in figures:
        points = np.concatenate([fig.positions.reshape(-1, 3), fig.head + [0, HEAD_RADIUS_MM, 0],
                                 fig.hands.reshape(-1, 3)])
        screen, _ = camera.project(points)
        lo, hi = np.percentile(screen, 1, axis=0), np.percentile(screen, 99, axis=0)
        extents.append(hi - lo + 2 * HEAD_RADIUS_MM)
        offsets.append((lo + hi) / 2)
    fit = min(min(0.86 * (b[2] - b[0]) / e[0], 0.78 * (b[3] - b[1]) / e[1])
              for b, e in zip(boxes, extents))
    return [_Panel(b, fit, o) for b, o in zip(boxes, offsets)]


# -- drawing -----------------------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _panels_background(figures: list[_Figure], panels: list[_Panel], camera: Camera):
    """The panels at SUPERSAMPLE: background, floor grid (clipped to its panel) and label of each."""
    from PIL import Image, ImageDraw

    s = SUPERSAMPLE
    img = Image.new("RGB", (FRAME_SIZE[0] * s, (FRAME_SIZE[1] - STRIP_HEIGHT) * s), BACKGROUND)
    ticks = np.arange(GRID_MM[0], GRID_MM[1] + 1e-6, GRID_MM[2])
    lo, hi = GRID_MM[0], GRID_MM[1]
    for fig, panel in zip(figures, panels):
        x0, y0, x1, y1 = (v * s for v in panel.box)
        tile = Image.new("RGB", (x1 - x0 - 4 * s, y1 - y0 - 4 * s), PANEL)
        draw = ImageDraw.Draw(tile)
        shift = np.array([x0 + 2 * s, y0 + 2 * s])
        for a in ticks:
            for line in (([a, fig.floor_y, lo], [a, fig.floor_y, hi]), ([lo, fig.floor_y, a], [hi, fig.floor_y, a])):
                ends = panel.pixels(camera.project(np.array(line))[0]) - shift
                draw.line([tuple(p) for p in ends], fill=GRID, width=s)
        draw.text((10 * s, 6 * s), fig.label, fill=TEXT, font=_font(15 * s))
        img.paste(tile, (x0 + 2 * s, y0 + 2 * s))
    return img


@dataclass(frozen=True)
class _Projected:
    """A figure's points in panel pixels (at SUPERSAMPLE) for a run of frames, all projected in one call: per frame
    the J joints, their J shadows on the floor, the head's centre, the nose and the two palms (2J + 4 points)."""

    pixels: np.ndarray  # (n, 2J + 4, 2)
    depth: np.ndarray  # (n, 2J + 4) mm from the camera
    size: np.ndarray  # (n, 2J + 4) pixels per mm at each point


def _project(fig: _Figure, panel: _Panel, camera: Camera, frames: np.ndarray) -> _Projected:
    """The points of ``fig`` at ``frames`` (indices) in pixels: the same numbers, bit for bit, as projecting each
    frame's points alone (the matrix product runs frame by frame either way: numpy's matmul loops over the stack)."""
    pos = fig.positions[frames]  # (n, J, 3)
    shadow = pos.copy()
    shadow[..., 1] = fig.floor_y
    points = np.concatenate([pos, shadow, fig.head[frames, None], fig.nose[frames, None],
                             fig.hands[:, frames].transpose(1, 0, 2)], axis=1)
    screen, depth = camera.project(points)
    return _Projected(panel.pixels(screen), depth, panel.scale * SUPERSAMPLE * camera.distance_mm / depth)


def _extents(fig: _Figure, p: _Projected) -> np.ndarray:
    """(n, 4) x0, y0, x1, y1 (pixels at SUPERSAMPLE): a box around everything :func:`_draw_figure` draws in each
    frame, with a margin for Pillow's rounding (lines: half their width about their ends; discs: their radius)."""
    j = len(fig.parents)
    width = np.maximum(2, BONE_WIDTH_MM * p.size[:, :j].mean(axis=1))  # (n,) at least the width drawn
    reach = np.repeat(width[:, None] / 2, p.size.shape[1], axis=1)  # (n, 2J + 4) beyond each point
    reach[:, :j] = np.maximum(reach[:, :j], JOINT_RADIUS_MM * p.size[:, :j] / 2)
    reach[:, 2 * j:2 * j + 2] = np.maximum(reach[:, 2 * j:2 * j + 2], HEAD_RADIUS_MM * p.size[:, 2 * j, None])
    reach[:, 2 * j + 2:] = np.maximum(reach[:, 2 * j + 2:], HAND_RADIUS_MM * p.size[:, 2 * j + 2:])
    reach += 4.0
    lo, hi = (p.pixels - reach[..., None]).min(axis=1), (p.pixels + reach[..., None]).max(axis=1)
    return np.concatenate([lo, hi], axis=1)


def _draw_figure(draw, fig: _Figure, pixels: np.ndarray, depth: np.ndarray, size: np.ndarray, t: int) -> None:
    """One frame of one figure from its projected points (:class:`_Projected`, frame ``t`` of the take): shadow,
    bones far to near, joints, head with nose, hands."""
    j = len(fig.parents)
    px = [tuple(p) for p in pixels.tolist()]  # (2J + 4) (x, y): Python floats, the same values
    bones = [(c, p) for c, p in enumerate(fig.parents) if p >= 0]
    width = max(2, int(BONE_WIDTH_MM * size[:j].mean()))
    for c, p in bones:
        draw.line((px[j + p], px[j + c]), fill=SHADOW, width=width)
    colours = (BODY, LEFT, RIGHT)
    for c, p in sorted(bones, key=lambda b: -(depth[b[0]] + depth[b[1]])):
        draw.line((px[p], px[c]), fill=colours[fig.side[c]], width=width)
        r = JOINT_RADIUS_MM * size[c] / 2
        x, y = px[c]
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colours[fig.side[c]])
    (hx, hy), (nx, ny) = px[2 * j], px[2 * j + 1]
    r = HEAD_RADIUS_MM * size[2 * j]
    draw.ellipse((hx - r, hy - r, hx + r, hy + r), fill=BODY)
    rn = 0.22 * r
    draw.ellipse((nx - rn, ny - rn, nx + rn, ny + rn), fill=(250, 220, 190))
    for k, (joint, colour) in enumerate(zip(fig.hand_joints, (LEFT, RIGHT))):
        cx, cy = px[2 * j + 2 + k]
        r = HAND_RADIUS_MM * size[2 * j + 2 + k]
        draw.line((px[joint], (cx, cy)), fill=colour, width=width)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=HIGHLIGHT if fig.highlight[k, t] else colour,
                     outline=(255, 255, 255),
                     width=max(1, SUPERSAMPLE))


def _strip(figures: list[_Figure], speech: Speech | None, duration: float):
    """The whole timeline as one image, padded by half a window either side: at time t the window is the crop
    ``[t * pps, t * pps + window)``, with t in its middle."""
    from PIL import Image, ImageDraw

    window = FRAME_SIZE[0] - LABEL_WIDTH
    pps = window / STRIP_SECONDS  # pixels per second
    pad = window // 2
    img = Image.new("RGB", (int(np.ceil(duration * pps)) + 2 * pad + 2, STRIP_HEIGHT), PANEL)
    draw = ImageDraw.Draw(img)
    rows = _strip_rows(len(figures))

    def x_of(seconds: float) -> float:
        return pad + seconds * pps

    if speech is not None:
        top, bottom = rows["speech"]
        env = _loudness(speech, pps)  # (columns,) in [0, 1]
        if len(env):
            _draw_envelope(draw, env, pad, top, bottom)
        for onset in _onsets(speech):
            draw.line(((x_of(onset), top + 4), (x_of(onset), bottom)), fill=ONSET, width=1)
        if speech.stressed is not None:
            s_top, s_bottom = rows["stressed"]
            for onset in speech.stressed:
                x = x_of(float(onset))
                draw.polygon([(x - 6, s_top + 2), (x + 6, s_top + 2), (x, s_bottom - 2)], fill=STRESS)
    for k, fig in enumerate(figures):
        top, bottom = rows[f"take{k}"]
        mid = (top + bottom) / 2
        draw.line(((pad, mid), (x_of(duration), mid)), fill=GRID, width=1)
        for when in fig.stroke_times:
            x = x_of(float(when))
            draw.polygon([(x, top + 2), (x + 6, mid), (x, bottom - 2), (x - 6, mid)], fill=TAKE_COLOURS[k % 3])
    font = _font(11)
    for second in range(int(duration) + 1):
        x = x_of(second)
        draw.line(((x, STRIP_HEIGHT - 14), (x, STRIP_HEIGHT - 8)), fill=TEXT, width=1)
        draw.text((x + 2, STRIP_HEIGHT - 15), f"{second} s", fill=TEXT, font=font)
    return img, pps


ENVELOPE_PIECE = 1024  # columns of the loudness envelope drawn as one polygon


def _draw_envelope(draw, env: np.ndarray, pad: int, top: int, bottom: int) -> None:
    """The loudness envelope ((columns,) in [0, 1]) as a filled area from column ``pad`` on, between ``bottom``
    (silence) and ``top`` (the loudest).

    Pillow's polygon fill takes time quadratic in its vertices (one per column: 4 s for 10 minutes, minutes for an
    hour), so the area is drawn as polygons of ENVELOPE_PIECE columns, each closed by vertical edges down to the
    bottom at its first and last column, which it shares with its neighbours. On every row a piece's fill then ends
    at a shared column exactly where the whole polygon's fill passes it, and starts there in the next piece: the
    pieces fill the pixels of the one polygon (``tests/test_video.py`` compares them on speech and on random
    envelopes)."""
    xs = pad + np.arange(len(env))
    ys = bottom - env * (bottom - top)
    for a in range(0, max(len(env) - 1, 1), ENVELOPE_PIECE):
        b = min(a + ENVELOPE_PIECE, len(env) - 1)
        top_edge = zip(xs[a:b + 1].tolist(), ys[a:b + 1].tolist())
        draw.polygon([(int(xs[a]), bottom), *top_edge, (int(xs[b]), bottom)], fill=ENVELOPE)


def _strip_rows(n_takes: int) -> dict[str, tuple[int, int]]:
    """Rows of the strip (top, bottom pixel): stressed syllables, speech loudness, one stroke row per take."""
    rows = {"stressed": (4, 20), "speech": (20, 74)}
    height = min(22, (STRIP_HEIGHT - 20 - 78) // max(n_takes, 1))
    for k in range(n_takes):
        rows[f"take{k}"] = (78 + k * height, 78 + (k + 1) * height)
    return rows


def _strip_labels(figures: list[_Figure], speech: Speech | None):
    """The fixed label column left of the scrolling window."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (LABEL_WIDTH, STRIP_HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(img)
    font = _font(11)
    rows = _strip_rows(len(figures))
    names = {"speech": "speech loudness" if speech is not None else "no audio",
             "stressed": "stressed syllables" if speech is not None and speech.stressed is not None else ""}
    for key, (top, bottom) in rows.items():
        text = names.get(key) or (f"strokes, {_short(figures[int(key[4:])].label)}" if key.startswith("take") else "")
        colour = TAKE_COLOURS[int(key[4:]) % 3] if key.startswith("take") else STRESS if key == "stressed" else TEXT
        draw.text((6, (top + bottom) / 2 - 6), _fit(text, 21), fill=colour, font=font)
    return img


def _short(label: str) -> str:
    """The first word of a take's label ("real (corpus motion)" -> "real")."""
    return label.split()[0].rstrip(":,") if label.split() else label


def _fit(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:chars - 1] + "…"


def _loudness(speech: Speech, pps: float) -> np.ndarray:
    """(columns,) RMS loudness of every pixel column (column k: the samples of [k, k + 1) / pps seconds, so that the
    envelope stays in time however long the clip), from 45 dB below the loudest column (or -20 dBFS if the clip is
    quieter: silence stays flat) -> [0, 1]."""
    y = np.asarray(speech.audio, dtype=np.float64)
    n = int(np.ceil(len(y) * pps / speech.sample_rate))
    if n == 0:
        return np.zeros(0)
    edges = np.minimum(np.round(np.arange(n) * speech.sample_rate / pps).astype(np.int64), len(y) - 1)
    power = np.add.reduceat(y ** 2, edges) / np.maximum(np.diff(np.append(edges, len(y))), 1)
    db = 10 * np.log10(power + 1e-16)
    top = max(float(db.max()), -20.0)
    return np.clip((db - (top - 45.0)) / 45.0, 0.0, 1.0)


def _onsets(speech: Speech) -> np.ndarray:
    """Audio onset times (s), as librosa's onset detector finds them."""
    import librosa

    y = np.asarray(speech.audio, dtype=np.float32)
    if len(y) < 2048 or not np.any(y):
        return np.zeros(0)
    return librosa.onset.onset_detect(y=y, sr=speech.sample_rate, units="time")


def render_video_frames(takes: Sequence[Take], fps: float, speech: Speech | None = None,
                        camera: Camera = Camera()) -> Iterator[np.ndarray]:
    """Yield the (540, 960, 3) uint8 frames of a video of ``takes`` side by side at ``fps``.

    The video lasts as long as the last take; a shorter take holds its last pose. ``speech`` (audio and any
    annotated stressed syllables) fills the timeline under the panels. Each frame is a new array (the caller may
    keep it); only a chunk of frames' projected points is held at a time, so memory does not grow with the frames.
    """
    from PIL import Image

    if not takes:
        raise RacerError("a video needs at least one take")
    if not fps > 0:
        raise RacerError(f"fps must be > 0, got {fps}")
    figures = [figure_of(t, fps) for t in takes]
    n_frames = figures[-1].n_frames
    panels = _layout(figures, camera)
    figure_layer = _FigureLayer(_panels_background(figures, panels, camera))
    strip = _StripWindows(*_strip(figures, speech, n_frames / fps))
    frame_base = Image.new("RGB", FRAME_SIZE, BACKGROUND)
    frame_base.paste(figure_layer.background_reduced, (0, 0))
    frame_base.paste(_strip_labels(figures, speech), (0, FRAME_SIZE[1] - STRIP_HEIGHT))
    base = np.asarray(frame_base)
    playhead = _playhead_pixels()
    clock = _Clock()
    for a in range(0, n_frames, PROJECTION_CHUNK):
        frames = np.arange(a, min(a + PROJECTION_CHUNK, n_frames))
        held = [np.minimum(frames, fig.n_frames - 1) for fig in figures]  # a shorter take holds its last pose
        projected = [_project(fig, panel, camera, f) for fig, panel, f in zip(figures, panels, held)]
        boxes = np.stack([_extents(fig, p) for fig, p in zip(figures, projected)])  # (takes, n, 4)
        for i, t in enumerate(frames.tolist()):
            frame = base.copy()
            figure_layer.draw(frame, figures, projected, [h[i] for h in held], i, boxes[:, i])
            frame[FRAME_SIZE[1] - STRIP_HEIGHT:, LABEL_WIDTH:] = strip.window(round(t / fps * strip.pps))
            frame[playhead] = PLAYHEAD
            clock.stamp(frame, f"{t / fps:5.1f} s")
            yield frame


PROJECTION_CHUNK = 256  # frames whose points are projected at once


class _FigureLayer:
    """The panels' figures at SUPERSAMPLE, drawn over the static background (grids, labels) and reduced to frame
    pixels. Only what changes is redrawn: each frame restores the background in the boxes where the previous frame
    drew, draws the figures, and reduces only the box around each figure; elsewhere the frame keeps the background
    reduced once. The boxes are aligned to SUPERSAMPLE, so the reduction of each equals that part of the whole
    image's, pixel for pixel (where two boxes overlap, both hold the same reduced pixels)."""

    def __init__(self, background) -> None:
        self.background = background
        self.background_reduced = background.reduce(SUPERSAMPLE)
        self.canvas = background.copy()
        self.dirty: list[tuple[int, int, int, int]] = []  # where the canvas differs from the background

    def draw(self, frame: np.ndarray, figures: list[_Figure], projected: list[_Projected], held: list[int],
             i: int, boxes: np.ndarray) -> None:
        """Draw frame ``i`` of the projected chunk (take frames ``held``; (takes, 4) ``boxes`` around each figure)
        into ``frame``'s panel area."""
        from PIL import ImageDraw

        for box in self.dirty:
            self.canvas.paste(self.background.crop(box), box[:2])
        draw = ImageDraw.Draw(self.canvas)
        for fig, p, t in zip(figures, projected, held):
            _draw_figure(draw, fig, p.pixels[i], p.depth[i], p.size[i], t)
        self.dirty = [box for box in map(self._aligned, boxes) if box is not None]
        for box in self.dirty:
            x0, y0, x1, y1 = (v // SUPERSAMPLE for v in box)
            frame[y0:y1, x0:x1] = np.asarray(self.canvas.reduce(SUPERSAMPLE, box=box))

    def _aligned(self, box: np.ndarray) -> tuple[int, int, int, int] | None:
        """(4,) x0, y0, x1, y1 widened to multiples of SUPERSAMPLE and clipped to the canvas (None when nothing of
        it is on the canvas)."""
        s, (w, h) = SUPERSAMPLE, self.canvas.size
        x0, y0 = (max(int(np.floor(v / s)) * s, 0) for v in box[:2])
        x1, y1 = (min(int(np.ceil(v / s)) * s, limit) for v, limit in zip(box[2:], (w, h)))
        return (x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None


class _StripWindows:
    """The timeline's window at a scroll position, as an array: the strip image converted in tiles (one tile
    holds every window starting in it), so that no array of the whole strip is made."""

    TILE = 4096  # window starts per tile (pixels)

    def __init__(self, strip, pps: float) -> None:
        self.strip, self.pps = strip, pps
        self.width = FRAME_SIZE[0] - LABEL_WIDTH
        self.tile_start, self.tile = None, None

    def window(self, x: int) -> np.ndarray:
        """(STRIP_HEIGHT, width, 3) what ``strip.crop((x, 0, x + width, STRIP_HEIGHT))`` holds (black beyond the
        strip, as the crop)."""
        start = x - x % self.TILE
        if start != self.tile_start:
            box = (start, 0, start + self.TILE + self.width, STRIP_HEIGHT)
            self.tile_start, self.tile = start, np.asarray(self.strip.crop(box))
        return self.tile[:, x - start:x - start + self.width]


def _playhead_pixels() -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the frame that the playhead line covers (the fixed red line across the timeline)."""
    from PIL import Image, ImageDraw

    x = LABEL_WIDTH + (FRAME_SIZE[0] - LABEL_WIDTH) // 2
    y0 = FRAME_SIZE[1] - STRIP_HEIGHT
    img = Image.new("RGB", FRAME_SIZE, BACKGROUND)
    ImageDraw.Draw(img).line(((x, y0), (x, FRAME_SIZE[1])), fill=PLAYHEAD, width=2)
    return np.nonzero((np.asarray(img) == PLAYHEAD).all(axis=-1))


class _Clock:
    """The time in the frame's top right corner, drawn (anti-aliased) on the part of the frame under it only."""

    POSITION = (FRAME_SIZE[0] - 84, 8)

    def __init__(self) -> None:
        from PIL import Image, ImageDraw

        self.font = _font(12)
        self.measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def stamp(self, frame: np.ndarray, text: str) -> None:
        """Draw ``text`` into ``frame`` as ImageDraw.text at POSITION on the whole frame would."""
        from PIL import Image, ImageDraw

        x0, y0, x1, y1 = self.measure.textbbox(self.POSITION, text, font=self.font)
        x0, y0 = max(int(x0) - 2, 0), max(int(y0) - 2, 0)
        x1, y1 = min(int(np.ceil(x1)) + 2, FRAME_SIZE[0]), min(int(np.ceil(y1)) + 2, FRAME_SIZE[1])
        patch = Image.fromarray(frame[y0:y1, x0:x1])
        ImageDraw.Draw(patch).text((self.POSITION[0] - x0, self.POSITION[1] - y0), text, fill=TEXT, font=self.font)
        frame[y0:y1, x0:x1] = np.asarray(patch)
