"""Ground truth for users: render a prompt exactly, and show what the world looks like.

`render_prompt` is what `imgen world render` calls: parse the prompt, lay it out
with a seed, draw it. `sample_grid` is `imgen world sample`: a contact sheet of
random training scenes with their captions, so a user can see what the bundled
model was taught.
"""

from __future__ import annotations

import random
import textwrap
from dataclasses import dataclass

from PIL import Image, ImageDraw

from imgen.world import assets
from imgen.world.examples import render_example
from imgen.world.layout import layout
from imgen.world.parser import parse
from imgen.world.render import render
from imgen.world.scene import Scene
from imgen.world.spec import SceneSpec


@dataclass(frozen=True)
class Rendered:
    image: Image.Image
    spec: SceneSpec
    scene: Scene


def render_prompt(prompt: str, seed: int = 0, size: int = 128, style: str | None = None) -> Rendered:
    """Parse `prompt` (raising `SpecError` on bad input) and draw one layout of it."""
    spec = parse(prompt)
    if style is not None:
        spec = SceneSpec(spec.groups, spec.texts, spec.relations, spec.background, style, spec.unknown_words)
        spec.validate()
    scene = layout(spec, random.Random(f"imgen-render/{seed}"))
    return Rendered(image=render(scene, size), spec=spec, scene=scene)


def sample_grid(count: int = 16, seed: int = 0, split: str = "train", size: int = 128, columns: int = 4) -> Image.Image:
    """A contact sheet of `count` world examples, each with its caption underneath."""
    if count < 1:
        raise ValueError("count must be at least 1")
    columns = max(1, min(columns, count))
    rows = (count + columns - 1) // columns
    caption_font = assets.font(max(9, size // 12))
    line_height = caption_font.size + 3
    chars_per_line = max(12, int(size / (caption_font.size * 0.62)))
    lines_per_caption = 5
    cell_w, cell_h = size + 8, size + 8 + lines_per_caption * line_height
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for n in range(count):
        image, example = render_example(seed, n, split, size)
        x, y = (n % columns) * cell_w + 4, (n // columns) * cell_h + 4
        sheet.paste(image, (x, y))
        lines = textwrap.wrap(example.caption, chars_per_line)[:lines_per_caption]
        for k, line in enumerate(lines):
            draw.text((x, y + size + 2 + k * line_height), line, font=caption_font, fill=(20, 20, 20))
    return sheet
