"""Synthetic speakers: styles, a Trinity/GENEA-layout skeleton, clip synthesis and the files on disk.

A corpus of ``minutes`` of speech is split evenly across ``speakers``; each speaker's share is cut into
clips of ``clip_seconds`` (the last one shorter, but at least 4 s; a shorter remainder is dropped). Every
clip is three files in ``out_dir/speaker_{s:02d}/``:

* ``clip_{k:03d}.wav``: 16-bit PCM, mono, 16 kHz (rules in :mod:`racer_env.corpus.synth.speech`);
* ``clip_{k:03d}.bvh``: 60 fps, centimetres, Trinity/GENEA joint names (rules in
  :mod:`racer_env.corpus.synth.gestures`);
* ``clip_{k:03d}.json``: the annotation: phrases, syllables (onset, duration, stress, loudness, pitch),
  pauses, strokes (time, hand, amplitude), the gesture choice of every phrase and the speaker style.

Determinism: the style of speaker ``s`` comes from ``numpy.random.default_rng([seed, s])`` and clip ``k``
from ``default_rng([seed, s, k])`` (separate streams for the voice and the body), so clips are
independent of each other and of the number of clips, and the same seed gives byte-identical files.

Speaker style rule (rule 9 of the motion rules; numbered list for the README):

1. **Voice:** base pitch drawn from a low (95-135 Hz) or high (175-235 Hz) register, formant scale
   following the register, speaking rate 0.85-1.15.
2. **Gesture amplitude** 0.85-1.2 (scales every stroke) and **nod size** 2.5-5 degrees.
3. **Handedness:** right-handed (80 %) or left-handed; the preferred hand is chosen for 55-70 % of the
   gesturing phrases, both hands for 20-30 %, the other hand for the rest.
4. **Sway amplitude** 0.5-1.6 degrees.
5. **Body proportions:** overall scale 0.94-1.06, arm length scale 0.96-1.04, shoulder width scale
   0.92-1.08.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from racer_env.corpus.synth.gestures import GestureStyle, synthesize_gestures
from racer_env.corpus.synth.speech import SAMPLE_RATE, VoiceStyle, synthesize_speech
from racer_env.errors import RacerError
from racer_env.motion.bvh import Bvh, write_bvh
from racer_env.motion.skeleton import Skeleton
from racer_env.workspace import atomic_path, write_text_atomic

FPS = 60
MIN_CLIP_S = 4.0
ANNOTATION_VERSION = 1

ROT = ("Zrotation", "Xrotation", "Yrotation")
ROOT_CHANNELS = ("Xposition", "Yposition", "Zposition") + ROT


@dataclass(frozen=True)
class SpeakerStyle:
    """Everything that makes one synthetic speaker differ from another (rule 9)."""

    speaker: int
    voice: VoiceStyle
    gesture: GestureStyle
    handedness: str  # right | left
    body_scale: float
    arm_scale: float
    shoulder_scale: float

    def to_dict(self) -> dict:
        def rnd(x):
            if isinstance(x, float):
                return round(x, 4)
            if isinstance(x, (list, tuple)):
                return [rnd(v) for v in x]
            if isinstance(x, dict):
                return {k: rnd(v) for k, v in x.items()}
            return x

        return rnd(asdict(self))


def speaker_style(seed: int, speaker: int) -> SpeakerStyle:
    """Draw speaker ``speaker``'s style from ``default_rng([seed, speaker])``."""
    rng = np.random.default_rng([seed, speaker])
    high = bool(rng.random() < 0.5)
    base_f0 = float(rng.uniform(175.0, 235.0) if high else rng.uniform(95.0, 135.0))
    formant_scale = float(rng.uniform(1.08, 1.18) if high else rng.uniform(0.95, 1.05))
    rate = float(rng.uniform(0.85, 1.15))
    handedness = "right" if rng.random() < 0.8 else "left"
    preferred = float(rng.uniform(0.55, 0.70))
    both = float(rng.uniform(0.20, 0.30))
    other = max(0.0, 1.0 - preferred - both)
    weights = (preferred, other, both) if handedness == "right" else (other, preferred, both)
    gesture = GestureStyle(
        gesture_amplitude=float(rng.uniform(0.85, 1.2)),
        hand_weights=tuple(float(w) for w in weights),
        sway_deg=float(rng.uniform(0.5, 1.6)),
        nod_deg=float(rng.uniform(2.5, 5.0)),
    )
    return SpeakerStyle(
        speaker=speaker,
        voice=VoiceStyle(base_f0=base_f0, rate=rate, formant_scale=formant_scale),
        gesture=gesture,
        handedness=handedness,
        body_scale=float(rng.uniform(0.94, 1.06)),
        arm_scale=float(rng.uniform(0.96, 1.04)),
        shoulder_scale=float(rng.uniform(0.92, 1.08)),
    )


