"""The examples of a scanned folder (`imgen.folder_data`) in training order, as image tensors.

Images of any size are composited on white (if they have transparency),
centre-cropped to a square and resized to the model size at load time.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from imgen.folder_data import FolderItem


def load_training_image(path: Path, size: int) -> torch.Tensor:
    """One user image -> uint8 (3, size, size): alpha composited on white, centre-cropped, resized."""
    from PIL import Image, ImageOps

    from imgen.io import load_image

    image = load_image(path)
    if image.mode in ("RGBA", "LA", "P", "PA"):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    image = ImageOps.fit(image.convert("RGB"), (size, size), method=Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)


class FolderExamples:
    """Seeded, endless, resumable order over a folder's usable examples.

    Position p is example p % n of epoch p // n, each epoch shuffled with its
    own seed, so "the examples of global positions p..p+B-1" means the same
    thing in a resumed run and in every process of a distributed run.
    """

    def __init__(self, items: list[FolderItem], seed: int, size: int) -> None:
        if not items:
            raise ValueError("the folder has no usable examples")
        self.items, self.seed, self.size = items, seed, size
        self._epoch, self._order = -1, list(range(len(items)))
        self.skipped: set[Path] = set()  # images that broke after the scan (deleted, rewritten, unreadable)

    def item(self, position: int) -> FolderItem:
        epoch, offset = divmod(position, len(self.items))
        if epoch != self._epoch:
            self._order = list(range(len(self.items)))
            random.Random(f"imgen-folder/{self.seed}/{epoch}").shuffle(self._order)
            self._epoch = epoch
        return self.items[self._order[offset]]

    def batch(self, positions: range) -> tuple[torch.Tensor, list[str]]:
        """uint8 (B, 3, size, size) and captions ("" where there is none) of these global positions."""
        loaded = [self._example(p) for p in positions]
        return torch.stack([image for image, _ in loaded]), [item.caption or "" for _, item in loaded]

    def _example(self, position: int) -> tuple[torch.Tensor, FolderItem]:
        """The example at `position`; one whose file broke since the scan gives way to the next that loads.

        Why not fail: a run of hours must not stop because one file was
        deleted or rewritten while it ran. The stand-in depends only on the
        position and the broken files, so a resumed run sees the same.
        """
        from imgen.io import ImageInputError

        for offset in range(len(self.items)):
            item = self.item(position + offset)
            if item.path in self.skipped:
                continue
            try:
                return load_training_image(item.path, self.size), item
            except (ImageInputError, OSError, ValueError) as error:
                self.skipped.add(item.path)
                print(f"imgen: warning: {item.path} can no longer be read; skipped ({error})", file=sys.stderr)
        raise ValueError("no image of the folder can be read any more")

    def batches(self, start: int, batch_size: int) -> Iterator[torch.Tensor]:
        """Image-only batches from position `start` (what the image tokenizer trains on)."""
        position = start
        while True:
            yield self.batch(range(position, position + batch_size))[0]
            position += batch_size
