"""Multi-process data parallel training with ``torch.distributed`` (DDP).

Launch a script with ``torchrun --nproc_per_node N script.py``: torchrun sets ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE`` and the rendezvous address; :func:`init_distributed` reads them
and joins the process group (gloo on CPU, nccl on CUDA). Without those variables everything
here degrades to a single process, so the same script runs with plain ``python``.
Follows the PyTorch DDP tutorial (https://pytorch.org/tutorials/intermediate/ddp_tutorial.html).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistributedContext", "all_reduce_sum", "cleanup_distributed", "init_distributed"]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in the job."""

    rank: int = 0  # global index of this process
    local_rank: int = 0  # index on this machine: picks the GPU
    world_size: int = 1  # number of processes

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, shows progress and writes checkpoints."""
        return self.rank == 0


def init_distributed(device_type: str | None = None) -> DistributedContext:
    """Join the process group described by torchrun's environment variables, if any.

    The backend is nccl when ``device_type`` is ``"cuda"`` (default: cuda if available), else gloo.
    On CUDA, each process binds to GPU ``LOCAL_RANK``.

    Raises:
        ValueError: when the environment variables are inconsistent (e.g. RANK >= WORLD_SIZE).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} is outside [0, WORLD_SIZE={world_size}); launch with torchrun")
    device_type = device_type or ("cuda" if torch.cuda.is_available() else "cpu")
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistributedContext(rank=rank, local_rank=local_rank, world_size=world_size)


def cleanup_distributed() -> None:
    """Leave the process group (safe to call when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` over all processes (identity in a single process)."""
    if dist.is_available() and dist.is_initialized():
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values
