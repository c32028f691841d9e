"""Speech in, gestures out: ``racer generate [W] --audio speech.wav`` and :func:`generate`.

The agent rolls out the gesture MDP on the recording's speech features, greedily and autoregressively (GPT agents
with a key/value cache and a sliding context), from the rest code a_0; the codes are decoded by the workspace's
VQ-VAE in overlapping chunks (decode, Gaussian smoothing, de-normalise). Memory is bounded independently of the
recording's length: the agent sees a bounded context and the decoder a bounded chunk.

Documented behaviour for edge cases:
  * silence (peak below 1e-4) -> the rest pose throughout (every code is the rest code);
  * audio shorter than one code step (0.4 s) -> an error;
  * any sample rate, stereo or mono -> resampled to the corpus's rate and averaged to mono;
  * a trailing part shorter than one code step is dropped (motion covers whole code steps).

:mod:`racer_agents.stream` runs the same pipeline on audio that arrives in chunks (``GestureStream``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import librosa
import numpy as np
import torch

from racer_agents.agent import Agent, load_agent
from racer_agents.pretrained import pretrained_workspace
from racer_env.audio.features import SILENCE_PEAK, AudioError, AudioFeatureConfig, audio_features, load_audio
from racer_env.corpus.store import Corpus
from racer_env.envs.episode_data import ClipData, observation_audio
from racer_env.envs.episode_data import rollout_codes as episode_rollout
from racer_env.errors import RacerError
from racer_env.motion.upper_body import read_upper_body
from racer_env.video import Take
from racer_env.vqvae.model import VQVAE
from racer_env.vqvae.tokenize import decode_codes, decoder_reach, load_vqvae
from racer_env.workspace import Workspace, check_output_directory, remove_stale_temporaries, stage_lock

DECODE_CHUNK = 256  # codes decoded at once


@dataclass
class GenerationResult:
    codes: np.ndarray  # (L,) one code per 0.4 s
    rotations: np.ndarray  # (8L, J, 3) rotation vectors at fps
    fps: float
    joint_names: list[str]
    files: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0  # compute time of codes + motion (files excluded)
    silent: bool = False

    @property
    def duration_s(self) -> float:
        return len(self.rotations) / self.fps

    @property
    def real_time_factor(self) -> float:
        """Seconds of motion per second of compute."""
        return self.duration_s / max(self.seconds, 1e-9)


def prepare_audio(audio: str | Path | np.ndarray, sample_rate: int | None, target_rate: int) -> np.ndarray:
    """A path, or an array (n,), (n, channels) or (channels, n) at ``sample_rate`` -> mono float32 at
    ``target_rate``. Silent audio is returned as is (the caller decides); empty or non-finite audio is an error."""
    if isinstance(audio, (str, Path)):
        if sample_rate is not None:
            raise RacerError("sample_rate is only for arrays; a file carries its own rate")
        try:
            return load_audio(audio, target_rate)
        except AudioError as err:
            if "silent" not in str(err):
                raise
            return _load_silent(audio, target_rate)
    if sample_rate is None or sample_rate <= 0:
        raise RacerError(f"an audio array needs its sample_rate (a positive integer), got {sample_rate!r}")
    y = np.asarray(audio, dtype=np.float32)
    if y.ndim == 2:
        y = librosa.to_mono(y.T if y.shape[0] > y.shape[1] else y)  # channels are the shorter axis
    if y.ndim != 1 or y.size == 0:
        raise AudioError(f"audio array must be (samples,) or (samples, channels) and non-empty, got {y.shape}")
    if not np.isfinite(y).all():
        raise AudioError("audio array contains NaN or infinite samples")
    return librosa.resample(y, orig_sr=sample_rate, target_sr=target_rate) if sample_rate != target_rate else y


def _load_silent(path: str | Path, target_rate: int) -> np.ndarray:
    return librosa.load(path, sr=target_rate, mono=True)[0]


def rest_code(vqvae: VQVAE, frames_per_code: int = 8) -> int:
    """The code of the corpus's mean pose (normalised motion = 0): a_0 at inference and the code of silence."""
    device = next(vqvae.parameters()).device
    zeros = torch.zeros(1, vqvae.cfg.in_channels, frames_per_code, device=device)
    return int(vqvae.encode(zeros)[0, 0])


