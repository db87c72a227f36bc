"""Styles: deterministic transforms of a scene's two layers.

Each style takes the background (RGB) and the items (RGBA) of one scene and
returns the final RGB image. Because a style never moves anything, the same
scene rendered in two styles is a restyle training pair with identical layout.

- flat:    items composited as drawn (the default look).
- outline: only a ring along each item's edge keeps its colour; insides show the background.
- pixel:   the flat image reduced to blocks of 4 px (at 128 px) with a reduced palette.
- night:   dark blue background, items dimmed and tinted blue.
- pastel:  items and background washed towards white.
- sketch:  dark pencil edges on paper, with a light wash of the items' colours.
"""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image, ImageChops, ImageFilter, ImageOps

from imgen.world import vocab


def apply(style: str, background: Image.Image, items: Image.Image) -> Image.Image:
    """Return the RGB image of `items` over `background` in `style`."""
    try:
        transform = _STYLES[style]
    except KeyError:
        raise ValueError(f"unknown style {style!r}; choose one of {', '.join(vocab.STYLES)}") from None
    return transform(background, items)


def _composite(background: Image.Image, items: Image.Image) -> Image.Image:
    base = background.convert("RGBA")
    base.alpha_composite(items)
    return base.convert("RGB")


def flat(background: Image.Image, items: Image.Image) -> Image.Image:
    return _composite(background, items)


def outline(background: Image.Image, items: Image.Image) -> Image.Image:
    size = background.width
    width = max(3, size // 40) | 1  # odd filter size; about 3 px rings at 128 px
    alpha = items.getchannel("A")
    inner = alpha.filter(ImageFilter.MinFilter(width))
    ring = ImageChops.subtract(alpha, inner)
    ringed = items.copy()
    ringed.putalpha(ring)
    return _composite(background, ringed)


def pixel(background: Image.Image, items: Image.Image) -> Image.Image:
    image = _composite(background, items)
    block = max(2, image.width // 32)
    small = image.resize((image.width // block, image.height // block), Image.Resampling.BOX)
    small = small.quantize(colors=24, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).convert("RGB")
    return small.resize(image.size, Image.Resampling.NEAREST)


def night(background: Image.Image, items: Image.Image) -> Image.Image:
    sky = Image.new("RGB", background.size, (12, 18, 52))
    dark_bg = Image.blend(sky, background, 0.18)
    r, g, b, a = items.split()
    tint = Image.merge(
        "RGBA",
        (r.point(lambda v: v * 62 // 100), g.point(lambda v: v * 66 // 100), b.point(lambda v: 30 + v * 70 // 100), a),
    )
    return _composite(dark_bg, tint)


def pastel(background: Image.Image, items: Image.Image) -> Image.Image:
    white = Image.new("RGB", background.size, (255, 255, 255))
    soft_bg = Image.blend(background, white, 0.5)
    rgb = Image.blend(items.convert("RGB"), white, 0.45)
    soft_items = rgb.convert("RGBA")
    soft_items.putalpha(items.getchannel("A"))
    return _composite(soft_bg, soft_items)


def sketch(background: Image.Image, items: Image.Image) -> Image.Image:
    flat_image = _composite(background, items)
    gray = ImageOps.grayscale(flat_image)
    edges = gray.filter(ImageFilter.FIND_EDGES).point(lambda v: 255 if v > 24 else v * 8)
    edges = ImageOps.expand(ImageOps.crop(edges, 1), 1, fill=0)  # the filter sees a false edge at the border
    edges = edges.filter(ImageFilter.MaxFilter(3)) if background.width >= 192 else edges
    paper = Image.new("RGB", background.size, (246, 242, 232))
    wash = Image.blend(paper, flat_image, 0.3)
    pencil = Image.new("RGB", background.size, (45, 45, 55))
    return Image.composite(pencil, wash, edges)


_STYLES: dict[str, Callable[[Image.Image, Image.Image], Image.Image]] = {
    "flat": flat,
    "outline": outline,
    "pixel": pixel,
    "night": night,
    "pastel": pastel,
    "sketch": sketch,
}
