"""``racer evaluate files``: the metrics of any wav + BVH take, on tiny synthetic takes and a real CMU file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from racer_agents.cli import main
from racer_env.corpus.synth import synthesize_clip, write_clip
from racer_env.corpus.synth.speaker import SAMPLE_RATE
from racer_env.evaluate_files import evaluate_files

DATA = Path(__file__).parent / "data"
CMU = DATA / "cmu_131_01_max.bvh"  # 994 frames at 120 fps (8.28 s), the 3dsMax naming scheme


@pytest.fixture(scope="module")
def takes(tmp_path_factory) -> dict[str, Path]:
    """An 8.5-s synthetic take, another gesture draw for the same speech, its speech cut to the CMU file's
    length (8.28 s) and to 5 s."""
    root = tmp_path_factory.mktemp("takes")
    clip = synthesize_clip(5, 0, 0, 8.5)
    real = write_clip(clip, root / "real", "clip")
    other = write_clip(synthesize_clip(5, 0, 0, 8.5, gesture_draw=1), root / "other", "clip")
    cmu_wav, short_wav = root / "cmu.wav", root / "short.wav"
    sf.write(cmu_wav, clip.audio[:int(994 / 120 * SAMPLE_RATE)], SAMPLE_RATE)
    sf.write(short_wav, clip.audio[:5 * SAMPLE_RATE], SAMPLE_RATE)
    return {"wav": real.wav, "bvh": real.bvh, "other": other.bvh, "cmu_wav": cmu_wav, "short_wav": short_wav,
            "root": root}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["evaluate", "files", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_motion_only_metrics_of_a_synthetic_take(takes, capsys):
    code, out, _ = run(capsys, "--audio", str(takes["wav"]), "--motion", str(takes["bvh"]), "--json")
    assert code == 0
    result = json.loads(out)
    m = result["metrics"]
    assert result["frames"] == 168 and result["params"]["fps"] == 20
    assert m["sync"] > 0.3  # the built-in speaker gestures while it speaks
    assert 0 <= m["pmb_pct"] <= 100 and 0 < m["beat_align"] <= 1
    assert m["jerk_mm_s3"] > 0 and m["l1_div_mm"] > 0
    assert "maje_mm" not in m


def test_motion_against_other_speech_has_lower_sync(takes):
    own = evaluate_files(takes["wav"], takes["bvh"])["metrics"]["sync"]
    other_wav = write_clip(synthesize_clip(6, 1, 3, 8.5), takes["root"] / "speech", "clip").wav
    assert evaluate_files(other_wav, takes["bvh"])["metrics"]["sync"] < 0.5 * own


def test_reference_metrics(takes, capsys):
    same = evaluate_files(takes["wav"], takes["bvh"], reference=takes["bvh"])["metrics"]
    assert same["maje_mm"] == pytest.approx(0.0, abs=1e-9) and same["mad_mm_s2"] == pytest.approx(0.0, abs=1e-9)
    assert same["fgd"] == pytest.approx(0.0, abs=1e-6) and same["fgd_unavailable"] is None
    code, out, _ = run(capsys, "--audio", str(takes["wav"]), "--motion", str(takes["other"]),
                       "--reference", str(takes["bvh"]))
    assert code == 0 and "maje_mm" in out and "fgd" in out
    other = evaluate_files(takes["wav"], takes["other"], reference=takes["bvh"])["metrics"]
    assert other["maje_mm"] > 1.0 and other["fgd"] > 0


def test_a_cmu_take_gets_motion_metrics_but_no_fgd(takes):
    result = evaluate_files(takes["cmu_wav"], CMU)
    assert result["joints"][-1] == "RightWrist" or "LeftWrist" in result["joints"]
    assert np.isfinite(result["metrics"]["sync"]) and result["metrics"]["l1_div_mm"] > 0
    cmu_ref = evaluate_files(takes["cmu_wav"], CMU, reference=CMU)["metrics"]
    assert cmu_ref["maje_mm"] == pytest.approx(0.0, abs=1e-9)
    assert cmu_ref["fgd"] is None and "trained on joints" in cmu_ref["fgd_unavailable"]


def test_reference_with_another_skeleton_is_a_clear_error(takes, capsys):
    code, out, err = run(capsys, "--audio", str(takes["cmu_wav"]), "--motion", str(CMU), "--reference",
                         str(takes["bvh"]))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "different upper-body joints" in err and str(CMU) in err and str(takes["bvh"]) in err


@pytest.mark.parametrize("case", ["missing_motion", "missing_audio", "not_bvh", "length", "nan"])
def test_bad_input_is_one_line_naming_the_file(takes, capsys, tmp_path, case):
    wav, bvh = takes["wav"], takes["bvh"]
    if case == "missing_motion":
        bvh = tmp_path / "absent.bvh"
    elif case == "missing_audio":
        wav = tmp_path / "absent.wav"
    elif case == "not_bvh":
        bvh = tmp_path / "broken.bvh"
        bvh.write_text("this is not a motion file\n")
    elif case == "length":
        wav = takes["short_wav"]  # 5 s of speech against 8.5 s of motion
    else:
        bvh = tmp_path / "nan.bvh"
        lines = takes["bvh"].read_text().splitlines()
        last = lines[-1].split()
        lines[-1] = " ".join(["nan"] + last[1:])
        bvh.write_text("\n".join(lines) + "\n")
    code, out, err = run(capsys, "--audio", str(wav), "--motion", str(bvh))
    assert code == 2 and out == ""
    assert err.startswith("racer: error: ") and err.count("\n") == 1
    assert str(wav if case == "missing_audio" else bvh) in err
