"""The README's grid of real outputs: fixed prompts, fixed seeds, bundled checkpoint.

    python -m benchmarks.sample_grid [--model default] [--out docs/samples.png] [--coarse-steps N]

Each cell is the generated image with its prompt underneath and, to its right,
the ground-truth render of the same prompt, so a reader can see what was asked.
"""

from __future__ import annotations

import argparse
import textwrap
from dataclasses import replace
from pathlib import Path

from PIL import Image, ImageDraw

from imgen.api import load
from imgen.world import assets
from imgen.world.ground_truth import render_prompt

PROMPTS = (
    "a red circle",
    "a blue square in the top left",
    "a yellow star in the bottom right",
    "a green triangle on a black background",
    "two purple hearts",
    "a cat",
    "a pizza in the center",
    "three orange diamonds",
    "a car left of a tree",
    'the word "HI"',
    "a pink circle above a blue square",
    "a rocket in pixel art style",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--out", type=Path, default=Path("docs/samples.png"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--columns", type=int, default=4)
    parser.add_argument("--coarse-steps", type=int, default=None, help="coarse steps (default: the sampler's)")
    args = parser.parse_args()

    pipe = load(args.model)
    size = pipe.image_size
    sampler = replace(pipe.sampler, coarse_steps=args.coarse_steps or pipe.sampler.coarse_steps)
    images = pipe.generate(list(PROMPTS), seeds=[args.seed + i for i in range(len(PROMPTS))], sampler=sampler)
    font = assets.font(11)
    caption_height = 30
    cell_w, cell_h = 2 * size + 6, size + caption_height
    rows = (len(PROMPTS) + args.columns - 1) // args.columns
    sheet = Image.new("RGB", (args.columns * (cell_w + 8), rows * (cell_h + 8)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (prompt, image) in enumerate(zip(PROMPTS, images, strict=True)):
        x, y = (i % args.columns) * (cell_w + 8), (i // args.columns) * (cell_h + 8)
        sheet.paste(image, (x, y))
        sheet.paste(render_prompt(prompt, seed=args.seed + i, size=size).image, (x + size + 6, y))
        lines = textwrap.wrap(prompt, width=2 * size // 6)[:2]
        for j, line in enumerate(lines):
            draw.text((x, y + size + 2 + 13 * j), line, fill="black", font=font)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"{args.out}: {len(PROMPTS)} prompts, left generated, right ground truth")


if __name__ == "__main__":
    main()
