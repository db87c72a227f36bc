from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_checkpoint import write_tiny_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint folder with random tiny weights, shared by the tests of one run."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny-checkpoint"))
