"""Writers for generated motion: numpy archives, BVH files and stick-figure videos with the speech.

Every writer is atomic: it writes to a temporary file in the destination's directory and renames it into
place, so on any error nothing (neither a partial file nor a temporary one) is left behind.

* ``.npz`` (:func:`write_npz`): ``rotations`` (T, J, 3) local joint rotations as rotation vectors in
  radians, ``positions`` (T, J, 3) global joint positions in millimetres by forward kinematics (the root
  at its rest offset), ``fps`` (a scalar) and ``joint_names`` (J,) strings, plus any extra arrays given
  (e.g. ``codes``, the gesture codes the motion was decoded from). Loads without ``allow_pickle``.
* ``.bvh`` (:func:`write_motion_bvh`): the motion on the given skeleton, each joint's rotation as Euler
  angles in its own channel order; position channels hold the rest offsets.
* ``.mp4`` (:func:`write_video`): the figure in a three-quarter perspective view, beside the real motion when a
  reference is given, over a scrolling timeline of the speech and the detected strokes (960 x 540, H.264,
  yuv420p; see :mod:`racer_env.video`) at the motion's frame rate, with the speech as AAC when audio is given.
  Frames are streamed into the ffmpeg binary shipped by ``imageio-ffmpeg`` (no system ffmpeg needed), never all
  held in memory.

:func:`write_outputs` writes any of the three for one generated clip.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import numpy as np

from racer_env.errors import RacerError
from racer_env.motion.bvh import Bvh, write_bvh
from racer_env.motion.rotations import rotvec_to_matrix
from racer_env.motion.skeleton import Skeleton
from racer_env.video import BACKGROUND, FRAME_SIZE, Speech, Take, render_video_frames
from racer_env.workspace import atomic_path, pause_point, temporary_path

FORMATS = ("npz", "bvh", "mp4")
NPZ_KEYS = ("rotations", "positions", "fps", "joint_names")
#: Characters of ffmpeg's stderr quoted in the error when it fails.
STDERR_TAIL = 2000


# -- shared helpers ----------------------------------------------------------------------------------------
def _check_motion(rotations: np.ndarray, skeleton: Skeleton, fps: float) -> np.ndarray:
    """(T, J, 3) finite rotation vectors as float64, with a positive fps; else a ValueError."""
    rot = np.asarray(rotations, dtype=np.float64)
    if rot.ndim != 3 or rot.shape[0] < 1 or rot.shape[1:] != (skeleton.n_joints, 3):
        raise ValueError(
            f"rotations must be (T >= 1, {skeleton.n_joints}, 3) rotation vectors, got {rot.shape}")
    if not np.isfinite(rot).all():
        raise ValueError("rotations contain NaN or infinite values")
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be positive, got {fps}")
    return rot


# -- npz ---------------------------------------------------------------------------------------------------
def write_npz(path: str | os.PathLike, rotations: np.ndarray, skeleton: Skeleton, fps: float,
              **extra: np.ndarray) -> Path:
    """Write rotations, FK positions (mm), fps, joint names and ``extra`` arrays to ``path``; returns it."""
    rot = _check_motion(rotations, skeleton, fps)
    clash = sorted(set(extra) & set(NPZ_KEYS))
    if clash:
        raise ValueError(f"extra arrays may not be named {clash}: those keys are written by write_npz")
    positions = skeleton.positions(rot)
    arrays = {"rotations": rot, "positions": positions, "fps": np.float64(fps),
              "joint_names": np.array(skeleton.names, dtype=str),
              **{k: np.asarray(v) for k, v in extra.items()}}
    with atomic_path(path, ".npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return Path(path)


# -- bvh ---------------------------------------------------------------------------------------------------
def write_motion_bvh(path: str | os.PathLike, rotations: np.ndarray, skeleton: Skeleton, fps: float) -> Path:
    """Write the motion as BVH on ``skeleton`` (root position channels at its rest offset); returns it."""
    rot = _check_motion(rotations, skeleton, fps)
    return write_bvh(path, Bvh.from_rotations(skeleton, rotvec_to_matrix(rot), fps))


# -- mp4 ---------------------------------------------------------------------------------------------------
def ffmpeg_exe() -> str:
    """The ffmpeg binary shipped in the imageio-ffmpeg wheel (or $IMAGEIO_FFMPEG_EXE when set)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM wav of (N,) or (N, channels) audio; floats are taken in [-1, 1] and clipped."""
    import soundfile as sf

    data = np.asarray(audio)
    if data.ndim not in (1, 2) or data.shape[0] == 0:
        raise ValueError(
            f"audio must be (samples,) or (samples, channels) with samples > 0, got {data.shape}")
    if data.dtype.kind == "f":
        if not np.isfinite(data).all():
            raise ValueError("audio contains NaN or infinite samples")
        data = np.clip(data, -1.0, 1.0)
    elif data.dtype != np.int16:
        raise ValueError(f"audio must be float (in [-1, 1]) or int16, got {data.dtype}")
    sf.write(str(path), data, int(sample_rate), subtype="PCM_16", format="WAV")


def _ffmpeg_command(exe: str, size: tuple[int, int], fps: float, wav: Path | None, out: Path) -> list[str]:
    """Raw rgb24 frames of (width, height) on stdin (+ a wav) -> H.264/yuv420p (+ AAC) mp4, padded to even
    dimensions (yuv420p needs them; an even size goes through unpadded: the same video without a copy per frame)."""
    pad_color = "0x" + "".join(f"{v:02X}" for v in BACKGROUND)
    cmd = [exe, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size[0]}x{size[1]}", "-r", repr(float(fps)),
           "-i", "pipe:0"]
    if wav is not None:
        cmd += ["-i", str(wav)]
    cmd += ["-map", "0:v:0"]
    if size[0] % 2 or size[1] % 2:
        cmd += ["-vf", f"pad=ceil(iw/2)*2:ceil(ih/2)*2:0:0:color={pad_color}"]
    cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-crf", "20"]
    if wav is not None:
        cmd += ["-map", "1:a:0", "-c:a", "aac", "-b:a", "128k", "-shortest"]
    return cmd + ["-movflags", "+faststart", "-f", "mp4", str(out)]


def _stderr_tail(stderr: IO[bytes]) -> str:
    stderr.seek(0)
    return stderr.read().decode("utf-8", errors="replace")[-STDERR_TAIL:].strip()


#: Frames drawn ahead of the encoder at most (960 x 540 x 3 bytes each): the drawing runs on while ffmpeg reads.
QUEUED_FRAMES = 8


def _pipe_frames(cmd: list[str], frames: Iterable[np.ndarray]) -> None:
    """Run ffmpeg, writing ``frames`` to its stdin; a RuntimeError with its stderr tail if it fails.

    The frames are drawn in this thread and written by another (:class:`_FrameWriter`), so that drawing the next
    frames and ffmpeg's reading and encoding of the last ones go on at the same time; at most QUEUED_FRAMES wait.
    """
    with tempfile.TemporaryFile() as stderr:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr)
        except OSError as err:
            raise RuntimeError(f"cannot run ffmpeg ({cmd[0]}): {err}") from None
        writer = _FrameWriter(proc.stdin)
        try:
            for frame in frames:
                if not writer.put(np.ascontiguousarray(frame)):
                    break  # ffmpeg exited early; its exit status and stderr say why
        except BaseException:
            proc.kill()
            raise
        finally:
            writer.close()
            if writer.error is not None:
                proc.kill()
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
            proc.wait()
        writer.raise_error()
        if proc.returncode != 0:
            tail = _stderr_tail(stderr) or "(no output)"
            raise RuntimeError(f"ffmpeg failed (exit status {proc.returncode}): {tail}")


class _FrameWriter:
    """A thread that writes queued frames to a pipe, in order. A write that fails (ffmpeg gone: a broken pipe)
    stops the writing; the thread then drains the queue until :meth:`close`, so that :meth:`put` never blocks for
    good."""

    _END = None

    def __init__(self, pipe: IO[bytes]) -> None:
        import queue
        import threading

        self.pipe, self.queue = pipe, queue.Queue(maxsize=QUEUED_FRAMES)
        self.failed = False
        self.error: BaseException | None = None  # a failure other than a broken pipe, raised by raise_error
        self.thread = threading.Thread(target=self._run, name="ffmpeg-frames", daemon=True)
        self.thread.start()

    def put(self, frame: np.ndarray) -> bool:
        """Queue ``frame`` (waiting while the queue is full); False once the writing has failed."""
        if self.failed:
            return False
        self.queue.put(frame)
        return True

    def close(self) -> None:
        """Let the thread write what is queued (or drop it, after a failure) and end; waits for it."""
        self.queue.put(self._END)
        self.thread.join()

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        while (frame := self.queue.get()) is not self._END:
            if self.failed:
                continue
            try:
                self.pipe.write(frame.data)
            except BrokenPipeError:
                self.failed = True
            except BaseException as err:  # (reported in the drawing thread)
                self.failed, self.error = True, err


def write_video(path: str | os.PathLike, rotations: np.ndarray, skeleton: Skeleton, fps: float,
                audio: np.ndarray | None = None, sample_rate: int | None = None, *, label: str = "generated",
                reference: Take | None = None, stressed: np.ndarray | None = None, progress: bool = True) -> Path:
    """Write the mp4 of the motion at ``fps`` with ``audio`` (if given) muxed in; returns the path.

    ``reference`` (e.g. the real motion of the same speech) is shown left of the motion, labelled; ``stressed``
    (onset times in s of the annotated stressed syllables) is marked on the speech timeline. The video is 960 x
    540, H.264 in yuv420p (:mod:`racer_env.video` draws it); the audio is AAC and the output stops at the shorter
    of the two streams. Raises RuntimeError (with ffmpeg's stderr) if ffmpeg fails, leaving no output.
    """
    from tqdm.auto import tqdm

    rot = _check_motion(rotations, skeleton, fps)
    if audio is not None and not (sample_rate and sample_rate > 0):
        raise RacerError(f"sample_rate must be a positive integer when audio is given, got {sample_rate}")
    path = Path(path)
    takes = ([] if reference is None else [reference]) + [Take(label, rot, skeleton)]
    speech = None if audio is None else Speech(_mono(audio), int(sample_rate), stressed)
    frames = tqdm(render_video_frames(takes, fps, speech), total=rot.shape[0], unit="frame",
                  desc=f"video {path.name}", disable=not progress, leave=False)
    with atomic_path(path, ".mp4") as tmp:
        if audio is None:
            _pipe_frames(_ffmpeg_command(ffmpeg_exe(), FRAME_SIZE, fps, None, tmp), frames)
        else:
            with temporary_path(path, ".wav") as wav:
                _write_wav(wav, audio, int(sample_rate))
                _pipe_frames(_ffmpeg_command(ffmpeg_exe(), FRAME_SIZE, fps, wav, tmp), frames)
    return path


def _mono(audio: np.ndarray) -> np.ndarray:
    """(N,) float audio of (N,) or (N, channels) float or int16 audio, for the timeline."""
    data = np.asarray(audio)
    scale = 1 / 32768 if data.dtype == np.int16 else 1.0
    return (data.mean(axis=1) if data.ndim == 2 else data).astype(np.float64) * scale


# -- all formats -------------------------------------------------------------------------------------------
def check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    """Normalised (lower case, no dot, no repeats) formats; a ValueError names any unknown one."""
    if isinstance(formats, str):
        formats = (formats,)
    wanted = tuple(dict.fromkeys(str(f).strip().lstrip(".").lower() for f in formats))
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise RacerError(f"unknown output format(s) {unknown}; choose from {list(FORMATS)}")
    if not wanted:
        raise RacerError(f"no output format given; choose from {list(FORMATS)}")
    return wanted


def write_outputs(out_dir: str | os.PathLike, stem: str, rotations: np.ndarray, skeleton: Skeleton,
                  fps: float, audio: np.ndarray | None = None, sample_rate: int | None = None,
                  formats: Iterable[str] = FORMATS, progress: bool = True, label: str = "generated",
                  reference: Take | None = None, stressed: np.ndarray | None = None,
                  **extra: np.ndarray) -> dict[str, Path]:
    """Write ``out_dir/stem.{npz,bvh,mp4}`` (those in ``formats``); returns {format: path}.

    All or nothing: the files appear together once every one is written, so an interrupted call never leaves an
    npz and a bvh without the mp4 that was asked for.

    ``extra`` arrays go into the npz only; ``audio`` (at ``sample_rate``), ``label``, ``reference`` and
    ``stressed`` into the mp4 only (see :func:`write_video`).
    """
    wanted = check_formats(formats)
    _check_motion(rotations, skeleton, fps)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as temporaries:  # every file is written under a temporary name first ...
        staged: dict[str, tuple[Path, Path]] = {}
        for fmt in wanted:
            target = out_dir / f"{stem}.{fmt}"
            tmp = temporaries.enter_context(temporary_path(target, f".{fmt}"))
            if fmt == "npz":
                write_npz(tmp, rotations, skeleton, fps, **extra)
            elif fmt == "bvh":
                write_motion_bvh(tmp, rotations, skeleton, fps)
            else:
                write_video(tmp, rotations, skeleton, fps, audio, sample_rate, label=label, reference=reference,
                            stressed=stressed, progress=progress)
            staged[fmt] = (tmp, target)
        pause_point("generate-publish")
        for tmp, target in staged.values():  # ... and renamed only when all of them are written
            os.replace(tmp, target)
    return {fmt: target for fmt, (_, target) in staged.items()}
