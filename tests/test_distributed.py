"""torch.distributed training: 2 gloo processes on CPU (launched by torchrun) against one process.

Each trainer (VQ-VAE, reward model, racer-cql, bc) runs a few `tiny` steps on 2 ranks; both ranks must end with
identical weights, and the logged losses must follow a single-process run with the same global batch within
RTOL (the shards' gradients are averaged, so only the floating-point summation order differs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from racer_env.checkpoint import CheckpointError

RTOL, ATOL = 1e-3, 1e-5
WORKER = Path(__file__).parent / "helpers" / "ddp_worker.py"
KINDS = {"vqvae-vqvae": "vqvae", "reward-reward": "reward", "agent-racer-cql": "agents/racer-cql",
         "agent-bc": "agents/bc"}


def losses(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k.startswith("losses/")} for r in rows]


@pytest.fixture(scope="module")
def ddp_run(tiny_workspace, trained_workspace, gesture_dataset, tmp_path_factory):
    """The worker under torchrun (2 processes) and the same trainers in this process, on copies."""
    root = tmp_path_factory.mktemp("ddp")
    dataset_id = gesture_dataset[0].spec.dataset_id
    ws = {}
    for mode in ("ddp", "single"):
        ws[mode] = (root / mode / "C", root / mode / "A")
        shutil.copytree(tiny_workspace, ws[mode][0])
        shutil.copytree(trained_workspace, ws[mode][1])
    out = root / "weights"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent.parent)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
           str(ws["ddp"][0]), str(ws["ddp"][1]), dataset_id, str(out)]
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]

    from racer_agents.train import agent_config_for, train_agent
    from racer_env.reward.train import reward_train_config_for, train_reward
    from racer_env.vqvae.train import train_config_for, train_vqvae

    c, a = ws["single"]
    train_vqvae(c, train_config_for("tiny"), progress=False)
    train_reward(c, reward_train_config_for("tiny"), progress=False)
    for algo in ("racer-cql", "bc"):
        train_agent(a, agent_config_for("tiny", algo=algo, dataset=dataset_id), progress=False)
    return ws, out, dataset_id


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_ranks_hold_identical_weights(ddp_run, kind):
    _, out, _ = ddp_run
    rank0, rank1 = (torch.load(out / f"{kind}-rank{r}.pt") for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"{kind}: {name} differs between the ranks"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_loss_curve_matches_one_process(ddp_run, kind):
    ws, _, _ = ddp_run
    stage = KINDS[kind]
    base = 0 if kind.startswith(("vqvae", "reward")) else 1
    ddp = losses(ws["ddp"][base] / stage / "metrics.jsonl")
    single = losses(ws["single"][base] / stage / "metrics.jsonl")
    assert len(ddp) == len(single) >= 2
    for step, (d, s) in enumerate(zip(ddp, single)):
        for key in s:
            assert d[key] == pytest.approx(s[key], rel=RTOL, abs=ATOL), f"{kind} log row {step}: {key}"


def test_rank0_alone_writes_and_checkpoints_record_the_world_size(ddp_run):
    ws, _, dataset_id = ddp_run
    from racer_agents.train import agent_config_for, train_agent
    from racer_env.checkpoint import load_checkpoint

    meta, _, _ = load_checkpoint(ws["ddp"][1] / "agents" / "bc" / "checkpoint.pt", "agent")
    assert meta["world_size"] == 2
    assert not list((ws["ddp"][1] / "agents").rglob("*.tmp*"))
    with pytest.raises(CheckpointError, match="same number"):
        train_agent(ws["ddp"][1], agent_config_for("tiny", algo="bc", dataset=dataset_id), resume=True,
                    progress=False)


def test_d3rlpy_agent_trains_with_enable_ddp(ddp_run):
    ws, _, _ = ddp_run
    from racer_agents.agent import load_agent

    agent = load_agent(ws["ddp"][1], "d3rlpy-DiscreteCQL")  # written by rank 0 after a 2-process fit
    assert agent.name == "d3rlpy-DiscreteCQL"
