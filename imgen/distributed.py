"""Multi-process training with PyTorch's own engine: torchrun launches, DDP averages gradients.

`imgen train ...` run under `torchrun --nproc-per-node N` finds RANK /
WORLD_SIZE / LOCAL_RANK in its environment and joins a process group (gloo on
CPU, NCCL on GPU). Each step has one *global* batch of B examples at global
stream positions p..p+B-1; rank r takes the contiguous slice `shard(B)` of it,
so ranks read disjoint data, and the union is exactly the batch a
single-process run takes. Losses are sums divided by global counts, which makes
the DDP gradient average equal to the single-process gradient (not just close
to it), and the step counter and data position in a training state are global,
so a run can resume with a different number of processes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NoReturn

import torch
import torch.distributed as dist

CPU = torch.device("cpu")


@dataclass(frozen=True)
class Rank:
    """Where this process sits in the run: rank, world size and its device."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = CPU

    @property
    def is_main(self) -> bool:
        """Only the main rank writes checkpoints, metrics and sample grids."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, global_batch: int) -> range:
        """Indices (within the global batch) this rank trains on."""
        if global_batch % self.world_size:
            raise ValueError(f"batch size {global_batch} does not split over {self.world_size} processes")
        per_rank = global_batch // self.world_size
        return range(self.rank * per_rank, (self.rank + 1) * per_rank)


def setup() -> Rank:
    """Join the torchrun process group if there is one; a plain run gets rank 0 of 1 on the CPU."""
    use_cuda = torch.cuda.is_available() and os.environ.get("IMGEN_DEVICE", "") != "cpu"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if not launched_by_torchrun():
        return Rank(device=device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Rank(dist.get_rank(), dist.get_world_size(), device)


def teardown(rank: Rank) -> None:
    if rank.distributed and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def joined() -> Iterator[Rank]:
    """`setup()` for the length of a training run, `teardown()` however it ends."""
    rank = setup()
    try:
        yield rank
        # Leave together after a normal end: a gloo rank whose peer tears the group down
        # first can abort ("terminate called without an active exception") after finishing.
        barrier(rank)
    finally:
        teardown(rank)


def launched_by_torchrun() -> bool:
    """True in a worker process that torchrun started for a run of more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def leave_worker(code: int) -> NoReturn:
    """End a torchrun worker now with `code`, skipping the interpreter's finalization.

    Why: after a gloo run has left its process group (barrier, then
    `destroy_process_group`), a worker still aborts now and then while the
    interpreter shuts down ("terminate called without an active exception",
    SIGABRT, no Python frame on the stack: a C++ thread of torch.distributed
    destroyed while joinable). About 1 run in 30 did so on a loaded 2-core
    machine, which turned a finished run into a failed one for torchrun. Every
    file the run writes is closed by then (checkpoints are written whole,
    metrics are reopened per line), so only the standard streams need a flush.
    Only the command line calls this; the Python API returns as usual.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def all_sum(values: torch.Tensor, rank: Rank) -> torch.Tensor:
    """Element-wise sum over ranks (identity on one process)."""
    if rank.distributed:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def any_rank(flag: bool, rank: Rank) -> bool:
    """True on every rank if it is true on any: ranks must agree to stop, or the others would hang."""
    return bool(all_sum(torch.tensor([float(flag)], device=rank.device), rank).item() > 0)


def barrier(rank: Rank) -> None:
    if rank.distributed:
        dist.barrier()
