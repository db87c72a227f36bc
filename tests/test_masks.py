"""Mask conventions and edit geometry: reading masks, grow, feather, crops, token footprints, compositing, seams."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imgen.masks import (
    CropBox,
    MaskError,
    composite,
    crop_box,
    crop_square,
    feather_weights,
    flatten,
    grow_mask,
    letterbox,
    mostly_covered_tokens,
    resolve_mask,
    seam_step,
    token_coverage,
    touched_tokens,
    working_image,
)
from imgen.seam import border_correction


def _image(width: int = 40, height: int = 30, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(width * 1000 + height)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode)


def _square_mask(width: int = 40, height: int = 30) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[10:20, 5:15] = True
    return mask


# ---------------------------------------------------------------- conventions


def test_grayscale_and_rgb_masks_white_means_regenerate():
    expected = _square_mask()
    gray = Image.fromarray(expected.astype(np.uint8) * 255, "L")
    assert np.array_equal(resolve_mask(_image(), gray), expected)
    assert np.array_equal(resolve_mask(_image(), gray.convert("RGB")), expected)
    assert np.array_equal(resolve_mask(_image(), gray.convert("1")), expected)


def test_soft_masks_are_binarised_at_half():
    levels = np.zeros((30, 40), dtype=np.uint8)
    levels[0, 0], levels[0, 1], levels[0, 2] = 127, 128, 255
    mask = resolve_mask(_image(), Image.fromarray(levels, "L"))
    assert mask.sum() == 2 and mask[0, 1] and mask[0, 2]


def test_rgba_mask_transparent_means_regenerate():
    expected = _square_mask()
    rgba = np.zeros((30, 40, 4), dtype=np.uint8)  # black everywhere: luminance would say "keep all"
    rgba[..., 3] = np.where(expected, 0, 255)
    assert np.array_equal(resolve_mask(_image(), Image.fromarray(rgba, "RGBA")), expected)


def test_opaque_rgba_mask_is_read_by_luminance():
    expected = _square_mask()
    rgba = np.full((30, 40, 4), 255, dtype=np.uint8)
    rgba[..., :3] = expected[..., None] * 255
    assert np.array_equal(resolve_mask(_image(), Image.fromarray(rgba, "RGBA")), expected)


def test_without_a_mask_the_images_transparency_is_the_mask():
    expected = _square_mask()
    rgba = np.array(_image(mode="RGBA"))
    rgba[..., 3] = np.where(expected, 0, 255)
    assert np.array_equal(resolve_mask(Image.fromarray(rgba, "RGBA"), None), expected)
    with pytest.raises(MaskError, match="no transparent pixels"):
        resolve_mask(_image(), None)
    with pytest.raises(MaskError, match="no transparent pixels"):
        resolve_mask(_image(mode="RGBA"), None)  # an alpha channel, but fully opaque


def test_array_masks():
    expected = _square_mask()
    assert np.array_equal(resolve_mask(_image(), expected), expected)
    assert np.array_equal(resolve_mask(_image(), expected.astype(np.float32)), expected)
    assert np.array_equal(resolve_mask(_image(), expected.astype(np.uint8) * 255), expected)
    with pytest.raises(MaskError, match="2-D"):
        resolve_mask(_image(), np.ones((30, 40, 3), dtype=bool))


def test_mask_of_another_size_is_an_error_unless_resizing_is_allowed():
    small = Image.new("L", (20, 15), 0)
    small.paste(255, (5, 5, 10, 10))
    with pytest.raises(MaskError) as error:
        resolve_mask(_image(), small)
    message = str(error.value)
    assert "20x15" in message and "40x30" in message and "\n" not in message
    assert isinstance(error.value, ValueError)
    mask = resolve_mask(_image(), small, resize_mask=True)
    assert mask.shape == (30, 40)
    assert mask[12:18, 12:18].all() and not mask[:8].any() and not mask[:, 22:].any()


def test_empty_mask_is_nothing_to_edit():
    with pytest.raises(MaskError, match="nothing to edit"):
        resolve_mask(_image(), Image.new("L", (40, 30), 0))
    with pytest.raises(MaskError, match="nothing to edit"):
        resolve_mask(_image(), Image.new("RGBA", (40, 30), (255, 255, 255, 200)))  # barely transparent


def test_mask_from_a_file(tmp_path):
    path = tmp_path / "mask.png"
    Image.fromarray(_square_mask().astype(np.uint8) * 255, "L").save(path)
    assert np.array_equal(resolve_mask(_image(), path), _square_mask())
    with pytest.raises(MaskError, match="no such file"):
        resolve_mask(_image(), tmp_path / "missing.png")


def test_working_image_and_flatten_accept_every_mode():
    palette = _image().convert("P")
    transparent_palette = palette.copy()
    transparent_palette.info["transparency"] = 0
    sixteen = Image.fromarray(np.arange(1200, dtype=np.uint16).reshape(30, 40) * 50)
    floats = Image.fromarray(np.linspace(0, 1, 1200, dtype=np.float32).reshape(30, 40))
    assert (sixteen.mode, floats.mode) == ("I;16", "F")
    for image, mode in [
        (palette, "RGB"),
        (transparent_palette, "RGBA"),
        (_image(mode="L"), "RGB"),
        (_image(mode="LA"), "RGBA"),
        (_image(mode="CMYK"), "RGB"),
        (sixteen, "RGB"),
        (floats, "RGB"),
    ]:
        assert working_image(image).mode == mode
        flat = flatten(image)
        assert flat.shape == (30, 40, 3) and flat.dtype == np.uint8
    assert np.asarray(working_image(sixteen)).max() > 200  # stretched, not clipped to white
    assert len(np.unique(np.asarray(working_image(sixteen)))) > 100
    assert np.asarray(working_image(floats)).max() == 255  # [0, 1] floats scaled, not read as 0 or 1


def test_flatten_fills_transparent_pixels_with_the_background():
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[:2, :, :] = (200, 0, 0, 255)
    flat = flatten(Image.fromarray(rgba, "RGBA"))
    assert (flat[2:] == (200, 0, 0)).all()  # the mean opaque colour, not the black under the hole
    assert (flatten(Image.fromarray(rgba, "RGBA"), background=(255, 255, 255))[2:] == 255).all()


# ---------------------------------------------------------------- morphology


def test_grow_mask_dilates_by_the_given_radius():
    mask = np.zeros((41, 41), dtype=bool)
    mask[20, 20] = True
    grown = grow_mask(mask, 6)
    ys, xs = np.nonzero(grown)
    assert grown[20, 14] and grown[20, 26] and grown[14, 20] and grown[26, 20]
    assert np.abs(ys - 20).max() == 6 and np.abs(xs - 20).max() == 6
    assert not grown[14, 14]  # a rounded shape, not the 13x13 square
    assert np.hypot(ys - 20, xs - 20).max() < 6 * 1.42
    assert np.array_equal(grow_mask(mask, 0), mask)
    edge = np.zeros((10, 10), dtype=bool)
    edge[0, 0] = True
    assert grow_mask(edge, 3)[:4, :4].any() and not grow_mask(edge, 3)[5:].any()


def test_feather_ramps_inside_the_mask_only():
    mask = np.zeros((40, 40), dtype=bool)
    mask[10:30, 10:30] = True
    weights = feather_weights(mask, 4)
    assert (weights[~mask] == 0).all()
    assert (weights[mask] > 0).all() and weights[20, 20] == 1.0
    row = weights[20, 10:21]
    assert np.all(np.diff(row) >= 0) and row[0] == pytest.approx(1 / 5)
    assert np.array_equal(feather_weights(mask, 0), mask.astype(np.float32))


def test_feather_does_not_fade_towards_the_image_border():
    mask = np.zeros((20, 20), dtype=bool)
    mask[:, :10] = True  # touches the left, top and bottom borders
    weights = feather_weights(mask, 3)
    assert weights[10, 0] == 1.0 and weights[0, 0] == 1.0
    assert weights[10, 9] == pytest.approx(0.25)


# ---------------------------------------------------------------- crop geometry


@pytest.mark.parametrize("seed", range(20))
def test_crop_box_holds_the_mask_with_context(seed):
    rng = np.random.default_rng(seed)
    width, height = int(rng.integers(20, 1100)), int(rng.integers(20, 900))
    mask = np.zeros((height, width), dtype=bool)
    x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
    mask[y0 : y0 + int(rng.integers(1, height)), x0 : x0 + int(rng.integers(1, width))] = True
    box = crop_box(mask, 128)
    ys, xs = np.nonzero(mask)
    assert box.left <= xs.min() and xs.max() < box.right and box.top <= ys.min() and ys.max() < box.bottom
    assert box.size <= max(width, height)
    assert box.size >= min(128, max(width, height))
    for start, extent in ((box.left, width), (box.top, height)):
        if box.size <= extent:
            assert 0 <= start <= extent - box.size  # fully inside where it fits
        else:
            assert start < 0 and start + box.size > extent  # centred with padding on both sides


def test_small_mask_on_a_large_image_is_cropped_at_model_size():
    mask = np.zeros((768, 1024), dtype=bool)
    mask[400:420, 500:530] = True
    box = crop_box(mask, 128)
    assert box.size == 128  # edited at full resolution, not a whole-image downscale


def test_crop_square_pads_with_edges_or_fill():
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    box = CropBox(left=0, top=-1, size=4)
    assert crop_square(array, box).tolist()[0] == array[0].tolist()
    assert not crop_square(array.astype(bool), box, fill=False)[0].any()


def test_touched_tokens_follow_pixel_footprints():
    mask = np.zeros((128, 128), dtype=bool)
    mask[8:16, 16:24] = True  # exactly detail token (1, 2)
    detail = touched_tokens(mask, 16)
    assert detail.sum() == 1 and detail[1, 2]
    coarse = touched_tokens(mask, 8)
    assert coarse.sum() == 1 and coarse[0, 1]
    mask[16, 24] = True  # one pixel more touches the next token diagonally
    assert touched_tokens(mask, 16).sum() == 2
    odd = np.zeros((100, 100), dtype=bool)
    odd[99, 99] = True
    assert touched_tokens(odd, 16)[15, 15] and touched_tokens(odd, 16).sum() == 1
    odd[:, 6] = True  # pixel 6 straddles tokens 0 and 1 (6.25 px per token)
    assert touched_tokens(odd, 16)[:, :2].all()


def test_mostly_covered_tokens_need_half_their_footprint_or_else_the_most_covered_ones():
    mask = np.zeros((128, 128), dtype=bool)
    mask[16:40, 16:36] = True  # cell (1, 1) whole, (2, 1) half, (1, 2) and (2, 2) a quarter or less
    assert np.argwhere(mostly_covered_tokens(mask, 8)).tolist() == [[1, 1], [2, 1]]
    assert token_coverage(mask, 8)[2, 1] == 0.5 and token_coverage(mask, 8)[1, 2] == 0.25
    tiny = np.zeros((128, 128), dtype=bool)
    tiny[30:34, 31:33] = True  # a few pixels on the corner of four cells, none covered much
    assert np.argwhere(mostly_covered_tokens(tiny, 8)).tolist() == [[1, 1], [1, 2], [2, 1], [2, 2]]
    assert not mostly_covered_tokens(np.zeros((128, 128), dtype=bool), 8).any()


def test_letterbox_keeps_the_aspect_ratio():
    array = np.zeros((50, 200, 3), dtype=np.uint8)
    square, (left, top, width, height) = letterbox(array, 128)
    assert square.shape == (128, 128, 3)
    assert (left, width) == (0, 128) and height == 32 and top == 48
    _, (_, _, width, height) = letterbox(np.zeros((1, 1, 3), dtype=np.uint8), 128)
    assert (width, height) == (128, 128)


# ---------------------------------------------------------------- compositing and seams


def test_composite_changes_only_masked_pixels_and_feathers_inside():
    original = _image()
    mask = _square_mask()
    generated = np.zeros((40, 40, 3), dtype=np.uint8)
    box = CropBox(left=0, top=-5, size=40)
    out = np.asarray(composite(original, generated, box, mask, feather_weights(mask, 0), seamless=False))
    assert np.array_equal(out[~mask], np.asarray(original)[~mask])
    assert (out[mask] == 0).all()
    soft = np.asarray(composite(original, generated, box, mask, feather_weights(mask, 3), seamless=False))
    assert np.array_equal(soft[~mask], np.asarray(original)[~mask])
    assert (soft[15, 10] == 0).all() and not (soft[10, 5] == 0).all()


def test_composite_rgba_makes_regenerated_pixels_opaque():
    rgba = np.array(_image(mode="RGBA"))
    mask = _square_mask()
    rgba[..., 3] = np.where(mask, 0, 90)
    original = Image.fromarray(rgba, "RGBA")
    generated = np.full((40, 40, 3), 7, dtype=np.uint8)
    weights = feather_weights(mask, 2)
    out = np.asarray(composite(original, generated, CropBox(0, -5, 40), mask, weights, seamless=False))
    assert np.array_equal(out[~mask], rgba[~mask])
    assert (out[mask][:, 3] == 255).all() and (out[mask][:, :3] == 7).all()  # nothing to blend under alpha 0
    rgba[..., 3] = np.where(mask, 0, 0)  # fully transparent around it too: nothing to meet at the border
    clear = Image.fromarray(rgba, "RGBA")
    out = np.asarray(composite(clear, generated, CropBox(0, -5, 40), mask, weights, seamless=True))
    assert (out[mask][:, :3] == 7).all()


def test_seamless_composite_meets_the_kept_pixels_and_keeps_the_new_content():
    original = np.full((64, 64, 3), 100, dtype=np.uint8)
    original[:, :8] = 30  # some structure outside the mask, which must stay as it is
    generated = np.full((64, 64, 3), 112, dtype=np.uint8)  # the tokenizer's colour error: +12
    generated[28:36, 28:36] = 200  # the new object
    mask = np.zeros((64, 64), dtype=bool)
    mask[16:48, 16:48] = True
    image = Image.fromarray(original)
    plain = composite(image, generated, CropBox(0, 0, 64), mask, feather_weights(mask, 0), seamless=False)
    smooth = composite(image, generated, CropBox(0, 0, 64), mask, feather_weights(mask, 0), seamless=True)
    out = np.asarray(smooth).astype(int)
    assert np.array_equal(out[~mask], original[~mask])
    assert seam_step(image, plain, mask)[0] == pytest.approx(12.0)
    assert seam_step(image, smooth, mask)[0] < 0.5
    assert out[32, 32, 0] - out[20, 32, 0] == pytest.approx(88, abs=1)  # the object's contrast survives


def test_seamless_composite_keeps_a_new_object_that_crosses_the_mask_border():
    """The generator often draws the new object past the mask: that difference is content, not tokenizer tint."""
    original = np.full((64, 64, 3), 250, dtype=np.uint8)  # a white background
    generated = np.full((64, 64, 3), 238, dtype=np.uint8)  # the tokenizer's colour error: -12
    generated[14:40, 24:40] = (30, 80, 220)  # a blue object crossing the mask's top edge by 2 px
    mask = np.zeros((64, 64), dtype=bool)
    mask[16:48, 16:48] = True
    image = Image.fromarray(original)
    out = np.asarray(composite(image, generated, CropBox(0, 0, 64), mask, feather_weights(mask, 0))).astype(int)
    assert np.array_equal(out[~mask], original[~mask])
    assert np.abs(out[16:40, 24:40] - (30, 80, 220)).max() <= 12  # the object keeps its colour up to the tint
    assert np.abs(out[44:48, 16:48] - 250).max() <= 1  # the background still meets the kept pixels


def test_seamless_composite_still_meets_the_kept_pixels_where_the_tint_is_larger_everywhere():
    """On a photo the tokenizer's error alone can pass 24 levels all along the border: it is still tint."""
    original = np.full((64, 64, 3), 200, dtype=np.uint8)
    generated = np.full((64, 64, 3), 160, dtype=np.uint8)  # 40 levels darker everywhere
    mask = np.zeros((64, 64), dtype=bool)
    mask[16:48, 16:48] = True
    image = Image.fromarray(original)
    out = composite(image, generated, CropBox(0, 0, 64), mask, feather_weights(mask, 0))
    assert seam_step(image, out, mask)[0] < 0.5