def trinity_skeleton(
    body_scale: float = 1.0, arm_scale: float = 1.0, shoulder_scale: float = 1.0
) -> Skeleton:
    """The Trinity/GENEA joint layout with human proportions in centimetres (Y up, facing +Z, T-pose).

    Upper body (16 joints, Trinity order) then static legs (6 joints). The root has six channels
    (position then ZXY rotation), every other joint three ZXY rotation channels. Right is -X.
    """
    s, a, w = body_scale, body_scale * arm_scale, body_scale * shoulder_scale
    joints: list[tuple[str, str | None, tuple[float, float, float]]] = [
        ("Hips", None, (0.0, 95.0 * s, 0.0)),
        ("Spine", "Hips", (0.0, 8.0 * s, 0.0)),
        ("Spine1", "Spine", (0.0, 9.0 * s, 0.0)),
        ("Spine2", "Spine1", (0.0, 9.0 * s, 0.0)),
        ("Spine3", "Spine2", (0.0, 9.0 * s, 0.0)),
        ("Neck", "Spine3", (0.0, 14.0 * s, -1.0 * s)),
        ("Neck1", "Neck", (0.0, 5.0 * s, 0.5 * s)),
        ("Head", "Neck1", (0.0, 6.0 * s, 1.0 * s)),
    ]
    for side, sx in (("Right", -1.0), ("Left", 1.0)):
        joints += [
            (f"{side}Shoulder", "Spine3", (sx * 3.0 * w, 10.0 * s, 0.0)),
            (f"{side}Arm", f"{side}Shoulder", (sx * 14.0 * w, 0.0, 0.0)),
            (f"{side}ForeArm", f"{side}Arm", (sx * 30.0 * a, 0.0, 0.0)),
            (f"{side}Hand", f"{side}ForeArm", (sx * 27.0 * a, 0.0, 0.0)),
        ]
    for side, sx in (("Right", -1.0), ("Left", 1.0)):
        joints += [
            (f"{side}UpLeg", "Hips", (sx * 9.0 * s, -5.0 * s, 0.0)),
            (f"{side}Leg", f"{side}UpLeg", (0.0, -43.0 * s, 0.0)),
            (f"{side}Foot", f"{side}Leg", (0.0, -42.0 * s, 0.0)),
        ]
    names = tuple(n for n, _, _ in joints)
    parents = tuple(-1 if p is None else names.index(p) for _, p, _ in joints)
    offsets = np.array([o for _, _, o in joints])
    channels = tuple(ROOT_CHANNELS if p is None else ROT for _, p, _ in joints)
    end_sites = {
        names.index("Head"): np.array([0.0, 16.0 * s, 2.0 * s]),
        names.index("RightHand"): np.array([-18.0 * a, 0.0, 0.0]),
        names.index("LeftHand"): np.array([18.0 * a, 0.0, 0.0]),
        names.index("RightFoot"): np.array([0.0, -5.0 * s, 15.0 * s]),
        names.index("LeftFoot"): np.array([0.0, -5.0 * s, 15.0 * s]),
    }
    return Skeleton(
        names=names, parents=parents, offsets=offsets, channels=channels, end_sites=end_sites, unit_mm=10.0
    )


def speaker_skeleton(style: SpeakerStyle) -> Skeleton:
    return trinity_skeleton(style.body_scale, style.arm_scale, style.shoulder_scale)


@dataclass
class SynthClip:
    """One synthesised clip in memory."""

    audio: np.ndarray  # float32 mono at SAMPLE_RATE
    bvh: Bvh
    annotation: dict


