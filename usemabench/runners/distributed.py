"""Multi-GPU training through `torchrun`: the same command, one process per GPU, rank 0 writes.

`torchrun --nproc_per_node=4 -m usemabench run --model ...` sets WORLD_SIZE, RANK and LOCAL_RANK; with
WORLD_SIZE > 1 the process group is initialised (NCCL on GPUs, Gloo on the CPU) and the model wrapped in
DistributedDataParallel. A single process never touches torch.distributed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistributedContext:
    """Read torchrun's environment and join the process group when there is more than one process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    context = DistributedContext(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world_size)
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(context.local_rank)
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return context


def mean_across_processes(value: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """The mean of a scalar over all processes (itself in a single process)."""
    if not context.enabled:
        return value
    reduced = value.detach().clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced / context.world_size


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()
