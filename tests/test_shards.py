"""Batches split over worker threads (`imgen.shards`): same results, in order, threads restored."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import imgen
from imgen.shards import run_sharded, shard_bounds
from tests.cli_runner import restore_ctrl_c


def test_shard_bounds_cover_every_item_once_in_near_equal_parts():
    for count in range(1, 20):
        for workers in range(1, 5):
            bounds = shard_bounds(count, workers)
            assert bounds[0][0] == 0 and bounds[-1][1] == count
            assert all(end == start for (_, end), (start, _) in itertools.pairwise(bounds))
            sizes = [end - start for start, end in bounds]
            assert len(sizes) == min(count, workers) and max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_shards_run_on_their_own_threads_with_one_torch_thread_each_and_the_count_comes_back():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    seen: list[tuple[int, int, int]] = []
    together = threading.Barrier(2, timeout=10)  # passes only if both shards run at the same time

    def work(start: int, end: int) -> list[int]:
        seen.append((threading.get_ident(), torch.get_num_threads(), start))
        together.wait()
        return list(range(start, end))

    try:
        assert run_sharded(work, 9) == list(range(9))
        assert {threads for _, threads, _ in seen} == {1}
        assert len({ident for ident, _, _ in seen}) == 2 and threading.get_ident() not in {i for i, _, _ in seen}
        assert torch.get_num_threads() == 2
        seen.clear()

        def alone(start: int, end: int) -> list[int]:
            seen.append((threading.get_ident(), torch.get_num_threads(), start))
            return list(range(start, end))

        assert run_sharded(alone, 9, workers=1) == list(range(9))
        assert seen == [(threading.get_ident(), 2, 0)]  # one shard: the caller's thread, count unchanged
    finally:
        torch.set_num_threads(previous)


def test_the_first_failing_shard_in_batch_order_is_raised_after_every_shard_has_stopped():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    events: list[str] = []
    last_failed, first_failed = threading.Event(), threading.Event()

    def work(start: int, end: int) -> list[int]:
        if start == 4:  # the last shard fails first
            events.append("last failed")
            last_failed.set()
            raise KeyError("last shard failed")
        if start == 0:  # the first shard fails after it
            assert last_failed.wait(timeout=10)
            events.append("first failed")
            first_failed.set()
            raise ValueError("first shard failed")
        assert first_failed.wait(timeout=10)  # the middle shard is still at work when both have failed
        time.sleep(0.2)
        events.append("middle finished")
        return list(range(start, end))

    try:
        with pytest.raises(ValueError, match="first shard failed"):
            run_sharded(work, 6, workers=3)
        assert events == ["last failed", "first failed", "middle finished"]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_ctrl_c_while_shards_run_waits_for_them_and_then_interrupts_without_deadlock():
    # Every shard sends SIGINT to the process again and again, so that some land anywhere in the
    # caller's bytecode, also inside the locks of threading.Event: each call must come back with
    # one KeyboardInterrupt after both shards finished. It runs in a child process so that a
    # deadlock fails on the timeout instead of stopping the suite.
    script = textwrap.dedent("""
        import os, signal, time
        from imgen.shards import run_sharded
        finished = []
        def work(start, end):
            for _ in range(300):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0)  # lets the caller's thread run between two signals
            finished.append(start)
            return list(range(start, end))
        for call in range(100):
            finished.clear()
            try:
                run_sharded(work, 8, workers=2)
                raise SystemExit(f"call {call} came back without a KeyboardInterrupt")
            except KeyboardInterrupt:
                assert sorted(finished) == [0, 4], f"call {call} was interrupted with shards {finished} done"
        print("100 interrupted calls")
    """)
    command = [sys.executable, "-c", script]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, preexec_fn=restore_ctrl_c)
    assert result.returncode == 0 and result.stdout.strip() == "100 interrupted calls", result.stderr[-2000:]


def test_idle_workers_do_not_keep_the_last_task_alive():
    import gc
    import weakref

    class Weights:  # what a pipeline's model is to the workers: something big the task closes over
        pass

    weights = Weights()
    alive = weakref.ref(weights)

    def work(start: int, end: int, weights: Weights = weights) -> list[int]:
        return list(range(start, end))

    assert run_sharded(work, 4, workers=2) == [0, 1, 2, 3]
    del weights, work
    gc.collect()
    assert alive() is None


def test_a_shard_count_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        run_sharded(lambda start, end: [start], 4, workers=0)


def test_sharded_whole_and_one_thread_batches_give_the_same_images(tiny_checkpoint: Path):
    pipe = imgen.load(str(tiny_checkpoint), precision="fp32")
    prompts = ["two red stars", "a blue circle", "three green hearts", "a cat", "a dog"]
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one_thread = pipe.generate(prompts, seed=3)
        torch.set_num_threads(2)
        sharded = pipe.generate(prompts, seed=3)
        whole = pipe.generate(prompts, seed=3, shards=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
    assert len(sharded) == len(whole) == 5
    for a, b, c in zip(one_thread, sharded, whole, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b)) and np.array_equal(np.asarray(a), np.asarray(c))
    with pytest.raises(ValueError, match="shards must be at least 1"):
        pipe.generate(prompts, shards=0)
