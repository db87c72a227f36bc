"""Behaviour of the bundled assets: sticker sprites from the atlas and the text font."""

from __future__ import annotations

import itertools
import json
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFont

from imgen.world import assets, build_atlas, vocab
from tests.system_deps import needs

SIZES = (8, 33, 96, 160)
PRIVATE_USE = "\ue000"  # never in the font: renders as the .notdef box ("tofu")
SYSTEM_EMOJI_FONT = build_atlas.DEFAULT_FONT


def _alpha(image: Image.Image) -> np.ndarray:
    return np.asarray(image.getchannel("A"), dtype=np.int32)


def _glyph(font: ImageFont.FreeTypeFont, char: str) -> tuple[tuple[int, int], bytes]:
    mask = font.getmask(char)
    return mask.size, bytes(mask)


def test_atlas_lists_exactly_the_vocabulary_stickers():
    index = json.loads((files("imgen.world") / "assets" / "stickers.json").read_text(encoding="utf-8"))
    assert list(index["stickers"]) == list(vocab.STICKERS)
    assert assets.sticker_names() == tuple(vocab.STICKERS)


def test_atlas_was_built_from_the_current_code_points():
    # A sticker whose emoji changed in vocab needs the atlas rebuilt.
    codepoints = assets.atlas_index()["codepoints"]
    assert codepoints == {name: build_atlas.describe(text) for name, text in vocab.STICKERS.items()}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", list(vocab.STICKERS))
def test_every_sticker_loads_at_the_requested_size(name: str, size: int):
    sprite = assets.sticker(name, size)
    assert sprite.mode == "RGBA"
    assert sprite.size == (size, size)
    opaque = (_alpha(sprite) >= 128).mean()
    assert opaque > 0.15, f"{name} at {size}px is mostly transparent ({opaque:.0%} opaque)"


@pytest.mark.parametrize("name", list(vocab.STICKERS))
def test_sticker_fills_its_square_along_the_longer_side(name: str):
    # Stickers are cropped to their ink, so a "large" sticker is as large as a "large" shape.
    left, top, right, bottom = assets.sticker(name, 96).getchannel("A").getbbox()
    assert max(right - left, bottom - top) >= 94


def test_stickers_are_pairwise_different():
    sprites = {name: np.asarray(assets.sticker(name, 32), dtype=np.int32) for name in vocab.STICKERS}
    for (a, first), (b, second) in itertools.combinations(sprites.items(), 2):
        assert np.abs(first - second).mean() > 10, f"stickers {a!r} and {b!r} look the same"


def test_transparent_atlas_pixels_carry_no_colour():
    # Hidden colour under zero alpha would bleed into edges when a caller resizes without premultiplying.
    atlas = np.asarray(assets._atlas())
    assert not atlas[atlas[..., 3] == 0][:, :3].any()


def test_sticker_is_cached():
    assert assets.sticker("dog", 40) is assets.sticker("dog", 40)


def test_unknown_sticker_raises_key_error_naming_it():
    with pytest.raises(KeyError, match="unicorn"):
        assets.sticker("unicorn", 32)


def test_sticker_size_must_be_positive():
    with pytest.raises(ValueError, match="size"):
        assets.sticker("dog", 0)


def test_font_is_the_bundled_dejavu_sans_bold():
    font = assets.font(24)
    assert isinstance(font, ImageFont.FreeTypeFont)
    assert font.getname() == ("DejaVu Sans", "Bold")
    assert font.size == 24
    assert assets.font(24) is font


@pytest.mark.parametrize(
    "script",
    [vocab.LATIN + vocab.DIGITS, vocab.GREEK, vocab.CYRILLIC],
    ids=["latin-and-digits", "greek", "cyrillic"],
)
def test_font_renders_every_character_with_its_own_glyph(script: str):
    font = assets.font(40)
    tofu = _glyph(font, PRIVATE_USE)
    glyphs = {char: _glyph(font, char) for char in script}
    missing = [char for char, glyph in glyphs.items() if glyph == tofu or not any(glyph[1])]
    assert not missing, f"rendered as tofu or blank: {''.join(missing)}"
    assert len(set(glyphs.values())) == len(script), "two characters of one script share a glyph"


def test_font_tells_scripts_apart_from_each_other_and_from_tofu():
    font = assets.font(40)
    samples = ["Ж", "Ω", "Q", "7", PRIVATE_USE]
    assert len({_glyph(font, char) for char in samples}) == len(samples)


@needs(None if SYSTEM_EMOJI_FONT.is_file() else f"{SYSTEM_EMOJI_FONT} is not installed")
def test_atlas_build_is_byte_deterministic(tmp_path: Path):
    for run in ("first", "second"):
        atlas, index = build_atlas.build_atlas(SYSTEM_EMOJI_FONT, vocab.STICKERS)
        build_atlas.write_atlas(atlas, index, tmp_path / run)
    for name in (build_atlas.ATLAS_PNG, build_atlas.ATLAS_JSON):
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes()


@needs(None if SYSTEM_EMOJI_FONT.is_file() else f"{SYSTEM_EMOJI_FONT} is not installed")
def test_atlas_build_fails_loudly_on_a_code_point_missing_from_the_font():
    with pytest.raises(build_atlas.AtlasError, match="nothing"):
        build_atlas.build_atlas(SYSTEM_EMOJI_FONT, {"nothing": PRIVATE_USE})