def test_border_correction_fills_a_linear_difference_exactly():
    # Linear fields are harmonic, so the fill of a ramp given on the border is the ramp itself,
    # to within half an 8-bit colour level (what rounding to uint8 hides).
    ys, xs = np.mgrid[0:70, 0:90].astype(np.float32)
    ramp = (0.5 * xs - 0.25 * ys)[..., None].repeat(3, axis=2)
    mask = np.zeros((70, 90), dtype=bool)
    mask[5:60, 10:80] = True
    given = np.where(mask[..., None], 0.0, ramp).astype(np.float32)
    filled = border_correction(given, mask)
    assert np.abs(filled - ramp).max() < 0.5
    assert np.array_equal(filled[~mask], given[~mask])


def test_seam_step_measures_the_border():
    original = Image.new("RGB", (20, 20), (100, 100, 100))
    mask = np.zeros((20, 20), dtype=bool)
    mask[5:15, 5:15] = True
    patched = np.array(original)
    patched[mask] = (150, 150, 150)
    border, interior = seam_step(original, Image.fromarray(patched), mask)
    assert border == pytest.approx(50.0) and interior == 0.0
    border, _ = seam_step(original, original, mask)
    assert border == 0.0
    border, interior = seam_step(original, original, np.ones((20, 20), dtype=bool))
    assert np.isnan(border) and np.isnan(interior)


def test_a_16_bit_grey_mask_in_mode_i_is_scaled_not_stretched():
    image = Image.new("RGB", (8, 8))
    white = Image.fromarray(np.full((8, 8), 65535, dtype=np.int32), "I")
    assert resolve_mask(image, white).all()  # all white: regenerate everything (stretching made it all black)
    grey = np.full((8, 8), 65535 * 30 // 100, dtype=np.int32)
    grey[:, :4] = 65535
    regenerate = resolve_mask(image, Image.fromarray(grey, "I"))
    assert regenerate[:, :4].all() and not regenerate[:, 4:].any()  # 30% grey stays below the 50% threshold