def code_steps(n_samples: int, rate: int, corpus: Corpus, source: str | Path = "audio array") -> int:
    """Whole code steps in ``n_samples`` of audio at ``rate``; an AudioError naming ``source`` below one step."""
    n_codes = int(n_samples * corpus.fps // rate) // corpus.frames_per_code
    if n_codes < 1:
        step = corpus.frames_per_code / corpus.fps
        raise AudioError(f"{source}: audio of {n_samples / rate:.2f} s is shorter than one code step ({step:.2f} s); "
                         f"gestures need at least {step:.2f} s of speech")
    return n_codes


def speech_clip(y: np.ndarray, corpus: Corpus) -> ClipData:
    """The recording as the environment's clip data (codes unknown), whole code steps only."""
    cfg = AudioFeatureConfig(**corpus.manifest["audio_features"])
    fpc = corpus.frames_per_code
    n_codes = code_steps(len(y), cfg.sample_rate, corpus)
    feats = audio_features(y, cfg)[:n_codes * fpc]
    return ClipData("generated", np.zeros(n_codes, dtype=np.int64), feats, observation_audio(feats, corpus.stats, fpc))


def rollout_codes(agent: Agent, clip: ClipData, first_code: int, progress: bool = True) -> np.ndarray:
    """Greedy codes for every code step of ``clip`` (a_0 = ``first_code``), in the agent's own observation shape."""
    agent.reset()
    rest = episode_rollout(agent.act, clip, 0, clip.n_codes - 1, first_code, agent.obs_cfg, agent.n_codes, progress,
                           agent=agent.name)
    return np.concatenate([[first_code], rest]).astype(np.int64)


def decode_long(vqvae: VQVAE, codes: np.ndarray, corpus: Corpus) -> np.ndarray:
    """(L,) codes -> (8L, J, 3) rotations, decoded in overlapping chunks so memory does not grow with L: each chunk
    with the decoder's whole reach of codes on either side (:func:`~racer_env.vqvae.tokenize.decoder_reach`, 25
    codes), so that the chunks give what one decode of every code would, up to float rounding."""
    fpc = corpus.frames_per_code
    margin = decoder_reach(vqvae)
    out = []
    for a in range(0, len(codes), DECODE_CHUNK):
        b = min(a + DECODE_CHUNK, len(codes))
        lo, hi = max(a - margin, 0), min(b + margin, len(codes))
        rot = decode_codes(vqvae, codes[lo:hi], corpus.stats)  # (8 (hi-lo), J, 3)
        out.append(rot[(a - lo) * fpc:(b - lo) * fpc])
    return np.concatenate(out)


def reference_take(path: str | Path, fps: float, unit_mm: float = 10.0) -> Take:
    """A reference take for the video from a BVH file: its upper body at ``fps``, labelled with the file name."""
    path = Path(path)
    if not path.is_file():
        raise RacerError(f"{path}: no such BVH file (--reference expects a .bvh take)")
    skeleton, rotations, _ = read_upper_body(path, fps, unit_mm)
    return Take(f"reference: {path.name}", rotations, skeleton)


def generate(workspace: str | Workspace | None, audio: str | Path | np.ndarray, sample_rate: int | None = None,
             agent: str | Agent | None = None, out_dir: str | Path | None = None,
             formats: tuple[str, ...] = ("npz", "bvh", "mp4"), device: str = "cpu",
             progress: bool = True, reference: str | Path | Take | None = None,
             stressed: np.ndarray | None = None) -> GenerationResult:
    """Gestures for a speech recording (a path, or an array with its sample rate); writes ``formats`` to
    ``out_dir`` (default ``W/generated/<name>/``) unless ``formats`` is empty.

    ``workspace=None`` uses the pretrained demo weights shipped with racer (outputs default to
    ``./generated/<name>/``). The video shows ``reference`` beside the generated motion: a BVH take (any
    skeleton with a head and two hands, read as corpus import reads it) or a :class:`~racer_env.video.Take`;
    ``stressed`` (onset times in s) marks stressed syllables on its speech timeline."""
    from racer_env.export import check_formats, write_outputs

    ws = pretrained_workspace() if workspace is None else Workspace.of(workspace)
    corpus = Corpus.load(ws)
    out = None
    if formats:  # where and what to write is checked before any work
        formats = check_formats(formats)
        stem = Path(audio).stem if isinstance(audio, (str, Path)) else "generated"
        default_root = Path("generated") if workspace is None else ws.root / "generated"
        out = check_output_directory(Path(out_dir) if out_dir is not None else default_root / stem)
    if reference is not None and "mp4" not in formats:
        raise RacerError("a reference is drawn in the video only; ask for the mp4 format too")
    if isinstance(reference, (str, Path)):  # read (and checked) before any work, in the corpus's BVH unit
        reference = reference_take(reference, corpus.fps, corpus.manifest["import_config"].get("unit_mm", 10.0))
    rate = int(corpus.manifest["audio_features"]["sample_rate"])
    y = prepare_audio(audio, sample_rate, rate)
    n_codes = code_steps(len(y), rate, corpus, audio if isinstance(audio, (str, Path)) else "audio array")
    vqvae, _, _ = load_vqvae(ws, corpus, device)
    the_agent = agent if isinstance(agent, Agent) else load_agent(ws, agent, device)
    start = time.perf_counter()
    silent = bool(np.abs(y).max(initial=0.0) < SILENCE_PEAK)
    rest = rest_code(vqvae, corpus.frames_per_code)
    if silent:
        codes = np.full(int(n_codes), rest, dtype=np.int64)
    else:
        codes = rollout_codes(the_agent, speech_clip(y, corpus), rest, progress)
    rotations = decode_long(vqvae, codes, corpus)
    result = GenerationResult(codes, rotations, corpus.fps, corpus.joint_names, seconds=time.perf_counter() - start,
                              silent=silent)
    if out is not None:
        with stage_lock(out, "generate"):  # (creates ``out``, and removes it again if nothing was written)
            remove_stale_temporaries(out)  # of generate runs that were killed
            result.files = write_outputs(out, stem, rotations, corpus.skeleton, corpus.fps, audio=y,
                                         sample_rate=rate, formats=formats, progress=progress, codes=codes,
                                         agent=np.array(the_agent.name), label=f"generated: {the_agent.name}",
                                         reference=reference, stressed=stressed)
    return result
