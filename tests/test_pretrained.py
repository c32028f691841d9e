"""The pretrained demo weights shipped in the package: `racer generate --audio x.wav` without training."""

from __future__ import annotations

import shutil

import pytest

from racer_agents.cli import main as racer
from racer_agents.pretrained import FILES, MANIFEST, PRETRAINED_DIR, pretrained_info, pretrained_workspace
from racer_env.checkpoint import CheckpointError
from tests.conftest import JFK_WAV


def test_shipped_weights_are_small_and_verified():
    total = sum((PRETRAINED_DIR / rel).stat().st_size for rel in (*FILES, MANIFEST))
    assert total < 20e6
    info = pretrained_info()
    assert set(info["sha256"]) == set(FILES) and info["config"]["preset"] == "demo"
    assert pretrained_workspace().root == PRETRAINED_DIR


def test_generate_without_a_workspace(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copy(JFK_WAV, tmp_path / "speech.wav")
    assert racer(["generate", "--audio", "speech.wav", "--quiet"]) == 0
    out = tmp_path / "generated" / "speech"
    for ext in ("npz", "bvh", "mp4"):
        assert (out / f"speech.{ext}").stat().st_size > 0
    assert "real time" in capsys.readouterr().out
    assert not (PRETRAINED_DIR / "generated").exists()  # nothing is written into the package


def test_changed_shipped_file_is_refused(tmp_path):
    copy = tmp_path / "demo"
    shutil.copytree(PRETRAINED_DIR, copy)
    path = copy / "vqvae" / "model.pt"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum differs"):
        pretrained_workspace(copy)
    (copy / "vqvae" / "model.pt").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        pretrained_workspace(copy)
