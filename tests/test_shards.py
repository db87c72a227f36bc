"""Batches split over worker threads (`imgen.shards`): same results, in order, threads restored."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import imgen
from imgen.shards import run_sharded, shard_bounds


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


def test_an_error_in_a_shard_is_raised_to_the_caller_and_the_thread_count_comes_back():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)

    def work(start: int, end: int) -> list[int]:
        if start > 0:
            raise ValueError("shard failed")
        return [start]

    try:
        with pytest.raises(ValueError, match="shard failed"):
            run_sharded(work, 4)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_a_sharded_batch_gives_the_images_of_one_batch_on_one_thread(tiny_checkpoint: Path):
    pipe = imgen.load(str(tiny_checkpoint), precision="fp32")
    prompts = ["two red stars", "a blue circle", "three green hearts", "a cat"]
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        whole = pipe.generate(prompts, seed=3)
        torch.set_num_threads(2)
        sharded = pipe.generate(prompts, seed=3)
    finally:
        torch.set_num_threads(previous)
    assert len(sharded) == 4
    for a, b in zip(whole, sharded, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
