"""The ``racer`` command line: corpus import/info, and clear one-line errors for bad input."""

from __future__ import annotations

import json

import pytest

from racer_agents.cli import main
from racer_env.corpus import Corpus
from tests.conftest import CMU_UNIT_MM
from tests.test_corpus_import import make_src, speech  # noqa: F401  (fixture)


def test_import_then_info_json(tmp_path, speech, capsys):  # noqa: F811
    src = make_src(tmp_path, speech)
    ws = tmp_path / "W"
    assert main(["corpus", "import", str(src), str(ws), "--unit-mm", str(CMU_UNIT_MM), "--quiet", "--workers", "1"]) == 0
    assert "imported 3 clips" in capsys.readouterr().out
    assert main(["corpus", "import", str(src), str(ws), "--unit-mm", str(CMU_UNIT_MM), "--quiet"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["corpus", "info", str(ws), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["clips"] == 3 and info["fps"] == 20 and info["n_joints"] == 15
    assert info["speakers"] == ["cmu"] and set(info["splits"]) == {"train", "valid", "test"}
    assert main(["corpus", "info", str(ws)]) == 0
    text = capsys.readouterr().out
    assert "joints      15: Hips, LowerBack" in text and "speakers    1: cmu" in text


def test_errors_are_one_line_not_tracebacks(tmp_path, capsys):
    assert main(["corpus", "info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("racer: error:") and "no corpus here" in err and "Traceback" not in err
    assert main(["corpus", "import", str(tmp_path / "absent"), str(tmp_path / "W")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_argument_errors_name_the_argument(capsys):
    with pytest.raises(SystemExit):
        main(["corpus", "synth", "W", "--minutes", "-1"])
    assert "--minutes" in capsys.readouterr().err


def test_synth_is_deterministic_and_skips_when_current(tmp_path, capsys):
    common = ["--minutes", "0.5", "--speakers", "1", "--clip-seconds", "8", "--quiet", "--workers", "1"]
    args = [*common, "--seed", "3"]
    assert main(["corpus", "synth", str(tmp_path / "A"), *args]) == 0
    assert "imported 4 clips" in capsys.readouterr().out  # 30 s -> 8 + 8 + 8 + 6 s
    assert main(["corpus", "synth", str(tmp_path / "B"), *args]) == 0
    capsys.readouterr()
    a, b = (Corpus.load(tmp_path / w) for w in "AB")
    assert a.checksum == b.checksum and a.n_joints == 16 and a.fps == 20
    assert a.manifest["source"]["kind"] == "synth" and a.manifest["source"]["params"]["seed"] == 3
    assert main(["corpus", "synth", str(tmp_path / "A"), *args]) == 0
    assert "up to date" in capsys.readouterr().out
    # a different seed replaces a synthetic corpus without --force
    assert main(["corpus", "synth", str(tmp_path / "A"), *common, "--seed", "4"]) == 0
    assert Corpus.load(tmp_path / "A").checksum != b.checksum


def test_agent_options_come_from_the_config_dataclasses(tmp_path, capsys):
    from dataclasses import fields

    from racer_agents.cli import build_parser
    from racer_agents.train import AgentTrainConfig
    from racer_env.training import cli_options, option_flag

    agent = build_parser()._subparsers._group_actions[0].choices["train"]._subparsers._group_actions[0].choices["agent"]
    flags = {s for a in agent._actions for s in a.option_strings}
    assert {option_flag(f) for f in cli_options(AgentTrainConfig)} <= flags  # every declared option is a flag
    assert "--ema-decay" in flags and "--name" in flags and "--num-envs" in flags
    assert {f.name for f in fields(AgentTrainConfig)} - {f.name for f in cli_options(AgentTrainConfig)} == {
        "algo", "preset", "betas", "double_q", "soft_neighbours", "target_update_interval", "log_every"}
    assert "CQL conservative weight (demo preset: 5.0)" in " ".join(agent.format_help().split())
    for argv, message in ((["--algo", "dqn", "--dataset", "x", "--alpha", "2"], ("--algo dqn learns online on the "
                           "environment: --alpha, --dataset do not apply")),
                          (["--algo", "bc", "--num-envs", "4"], ("--algo bc learns from the dataset: --num-envs do "
                           "not apply")),
                          (["--algo", "actor-critic", "--batch-size", "8"], "--batch-size do not apply")):
        assert main(["train", "agent", str(tmp_path / "W"), *argv]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "agent", str(tmp_path / "W"), "--steps", "0"])
    assert "argument --steps: expected an integer >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "W").exists()
