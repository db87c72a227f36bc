"""Edit exactness: over 200 (image, mask) pairs, how many kept pixels change? The answer must be 0.

    python -m benchmarks.edit_exactness [--pairs 200] [--model default]

Pairs cover sizes from 64x64 to 1024x768 and beyond (square, wide, tall, odd),
world scenes and noisy photos, and every mask kind the editor reads: blobs,
rectangles, thin strokes, RGBA masks (transparent = regenerate), the image's
own transparency, and soft grey masks; `grow` and `feather` vary too. A pixel
counts as kept when the mask, as read (before `grow`), does not mark it, and it
must come back byte-identical in every channel.

Exactness is a property of the compositing, not of the weights, so by default
the model is a tiny random one (fast, and no checkpoint needed); `--model`
runs the same pairs through a real checkpoint. The seam figures (see
`imgen.masks.seam_step`) are only meaningful with a trained model.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter

import numpy as np
import torch
from PIL import Image, ImageDraw

from benchmarks.common import write_result
from imgen.api import Pipeline, load
from imgen.editing import edit
from imgen.masks import seam_step
from imgen.model import Generator, GPTConfig
from imgen.sampler import SamplerConfig
from imgen.text import PromptEncoder, train_text_tokenizer
from imgen.tokenizer.config import VQ_SIZES
from imgen.tokenizer.model import VQTokenizer
from imgen.world.ground_truth import render_prompt

SIZES = [(64, 64), (128, 128), (1024, 768), (768, 1024), (97, 211), (333, 150), (640, 480), (50, 300), (1500, 1000)]
KINDS = ["blobs", "rectangle", "strokes", "alpha-mask", "transparency", "soft"]
PROMPTS = [
    "a red circle",
    "a blue square in the top left",
    "a cat left of a tree",
    "two purple hearts on a black background",
    "a yellow star in pixel art style",
]


def tiny_pipeline() -> Pipeline:
    """Random weights at the smallest sizes: exercises every code path of an edit in milliseconds."""
    torch.manual_seed(0)
    tokenizer = VQTokenizer(VQ_SIZES["tiny"]).eval()
    prompts = PromptEncoder(train_text_tokenizer(PROMPTS), max_length=16)
    config = GPTConfig(
        text_vocab=prompts.vocab_size,
        coarse_vocab=tokenizer.coarse_vocab,
        detail_vocab=tokenizer.detail_vocab,
        text_len=16,
        d_model=32,
        n_layers=2,
        n_heads=4,
    )
    return Pipeline(tokenizer, Generator(config).eval(), prompts, "tiny-random", "-", SamplerConfig(coarse_steps=4))


def source_image(index: int, width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """A world scene stretched to the size, or a noisy gradient 'photo' where every pixel is distinct."""
    if (index // len(KINDS)) % 2 == 0:  # not `index % 2`: that would tie each mask kind to one kind of image
        scene = render_prompt(PROMPTS[index % len(PROMPTS)], seed=index, size=128).image
        return scene.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
    ramp = np.linspace(0, 140, width)[None, :, None] + np.linspace(0, 90, height)[:, None, None]
    pixels = ramp + rng.integers(0, 26, (height, width, 3))
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def random_pair(index: int) -> tuple[str, Image.Image, Image.Image | None, np.ndarray]:
    """(kind, image, mask argument, expected regenerate-mask) for pair `index`."""
    rng = np.random.default_rng(index)
    kind = KINDS[index % len(KINDS)]
    width, height = SIZES[(index // len(KINDS)) % len(SIZES)]
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    if kind == "rectangle":
        x0, y0 = int(rng.integers(0, width - 1)), int(rng.integers(0, height - 1))
        draw.rectangle((x0, y0, int(rng.integers(x0, width)), int(rng.integers(y0, height))), fill=255)
    elif kind == "strokes":
        for _ in range(int(rng.integers(1, 5))):
            points = [(int(rng.integers(0, width)), int(rng.integers(0, height))) for _ in range(4)]
            draw.line(points, fill=255, width=int(rng.integers(1, 4)))
    else:
        for _ in range(int(rng.integers(1, 5))):
            cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
            rx, ry = int(rng.integers(2, max(3, width // 4))), int(rng.integers(2, max(3, height // 4)))
            draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=255)
    levels = np.asarray(canvas)
    expected = levels >= 128
    image = source_image(index, width, height, rng)
    if kind == "alpha-mask":
        rgba = np.zeros((height, width, 4), dtype=np.uint8)
        rgba[..., 3] = 255 - levels
        return kind, image, Image.fromarray(rgba, "RGBA"), expected
    if kind == "transparency":
        rgba = np.array(image.convert("RGBA"))
        rgba[..., 3] = np.where(expected, rng.integers(0, 128, expected.shape), rng.integers(128, 256, expected.shape))
        return kind, Image.fromarray(rgba, "RGBA"), None, expected
    if kind == "soft":
        soft = np.where(expected, rng.integers(128, 256, levels.shape), rng.integers(0, 128, levels.shape))
        return kind, image, Image.fromarray(soft.astype(np.uint8), "L"), expected
    return kind, image, canvas, expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--model", default=None, help="a checkpoint (default: a tiny random model)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pipe = tiny_pipeline() if args.model is None else load(args.model)
    changed_pixels, failed_pairs, kept_pixels = 0, 0, 0
    kinds: Counter[str] = Counter()
    seconds: list[float] = []
    seams: list[tuple[float, float]] = []
    for index in range(args.pairs):
        kind, image, mask, expected = random_pair(index)
        rng = np.random.default_rng(10_000 + index)
        grow, feather = int(rng.integers(0, 16)), int(rng.integers(0, 8))
        start = time.perf_counter()
        result = edit(pipe, image, mask, PROMPTS[index % len(PROMPTS)], grow=grow, feather=feather, seed=index)
        seconds.append(time.perf_counter() - start)
        if not np.array_equal(result.mask, expected):
            raise SystemExit(f"pair {index} ({kind}): the mask was read differently from what was drawn")
        before, after = np.asarray(image), np.asarray(result.image)
        differing = int(np.count_nonzero((before != after).any(-1)[~expected]))
        changed_pixels += differing
        failed_pairs += differing > 0
        kept_pixels += int((~expected).sum())
        kinds[kind] += 1
        seams.append(seam_step(image, result.image, expected))

    border = [b for b, _ in seams if not np.isnan(b)]
    interior = [i for _, i in seams if not np.isnan(i)]
    result = {
        "model": pipe.name,
        "pairs": args.pairs,
        "pairs_by_mask_kind": dict(sorted(kinds.items())),
        "sizes": [f"{w}x{h}" for w, h in SIZES],
        "kept_pixels_checked": kept_pixels,
        "kept_pixels_changed": changed_pixels,
        "pairs_with_any_change": failed_pairs,
        "median_seconds_per_edit": round(statistics.median(seconds), 3),
        "mean_border_step": round(statistics.mean(border), 2) if border else None,
        "mean_interior_step": round(statistics.mean(interior), 2) if interior else None,
    }
    path = write_result("edit_exactness", result)
    print(
        f"edit exactness ({pipe.name}): {changed_pixels} of {kept_pixels} kept pixels changed, "
        f"{failed_pairs} of {args.pairs} pairs affected -> {path}"
    )
    if changed_pixels:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
