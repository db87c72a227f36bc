"""Run-time access to the bundled sticker sprites and text font.

The world must render the same pixels on every machine, so it never asks the
system for fonts: the sticker sprites (an atlas built by
`imgen.world.build_atlas`) and DejaVu Sans Bold ship inside the package and are
read through `importlib.resources`, which also works from a zipped install.
Everything is loaded lazily and cached, because the renderer asks for the same
sprite and font sizes thousands of times while building a data set.
"""

from __future__ import annotations

import io
import json
from functools import lru_cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageFont

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

ATLAS_PNG = "stickers.png"
ATLAS_JSON = "stickers.json"
TEXT_FONT = "DejaVuSans-Bold.ttf"


def _asset(name: str) -> Traversable:
    """Locate a bundled asset file inside the installed package."""
    return files("imgen.world") / "assets" / name


@lru_cache(maxsize=1)
def atlas_index() -> dict[str, Any]:
    """The atlas index: cell size, source font, and each sticker's [x, y, w, h] cell."""
    return json.loads(_asset(ATLAS_JSON).read_text(encoding="utf-8"))


def _cells() -> dict[str, list[int]]:
    """Sticker name -> its [x, y, w, h] cell in the atlas."""
    return atlas_index()["stickers"]


@lru_cache(maxsize=1)
def _atlas() -> Image.Image:
    """The whole sprite atlas, decoded once."""
    with Image.open(io.BytesIO(_asset(ATLAS_PNG).read_bytes())) as image:
        return image.convert("RGBA")


def sticker_names() -> tuple[str, ...]:
    """Names of the stickers in the atlas, in atlas order."""
    return tuple(_cells())


@lru_cache(maxsize=512)
def sticker(name: str, size: int) -> Image.Image:
    """The RGBA sprite of sticker `name`, `size` x `size` pixels.

    The sprite fills the square edge to edge along its longer side and is
    transparent elsewhere. It is cached and shared between callers: treat it as
    read-only (paste or composite it; copy it before drawing on it).
    """
    cells = _cells()
    if name not in cells:
        raise KeyError(f"unknown sticker {name!r}; known stickers: {', '.join(cells)}")
    if size < 1:
        raise ValueError(f"sticker size must be at least 1 pixel, got {size}")
    x, y, w, h = cells[name]
    sprite = _atlas().crop((x, y, x + w, y + h))
    if sprite.size == (size, size):
        return sprite
    # Pillow resizes RGBA in premultiplied form, so edges keep their colour.
    return sprite.resize((size, size), Image.Resampling.LANCZOS)


@lru_cache(maxsize=1)
def _font_bytes() -> bytes:
    """The bundled text font file, read once."""
    return _asset(TEXT_FONT).read_bytes()


@lru_cache(maxsize=256)
def font(size: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans Bold at `size` pixels: covers Latin, Greek, Cyrillic and digits."""
    if size < 1:
        raise ValueError(f"font size must be at least 1 pixel, got {size}")
    return ImageFont.truetype(io.BytesIO(_font_bytes()), size)
