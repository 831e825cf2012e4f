"""The DistributedDataParallel plumbing of the fast trainer: ranks, shards, all-reduces.

Under ``torchrun`` every process runs the same script; ``init_distributed`` joins the
process group torchrun describes in the environment and ``close_distributed`` leaves it.
``Dist`` says where this process sits (rank, world size) and sums numbers over the
ranks; ``shard`` gives each rank every world_size-th item, like ``DistributedSampler``;
``average_buffers`` makes BatchNorm statistics equal on every rank. In a one-process run
all of this is a no-op, so the trainer's code is the same in both.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from cnnbook._checks import check_int

__all__ = [
    "Dist",
    "average_buffers",
    "close_distributed",
    "current_dist",
    "init_distributed",
    "rank_device",
    "shard",
]


@dataclass(frozen=True)
class Dist:
    """Where this process sits in a (possibly one-process) run."""

    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def all_sum(self, values: Sequence[float], device: torch.device) -> list[float]:
        """Sum each number over all ranks (a no-op in a one-process run)."""
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
        if self.active:
            dist.all_reduce(t)
        return t.tolist()


def current_dist() -> Dist:
    """Rank and world size of the process group, or a one-process Dist if there is none."""
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size())
    return Dist()


def shard(items: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank ``rank``'s share of ``items`` (first axis): items rank, rank + W, rank + 2W, ...

    The same split as ``torch.utils.data.DistributedSampler`` makes of its permutation:
    the shares of the W ranks are disjoint, equally long when W divides len(items), and
    together hold every item.
    """
    world_size = check_int("world_size", world_size, minimum=1)
    rank = check_int("rank", rank, minimum=0)
    if rank >= world_size:
        raise ValueError(f"rank must be < world_size = {world_size}, got {rank}")
    return items[rank::world_size]


def average_buffers(module: nn.Module, ctx: Dist) -> None:
    """Average floating-point buffers (BatchNorm statistics) over the ranks, so every
    rank ends with the same model; each rank's BN saw only its own images."""
    if not ctx.active:
        return
    for buf in module.buffers():
        if buf.dtype.is_floating_point:
            dist.all_reduce(buf)
            buf.div_(ctx.world_size)


def init_distributed() -> Dist:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR, ... in
    the environment): NCCL on CUDA, gloo on CPU. Without torchrun: a one-process Dist."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Dist()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)  # reads the env:// variables torchrun sets
    return current_dist()


def close_distributed(ctx: Dist) -> None:
    """Leave the process group ``init_distributed`` joined (nothing in a one-process run)."""
    if ctx.active:
        dist.destroy_process_group()


def rank_device(device: object, ctx: Dist) -> torch.device:
    """The device this rank trains on: ``device`` if given (ValueError if it is CUDA and
    torch sees none), else this rank's GPU (``LOCAL_RANK``), else the CPU."""
    if device is not None:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={device!r} asks for CUDA, but torch sees no CUDA device")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", ctx.rank)))
    return torch.device("cpu")
