from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tiny_checkpoint import write_tiny_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint folder with random tiny weights, shared by the tests of one run."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny-checkpoint"))


def _torch_threads(count: int) -> Iterator[None]:
    """Run a test with `count` torch threads and give the process its old count back."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and threads contend on a busy machine."""
    yield from _torch_threads(1)


@pytest.fixture
def two_torch_threads() -> Iterator[None]:
    yield from _torch_threads(2)
