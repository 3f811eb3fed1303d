"""Multi-process training under torchrun: gloo on CPU, NCCL on CUDA; only rank 0 writes files."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def local_slice(self, global_batch: int) -> slice:
        """This process's share of a global batch (the batch size must divide evenly)."""
        local = global_batch // self.world_size
        return slice(self.rank * local, (self.rank + 1) * local)


def init_distributed(device: torch.device) -> Distributed:
    """Join the process group that torchrun describes in the environment (if any)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device.type == "cuda" and device.index is None:
        torch.cuda.set_device(local_rank)  # one GPU per process: "cuda" is then this rank's GPU
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), local_rank)


def mean_across_processes(values: torch.Tensor, info: Distributed) -> torch.Tensor:
    """Average a small tensor over all processes (for logging the global batch's losses)."""
    if info.enabled:
        # NCCL reduces CUDA tensors only; the copy also leaves the caller's tensor alone.
        values = values.to("cuda" if dist.get_backend() == "nccl" else "cpu", copy=True)
        dist.all_reduce(values)
        values = values.cpu() / info.world_size
    return values


def finish_together(info: Distributed) -> None:
    """Wait until every process is done before any tears the group down (without it, a gloo
    rank once aborted at exit in a loaded CI run: 'terminate called without an active
    exception'; the cause was not pinned down)."""
    if info.enabled:
        dist.barrier()


def shutdown(info: Distributed) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
