"""Build the sticker sprite atlas from the Noto Color Emoji font.

Run as ``python -m imgen.world.build_atlas [--font PATH] [--out DIR]``.

The renderer must not depend on whatever emoji font a user's machine has (or
lacks), so every sticker in `vocab.STICKERS` is rendered once, here, into a
single PNG atlas that ships with the package (`imgen.world.assets` reads it).
The output is byte-deterministic for a given font file and Pillow build, so a
rebuild that changes nothing shows no diff.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFont

from imgen.world import vocab

DEFAULT_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
DEFAULT_OUT = Path(__file__).resolve().parent / "assets"
ATLAS_PNG = "stickers.png"
ATLAS_JSON = "stickers.json"

# Noto Color Emoji is a bitmap (CBDT) font with strikes at 109 px only; FreeType
# refuses any other size.
FONT_SIZE = 109
# Side of one atlas cell. Large enough that the biggest sticker in a 128 px
# image (drawn at 2x supersampling) is a downscale, small enough to keep the
# atlas a few hundred kilobytes.
CELL = 96
# A missing code point lays out as .notdef; this one is private-use and never
# in the font, so it shows what "missing" looks like.
MISSING_CHARACTER = "\U0010fffd"


class AtlasError(RuntimeError):
    """A sticker could not be rendered from the given font."""


def render_glyph(font: ImageFont.FreeTypeFont, text: str) -> Image.Image:
    """Render `text` in colour on a transparent canvas roomy enough that nothing is clipped."""
    canvas = Image.new("RGBA", (FONT_SIZE * 3, FONT_SIZE * 3), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((FONT_SIZE, FONT_SIZE), text, font=font, embedded_color=True)
    return canvas


def crop_to_ink(glyph: Image.Image) -> Image.Image:
    """Crop a rendered glyph to its alpha bounding box, so every sticker fills its cell alike."""
    box = glyph.getchannel("A").getbbox()
    if box is None:
        raise AtlasError("empty glyph")
    if box[0] == 0 or box[1] == 0 or box[2] == glyph.width or box[3] == glyph.height:
        raise AtlasError("glyph touches the canvas edge and may be clipped")
    return glyph.crop(box)


def pad_to_square(image: Image.Image) -> Image.Image:
    """Centre `image` on a transparent square, so resizing keeps its aspect ratio."""
    side = max(image.size)
    square = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return square


def clear_transparent(image: Image.Image) -> Image.Image:
    """Set the colour of fully transparent pixels to zero.

    Their colour is invisible but would bleed into neighbours under a
    straight-alpha resize (dark or stray fringes) and makes the PNG larger.
    """
    alpha = image.getchannel("A")
    opaque_mask = alpha.point(lambda a: 255 if a else 0)
    cleared = Image.new("RGBA", image.size, (0, 0, 0, 0))
    cleared.paste(image, (0, 0), opaque_mask)
    return cleared


def to_sprite(glyph: Image.Image, cell: int = CELL) -> Image.Image:
    """Turn a rendered glyph into a `cell` x `cell` sprite.

    Pillow resizes RGBA images in premultiplied form, so edge pixels keep their
    true colour instead of picking up the transparent background's.
    """
    square = pad_to_square(crop_to_ink(glyph))
    sprite = square.resize((cell, cell), Image.Resampling.LANCZOS)
    return clear_transparent(sprite)


def describe(text: str) -> str:
    """Spell out code points ('U+2600 U+FE0F'), for error messages and the atlas index."""
    return " ".join(f"U+{ord(ch):04X}" for ch in text)


def render_sticker(font: ImageFont.FreeTypeFont, name: str, text: str, missing: Image.Image) -> Image.Image:
    """Render one sticker, failing loudly if the font does not have it."""
    glyph = render_glyph(font, text)
    if glyph.getchannel("A").getbbox() is None or ImageChops.difference(glyph, missing).getbbox() is None:
        raise AtlasError(f"sticker {name!r} ({describe(text)}) is not in the font: it renders empty or as .notdef")
    try:
        return to_sprite(glyph)
    except AtlasError as error:
        raise AtlasError(f"sticker {name!r} ({describe(text)}): {error}") from error


def grid_shape(count: int) -> tuple[int, int]:
    """Columns and rows of a near-square grid holding `count` cells."""
    columns = max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / columns))
    return columns, rows


def build_atlas(font_path: Path, stickers: dict[str, str]) -> tuple[Image.Image, dict[str, object]]:
    """Render `stickers` (name -> text) into one atlas image and its index."""
    font = ImageFont.truetype(str(font_path), FONT_SIZE)
    missing = render_glyph(font, MISSING_CHARACTER)
    columns, rows = grid_shape(len(stickers))
    atlas = Image.new("RGBA", (columns * CELL, rows * CELL), (0, 0, 0, 0))
    cells: dict[str, list[int]] = {}
    for index, (name, text) in enumerate(stickers.items()):
        x, y = (index % columns) * CELL, (index // columns) * CELL
        atlas.paste(render_sticker(font, name, text, missing), (x, y))
        cells[name] = [x, y, CELL, CELL]
    index_data: dict[str, object] = {
        "cell": CELL,
        "font": font_path.name,
        "font_size": FONT_SIZE,
        "stickers": cells,
        "codepoints": {name: describe(text) for name, text in stickers.items()},
    }
    return atlas, index_data


def write_atlas(atlas: Image.Image, index_data: dict[str, object], out_dir: Path) -> tuple[Path, Path]:
    """Write the atlas PNG and JSON with fixed settings, so the bytes depend on the pixels alone."""
    out_dir.mkdir(parents=True, exist_ok=True)
    png_path, json_path = out_dir / ATLAS_PNG, out_dir / ATLAS_JSON
    atlas.save(png_path, format="PNG", optimize=False, compress_level=9)
    json_path.write_text(json.dumps(index_data, indent=2, ensure_ascii=True) + "\n", encoding="utf-8")
    return png_path, json_path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options: the emoji font and the output folder."""
    parser = argparse.ArgumentParser(
        prog="python -m imgen.world.build_atlas", description="Build the sticker sprite atlas from Noto Color Emoji."
    )
    parser.add_argument("--font", type=Path, default=DEFAULT_FONT, help=f"emoji font file (default {DEFAULT_FONT})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: the package assets)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build and write the atlas; return a process exit status."""
    args = parse_args(argv)
    if not args.font.is_file():
        print(f"error: emoji font not found: {args.font} (pass --font PATH)", file=sys.stderr)
        return 2
    try:
        atlas, index_data = build_atlas(args.font, vocab.STICKERS)
    except AtlasError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    png_path, json_path = write_atlas(atlas, index_data, args.out)
    print(f"wrote {png_path} ({atlas.width}x{atlas.height}, {png_path.stat().st_size} bytes) and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
