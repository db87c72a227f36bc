"""Run one batch as shards on worker threads, one torch thread each: how a batch uses several cores.

Why not one batch on N intra-op threads: this generator's steps are chains of
small matrix products (a detail step multiplies ~100 rows by 192 columns), and
splitting each of them over two threads costs a synchronisation per product
while the halves are too small to run at full speed. Two halves of the batch,
each on its own core with one thread, keep every product whole and need no
synchronisation: batch 16 ran 15-20% faster that way on a 2-core avx512_bf16
CPU (`python -m benchmarks.sample` times the library call that does this).
Torch releases the GIL inside its operators, so Python threads suffice.

An image depends only on its own prompt, seed and settings, never on its batch
(`imgen.sampler`), so sharding a batch changes no image.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

T = TypeVar("T")


def shard_bounds(count: int, workers: int) -> list[tuple[int, int]]:
    """Contiguous [start, end) ranges splitting `count` items over at most `workers` shards, sizes within one."""
    shards = max(1, min(workers, count))
    base, extra = divmod(count, shards)
    bounds, start = [], 0
    for index in range(shards):
        end = start + base + (1 if index < extra else 0)
        bounds.append((start, end))
        start = end
    return bounds


def run_sharded(work: Callable[[int, int], Sequence[T]], count: int, workers: int | None = None) -> list[T]:
    """`work(start, end)` over shards of range(count), one per worker thread; the results in order.

    `workers` defaults to torch's thread count. With one worker or one item,
    `work(0, count)` runs on the calling thread with the thread count unchanged.
    While shards run, torch uses one intra-op thread (the count is process-wide
    in torch, so it is set once and restored after); an exception in a shard is
    raised here once every shard has stopped.
    """
    threads = torch.get_num_threads()
    bounds = shard_bounds(count, workers or threads)
    if len(bounds) == 1:
        return list(work(0, count))

    results: list[Sequence[T]] = [[] for _ in bounds]
    errors: list[BaseException] = []

    def run(index: int, start: int, end: int) -> None:
        torch.set_num_threads(1)  # this thread's own OpenMP setting
        try:
            results[index] = work(start, end)
        except BaseException as error:  # re-raised on the caller's thread
            errors.append(error)

    shard_threads = [threading.Thread(target=run, args=(i, *b), daemon=True) for i, b in enumerate(bounds)]
    torch.set_num_threads(1)
    try:
        for thread in shard_threads:
            thread.start()
        for thread in shard_threads:
            thread.join()
    finally:
        torch.set_num_threads(threads)
    if errors:
        raise errors[0]
    return [item for part in results for item in part]
