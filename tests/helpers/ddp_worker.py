"""Run under ``torchrun --nproc_per_node 2``: every distributed trainer at the `tiny` preset, each rank's final
weights saved as ``<out>/<kind>-<name>-rank<r>.pt`` so the test can compare the ranks.

Usage: ddp_worker.py CORPUS_WS AGENT_WS DATASET_ID OUT
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from racer_env.training import StageRun


def main() -> None:
    corpus_ws, agent_ws, dataset_id, out = sys.argv[1:5]
    out = Path(out)
    original = StageRun.save_model

    def save_model(self, step, state, extra):  # instrumentation: every rank's final weights
        torch.save(state["model"], out / f"{self.kind}-{self.directory.name}-rank{dist.get_rank()}.pt")
        return original(self, step, state, extra)

    StageRun.save_model = save_model
    from racer_agents.train import agent_config_for, train_agent
    from racer_env.reward.train import reward_train_config_for, train_reward
    from racer_env.vqvae.train import train_config_for, train_vqvae

    train_vqvae(corpus_ws, train_config_for("tiny"), progress=False)
    train_reward(corpus_ws, reward_train_config_for("tiny"), progress=False)
    train_agent(agent_ws, agent_config_for("tiny", algo="racer-cql", dataset=dataset_id), progress=False)
    bc = agent_config_for("tiny", algo="bc", dataset=dataset_id)
    train_agent(agent_ws, bc, progress=False, stop_after=10)  # interrupted ...
    train_agent(agent_ws, bc, progress=False, resume=True)  # ... and resumed with the same world size
    # the d3rlpy plug-in path with d3rlpy's own DDP (enable_ddp)
    train_agent(agent_ws, agent_config_for("tiny", algo="d3rlpy:DiscreteCQL", dataset=dataset_id, steps=4),
                progress=False)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
