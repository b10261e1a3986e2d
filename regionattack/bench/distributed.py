"""Workers of a benchmark run: one process, or one per GPU/CPU slot under ``torchrun``.

Under ``torchrun --nproc_per_node=K`` (which sets ``RANK``/``WORLD_SIZE``) the images are sharded
across processes, every statistic that sums over images (confusion matrices, ranking sums, counts)
is all-reduced, and only rank 0 writes files, so the numbers equal a single-process run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Workers:
    """Where this process sits among the benchmark's processes.

    Example:
        >>> workers = Workers(rank=1, world_size=2, device=torch.device("cpu"))
        >>> workers.shard(5), workers.is_main
        ([1, 3], False)
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True for the process that writes files and shows progress."""
        return self.rank == 0

    def shard(self, count: int) -> list[int]:
        """Indices of the items this process handles: ``rank, rank + world_size, ...``."""
        return list(range(self.rank, count, self.world_size))

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum of ``tensor`` over all processes (the tensor itself in a single process)."""
        if self.world_size == 1:
            return tensor
        # gloo reduces on the CPU, nccl on the process's GPU; float64 keeps sums order-robust.
        work = tensor.detach().to(
            self.device, torch.float64 if tensor.is_floating_point() else None
        )
        dist.all_reduce(work, op=dist.ReduceOp.SUM)
        return work.to(tensor.device, tensor.dtype)

    def max(self, value: float) -> float:
        """Maximum of a number over all processes."""
        if self.world_size == 1:
            return value
        work = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(work, op=dist.ReduceOp.MAX)
        return float(work)

    def barrier(self) -> None:
        """Wait for every process."""
        if self.world_size > 1:
            dist.barrier()


def start_workers(device: str | None = None) -> Workers:
    """Join the process group when launched by ``torchrun``; otherwise a single worker.

    Args:
        device: ``"cpu"``, ``"cuda"`` (each process takes GPU ``LOCAL_RANK``) or None for CUDA
            when available.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if world_size == 1:
        return Workers(device=torch.device(device or ("cuda" if use_cuda else "cpu")))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Workers(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        device=torch.device(f"cuda:{local_rank}" if use_cuda else "cpu"),
    )


def stop_workers() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
