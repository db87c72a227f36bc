"""A streaming PyTorch dataset over the world: seeded, infinite, worker- and rank-safe.

Example `i` is always the same image and caption (see `examples.py`); the
stream only decides which indices a consumer sees. Each DataLoader worker of
each distributed rank takes a disjoint arithmetic progression of indices, so
no example is seen twice per pass and adding workers never changes the data.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from imgen.world.examples import make_example, render_example, render_example_restyled, style_only_caption
from imgen.world.text_regions import text_mask


class WorldStream(IterableDataset):
    """Yields `{"image": uint8 (3, H, W), "caption": str, "index": int}` forever (or `limit` items)."""

    def __init__(
        self,
        seed: int = 0,
        split: str = "train",
        size: int = 128,
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
        limit: int | None = None,
    ) -> None:
        super().__init__()
        self.seed, self.split, self.size = seed, split, size
        self.start, self.rank, self.world_size, self.limit = start, rank, world_size, limit

    def indices(self) -> Iterator[int]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        stride = self.world_size * workers
        offset = self.rank * workers + worker
        index = self.start + offset
        produced = 0
        while self.limit is None or index < self.start + self.limit:
            yield index
            index += stride
            produced += 1

    def __iter__(self) -> Iterator[dict]:
        for index in self.indices():
            image, example = render_example(self.seed, index, self.split, self.size)
            pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
            yield {"image": pixels, "caption": example.caption, "index": index}


class WorldExamples:
    """Training scenes by global stream index: `batch(positions)` gives uint8 (B, 3, H, W) images and captions.

    Random access by position (rather than a stream) lets each process of a
    distributed run render exactly its slice of a global batch.
    """

    def __init__(self, seed: int, size: int, split: str = "train") -> None:
        self.seed, self.size, self.split = seed, size, split

    def batch(self, positions: range) -> tuple[torch.Tensor, list[str]]:
        images, captions = [], []
        for index in positions:
            image, example = render_example(self.seed, index, self.split, self.size)
            images.append(np.asarray(image, dtype=np.uint8))
            captions.append(example.caption)
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2), captions

    def text_masks(self, positions: range) -> torch.Tensor:
        """bool (B, 1, H, W): where the scenes at `positions` have letters (`imgen.world.text_regions`)."""
        masks = [text_mask(make_example(self.seed, index, self.split).scene, self.size) for index in positions]
        return torch.from_numpy(np.stack(masks))[:, None]

    def style_caption(self, position: int, frame: int) -> str:
        """The scene at `position` captioned by its style alone (`imgen.world.examples.style_only_caption`)."""
        return style_only_caption(self.seed, position, frame, self.split)

    def restyled(self, positions: list[int], picks: list[int]) -> torch.Tensor:
        """uint8 (B, 3, H, W): the scenes at `positions`, each in the `picks`-th style other than its own
        (`imgen.world.examples.other_styles`): the references of restyle pairs."""
        images = [
            np.asarray(render_example_restyled(self.seed, index, pick, self.split, self.size), dtype=np.uint8)
            for index, pick in zip(positions, picks, strict=True)
        ]
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
