"""Run one batch as shards on worker threads, one torch thread each: how a batch uses several cores.

Why not one batch on N intra-op threads: this generator's steps are chains of
small matrix products (a detail step multiplies ~100 rows by 192 columns), and
splitting each of them over two threads costs a synchronisation per product
while the halves are too small to run at full speed. Two halves of the batch,
each on its own core with one thread, keep every product whole and need no
synchronisation. In three runs of `python -m benchmarks.sample` on a 2-core
avx512_bf16 CPU, batch 16 as two shards made 12.8 images/s each time, and
whole on two threads 10.4-12.9 (README, Speed).
Torch releases the GIL inside its operators, so Python threads suffice.

The worker threads live as long as the process, idle between batches. Threads
made per batch and ended after it were tried first: a process that exited
right after its last shard (Ctrl-C in a batch, exit code 130) sometimes
aborted in torch's native teardown instead ("terminate called without an
active exception"), which a thread that is still winding down its native
state can cause. A worker that never ends is asleep on its queue when the
process exits.

An image depends only on its own prompt, seed and settings, never on its batch
(`imgen.sampler`), so sharding a batch changes no image.
"""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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
    raised, once every shard has finished. Ctrl-C on the main thread waits
    for the shards too: its KeyboardInterrupt is raised when they are done,
    so none is left running (`_interrupts_held`).
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    threads = torch.get_num_threads()
    bounds = shard_bounds(count, workers or threads)
    if len(bounds) == 1:
        return list(work(0, count))

    results: list[Sequence[T]] = [[] for _ in bounds]
    errors: list[BaseException | None] = [None for _ in bounds]

    def task(index: int, start: int, end: int) -> Callable[[], None]:
        def run() -> None:
            try:
                _set_threads(1)  # this thread's own setting
                results[index] = work(start, end)
            except BaseException as error:  # re-raised on the caller's thread
                errors[index] = error

        return run

    with _interrupts_held():  # the threads below share locks that a KeyboardInterrupt could leave held
        _set_threads(1)
        done = [
            worker.submit(task(index, start, end))
            for worker, (index, (start, end)) in zip(_workers(len(bounds)), enumerate(bounds), strict=True)
        ]
        for event in done:
            event.wait()
        _set_threads(threads)
    for error in errors:
        if error is not None:
            raise error
    return [item for part in results for item in part]


class _Worker:
    """A daemon thread that runs the tasks handed to it, one at a time, for the life of the process."""

    def __init__(self, number: int) -> None:
        self._tasks: queue.SimpleQueue[tuple[Callable[[], None], threading.Event]] = queue.SimpleQueue()
        threading.Thread(target=self._loop, name=f"imgen-shard-{number}", daemon=True).start()

    def submit(self, task: Callable[[], None]) -> threading.Event:
        """Queue `task`; the event is set once it has run (the task catches its own errors)."""
        done = threading.Event()
        self._tasks.put((task, done))
        return done

    def _loop(self) -> None:
        while True:
            task, done = self._tasks.get()
            try:
                task()
            finally:
                done.set()
                # An idle worker must not keep its last task alive: the task holds the pipeline (the
                # model's weights), the batch's images and any error with its traceback.
                task = done = None


_WORKERS: list[_Worker] = []
_WORKERS_LOCK = threading.Lock()
_THREAD_COUNT = threading.Lock()


def _workers(count: int) -> list[_Worker]:
    """The first `count` workers of the process, started on first use."""
    with _WORKERS_LOCK:
        while len(_WORKERS) < count:
            _WORKERS.append(_Worker(len(_WORKERS)))
        return _WORKERS[:count]


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold SIGINT back on the main thread while the block runs, and deliver it once the block is done.

    Why: Python raises KeyboardInterrupt between any two bytecodes, also inside
    `threading.Condition.__enter__` right after its lock was taken, and then
    nothing releases that lock. Waiting on a shard's `threading.Event` through
    Ctrl-C deadlocked that way, rarely: the main thread and the worker setting
    the event both blocked on the event's lock for good. Here a Ctrl-C only
    records itself, the block (handing out shards, waiting for them) runs to
    its end, and the signal is raised again for the handler that was there
    before, normally Python's KeyboardInterrupt. Off the main thread no
    KeyboardInterrupt can arrive, and a handler set outside Python cannot be
    put back, so the block then runs as it is.
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield
        return
    received: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            signal.raise_signal(signal.SIGINT)


def _set_threads(count: int) -> None:
    """`torch.set_num_threads`, one call at a time: it also resizes a thread pool that all threads share."""
    with _THREAD_COUNT:
        torch.set_num_threads(count)
