"""The synthetic speaker: paired speech-like audio and co-speech gesture motion with exact annotations.

Rules are listed in the docstrings of :mod:`.speech` (audio), :mod:`.gestures` (motion) and
:mod:`.speaker` (speaker styles, files on disk).
"""

from racer_env.corpus.synth.gestures import (
    CODE_STEP_S,
    GestureChoice,
    GestureStyle,
    GestureTrack,
    Stroke,
    min_jerk_path,
    synthesize_gestures,
    two_bone_ik,
)
from racer_env.corpus.synth.speaker import (
    FPS,
    SpeakerStyle,
    SynthClip,
    SynthClipInfo,
    clip_durations,
    speaker_skeleton,
    speaker_style,
    synthesize_clip,
    synthesize_sources,
    trinity_skeleton,
    write_clip,
)
from racer_env.corpus.synth.speech import (
    SAMPLE_RATE,
    Pause,
    Phrase,
    SpeechTrack,
    Syllable,
    VoiceStyle,
    synthesize_speech,
)

__all__ = [
    "CODE_STEP_S",
    "FPS",
    "SAMPLE_RATE",
    "GestureChoice",
    "GestureStyle",
    "GestureTrack",
    "Pause",
    "Phrase",
    "SpeakerStyle",
    "SpeechTrack",
    "Stroke",
    "Syllable",
    "SynthClip",
    "SynthClipInfo",
    "VoiceStyle",
    "clip_durations",
    "min_jerk_path",
    "speaker_skeleton",
    "speaker_style",
    "synthesize_clip",
    "synthesize_gestures",
    "synthesize_sources",
    "synthesize_speech",
    "trinity_skeleton",
    "two_bone_ik",
    "write_clip",
]