def synthesize_clip(
    seed: int,
    speaker: int,
    clip: int,
    duration_s: float,
    style: SpeakerStyle | None = None,
    arms: bool = True,
    nods: bool = True,
    gesture_draw: int = 0,
) -> SynthClip:
    """Synthesise clip ``clip`` of speaker ``speaker``: audio, motion and annotation, all from the seed.

    The defaults give the corpus clip. The ablations keep the speech and every other draw: ``arms=False``
    leaves the hands at rest, ``nods=False`` drops the head nods, ``gesture_draw`` > 0 draws the
    per-phrase gesture choices (rule 8) from stream ``default_rng([seed, speaker, clip, 1, gesture_draw])``
    instead of the body stream: another valid gesture for the same speech. A non-default clip's annotation
    records them under ``variant``.
    """
    if gesture_draw < 0:
        raise RacerError(f"gesture_draw must be >= 0 (0 = the corpus draw), got {gesture_draw}")
    style = style or speaker_style(seed, speaker)
    voice_rng = np.random.default_rng([seed, speaker, clip, 0])
    body_rng = np.random.default_rng([seed, speaker, clip, 1])
    choice_rng = np.random.default_rng([seed, speaker, clip, 1, gesture_draw]) if gesture_draw else None
    n_frames = round(duration_s * FPS)
    duration_s = n_frames / FPS  # audio and motion have exactly the same length
    speech = synthesize_speech(voice_rng, duration_s, style.voice, SAMPLE_RATE)
    skeleton = speaker_skeleton(style)
    track = synthesize_gestures(
        body_rng, skeleton, speech.phrases, speech.syllables, style.gesture, n_frames, FPS,
        arms=arms, nods=nods, choice_rng=choice_rng,
    )
    bvh = Bvh.from_rotations(skeleton, track.local_rotations, FPS)
    annotation = {
        "version": ANNOTATION_VERSION,
        "speaker": speaker,
        "clip": clip,
        "seed": seed,
        "duration_s": round(duration_s, 6),
        "sample_rate": SAMPLE_RATE,
        "fps": FPS,
        "code_step_s": 0.4,
        "style": style.to_dict(),
        **speech.annotation(),
        **track.annotation(),
    }
    if not (arms and nods and gesture_draw == 0):
        annotation["variant"] = {"arms": arms, "nods": nods, "gesture_draw": gesture_draw}
    return SynthClip(audio=speech.audio, bvh=bvh, annotation=annotation)


@dataclass(frozen=True)
class SynthClipInfo:
    """Where one synthesised clip was written."""

    speaker: int
    name: str  # clip_000
    wav: Path
    bvh: Path
    json: Path
    duration_s: float


def clip_durations(total_s: float, clip_seconds: float) -> list[float]:
    """Split ``total_s`` into clips of ``clip_seconds``; a last shorter clip only if it is >= 4 s."""
    if clip_seconds < MIN_CLIP_S:
        raise RacerError(f"clip_seconds must be at least {MIN_CLIP_S} s, got {clip_seconds}")
    n_full = int(total_s // clip_seconds + 1e-9)
    out = [float(clip_seconds)] * n_full
    rest = total_s - n_full * clip_seconds
    if rest >= MIN_CLIP_S - 1e-9:
        out.append(float(rest))
    if not out:
        out.append(MIN_CLIP_S)  # a speaker's share below 4 s still gets one minimal clip
    return out


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    import soundfile as sf

    with atomic_path(path) as tmp:
        sf.write(str(tmp), audio, sample_rate, subtype="PCM_16", format="WAV")


def write_clip(clip: SynthClip, speaker_dir: Path, name: str) -> SynthClipInfo:
    """Write the wav, bvh and json of ``clip`` atomically under ``speaker_dir``."""
    speaker_dir.mkdir(parents=True, exist_ok=True)
    wav, bvh, js = (speaker_dir / f"{name}{ext}" for ext in (".wav", ".bvh", ".json"))
    _write_wav(wav, clip.audio, SAMPLE_RATE)
    write_bvh(bvh, clip.bvh)
    write_text_atomic(js, json.dumps(clip.annotation, indent=1, sort_keys=True) + "\n")
    return SynthClipInfo(
        speaker=int(clip.annotation["speaker"]),
        name=name,
        wav=wav,
        bvh=bvh,
        json=js,
        duration_s=float(clip.annotation["duration_s"]),
    )


def synthesize_sources(
    out_dir: Path, minutes: float, speakers: int, seed: int, clip_seconds: float = 30.0, progress: bool = True
) -> list[SynthClipInfo]:
    """Synthesise ``minutes`` of paired speech and motion for ``speakers`` speakers into ``out_dir``.

    Returns one :class:`SynthClipInfo` per clip, speakers in order, clips in order.
    """
    from tqdm import tqdm

    if minutes <= 0 or speakers < 1:
        raise RacerError(f"need minutes > 0 and speakers >= 1, got {minutes} and {speakers}")
    if seed < 0:
        raise RacerError(f"seed must be non-negative, got {seed}")
    out_dir = Path(out_dir)
    per_speaker = minutes * 60.0 / speakers
    durations = clip_durations(per_speaker, clip_seconds)
    infos: list[SynthClipInfo] = []
    with tqdm(
        total=speakers * len(durations), desc="synthesising clips", unit="clip", disable=not progress
    ) as bar:
        for s in range(speakers):
            style = speaker_style(seed, s)
            speaker_dir = out_dir / f"speaker_{s:02d}"
            for k, dur in enumerate(durations):
                clip = synthesize_clip(seed, s, k, dur, style)
                infos.append(write_clip(clip, speaker_dir, f"clip_{k:03d}"))
                bar.update(1)
    return infos
