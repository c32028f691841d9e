"""BVH reading and writing.

Why not a library: bvhio (the maintained option we evaluated) builds Python objects per joint and frame
and converts rotations to quaternions on load: 0.17 s for 994 frames x 31 joints, i.e. ~17 s for a
100,000-frame file, and the source Euler values cannot be written back unchanged. This reader parses the
small hierarchy line by line and the motion block in one vectorised call, keeping the raw channel values
so that read -> write -> read is exact to the printed precision.

Handles: any rotation channel order, 0/3/6-channel joints (position channels on any joint), End Sites,
CRLF or mixed line endings, tabs and trailing spaces. Errors name the file and the line.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from racer_env.errors import RacerError
from racer_env.motion.rotations import euler_to_matrix, matrix_to_euler
from racer_env.motion.skeleton import POSITION_CHANNELS, ROTATION_CHANNELS, Skeleton
from racer_env.workspace import write_text_atomic


class BvhError(RacerError):
    """A BVH file that cannot be read; the message names the file and the problem."""


#: largest magnitude accepted for any number in a BVH file (offsets and channel values, in file units or
#: degrees). Real takes never come near it (1e6 cm is 10 km, 1e6 degrees is 2,778 turns); a larger value is
#: corruption, and values far beyond it overflow forward kinematics (positions multiply offsets by rotations
#: and sum them along the chain) or make the trigonometry meaningless.
MAX_ABS_VALUE = 1e6

#: bounds on the header values that decide how much memory a take needs, checked before anything is allocated
#: or resampled: a hostile or corrupt header ("Frame Time: 100000", "Frames: 10^12") must be refused, not obeyed.
#: Frame rates of real capture lie between 24 and 480 fps; resampling a take to the working rate allocates
#: seconds x working rate frames, so the duration is bounded too (an hour: far beyond any take, a few hundred MB
#: of rotations at most); a joint has at most 6 channels (3 position, 3 rotation).
MIN_FPS, MAX_FPS = 1.0, 1000.0
MAX_SECONDS = 3600.0
MAX_JOINT_CHANNELS = 6
MAX_MOTION_VALUES = 50_000_000  # frames x channels: 400 MB of float64 values
MAX_FILE_BYTES = 1 << 29  # 512 MiB of text: MAX_MOTION_VALUES at ~10 characters a value


@dataclass(eq=False)
class Bvh:
    """A BVH file in memory: the skeleton, the frame time and the raw channel values.

    Attributes:
        skeleton: joints, offsets and channel lists.
        frame_time: seconds per frame.
        values: (T, C) channel values in file order (C = sum of every joint's channel count);
            rotations in degrees, positions in file units.
    """

    skeleton: Skeleton
    frame_time: float
    values: np.ndarray

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.values.ndim != 2 or self.values.shape[1] != self.skeleton.n_channels:
            raise ValueError(
                f"values must be (frames, {self.skeleton.n_channels}) for this skeleton, got {self.values.shape}"
            )
        if not self.frame_time > 0:
            raise ValueError(f"frame_time must be positive, got {self.frame_time}")

    @property
    def n_frames(self) -> int:
        return self.values.shape[0]

    @property
    def fps(self) -> float:
        """Frames per second; snapped to the nearest whole rate when within 0.1 % of it (files print the frame
        time rounded: 'Frame Time: .0083333' is 120 fps, not 120.0005)."""
        rate = 1.0 / self.frame_time
        whole = round(rate)
        return float(whole) if whole > 0 and abs(rate - whole) / whole < 1e-3 else rate

    def _channel_columns(self) -> tuple[list[list[int]], list[dict[str, int]]]:
        """Per joint: the columns of its rotation channels (in order) and of its position channels."""
        rot_cols: list[list[int]] = []
        pos_cols: list[dict[str, int]] = []
        col = 0
        for chans in self.skeleton.channels:
            rot_cols.append([col + i for i, c in enumerate(chans) if c in ROTATION_CHANNELS])
            pos_cols.append({c[0]: col + i for i, c in enumerate(chans) if c in POSITION_CHANNELS})
            col += len(chans)
        return rot_cols, pos_cols

    def euler_angles(self) -> np.ndarray:
        """(T, J, 3) Euler angles in degrees, each joint in its own channel order (zeros if none)."""
        rot_cols, _ = self._channel_columns()
        out = np.zeros((self.n_frames, self.skeleton.n_joints, 3))
        for j, cols in enumerate(rot_cols):
            if cols:
                out[:, j] = self.values[:, cols]
        return out

    def local_rotations(self) -> np.ndarray:
        """(T, J, 3, 3) rotation of each joint relative to its parent."""
        angles = self.euler_angles()
        mats = np.empty(angles.shape[:2] + (3, 3))
        for j in range(self.skeleton.n_joints):
            mats[:, j] = euler_to_matrix(angles[:, j], self.skeleton.rotation_order(j))
        return mats

    def translations(self) -> np.ndarray:
        """(T, J, 3) per-joint translation in file units: the rest offset, replaced by position channels."""
        _, pos_cols = self._channel_columns()
        out = np.broadcast_to(self.skeleton.offsets, (self.n_frames, self.skeleton.n_joints, 3)).copy()
        for j, cols in enumerate(pos_cols):
            for axis, col in cols.items():
                out[:, j, "XYZ".index(axis)] = self.values[:, col]
        return out

    @classmethod
    def from_rotations(
        cls,
        skeleton: Skeleton,
        local_rotations: np.ndarray,
        fps: float,
        translations: np.ndarray | None = None,
    ) -> Bvh:
        """Build channel values from (T, J, 3, 3) local rotations and optional (T, J, 3) translations.

        Rotations are written as Euler angles in each joint's channel order; position channels take
        ``translations`` (or the rest offsets).
        """
        rots = np.asarray(local_rotations, dtype=np.float64)
        n_frames = rots.shape[0]
        if rots.shape[1:] != (skeleton.n_joints, 3, 3):
            raise ValueError(f"local_rotations must be (T, {skeleton.n_joints}, 3, 3), got {rots.shape}")
        if translations is None:
            translations = np.broadcast_to(skeleton.offsets, (n_frames, skeleton.n_joints, 3))
        values = np.zeros((n_frames, skeleton.n_channels))
        col = 0
        for j, chans in enumerate(skeleton.channels):
            euler = matrix_to_euler(rots[:, j], skeleton.rotation_order(j)) if any(
                c in ROTATION_CHANNELS for c in chans
            ) else None
            r = 0
            for c in chans:
                if c in ROTATION_CHANNELS:
                    values[:, col] = euler[:, r]
                    r += 1
                else:
                    values[:, col] = translations[:, j, "XYZ".index(c[0])]
                col += 1
        return cls(skeleton=skeleton, frame_time=1.0 / fps, values=values)


# -- reading -----------------------------------------------------------------------------------------------
def _parse_floats(tokens: list[str], n: int, where: str) -> np.ndarray:
    if len(tokens) != n:
        raise BvhError(f"{where}: expected {n} numbers, got {len(tokens)}: {' '.join(tokens)!r}")
    try:
        values = np.array([float(t) for t in tokens])
    except ValueError:
        raise BvhError(f"{where}: expected numbers, got {' '.join(tokens)!r}") from None
    if not (np.abs(values) <= MAX_ABS_VALUE).all():
        raise BvhError(f"{where}: expected finite numbers of magnitude at most {MAX_ABS_VALUE:g}, "
                       f"got {' '.join(tokens)!r}")
    return values


def _parse_hierarchy(lines: list[str], source: str, unit_mm: float) -> tuple[Skeleton, int]:
    """Parse HIERARCHY up to the MOTION line; returns the skeleton and the index of the MOTION line."""
    names: list[str] = []
    parents: list[int] = []
    offsets: list[np.ndarray] = []
    channels: list[tuple[str, ...]] = []
    end_sites: dict[int, np.ndarray] = {}
    stack: list[int] = []  # open joint blocks (-2 marks an End Site block)
    pending: int | None = None  # joint (or -2) declared but whose '{' is not yet seen
    started = False
    for i, raw in enumerate(lines):
        parts = raw.split()
        if not parts:
            continue
        where = f"{source}, line {i + 1}"
        key = parts[0]
        if not started:
            if key != "HIERARCHY":
                raise BvhError(f"{where}: a BVH file starts with HIERARCHY, found {raw.strip()[:40]!r}")
            started = True
            continue
        if key in ("ROOT", "JOINT"):
            if (key == "ROOT") != (not stack) or len(parts) < 2:
                raise BvhError(f"{where}: unexpected {raw.strip()!r}")
            names.append(raw.strip()[len(key):].strip())
            parents.append(stack[-1] if stack else -1)
            offsets.append(np.zeros(3))
            channels.append(())
            pending = len(names) - 1
        elif key == "End" and len(parts) > 1 and parts[1] == "Site":
            if not stack or stack[-1] < 0:
                raise BvhError(f"{where}: End Site outside a joint")
            pending = -2
        elif key == "{":
            if pending is None:
                raise BvhError(f"{where}: '{{' without a ROOT, JOINT or End Site before it")
            stack.append(pending)
            pending = None
        elif key == "}":
            if not stack:
                raise BvhError(f"{where}: unbalanced '}}'")
            stack.pop()
        elif key == "OFFSET":
            if not stack:
                raise BvhError(f"{where}: OFFSET outside a joint")
            off = _parse_floats(parts[1:], 3, where)
            if stack[-1] == -2:
                end_sites[stack[-2]] = off
            else:
                offsets[stack[-1]] = off
        elif key == "CHANNELS":
            if not stack or stack[-1] < 0:
                raise BvhError(f"{where}: CHANNELS outside a joint")
            try:
                count = int(parts[1])
            except (IndexError, ValueError):
                raise BvhError(f"{where}: CHANNELS needs a count, got {raw.strip()!r}") from None
            if not 0 <= count <= MAX_JOINT_CHANNELS:
                raise BvhError(f"{where}: CHANNELS {count}: a joint has 0 to {MAX_JOINT_CHANNELS} channels")
            chans = tuple(parts[2:])
            if len(chans) != count:
                raise BvhError(f"{where}: CHANNELS says {count} but lists {len(chans)}: {list(chans)}")
            channels[stack[-1]] = chans
        elif key == "MOTION":
            if stack or not names:
                raise BvhError(f"{where}: MOTION before the hierarchy is complete (unclosed '{{' or no ROOT)")
            try:
                skeleton = Skeleton(
                    names=tuple(names),
                    parents=tuple(parents),
                    offsets=np.array(offsets),
                    channels=tuple(channels),
                    end_sites=end_sites,
                    unit_mm=unit_mm,
                )
            except ValueError as err:
                raise BvhError(f"{source}: {err}") from None
            return skeleton, i
        else:
            raise BvhError(f"{where}: unexpected {raw.strip()[:60]!r}")
    raise BvhError(f"{source}: no MOTION section (truncated or not a BVH file)")


def _check_bvh_file(path: Path) -> None:
    """A regular file of at most :data:`MAX_FILE_BYTES` (``/dev/zero`` or a FIFO would be read forever, a huge file
    whole into memory); else a one-line BvhError."""
    if path.is_dir():
        raise BvhError(f"{path}: is a directory, expected a BVH file")
    if path.exists() and not path.is_file():
        raise BvhError(f"{path}: is not a regular file, expected a BVH file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise BvhError(f"{path}: {size} bytes; expected a BVH file of at most {MAX_FILE_BYTES} bytes (split longer "
                       f"takes)")


def _header_value(line: str, label: str, source: str) -> str:
    if ":" not in line or line.split(":", 1)[0].strip().lower() != label.lower():
        raise BvhError(f"{source}: expected '{label}: ...' after MOTION, found {line.strip()[:40]!r}")
    return line.split(":", 1)[1].strip()


def read_bvh(path: str | os.PathLike, unit_mm: float = 10.0) -> Bvh:
    """Read a BVH file. ``unit_mm`` is the millimetres per file unit (BVH files do not say; cm -> 10).

    Raises:
        BvhError: naming the file (and line) for a missing, malformed, truncated or non-finite file.
    """
    path = Path(path)
    try:
        _check_bvh_file(path)
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as err:
        raise BvhError(f"{path}: cannot read ({err.strerror})") from None
    head, sep, _ = text.partition("MOTION")
    if not sep:
        raise BvhError(f"{path}: no MOTION section (truncated or not a BVH file)")
    head_lines = head.splitlines() + ["MOTION"]
    skeleton, _ = _parse_hierarchy(head_lines, str(path), unit_mm)
    motion_lines = text[len(head) + len("MOTION"):].lstrip("\r\n \t").split("\n", 2)
    if len(motion_lines) < 2:
        raise BvhError(f"{path}: MOTION section has no 'Frames:' and 'Frame Time:' lines (truncated)")
    try:
        n_frames = int(_header_value(motion_lines[0], "Frames", str(path)))
        frame_time = float(_header_value(motion_lines[1], "Frame Time", str(path)))
    except ValueError as err:
        if isinstance(err, BvhError):
            raise
        raise BvhError(f"{path}: bad 'Frames:' or 'Frame Time:' value ({err})") from None
    if n_frames < 1 or not np.isfinite(frame_time) or frame_time <= 0:
        raise BvhError(f"{path}: needs Frames >= 1 and a positive Frame Time, got {n_frames} and {frame_time}")
    check_header(path, n_frames, frame_time, skeleton.n_channels)
    body = motion_lines[2] if len(motion_lines) > 2 else ""
    first_line = text.count("\n", 0, len(text) - len(body)) + 1  # file line of the first frame
    data = _parse_motion_block(body, n_frames, skeleton, path, first_line)
    return Bvh(skeleton=skeleton, frame_time=frame_time, values=data)


def check_header(path: str | os.PathLike, n_frames: int, frame_time: float, n_channels: int) -> None:
    """Refuse header values outside :data:`MIN_FPS` .. :data:`MAX_FPS`, :data:`MAX_SECONDS` and
    :data:`MAX_MOTION_VALUES` before the motion is parsed or resampled (what they would make racer allocate)."""
    if not 1 / MAX_FPS <= frame_time <= 1 / MIN_FPS:
        raise BvhError(f"{path}: Frame Time {frame_time:g} s is {1 / frame_time:g} fps; expected {MIN_FPS:g} to "
                       f"{MAX_FPS:g} fps (a Frame Time of {1 / MAX_FPS:g} to {1 / MIN_FPS:g} s)")
    if n_frames * frame_time > MAX_SECONDS:
        raise BvhError(f"{path}: Frames {n_frames} at Frame Time {frame_time:g} s is {n_frames * frame_time:.0f} s; "
                       f"expected a take of at most {MAX_SECONDS:.0f} s (split longer takes)")
    if n_frames * n_channels > MAX_MOTION_VALUES:
        raise BvhError(f"{path}: Frames {n_frames} of {n_channels} channels is {n_frames * n_channels} values; "
                       f"expected at most {MAX_MOTION_VALUES} (split longer takes)")


def _parse_motion_block(body: str, n_frames: int, skeleton: Skeleton, path: Path, first_line: int) -> np.ndarray:
    """Parse the frame lines in one call; check count, finiteness and range, naming the first bad frame."""
    n_channels = skeleton.n_channels
    try:
        flat = np.loadtxt(io.StringIO(body), dtype=np.float64, ndmin=2) if body.strip() else np.zeros((0, 0))
    except ValueError:
        raise _bad_motion_row(body, n_channels, path, first_line) from None
    if flat.shape[0] != n_frames or (n_frames and flat.shape[1] != n_channels):
        got_cols = flat.shape[1] if flat.size else 0
        raise BvhError(
            f"{path}: header says {n_frames} frames of {n_channels} channels, found {flat.shape[0]} rows of "
            f"{got_cols} values (truncated or corrupt file)"
        )
    bad = ~(np.abs(flat) <= MAX_ABS_VALUE)  # NaN compares False: caught here too
    if bad.any():
        frame, col = (int(i) for i in np.argwhere(bad)[0])
        value = flat[frame, col]
        what = "NaN or infinite value" if not np.isfinite(value) else (
            f"value {value:g} exceeds the largest magnitude accepted ({MAX_ABS_VALUE:g})")
        raise BvhError(f"{path}: {what} in frame {frame} (0-based), channel {_channel_name(skeleton, col)}; the "
                       f"file is corrupt")
    return flat


def _channel_name(skeleton: Skeleton, col: int) -> str:
    """'<joint> <channel>' of column ``col`` of the motion data."""
    for name, chans in zip(skeleton.names, skeleton.channels):
        if col < len(chans):
            return f"{name} {chans[col]}"
        col -= len(chans)
    return f"#{col}"


def _bad_motion_row(body: str, n_channels: int, path: Path, first_line: int) -> BvhError:
    """The error for the first frame line that is not ``n_channels`` numbers (numpy's own message is not for
    users)."""
    frame = 0
    for i, raw in enumerate(body.split("\n")):
        tokens = raw.split("#", 1)[0].split()  # as np.loadtxt reads it: comments and blank lines skipped
        if not tokens:
            continue
        where = f"{path}, line {first_line + i}"
        if len(tokens) != n_channels:
            return BvhError(f"{where}: motion data is truncated or corrupt: frame {frame} (0-based) has "
                            f"{len(tokens)} numbers, expected {n_channels}")
        for token in tokens:
            try:
                float(token)
            except ValueError:
                return BvhError(f"{where}: motion data is corrupt: frame {frame} (0-based) has {token[:20]!r} "
                                f"where a number is expected")
        frame += 1
    return BvhError(f"{path}: motion data is truncated or corrupt: its frame lines cannot be read as numbers")


# -- writing -----------------------------------------------------------------------------------------------
def _hierarchy_text(skeleton: Skeleton) -> str:
    out = ["HIERARCHY"]
    children = {j: skeleton.children(j) for j in range(skeleton.n_joints)}

    def emit(j: int, depth: int) -> None:
        pad = "\t" * depth
        out.append(f"{pad}{'ROOT' if depth == 0 else 'JOINT'} {skeleton.names[j]}")
        out.append(pad + "{")
        out.append(f"{pad}\tOFFSET {' '.join(f'{v:.6f}' for v in skeleton.offsets[j])}")
        chans = skeleton.channels[j]
        out.append(f"{pad}\tCHANNELS {len(chans)}{''.join(' ' + c for c in chans)}")
        for c in children[j]:
            emit(c, depth + 1)
        if j in skeleton.end_sites:
            out.append(f"{pad}\tEnd Site")
            out.append(f"{pad}\t{{")
            out.append(f"{pad}\t\tOFFSET {' '.join(f'{v:.6f}' for v in skeleton.end_sites[j])}")
            out.append(f"{pad}\t}}")
        out.append(pad + "}")

    emit(0, 0)
    return "\n".join(out) + "\n"


def write_bvh(path: str | os.PathLike, bvh: Bvh, precision: int = 6) -> Path:
    """Write ``bvh`` atomically (temporary file, then rename) with ``precision`` decimals; returns the path.

    The output uses LF line endings, tab indentation and an End Site on every leaf, which other readers
    (Blender, bvhio, MotionBuilder) accept.
    """
    path = Path(path)
    skeleton = bvh.skeleton
    if any(not skeleton.children(j) and j not in skeleton.end_sites for j in range(skeleton.n_joints)):
        # Every leaf needs an End Site for most readers; a zero-length one changes nothing.
        ends = dict(skeleton.end_sites)
        for j in range(skeleton.n_joints):
            if not skeleton.children(j) and j not in ends:
                ends[j] = np.zeros(3)
        skeleton = Skeleton(skeleton.names, skeleton.parents, skeleton.offsets, skeleton.channels, ends,
                            skeleton.unit_mm)
    buf = io.StringIO()
    buf.write(_hierarchy_text(skeleton))
    buf.write(f"MOTION\nFrames: {bvh.n_frames}\nFrame Time: {bvh.frame_time:.8f}\n")
    np.savetxt(buf, bvh.values, fmt=f"%.{precision}f", delimiter=" ")
    write_text_atomic(path, buf.getvalue())
    return path
