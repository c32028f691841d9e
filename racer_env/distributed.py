"""Training on several processes or machines with torch.distributed, as launched by ``torchrun``.

The trainers (VQ-VAE, reward model, racer-cql, bc) call :func:`setup` and run unchanged under
``torchrun --nproc_per_node N -m racer_agents.cli train ...``: with ``WORLD_SIZE`` > 1 in the environment they join the
process group (NCCL on GPUs, gloo on CPU) and wrap their model in DistributedDataParallel.

How the data is split. Every step draws its global batch from ``(seed, step)`` exactly as a single process does,
and each rank keeps its contiguous ``1/world_size`` share of it (:meth:`DistContext.shard`): a distributed
sampler that needs no epoch bookkeeping and keeps resumed runs exact. DDP averages the gradients of the equal
shares, which is the gradient of the global batch's mean loss, so a run on N processes follows the single-process
run of the same global batch (up to floating-point summation order). Where a loss couples the whole batch (the
reward model's in-batch negatives, the VQ-VAE's codebook statistics) the rank's rows are gathered first.

Rank 0 alone writes checkpoints, logs and the final model; every rank reads a checkpoint to resume, which must
come from a run of the same world size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from racer_env.errors import RacerError
from racer_env.training import resolve_device


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run: rank ``rank`` of ``world_size`` (1: a plain single-process run)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """The process that writes files and shows progress."""
        return self.rank == 0

    def shard(self, batch, global_size: int):
        """This rank's contiguous share of a global batch (tensor, array or anything with slicing)."""
        if global_size % self.world_size:
            raise RacerError(f"the batch size {global_size} must be divisible by the number of processes "
                             f"{self.world_size} (each takes an equal share)")
        n = global_size // self.world_size
        return batch[self.rank * n:(self.rank + 1) * n]

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` in DistributedDataParallel when the run is distributed, else itself."""
        if not self.enabled:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def mean(self, value: float) -> float:
        """The mean of a scalar over ranks (for logging the global batch's loss)."""
        if not self.enabled:
            return float(value)
        t = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item()) / self.world_size

    def mean_dict(self, values: dict[str, float]) -> dict[str, float]:
        """:meth:`mean` of every value of a dict, in one collective call."""
        if not self.enabled:
            return {k: float(v) for k, v in values.items()}
        t = torch.tensor([float(v) for v in values.values()], dtype=torch.float64)
        dist.all_reduce(t)
        return {k: float(v) / self.world_size for k, v in zip(values, t.tolist())}

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def setup(device: str = "cpu") -> tuple[DistContext, torch.device]:
    """Join the torchrun process group if this process was launched by one; returns (context, device).

    On GPUs each process takes ``cuda:LOCAL_RANK``; ``--device cpu`` uses gloo.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = resolve_device(device)
    if world <= 1:
        return DistContext(), dev
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistContext(rank, world, local_rank), dev


def teardown() -> None:
    """Leave the process group (end of a command)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Every rank's rows of ``x`` concatenated in rank order (no gradient): the global batch's rows."""
    if not _active():
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def gather_rows_with_grad(x: torch.Tensor) -> torch.Tensor:
    """:func:`gather_rows` through which gradients flow back to each rank's own rows."""
    if not _active():
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()))


def sum_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """Elementwise sum of ``x`` over ranks (e.g. code histograms)."""
    if not _active():
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x
