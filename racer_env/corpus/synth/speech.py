"""Speech-like audio with exact syllable annotations: the synthetic speaker's voice.

The voice is not meant to be intelligible; it is built so that the prosodic events a co-speech gesture
model can learn from (syllable onsets, stress, loudness, pitch, pauses) are present in the waveform *and*
known exactly, so that the motion rules in :mod:`racer_env.corpus.synth.gestures` can be checked on the
generated files.

Audio rules (numbered; docs/corpus.md copies them):

1. **Phrases and pauses.** Speech comes in phrases of about 2-5 s separated by pauses of 0.5-1.5 s.
   Every clip starts with a short pause (0.3-0.8 s) and ends with one (whatever time is left). Pauses
   hold silence plus a tiny Gaussian noise floor (-62 dBFS).
2. **Syllables.** A syllable is a consonant burst (band-pass filtered noise, 20-60 ms, from a small
   consonant table) followed by a voiced vowel: a harmonic series at the pitch f0 whose harmonic
   amplitudes are shaped by three formant resonances from a five-vowel table, 150-300 ms long. Both
   parts have a sharp (2-4 ms) attack and syllables are separated by 15-50 ms gaps, so that onset
   detectors (``librosa.onset.onset_detect``) fire at syllable onsets. The annotated onset is the start
   of the consonant burst.
3. **Pitch.** Each speaker has a base f0. Within a phrase the pitch falls linearly (declination of
   2-4 semitones from the first to the last syllable), each phrase has its own offset (+-2 semitones),
   each syllable a small jitter (+-0.7 semitones), and stressed syllables are 2.5-4 semitones higher.
   Within a vowel the pitch glides down slightly (3 %).
4. **Stress.** Every 2-4 syllables (first one among the first three) a syllable is stressed: it is
   louder (+6-10 dB), longer (vowel 220-300 ms instead of 150-230 ms) and higher (rule 3).
5. **Loudness.** Each phrase has its own gain (-6 to 0 dB) on top of the speaker's nominal level
   (-26 dBFS RMS for an unstressed vowel); each syllable has a +-1 dB jitter. The annotated loudness is
   the vowel's RMS level in dBFS.
6. **Speaking rate.** Burst, vowel and gap durations are divided by the speaker's rate (0.85-1.15).

Everything is drawn from the ``numpy.random.Generator`` passed in, so a seeded generator gives a
bit-identical waveform and annotation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np
from scipy.signal import butter, sosfilt

SAMPLE_RATE = 16000

#: vowel -> (formant frequencies Hz, bandwidths Hz), average adult values (Peterson & Barney style).
VOWELS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "a": ((730.0, 1090.0, 2440.0), (90.0, 110.0, 170.0)),
    "e": ((530.0, 1840.0, 2480.0), (70.0, 100.0, 160.0)),
    "i": ((270.0, 2290.0, 3010.0), (60.0, 100.0, 170.0)),
    "o": ((570.0, 840.0, 2410.0), (80.0, 90.0, 160.0)),
    "u": ((300.0, 870.0, 2240.0), (60.0, 90.0, 150.0)),
}
#: consonant -> noise pass band (Hz); loosely s, sh, t, k, p, f.
CONSONANTS: dict[str, tuple[float, float]] = {
    "s": (4000.0, 7500.0),
    "sh": (2000.0, 5000.0),
    "t": (2500.0, 6000.0),
    "k": (1200.0, 3000.0),
    "p": (400.0, 1500.0),
    "f": (1500.0, 7500.0),
}

PAUSE_RANGE_S = (0.5, 1.5)
LEAD_PAUSE_RANGE_S = (0.3, 0.8)
PHRASE_RANGE_S = (2.0, 5.0)
MIN_PHRASE_S = 1.5  # a phrase is not started when less than this (plus a short tail) is left
BURST_RANGE_S = (0.020, 0.060)
VOWEL_RANGE_S = (0.150, 0.230)
STRESSED_VOWEL_RANGE_S = (0.220, 0.300)
GAP_RANGE_S = (0.015, 0.050)
STRESS_BOOST_DB = (6.0, 10.0)
STRESS_BOOST_ST = (2.5, 4.0)
PHRASE_GAIN_DB = (-6.0, 0.0)
PHRASE_PITCH_ST = (-2.0, 2.0)
DECLINATION_ST = (2.0, 4.0)
NOISE_FLOOR_DBFS = -62.0
MAX_HARMONIC_HZ = 5000.0


@dataclass(frozen=True)
class VoiceStyle:
    """The voice part of a speaker style."""

    base_f0: float = 120.0  # Hz
    rate: float = 1.0  # speaking rate multiplier (> 1 is faster)
    formant_scale: float = 1.0  # vocal tract: > 1 shifts formants up (shorter tract)
    level_db: float = -26.0  # RMS level of an unstressed vowel at phrase gain 0, dBFS


@dataclass
class Syllable:
    phrase: int
    onset: float  # s, start of the consonant burst (the annotated syllable onset)
    vowel_onset: float  # s
    duration: float  # s, burst + vowel
    consonant: str
    vowel: str
    stressed: bool
    loudness_db: float  # vowel RMS level, dBFS
    loudness_rel_db: float  # relative to the speaker's nominal level (phrase gain + stress + jitter)
    pitch_hz: float  # nominal f0 of the vowel
    pitch_st: float  # semitones relative to the speaker's base f0

    @property
    def end(self) -> float:
        return self.onset + self.duration


@dataclass
class Phrase:
    index: int
    start: float
    end: float
    gain_db: float
    pitch_offset_st: float
    declination_st: float
    syllables: list[int] = field(default_factory=list)  # indices into SpeechTrack.syllables

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Pause:
    start: float
    end: float


@dataclass
class SpeechTrack:
    """A rendered utterance: mono float32 audio and its annotation."""

    audio: np.ndarray
    sample_rate: int
    duration_s: float
    phrases: list[Phrase]
    syllables: list[Syllable]
    pauses: list[Pause]

    def annotation(self) -> dict:
        """JSON-ready annotation (times in seconds, rounded to 0.1 ms)."""
        r = round4
        return {
            "phrases": [
                {
                    "index": p.index,
                    "start": r(p.start),
                    "end": r(p.end),
                    "gain_db": r(p.gain_db),
                    "pitch_offset_st": r(p.pitch_offset_st),
                    "declination_st": r(p.declination_st),
                    "syllables": list(p.syllables),
                }
                for p in self.phrases
            ],
            "syllables": [
                {
                    "phrase": s.phrase,
                    "onset": r(s.onset),
                    "vowel_onset": r(s.vowel_onset),
                    "duration": r(s.duration),
                    "consonant": s.consonant,
                    "vowel": s.vowel,
                    "stressed": bool(s.stressed),
                    "loudness_db": r(s.loudness_db),
                    "loudness_rel_db": r(s.loudness_rel_db),
                    "pitch_hz": r(s.pitch_hz),
                    "pitch_st": r(s.pitch_st),
                }
                for s in self.syllables
            ],
            "pauses": [{"start": r(p.start), "end": r(p.end)} for p in self.pauses],
        }


def round4(x: float) -> float:
    return round(float(x), 4)


# -- planning ---------------------------------------------------------------------------------------------
def plan_speech(
    rng: np.random.Generator, duration_s: float, voice: VoiceStyle
) -> tuple[list[Phrase], list[Syllable], list[Pause]]:
    """Lay out phrases, syllables and pauses over ``duration_s`` seconds (rules 1, 3-6)."""
    phrases: list[Phrase] = []
    syllables: list[Syllable] = []
    consonants = list(CONSONANTS)
    vowels = list(VOWELS)
    t = float(rng.uniform(*LEAD_PAUSE_RANGE_S))
    tail = 0.3
    while duration_s - t - tail >= MIN_PHRASE_S:
        target = min(float(rng.uniform(*PHRASE_RANGE_S)), duration_s - t - tail)
        p_idx = len(phrases)
        phrase = Phrase(
            index=p_idx,
            start=t,
            end=t,
            gain_db=float(rng.uniform(*PHRASE_GAIN_DB)),
            pitch_offset_st=float(rng.uniform(*PHRASE_PITCH_ST)),
            declination_st=float(rng.uniform(*DECLINATION_ST)),
        )
        next_stress = int(rng.integers(0, 3))
        k = 0
        cursor = t
        while True:
            stressed = k == next_stress
            burst = float(rng.uniform(*BURST_RANGE_S)) / voice.rate
            vowel = float(rng.uniform(*(STRESSED_VOWEL_RANGE_S if stressed else VOWEL_RANGE_S))) / voice.rate
            gap = float(rng.uniform(*GAP_RANGE_S)) / voice.rate
            cons = consonants[int(rng.integers(len(consonants)))]
            vow = vowels[int(rng.integers(len(vowels)))]
            jitter_db = float(rng.uniform(-1.0, 1.0))
            jitter_st = float(rng.uniform(-0.7, 0.7))
            boost_db = float(rng.uniform(*STRESS_BOOST_DB)) if stressed else 0.0
            boost_st = float(rng.uniform(*STRESS_BOOST_ST)) if stressed else 0.0
            onset = cursor + (gap if k > 0 else 0.0)
            if k > 0 and onset + burst + vowel > t + target:
                break
            frac = (onset - t) / max(target, 1e-6)
            pitch_st = phrase.pitch_offset_st - phrase.declination_st * frac + boost_st + jitter_st
            loud_rel = phrase.gain_db + boost_db + jitter_db
            syllables.append(
                Syllable(
                    phrase=p_idx,
                    onset=onset,
                    vowel_onset=onset + burst,
                    duration=burst + vowel,
                    consonant=cons,
                    vowel=vow,
                    stressed=stressed,
                    loudness_db=voice.level_db + loud_rel,
                    loudness_rel_db=loud_rel,
                    pitch_hz=voice.base_f0 * 2.0 ** (pitch_st / 12.0),
                    pitch_st=pitch_st,
                )
            )
            phrase.syllables.append(len(syllables) - 1)
            if stressed:
                next_stress = k + int(rng.integers(2, 5))
            cursor = onset + burst + vowel
            k += 1
        phrase.end = cursor
        phrases.append(phrase)
        t = cursor + float(rng.uniform(*PAUSE_RANGE_S))
    pauses: list[Pause] = []
    prev = 0.0
    for p in phrases:
        pauses.append(Pause(prev, p.start))
        prev = p.end
    if duration_s - prev > 1e-9:
        pauses.append(Pause(prev, duration_s))
    return phrases, syllables, pauses


# -- rendering --------------------------------------------------------------------------------------------
@cache
def _consonant_sos(name: str, sample_rate: int) -> np.ndarray:
    lo, hi = CONSONANTS[name]
    hi = min(hi, 0.45 * sample_rate)
    return butter(4, [lo, hi], btype="bandpass", fs=sample_rate, output="sos")


def _envelope(n: int, attack: int, release: int, decay_per_s: float, sample_rate: int) -> np.ndarray:
    """Sharp linear attack, exponential decay, raised-cosine release."""
    env = np.exp(-decay_per_s * np.arange(n) / sample_rate)
    a = min(attack, n)
    env[:a] *= np.linspace(0.0, 1.0, a, endpoint=False) if a > 0 else 1.0
    r = min(release, n - a)
    if r > 0:
        env[n - r :] *= 0.5 * (1.0 + np.cos(np.linspace(0.0, np.pi, r)))
    return env


def _vowel(
    rng: np.random.Generator, syl: Syllable, n: int, voice: VoiceStyle, sample_rate: int
) -> np.ndarray:
    """Harmonic series at f0 (gliding down 3 %) weighted by three formant resonances, at the target RMS."""
    f0 = syl.pitch_hz * np.linspace(1.015, 0.985, n)
    phase = 2.0 * np.pi * np.cumsum(f0) / sample_rate
    n_harm = max(1, int(MAX_HARMONIC_HZ / (syl.pitch_hz * 1.015)))
    k = np.arange(1, n_harm + 1, dtype=np.float64)
    freqs = k * syl.pitch_hz
    formants, bands = VOWELS[syl.vowel]
    gain = np.zeros_like(freqs)
    for i, (fc, bw) in enumerate(zip(formants, bands)):
        fc *= voice.formant_scale
        gain += (0.5**i) / (1.0 + ((freqs - fc) / bw) ** 2)
    gain *= k**-0.6  # glottal spectral tilt
    gain += 1e-3 / k
    phases = rng.uniform(0.0, 2.0 * np.pi, n_harm)
    wave = gain @ np.sin(np.outer(k, phase) + phases[:, None])
    rms = np.sqrt(0.5 * np.sum(gain**2))
    env = _envelope(n, int(0.004 * sample_rate), int(0.025 * sample_rate), 1.5, sample_rate)
    return (10.0 ** (syl.loudness_db / 20.0)) * wave / rms * env


def _burst(rng: np.random.Generator, syl: Syllable, n: int, sample_rate: int) -> np.ndarray:
    noise = rng.standard_normal(n + 64)
    noise = sosfilt(_consonant_sos(syl.consonant, sample_rate), noise)[64:]
    noise /= max(np.sqrt(np.mean(noise**2)), 1e-9)
    env = _envelope(n, int(0.002 * sample_rate), int(0.008 * sample_rate), 25.0, sample_rate)
    level = 10.0 ** ((syl.loudness_db - 6.0) / 20.0)
    return level * noise * env


def render_speech(
    rng: np.random.Generator,
    duration_s: float,
    phrases: list[Phrase],
    syllables: list[Syllable],
    pauses: list[Pause],
    voice: VoiceStyle,
    sample_rate: int = SAMPLE_RATE,
) -> SpeechTrack:
    """Render the planned syllables into a float32 waveform of exactly round(duration_s * sample_rate)."""
    n_total = round(duration_s * sample_rate)
    audio = np.zeros(n_total)
    for syl in syllables:
        s0 = round(syl.onset * sample_rate)
        s1 = round(syl.vowel_onset * sample_rate)
        s2 = min(round(syl.end * sample_rate), n_total)
        if s1 > s0:
            audio[s0:s1] += _burst(rng, syl, s1 - s0, sample_rate)
        if s2 > s1:
            audio[s1:s2] += _vowel(rng, syl, s2 - s1, voice, sample_rate)
    audio += (10.0 ** (NOISE_FLOOR_DBFS / 20.0)) * rng.standard_normal(n_total)
    audio = np.clip(audio, -0.99, 0.99).astype(np.float32)
    return SpeechTrack(
        audio=audio,
        sample_rate=sample_rate,
        duration_s=n_total / sample_rate,
        phrases=phrases,
        syllables=syllables,
        pauses=pauses,
    )


def synthesize_speech(
    rng: np.random.Generator, duration_s: float, voice: VoiceStyle, sample_rate: int = SAMPLE_RATE
) -> SpeechTrack:
    """Plan and render ``duration_s`` seconds of speech-like audio (rules 1-6)."""
    phrases, syllables, pauses = plan_speech(rng, duration_s, voice)
    return render_speech(rng, duration_s, phrases, syllables, pauses, voice, sample_rate)
