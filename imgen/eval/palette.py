"""The vocabulary's colours as each style shows them, and the colour a blob is painted with.

Styles repaint everything (night dims and tints blue, pastel washes towards
white, sketch keeps 30 % of a colour on paper), so "is this red?" has a
different answer per style. The styled palette is computed by running the
world's own style functions on a solid patch, which keeps it right if a style
changes. Reading a blob's colour is then a question of which styled colour,
blended with the background as edges, rings and blur blend it, explains the
blob's strongest pixels.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from imgen.world import styles, vocab

if TYPE_CHECKING:
    from imgen.eval.segment import Blob

SKETCH_PENCIL = (45, 45, 55)
"""The pencil colour of the sketch style's edges (see `imgen.world.styles.sketch`)."""


@lru_cache(maxsize=256)
def style_color(style: str, rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """What a solid area of colour `rgb` looks like after `style` (the inside of a large filled item).

    Outline and pixel keep an item's colour (outline only draws its edge), so
    they map to the colour itself. For the others the style function is run on
    a small solid patch, so this stays true if the styles change.
    """
    if style in ("outline", "pixel"):
        return (float(rgb[0]), float(rgb[1]), float(rgb[2]))
    size = 32
    background = Image.new("RGB", (size, size), (255, 255, 255))
    items = Image.new("RGBA", (size, size), (*rgb, 255))
    pixel = styles.apply(style, background, items).getpixel((size // 2, size // 2))
    return (float(pixel[0]), float(pixel[1]), float(pixel[2]))


@lru_cache(maxsize=64)
def style_palette(style: str) -> tuple[tuple[str, ...], np.ndarray]:
    """Colour names and their styled RGB values (N x 3), for nearest-colour classification."""
    names = tuple(vocab.COLORS)
    values = np.array([style_color(style, vocab.COLORS[name]) for name in names], dtype=np.float32)
    values.setflags(write=False)
    return names, values


def paint_of(pixels: np.ndarray, distance: np.ndarray, blob: Blob, style: str) -> np.ndarray:
    """The colour a blob is painted with, as RGB: the median of its strongest pixels.

    Edges are blends with the background, so only the pixels that differ most
    from it (the top half by distance) vote. A sketch outlines everything in
    dark pencil, so there the pencil pixels are set aside and the light wash
    inside carries the colour.
    """
    x0, y0, x1, y1 = blob.box
    crop = pixels[y0:y1, x0:x1][blob.mask]
    strength = distance[y0:y1, x0:x1][blob.mask]
    if style == "sketch":
        pencil = np.linalg.norm(crop - np.array(SKETCH_PENCIL, dtype=np.float32), axis=-1) < 60
        if (~pencil).sum() >= max(3, 0.1 * len(crop)):
            crop, strength = crop[~pencil], strength[~pencil]
    cut = np.quantile(strength, 0.5)
    return np.median(crop[strength >= cut], axis=0)


def candidate_colors(paint: np.ndarray, backdrop: np.ndarray, style: str, count: int = 3) -> list[str]:
    """The vocabulary colours that best explain `paint` as that colour blended with the backdrop.

    A thin outline ring, a small or blurred shape never shows its colour at
    full strength: a half-covered red pixel on white is pink-ish, a half black
    one is gray. Each colour is scored by how far `paint` lies from the line
    between the backdrop and the styled colour; the best few are tried as
    templates and the drawing decides.
    """
    names, palette = style_palette(style)
    direction = palette - backdrop[None, :]
    length = np.maximum((direction**2).sum(axis=1), 1e-6)
    alpha = np.clip(((paint - backdrop)[None, :] * direction).sum(axis=1) / length, 0.0, 1.0)
    residual = np.linalg.norm(backdrop[None, :] + alpha[:, None] * direction - paint[None, :], axis=1)
    # A colour the paint barely moves towards explains nothing; weigh the residual by the reach left over.
    score = residual + 0.25 * (1.0 - alpha) * np.sqrt(length)
    return [names[i] for i in np.argsort(score)[:count]]
