"""The streaming dataset: deterministic, sharded without overlap across workers and ranks."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import DataLoader

from imgen.world import vocab
from imgen.world.dataset import WorldExamples, WorldStream
from imgen.world.examples import make_example, other_styles
from imgen.world.render import render


def _indices(stream, n):
    return [item["index"] for item in itertools.islice(stream, n)]


def test_stream_yields_uint8_images_and_captions():
    item = next(iter(WorldStream(seed=0, size=64)))
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 64, 64)
    assert isinstance(item["caption"], str) and item["caption"]


def test_ranks_take_disjoint_indices_that_cover_the_stream():
    ranks = [_indices(WorldStream(rank=r, world_size=3, size=32), 4) for r in range(3)]
    flat = sorted(i for r in ranks for i in r)
    assert flat == list(range(12))


def test_workers_split_the_stream_and_give_the_same_images():
    single = list(WorldStream(seed=4, size=32, limit=6))
    loader = DataLoader(WorldStream(seed=4, size=32, limit=6), batch_size=None, num_workers=2)
    multi = sorted(loader, key=lambda item: item["index"])
    assert [m["index"] for m in multi] == list(range(6))
    for a, b in zip(single, multi, strict=True):
        assert torch.equal(a["image"], b["image"]) and a["caption"] == b["caption"]


def test_a_restyle_reference_is_the_same_scene_in_a_style_other_than_its_own():
    examples = WorldExamples(seed=0, size=64)
    positions = list(range(12))
    images, _ = examples.batch(range(12))
    picks = [index % 5 for index in positions]
    restyled = examples.restyled(positions, picks)
    assert restyled.shape == images.shape and restyled.dtype == torch.uint8
    for index, pick in zip(positions, picks, strict=True):
        scene = make_example(0, index).scene
        style = other_styles(scene.style)[pick]
        assert style != scene.style and len(other_styles(scene.style)) == len(vocab.STYLES) - 1
        drawn = render(replace(scene, style=style), 64)  # the same items, only the style changed
        assert torch.equal(restyled[index], torch.from_numpy(np.asarray(drawn)).permute(2, 0, 1))
        assert not torch.equal(restyled[index], images[index])


def test_text_masks_are_the_letters_of_the_scenes_of_the_batch_at_the_same_positions():
    from imgen.world.text_regions import text_mask

    examples = WorldExamples(seed=0, size=64)
    masks = examples.text_masks(range(5, 17))
    assert masks.shape == (12, 1, 64, 64) and masks.dtype == torch.bool
    has_text = [any(item.kind == "text" for item in make_example(0, index).scene.items) for index in range(5, 17)]
    assert any(has_text) and not all(has_text)
    for row, index in enumerate(range(5, 17)):
        expected = text_mask(make_example(0, index).scene, 64)
        assert np.array_equal(masks[row, 0].numpy(), expected) and expected.any() == has_text[row]
