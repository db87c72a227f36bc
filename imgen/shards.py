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
    Otherwise the caller and every worker set torch to one intra-op thread
    (torch keeps the setting per thread and uses the last one set as the
    default of new threads), and the caller's count is restored afterwards.
    Workers do not inherit the caller's grad mode: `work` sets its own.
    When shards fail, the error of the first failing shard in batch order is
    raised, after every shard has stopped. Ctrl-C (KeyboardInterrupt) is
    raised once the running shards have finished: a process that restored the
    thread count and exited while they still ran inside torch was seen to
    abort ("terminate called without an active exception") instead of
    exiting with 130 (`tests/test_batch.py` sends the Ctrl-C).
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    threads = torch.get_num_threads()
    bounds = shard_bounds(count, workers or threads)
    if len(bounds) == 1:
        return list(work(0, count))

    results: list[Sequence[T]] = [[] for _ in bounds]
    errors: list[BaseException | None] = [None for _ in bounds]

    def run(index: int, start: int, end: int) -> None:
        _set_threads(1)  # this thread's own setting
        try:
            results[index] = work(start, end)
        except BaseException as error:  # re-raised on the caller's thread
            errors[index] = error

    shard_threads = [threading.Thread(target=run, args=(i, *b)) for i, b in enumerate(bounds)]
    _set_threads(1)
    for thread in shard_threads:
        thread.start()
    interrupted = _join_all(shard_threads)
    _set_threads(threads)
    if interrupted is not None:
        raise interrupted
    for error in errors:
        if error is not None:
            raise error
    return [item for part in results for item in part]


_THREAD_COUNT = threading.Lock()


def _set_threads(count: int) -> None:
    """`torch.set_num_threads`, one call at a time: it also resizes a thread pool that all threads share."""
    with _THREAD_COUNT:
        torch.set_num_threads(count)


def _join_all(threads: list[threading.Thread]) -> KeyboardInterrupt | None:
    """Wait for every thread, through Ctrl-C too; return the interrupt, if one came, for the caller to raise."""
    interrupted = None
    for thread in threads:
        while thread.is_alive():
            try:
                thread.join()
            except KeyboardInterrupt as interrupt:
                interrupted = interrupt
    return interrupted
