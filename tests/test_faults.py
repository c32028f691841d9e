"""Faults a careless or hostile user meets: concurrent runs, Ctrl-C and kill -9, bad destinations, bad files.

Every case ends in exit status 2 (a user's mistake) or 130 (Ctrl-C), one line on stderr naming the culprit and no
traceback, and leaves no partial or lost output. Interruptions are delivered to real ``racer`` subprocesses at
points the test controls: either a file the run writes appears, or the run waits at a named point before it
publishes its output (``RACER_PAUSE_AT``, see :func:`racer_env.workspace.pause_point`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from racer_agents.cli import main
from racer_env.workspace import WorkspaceBusy, remove_stale_temporaries, stage_lock
from tests.conftest import JFK_WAV, copy_workspace

ROOT = Path(__file__).resolve().parents[1]


# -- helpers ------------------------------------------------------------------------------------------------
_RUNS: list[subprocess.Popen] = []  # every subprocess a test starts; killed after the test whatever happened


@pytest.fixture(autouse=True)
def _no_run_outlives_its_test():
    yield
    while _RUNS:
        proc = _RUNS.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def racer(*args: str, pause_at: str | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """``racer ARGS`` as a subprocess of this interpreter (stdout and stderr captured as text)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("RACER_PAUSE_AT", None)
    if pause_at:
        env["RACER_PAUSE_AT"] = pause_at
    proc = subprocess.Popen([sys.executable, "-m", "racer_agents", *map(str, args)], env=env, cwd=cwd or ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _RUNS.append(proc)
    return proc


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def wait_until(condition, proc: subprocess.Popen, timeout: float = 240) -> None:
    """Poll ``condition`` until it holds; fail with the run's output if the run ends first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (rc {proc.returncode}) before the awaited point:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the awaited point never came")
        time.sleep(0.02)


def wait_paused(proc: subprocess.Popen, point: str, timeout: float = 240) -> None:
    """Read stderr until the run says it waits at ``point``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if f"paused at {point}" in line:
            return
        if not line and proc.poll() is not None:
            pytest.fail(f"the run ended (rc {proc.returncode}) before {point}:\n{proc.stdout.read()}")
    proc.kill()
    pytest.fail(f"the run never reached {point}")


def one_line(err: str) -> str:
    """The single stderr line of a refused or interrupted run (no traceback, no library noise)."""
    lines = [ln for ln in err.splitlines() if ln.strip() and "paused at" not in ln]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    return lines[0]


def temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp" in p.name or ".old-" in p.name) \
        if directory.is_dir() else []


def dead_pid() -> int:
    """The pid of a process that has exited (the owner of a killed run's leftovers)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def make_wav(path: Path, seconds: float, value: float | None = None, subtype: str = "FLOAT") -> Path:
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)
    if value is not None:
        y[len(y) // 2] = value
    sf.write(path, y, 16000, subtype=subtype)
    return path


# -- concurrency ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["train", "vqvae"], ["dataset", "build"]])
def test_a_second_run_of_a_stage_is_refused_naming_the_holder(trained_workspace, tmp_path, command):
    ws = copy_workspace(trained_workspace, tmp_path / "W")
    before = sorted(p.name for p in ws.rglob("*"))
    stage = "vqvae" if command[0] == "train" else "dataset"
    script = ("import sys, time\nfrom racer_env.workspace import stage_lock\n"
              f"with stage_lock(sys.argv[1], {stage!r}):\n    print('held', flush=True)\n    time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", script, str(ws)],
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    _RUNS.append(holder)
    try:
        assert holder.stdout.readline().strip() == "held"
        rc, _, err = finish(racer(*command, ws, "--preset", "tiny", "--quiet") if command[0] == "train"
                            else racer(*command, ws, "--quiet"))
        line = one_line(err)
        assert rc == 2 and f"pid {holder.pid}" in line and "another racer process is running" in line, err
        assert sorted(p.name for p in ws.rglob("*") if ".racer-" not in p.name) == before  # nothing touched
        with pytest.raises(WorkspaceBusy, match=f"pid {holder.pid}"), stage_lock(ws, stage):
            pass
    finally:
        holder.kill()  # kill -9: the lock dies with its process
        holder.wait()
    with stage_lock(ws, stage):
        pass


def test_two_real_trainings_on_one_workspace_then_ctrl_c(tiny_workspace, tmp_path):
    ws = copy_workspace(tiny_workspace, tmp_path / "W")
    args = ["train", "vqvae", ws, "--preset", "tiny", "--steps", "100000", "--checkpoint-every", "2", "--quiet"]
    first = racer(*args)
    wait_until(lambda: (ws / "vqvae" / "checkpoint.pt").is_file(), first)
    rc, _, err = finish(racer(*args))
    assert rc == 2 and f"pid {first.pid}" in one_line(err) and "python -m racer_agents train vqvae" in err
    first.send_signal(signal.SIGINT)
    rc, _, err = finish(first)
    line = one_line(err)
    assert rc == 130 and line.startswith("racer: interrupted;") and "--resume` continues" in line, err
    assert temporaries(ws / "vqvae") == [] and not (ws / "vqvae" / "model.pt").exists()
    assert not list(ws.glob(".racer-*.lock"))  # the lock is released with the run


def test_ctrl_c_in_a_forced_agent_training_keeps_the_previous_model_and_log(agent_workspace, tmp_path):
    """Issue 29: Ctrl-C in `racer train agent --force` exited 1 with two tracebacks (the CLI read args.name), after
    the old log had been deleted. Now every trainer shares one interrupt path: exit 130, one line, the previous
    model and its log untouched until the new model is complete, and nothing of a run stopped before its first
    checkpoint (its directory is removed if the run created it)."""
    ws = copy_workspace(agent_workspace, tmp_path / "W")
    agent = ws / "agents" / "racer-cql"
    before = {p: p.read_bytes() for p in (agent / "model.pt", agent / "metrics.jsonl")}
    base = ["train", "agent", ws, "--algo", "racer-cql", "--preset", "tiny", "--dataset", "racer/tiny/augmented-v0",
            "--steps", "100000", "--valid-every", "0", "--quiet"]
    for every, log in (("100000", "racer-cql/metrics.running.jsonl"), ("1", "racer-cql/checkpoint.pt")):
        run = racer(*base, "--checkpoint-every", every, "--force")
        wait_until(lambda: (ws / "agents" / log).is_file() and (ws / "agents" / log).stat().st_size > 0, run)
        run.send_signal(signal.SIGINT)
        rc, _, err = finish(run)
        line = one_line(err)
        assert rc == 130 and line.startswith("racer: interrupted"), err
        assert {p: p.read_bytes() for p in before} == before  # the previous model and log, as they were
        if every == "1":
            assert "--resume` continues from the last checkpoint" in line, line
        else:
            assert "before the first checkpoint; nothing of this run was kept" in line, line
            assert not (agent / "metrics.running.jsonl").exists() and temporaries(agent) == []
    run = racer(*base[:-1], "--name", "fresh", "--checkpoint-every", "100000", "--quiet")
    wait_until(lambda: (ws / "agents" / "fresh" / "metrics.running.jsonl").is_file(), run)
    run.send_signal(signal.SIGINT)
    rc, _, err = finish(run)
    assert rc == 130 and "nothing of this run was kept" in one_line(err), err
    assert not (ws / "agents" / "fresh").exists()  # not a folder holding only a log


def test_the_next_run_removes_the_temporaries_of_killed_runs(trained_workspace, tmp_path):
    from racer_env.vqvae.train import train_config_for, train_vqvae

    ws = copy_workspace(trained_workspace, tmp_path / "W")
    pid = dead_pid()
    stale = [ws / "vqvae" / f".checkpoint.pt.tmp{pid}", ws / "vqvae" / f".model.pt.tmp{pid}-x"]
    live = ws / "vqvae" / f".model.pt.tmp{os.getpid()}"  # a live process's temporary is kept
    for p in [*stale, live]:
        p.write_bytes(b"partial")
    (ws / f".corpus.tmp{pid}-abc").mkdir()
    assert train_vqvae(ws, train_config_for("tiny"), progress=False)["skipped"]  # removed even when skipped
    assert not any(p.exists() for p in stale) and live.exists()
    assert [p.name for p in remove_stale_temporaries(ws)] == [f".corpus.tmp{pid}-abc"]


# -- symbolic links in an import source ----------------------------------------------------------------------
def test_a_link_back_into_the_import_source_is_refused(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    make_wav(src / "a.wav", 1.0, subtype="PCM_16")
    (src / "a.bvh").write_text("HIERARCHY\n")
    (src / "loop").symlink_to(".", target_is_directory=True)
    assert main(["corpus", "import", str(src), str(tmp_path / "W"), "--quiet"]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"{src / 'loop'}: a link to {src}" in line and "imported twice" not in line
    assert not (tmp_path / "W").exists()


def test_a_corpus_with_a_file_gone_is_imported_again(tmp_path, capsys):
    """Sweep of issue 29 (stages whose outputs are checked as a set): `corpus import` said "up to date" while a clip
    file listed in the manifest was gone."""
    src = tmp_path / "src"
    src.mkdir()
    make_wav(src / "a.wav", 4.4, subtype="PCM_16")
    (src / "a.bvh").write_text((ROOT / "tests" / "data" / "cmu_12_01_walk.bvh").read_text())
    argv = ["corpus", "import", str(src), str(tmp_path / "W"), "--quiet", "--workers", "1"]
    assert main(argv) == 0
    clip = next((tmp_path / "W" / "corpus").rglob("*.npz"))
    clip = clip if clip.name != "stats.npz" else next(p for p in (tmp_path / "W" / "corpus").rglob("*.npz")
                                                      if p.name != "stats.npz")
    data = clip.read_bytes()
    capsys.readouterr()
    clip.unlink()
    assert main(argv) == 0
    assert "up to date" not in capsys.readouterr().out and clip.read_bytes() == data


# -- bad audio, motion and destinations: one line, exit 2, nothing written -----------------------------------
@pytest.mark.parametrize("value", [np.nan, np.inf, 1e6])
def test_non_finite_or_absurd_wavs_are_refused_by_import_and_generate(agent_workspace, tmp_path, capsys, value):
    src = tmp_path / "src"
    src.mkdir()
    wav = make_wav(src / "a.wav", 4.4, value)
    (src / "a.bvh").write_text((ROOT / "tests" / "data" / "cmu_12_01_walk.bvh").read_text())
    assert main(["corpus", "import", str(src), str(tmp_path / "W"), "--quiet", "--workers", "1"]) == 2
    line = one_line(capsys.readouterr().err)
    assert str(wav) in line and ("NaN" in line or "peak" in line), line
    out = tmp_path / "out"
    assert main(["generate", str(agent_workspace), "--audio", str(wav), "--out", str(out), "--quiet"]) == 2
    line = one_line(capsys.readouterr().err)
    assert str(wav) in line and ("NaN" in line or "peak" in line)
    assert not (tmp_path / "W").exists() and not out.exists()


def test_bad_audio_paths_name_the_file(agent_workspace, tmp_path, capsys):
    garbage = tmp_path / "x.mp3"
    garbage.write_bytes(np.random.default_rng(0).bytes(4000))
    short = make_wav(tmp_path / "short.wav", 0.1)
    cases = {tmp_path: "is a directory", Path("/dev/null"): "not a regular file", garbage: "cannot decode audio",
             short: "shorter than one code step", tmp_path / "absent.wav": "no such audio file"}
    for audio, message in cases.items():
        assert main(["generate", str(agent_workspace), "--audio", str(audio), "--out", str(tmp_path / "o"),
                     "--quiet"]) == 2
        line = one_line(capsys.readouterr().err)
        assert str(audio) in line and message in line and "pipe" not in line, line
    assert not (tmp_path / "o").exists()


def test_absurd_bvh_values_are_refused(tmp_path):
    from racer_env.motion.bvh import BvhError, read_bvh

    text = (ROOT / "tests" / "data" / "cmu_12_01_walk.bvh").read_text()
    head, motion = text.split("Frame Time:", 1)
    rows = motion.splitlines()
    rows[3] = " ".join(["1e300"] + rows[3].split()[1:])
    (tmp_path / "huge.bvh").write_text(head + "Frame Time:" + "\n".join(rows))
    with pytest.raises(BvhError, match="huge.bvh.*1e\\+300"):
        read_bvh(tmp_path / "huge.bvh")


def test_a_hostile_bvh_header_is_refused_before_any_allocation(agent_workspace, tmp_path, capsys):
    """Issue 29: 'Frame Time: 100000' grew `evaluate files` and `generate --reference` to 23.8 GB (the motion was
    resampled before its length was checked); now the header is refused as it is read."""
    text = (ROOT / "tests" / "data" / "cmu_12_01_walk.bvh").read_text()
    hostile = tmp_path / "hostile.bvh"
    hostile.write_text(text.replace("Frame Time: .0083333", "Frame Time: 100000"))
    wav = make_wav(tmp_path / "a.wav", 4.4)  # as long as the take
    for argv in (["evaluate", "files", "--audio", str(wav), "--motion", str(hostile)],
                 ["evaluate", "files", "--audio", str(wav), "--motion", str(ROOT / "tests" / "data" /
                                                                       "cmu_12_01_walk.bvh"),
                  "--reference", str(hostile)],
                 ["generate", str(agent_workspace), "--audio", str(JFK_WAV), "--reference", str(hostile), "--out",
                  str(tmp_path / "out"), "--quiet"]):
        assert main(argv) == 2, argv
        line = one_line(capsys.readouterr().err)
        assert f"{hostile}: Frame Time 100000 s" in line and "expected 1 to 1000 fps" in line, line
    assert not (tmp_path / "out").exists()


def test_evaluate_files_accepts_a_reference_with_a_mixamorig_prefix(tmp_path, capsys):
    """Issue 29: `evaluate files --reference` refused a take whose joints differ from the motion's only by a
    `mixamorig:` prefix, which `generate --reference` accepts (both now compare names as the upper body maps them)."""
    import json
    import re

    motion = ROOT / "tests" / "data" / "cmu_12_01_walk.bvh"
    prefixed = tmp_path / "prefixed.bvh"
    prefixed.write_text(re.sub(r"^(\s*)(ROOT|JOINT) (\S+)", r"\1\2 mixamorig:\3", motion.read_text(), flags=re.M))
    wav = make_wav(tmp_path / "a.wav", 4.4)
    assert main(["evaluate", "files", "--audio", str(wav), "--motion", str(motion), "--reference", str(prefixed),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["metrics"]["maje_mm"] == pytest.approx(0.0, abs=1e-6)


def test_destinations_that_cannot_be_written(agent_workspace, tmp_path, capsys, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")
    src = tmp_path / "src"
    src.mkdir()
    make_wav(src / "a.wav", 1.0, subtype="PCM_16")
    (src / "a.bvh").write_text((ROOT / "tests" / "data" / "cmu_12_01_walk.bvh").read_text())
    commands = {
        "is a file": [["corpus", "import", str(src), str(afile)], ["demo", str(afile), "--preset", "tiny"],
                      ["generate", str(agent_workspace), "--audio", str(JFK_WAV), "--out", str(afile)]],
        "lies under the file": [["corpus", "import", str(src), str(afile / "W")], ["demo", str(afile / "W")],
                                ["generate", str(agent_workspace), "--audio", str(JFK_WAV), "--out",
                                 str(afile / "out")]],
    }
    for message, cases in commands.items():
        for argv in cases:
            assert main(argv) == 2, argv
            line = one_line(capsys.readouterr().err)
            assert str(afile) in line and message in line, line
    ws = copy_workspace(agent_workspace, tmp_path / "W")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(afile))
    assert main(["dataset", "build", str(ws), "--quiet"]) == 2
    assert f"{afile}: is a file; expected a directory for the dataset directory" in capsys.readouterr().err
    assert afile.read_text() == "x"


def test_a_read_only_destination_is_one_line(tmp_path, capsys, monkeypatch):
    """As an ordinary user the directory check refuses it; as root (who may write anywhere) the OS error of a write
    that fails anyway becomes the same one line, which the forced PermissionError stands in for."""
    src = tmp_path / "src"
    src.mkdir()
    make_wav(src / "a.wav", 1.0, subtype="PCM_16")
    (src / "a.bvh").write_text((ROOT / "tests" / "data" / "cmu_12_01_walk.bvh").read_text())
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.geteuid() != 0:
            assert main(["corpus", "import", str(src), str(locked / "W"), "--quiet"]) == 2
            assert "not writable" in one_line(capsys.readouterr().err)

        def refuse(self, *args, **kwargs):
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr("racer_env.corpus.importer.check_output_directory", lambda path, what="": Path(path))
        monkeypatch.setattr(Path, "mkdir", refuse)
        assert main(["corpus", "import", str(src), str(locked / "W"), "--quiet", "--workers", "1"]) == 2
        line = one_line(capsys.readouterr().err)
        assert line.startswith(f"racer: error: {locked / 'W'}") and "Permission denied" in line, line
    finally:
        locked.chmod(0o700)
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize("device", ["nonsense", "meta", "cuda:x"])
def test_bad_devices_are_refused_before_any_work(tmp_path, capsys, device):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "vqvae", str(tmp_path / "W"), "--device", device])
    line = one_line(capsys.readouterr().err)
    assert exit_.value.code == 2 and "argument --device" in line and "expected auto, cpu, cuda" in line
    assert not (tmp_path / "W").exists()


# -- refused runs leave nothing behind -----------------------------------------------------------------------
def test_refused_runs_leave_no_empty_directories(agent_workspace, trained_workspace, tmp_path, capsys,
                                                 monkeypatch):
    ws = copy_workspace(trained_workspace, tmp_path / "W")
    for clip in sorted((ws / "corpus" / "clips").rglob("*.npz"))[:1]:
        clip.write_bytes(clip.read_bytes()[:-10] + b"0123456789")  # an altered clip file
    import shutil

    shutil.rmtree(ws / "vqvae")
    assert main(["train", "vqvae", str(ws), "--preset", "tiny", "--quiet"]) == 2
    assert "checksum" in one_line(capsys.readouterr().err) and not (ws / "vqvae").exists()
    with pytest.raises(SystemExit):
        main(["train", "vqvae", str(ws), "--seed", "-1"])
    assert "argument --seed: expected an integer >= 0, got -1" in one_line(capsys.readouterr().err)
    monkeypatch.delenv("MINARI_DATASETS_PATH")  # the datasets would live in W/datasets
    ws2 = copy_workspace(trained_workspace, tmp_path / "W2")
    assert main(["train", "agent", str(ws2), "--preset", "tiny", "--resume", "--quiet"]) == 2
    assert "no datasets here" in one_line(capsys.readouterr().err) and not (ws2 / "datasets").exists()
    assert main(["evaluate", str(tmp_path / "absent" / "W"), "--quiet"]) == 2
    assert "no corpus" in one_line(capsys.readouterr().err) and not (tmp_path / "absent").exists()
    out = tmp_path / "out"
    for formats, message in (("nonsense", "unknown output format"), (",", "no output format")):
        start = time.perf_counter()
        assert main(["generate", str(agent_workspace), "--audio", str(JFK_WAV), "--out", str(out),
                     "--formats", formats]) == 2
        line = one_line(capsys.readouterr().err)
        assert f"--formats {formats}" in line and message in line and not out.exists()
        assert time.perf_counter() - start < 5  # refused before the rollout


# -- interruption: Ctrl-C and kill -9 at the moment a stage publishes its output -----------------------------
def test_ctrl_c_in_import_and_dataset_build_leaves_nothing(trained_workspace, tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    make_wav(src / "a.wav", 4.4, subtype="PCM_16")  # as long as the take
    (src / "a.bvh").write_text((ROOT / "tests" / "data" / "cmu_12_01_walk.bvh").read_text())
    new = tmp_path / "new"
    run = racer("corpus", "import", src, new, "--unit-mm", "56.4", "--quiet", "--workers", "1",
                pause_at="corpus-publish")
    wait_paused(run, "corpus-publish")
    assert temporaries(new)  # the corpus is written under a temporary name ...
    run.send_signal(signal.SIGINT)
    rc, _, err = finish(run)
    line = one_line(err)
    assert rc == 130 and "interrupted; nothing partial was kept" in line and "corpus import" in line, err
    assert not new.exists()  # ... and nothing is left: not even the workspace this run created

    ws = copy_workspace(trained_workspace, tmp_path / "W")
    root = tmp_path / "datasets"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))  # (inherited by the runs)
    run = racer("dataset", "build", ws, "--quiet", pause_at="dataset-publish")
    wait_paused(run, "dataset-publish")
    assert temporaries(root)  # the dataset is built in a hidden staging root
    run.send_signal(signal.SIGINT)
    rc, _, err = finish(run)
    assert rc == 130 and one_line(err).startswith("racer: interrupted;"), err
    assert not root.exists() or list(root.rglob("*")) == []

    run = racer("dataset", "build", ws, "--quiet", pause_at="dataset-publish")
    wait_paused(run, "dataset-publish")
    run.kill()  # kill -9: the staging root stays until the next build
    run.wait()
    assert temporaries(root)
    rc, out, err = finish(racer("dataset", "build", ws, "--quiet"))
    assert rc == 0 and "episodes" in out, err
    assert temporaries(root) == [] and (root / "racer").is_dir()


def test_ctrl_c_and_kill_9_in_generate(agent_workspace, tmp_path):
    out = tmp_path / "out"
    args = ["generate", agent_workspace, "--audio", JFK_WAV, "--agent", "bc", "--out", out, "--quiet"]
    run = racer(*args, pause_at="generate-publish")
    wait_paused(run, "generate-publish")
    assert len(temporaries(out)) == 3  # npz, bvh and mp4 written, none of them under its name yet
    run.send_signal(signal.SIGINT)
    rc, _, err = finish(run)
    assert rc == 130 and one_line(err).startswith("racer: interrupted; nothing partial was kept"), err
    assert not out.exists()

    run = racer(*args, pause_at="generate-publish")
    wait_paused(run, "generate-publish")
    run.kill()
    run.wait()
    assert len(temporaries(out)) == 3 and not list(out.glob("jfk*"))  # no npz + bvh without the mp4
    rc, _, err = finish(racer(*args))
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == [f"{JFK_WAV.stem}.{ext}" for ext in ("bvh", "mp4", "npz")]


# -- a user's agent and --algo ------------------------------------------------------------------------------
class Returns:
    """A user's benchmark agent whose act returns ``value`` (set on the class by a test)."""

    value = 0

    def fit(self, dataset) -> None:
        pass

    def act(self, observation: dict):
        return self.value


class NeedsArguments(Returns):
    def __init__(self, width: int) -> None:
        self.width = width


def test_a_user_agents_codes_are_checked_at_the_first_step(trained_workspace):
    """Issue 29: 99999 or -1 ended ~40 s later in an IndexError inside the VQ-VAE, None in a TypeError, and 3.7 was
    silently used as code 3. The rollout checks every code as it is chosen."""
    import torch

    from racer_agents.benchmark import UserAgent
    from racer_agents.evaluate import rollout_clip
    from racer_env.envs.gesture import GestureSynthesisEnv
    from racer_env.errors import RacerError

    env = GestureSynthesisEnv(str(trained_workspace), split="test", segment_codes=None)
    clip_id, n = env.data.splits["test"][0], env.data.n_codes
    for value in (99999, -1, None, 3.7, True, np.array([1, 2])):
        agent = UserAgent(type("Bad", (Returns,), {"value": value})(), "bench-mine-expert-s0", n)
        with pytest.raises(RacerError, match=r"^agent bench-mine-expert-s0: act returned .* at step 0; expected an "
                                             rf"integer code in \[0, {n - 1}\]$") as err:
            rollout_clip(env, agent, clip_id)
        assert repr(value)[:4] in str(err.value) or isinstance(value, np.ndarray)
    for value in (np.int64(n - 1), torch.tensor(0)):  # integers of any kind are codes
        codes, _ = rollout_clip(env, UserAgent(type("Good", (Returns,), {"value": value})(), "good", n), clip_id)
        assert set(codes[1:].tolist()) == {int(value)}


def test_bad_algorithms_are_refused_before_any_work(trained_workspace, tmp_path, capsys):
    """d3rlpy:Nope and a class whose constructor needs arguments were refused only after the tier was built (the
    latter with a traceback); a second benchmark only at its evaluation, after training."""
    ws = copy_workspace(trained_workspace, tmp_path / "W")
    before = sorted(p.name for p in ws.rglob("*"))
    cases = {("benchmark", "d3rlpy:Nope"): "--algo d3rlpy:Nope: unknown d3rlpy discrete algorithm 'Nope'",
             ("benchmark", "tests.test_faults:NeedsArguments"):
                 "--algo tests.test_faults:NeedsArguments: NeedsArguments() cannot be made without arguments",
             ("train", "d3rlpy:Nope"): "--algo d3rlpy:Nope: unknown d3rlpy discrete algorithm 'Nope'"}
    for (command, algo), message in cases.items():
        argv = (["benchmark", str(ws), "--tier", "expert"] if command == "benchmark" else ["train", "agent", str(ws)])
        assert main([*argv, "--algo", algo, "--preset", "tiny", "--quiet"]) == 2, algo
        line = one_line(capsys.readouterr().err)
        assert message in line, line
    script = ("import sys, time\nfrom racer_env.workspace import stage_lock\n"
              "with stage_lock(sys.argv[1], 'evaluate'):\n    print('held', flush=True)\n    time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", script, str(ws / "eval")],
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    _RUNS.append(holder)
    assert holder.stdout.readline().strip() == "held"  # (a benchmark of another algorithm, evaluating)
    assert main(["benchmark", str(ws), "--algo", "bc", "--tier", "expert", "--preset", "tiny", "--quiet"]) == 2
    assert f"pid {holder.pid}" in one_line(capsys.readouterr().err)
    holder.kill()
    holder.wait()
    assert sorted(p.name for p in ws.rglob("*") if ".racer-" not in p.name and p.name != "eval") == before


def test_benchmark_results_are_keyed_by_everything_that_distinguishes_them(tmp_path):
    """Issue 29: W/benchmark/<algo>.json of a run on one tier was replaced by a run of the same algorithm on
    another tier."""
    from racer_agents.benchmark import Protocol, result_path

    base = Protocol("d3rlpy:DiscreteCQL", ("expert",), (0, 1, 2), 150, "demo")
    variants = [base, Protocol("d3rlpy:DiscreteCQL", ("random",), (0, 1, 2), 150, "demo"),
                Protocol("d3rlpy:DiscreteCQL", ("expert",), (0,), 150, "demo"),
                Protocol("d3rlpy:DiscreteCQL", ("expert",), (0, 1, 2), None, "demo"),
                Protocol("d3rlpy:DiscreteCQL", ("expert",), (0, 1, 2), 150, "tiny"),
                Protocol("d3rlpy:DiscreteCQL", ("expert",), (0, 1, 2), 150, "demo", batch_size=32),
                Protocol("bc", ("expert",), (0, 1, 2), 150, "demo")]
    paths = [result_path(tmp_path, p) for p in variants]
    assert len(set(paths)) == len(paths)
    assert paths[0] == tmp_path / "benchmark" / "d3rlpy-DiscreteCQL_expert_seeds3_steps150_demo.json"
    assert paths[5].name == "d3rlpy-DiscreteCQL_expert_seeds3_steps150_demo_batch32.json"
    six = ("augmented", "expert", "random", "medium", "medium-replay", "medium-expert")
    assert result_path(tmp_path, Protocol("bc", six[::-1], (0,), None, "tiny")).name == "bc_all_seeds1_stepsdefault_tiny.json"
    assert result_path(tmp_path, Protocol("bc", ("random", "expert"), (0,), 5, "tiny")) == \
        result_path(tmp_path, Protocol("bc", ("expert", "random"), (0,), 5, "tiny"))  # (the same run: the same file)


def test_a_user_class_imports_from_the_working_directory(tmp_path, monkeypatch):
    """docs/benchmark.md says module:Class imports from the working directory; under the `racer` script it needed
    PYTHONPATH=. (the script's directory, not the working directory, is on sys.path)."""
    from racer_agents.benchmark import resolve_algo

    (tmp_path / "issue29_agent.py").write_text("class Agent:\n    def fit(self, dataset):\n        pass\n\n"
                                               "    def act(self, observation):\n        return 0\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    name, cls = resolve_algo("issue29_agent:Agent")
    assert name == "issue29_agent:Agent" and cls.__module__ == "issue29_agent"
    assert sys.path[-1] == str(tmp_path)  # (last: an installed module is never shadowed)


# -- --json is JSON ------------------------------------------------------------------------------------------
def test_json_is_strict_and_says_why_a_value_is_null():
    import json

    from racer_agents.benchmark import _intervals, format_interval
    from racer_env.workspace import strict_json

    def refuse(constant):
        raise AssertionError(f"{constant} in the JSON")

    text = strict_json({"a": [1.0, float("nan")], "b": np.float32("inf"), "c": {"d": np.nan, "e": np.int64(3)}})
    out = json.loads(text, parse_constant=refuse)
    assert out["a"] == [1.0, None] and out["b"] is None and out["c"]["d"] is None and out["c"]["e"] == 3
    assert {k for k in out if k.endswith("_null_reason")} == {"a_null_reason", "b_null_reason"}
    assert "NaN or infinite" in out["c"]["d_null_reason"]
    # issue 29: with --seeds 1 the pooled figures' intervals were NaN in stdout and W/benchmark/*.json
    per_seed = {"0": {"per_clip": {k: [0.1, 0.2] for k in ("normalised_score", "mean_reward", "sync")},
                      "stroke_f1": 0.5, "fgd": 2.0}}
    summary = _intervals(per_seed, (0,))
    assert summary["stroke_f1"] == [0.5, None, None] and summary["fgd"] == [2.0, None, None]
    assert "1 seed" in summary["no_interval"]["fgd"] and format_interval(summary["fgd"]) == "2.000"
    json.loads(strict_json(summary), parse_constant=refuse)


def test_nothing_but_the_json_on_stdout(tmp_path):
    """Whatever else a command writes to stdout while it runs (a library's log lines, from Python or from C: d3rlpy's
    came before the JSON even with --quiet) goes to stderr under --json."""
    script = ("import os, sys\nfrom racer_agents import cli\n"
              "def noisy(args):\n    print('python noise')\n    sys.stdout.flush()\n    os.write(1, b'C noise\\n')\n"
              "    cli._print_json(args, {'x': float('nan')})\n    return 0\n"
              "cli.cmd_evaluate_files = noisy\n"
              "sys.exit(cli.main(['evaluate', 'files', '--audio', 'a.wav', '--motion', 'm.bvh', '--json']))\n")
    run = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == '{\n  "x": null,\n  "x_null_reason": ' + \
        '"not a finite number (NaN or infinite): the figure is undefined for these inputs"\n}', run.stdout
    assert "python noise" in run.stderr and "C noise" in run.stderr


def test_loading_d3rlpy_prints_nothing():
    """Sweep: gym, which d3rlpy imports, printed a four-line notice on stderr, so no refusal after it was one line."""
    run = subprocess.run([sys.executable, "-c", "import racer_agents.d3rlpy_bridge"], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}, timeout=120)
    assert run.returncode == 0 and run.stdout == "" and run.stderr == "", run.stderr


def test_d3rlpy_logs_stay_off_stdout(agent_workspace, tmp_path, capsys):
    ws = copy_workspace(agent_workspace, tmp_path / "W")
    assert main(["train", "agent", str(ws), "--algo", "d3rlpy:DiscreteBC", "--preset", "tiny", "--steps", "2",
                 "--dataset", "racer/tiny/augmented-v0", "--force", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("agent d3rlpy-DiscreteBC: trained in") and "Parameters" not in out, out


def test_raw_fgd_needs_no_general_matrix_square_root(monkeypatch):
    """Issue 29: `evaluate --videos` on a one-clip tiny workspace had not finished after 3 minutes, most of it in the
    bootstrap's raw-space FGD (scipy's sqrtm of a 360 x 360 matrix per resample). tr sqrt(s1 s2) now comes from two
    symmetric eigendecompositions: the same value, without sqrtm."""
    from scipy import linalg

    from racer_env.metrics import fgd as fgd_mod

    rng = np.random.default_rng(0)
    real = rng.standard_normal((12, 40, 16, 3)) * 100  # 12 raw windows of 16 joints: 360 dimensions
    generated = rng.standard_normal((12, 40, 16, 3)) * 120 + 10
    f = lambda w: (w[:, ::4, 1:] / fgd_mod.SCALE_MM).reshape(len(w), -1)  # noqa: E731 (as raw_fgd flattens)
    a, b = f(real), f(generated)
    eye = np.eye(a.shape[1]) * fgd_mod.COV_EPS
    s1, s2 = np.cov(a, rowvar=False) + eye, np.cov(b, rowvar=False) + eye
    expected = float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2)
                     - 2 * np.trace(linalg.sqrtm(s1 @ s2).real))

    def refuse(*args, **kwargs):
        raise AssertionError("scipy.linalg.sqrtm called")

    monkeypatch.setattr(linalg, "sqrtm", refuse)
    assert fgd_mod.raw_fgd(real, generated) == pytest.approx(expected, rel=1e-6)


def test_interrupted_evaluation_videos_leave_nothing(tmp_path, monkeypatch):
    """Issue 29: an interrupted `racer evaluate W --videos 2` kept eval/videos/<system>/*.mp4 and an empty folder while
    saying "nothing partial was kept". The videos are staged in a hidden directory and published together."""
    from racer_agents import evaluate as ev
    from racer_env.workspace import Workspace

    ws = Workspace(tmp_path / "W")
    calls = []

    def fake_video(ws_, corpus, clip, rotations, system, directory=None):
        calls.append(system)
        if len(calls) == interrupt_at:  # Ctrl-C while the third video is written
            raise KeyboardInterrupt
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{clip}.mp4").write_bytes(b"mp4")
        return directory / f"{clip}.mp4"

    monkeypatch.setattr(ev, "clip_video", fake_video)
    videos = {"random": [("c1", None), ("c2", None)], "bc": [("c1", None), ("c2", None)]}
    interrupt_at = 3
    with pytest.raises(KeyboardInterrupt):
        ev.write_videos(ws, None, videos)
    assert sorted(p.name for p in (tmp_path / "W").rglob("*")) == ["eval"]  # no video, no folder, no temporary
    (tmp_path / "W" / "eval" / "videos" / "random").mkdir(parents=True)
    (tmp_path / "W" / "eval" / "videos" / "random" / "old.mp4").write_bytes(b"old")
    (tmp_path / "W" / "eval" / "videos" / "dqn").mkdir()
    interrupt_at = 0
    paths = ev.write_videos(ws, None, {"random": videos["random"]})
    assert [p.relative_to(tmp_path / "W") for p in paths] == [Path("eval/videos/random/c1.mp4"),
                                                               Path("eval/videos/random/c2.mp4")]
    assert sorted(p.name for p in (tmp_path / "W" / "eval" / "videos").iterdir()) == ["dqn", "random"]
    assert sorted(p.name for p in (tmp_path / "W" / "eval" / "videos" / "random").iterdir()) == ["c1.mp4", "c2.mp4"]
    assert temporaries(tmp_path / "W" / "eval") == []


# -- messages --------------------------------------------------------------------------------------------------
def test_messages_name_the_option_and_what_was_expected(agent_workspace, trained_workspace, tmp_path, capsys):
    assert main(["train", "agent", str(agent_workspace), "--algo", "nonsense", "--quiet"]) == 2
    line = one_line(capsys.readouterr().err)
    assert all(a in line for a in ("racer-cql", "bc", "d3rlpy:<Name>", "dqn", "actor-critic"))
    assert main(["train", "agent", str(agent_workspace), "--dataset", "racer/none/augmented-v0", "--quiet"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "--dataset racer/none/augmented-v0: no such dataset" in line and "download" not in line
    assert main(["evaluate", "codebook", str(trained_workspace), "--quiet", "--json"]) == 0
    capsys.readouterr()
    ws = copy_workspace(trained_workspace, tmp_path / "W")
    from racer_env.vqvae.train import train_config_for, train_vqvae

    train_vqvae(ws, train_config_for("tiny"), force=True, stop_after=3, progress=False)
    assert main(["train", "vqvae", str(ws), "--preset", "tiny", "--lr", "0.5", "--resume", "--quiet"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "train.lr" in line and "-> 0.5" in line, line
