"""Replacing a file so that the new version survives a power cut, not only a crash.

A rename (`os.replace`) is atomic: readers see the old file or the new one.
It is not durable: after a power cut the new name can point at a file whose
data never reached the disk. Training states, checkpoints and `weights.lock`
are what hours of work and a user's trust rest on, so they are flushed first.
Kept apart from `imgen.checkpoints` so that `imgen weights` can use it
without importing torch.
"""

from __future__ import annotations

import os
from pathlib import Path


def durable_replace(temp_name: str | os.PathLike[str], target: Path) -> None:
    """Flush `temp_name` to disk, rename it to `target`, and flush the rename in its folder."""
    with open(temp_name, "rb") as stream:
        os.fsync(stream.fileno())
    os.replace(temp_name, target)
    try:
        folder = os.open(target.parent if str(target.parent) else ".", os.O_RDONLY)
    except OSError:  # a platform or file system without folder handles: the rename is still atomic
        return
    try:
        os.fsync(folder)
    except OSError:
        pass
    finally:
        os.close(folder)
