"""The one rule for skipping a stage: its artefact records the identity it was made with."""

from __future__ import annotations

import json

from racer_env.stage import RecordedStage
from racer_env.training import StageRun


def test_a_recorded_stage_is_current_only_with_its_identity_and_outputs(tmp_path):
    out = tmp_path / "d" / "result.txt"
    stage = RecordedStage(out.parent, {"lr": 0.1, "corpus": "abc"}, record=tmp_path / "d" / "record.json",
                          outputs=(out,), key="result")
    assert not stage.is_current()
    with stage.locked():
        out.parent.mkdir()
        out.write_text("done")
        stage.save_record({"note": "kept"})
    assert stage.is_current()
    assert json.loads(stage.record.read_text()) == {"note": "kept", "result": stage.identity_sha}
    other = RecordedStage(out.parent, {"lr": 0.2, "corpus": "abc"}, record=stage.record, outputs=(out,), key="result")
    assert not other.is_current()  # another setting
    out.unlink()
    assert not stage.is_current()  # the artefact is gone


def test_a_refused_stage_leaves_no_directory(tmp_path):
    stage = StageRun(tmp_path / "W" / "vqvae", "vqvae", {"train": {"lr": 1}})
    try:
        with stage.locked():
            raise RuntimeError("refused before writing anything")
    except RuntimeError:
        pass
    assert not (tmp_path / "W").exists() and stage.recorded_identity() is None
