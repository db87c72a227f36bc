"""Editing and restyling on a tiny random pipeline: exactness, token fixing, conventions, any input, seeds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import imgen.editing as editing
from imgen.api import Pipeline
from imgen.editing import EditResult, edit, reference_confidence, restyle, shown_reference
from imgen.growth import add_reference_input
from imgen.masks import MaskError, touched_tokens
from imgen.model import Generator
from imgen.sampler import SamplerConfig, sample_tokens
from tests.tiny_checkpoint import tiny_pipeline

PROMPT = "a red circle on a blue background"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return tiny_pipeline([PROMPT, "a green square in pixel art style", "a cat at night"], text_len=12)


def _photo(width: int, height: int, seed: int, mode: str = "RGB") -> Image.Image:
    """Noise plus a gradient: every pixel differs from its neighbours, so any change shows."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 120, width)[None, :, None] + np.linspace(0, 100, height)[:, None, None]
    pixels = (ramp + rng.integers(0, 36, (height, width, 3))).clip(0, 255).astype(np.uint8)
    return Image.fromarray(pixels).convert(mode)


def _random_case(seed: int) -> tuple[Image.Image, Image.Image | np.ndarray | None, np.ndarray]:
    """An (image, mask argument, expected regenerate-mask) of a random size and mask kind."""
    rng = np.random.default_rng(seed)
    sizes = [(64, 64), (128, 128), (1024, 768), (97, 211), (333, 150), (640, 480), (50, 300), (200, 200)]
    kinds = ["blobs", "rectangle", "strokes", "alpha-mask", "transparency", "soft"]
    kind, (width, height) = kinds[seed % len(kinds)], sizes[(seed // len(kinds)) % len(sizes)]
    draw_mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(draw_mask)
    if kind in ("blobs", "alpha-mask", "transparency", "soft"):
        for _ in range(int(rng.integers(1, 4))):
            cx, cy = rng.integers(0, width), rng.integers(0, height)
            rx, ry = rng.integers(2, max(3, width // 4)), rng.integers(2, max(3, height // 4))
            draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=255)
    elif kind == "rectangle":
        x0, y0 = rng.integers(0, width - 1), rng.integers(0, height - 1)
        draw.rectangle((x0, y0, rng.integers(x0, width), rng.integers(y0, height)), fill=255)
    else:
        for _ in range(int(rng.integers(1, 4))):
            points = [(int(rng.integers(0, width)), int(rng.integers(0, height))) for _ in range(3)]
            draw.line(points, fill=255, width=int(rng.integers(1, 3)))
    levels = np.asarray(draw_mask)
    expected = levels >= 128
    image = _photo(width, height, seed)
    if kind == "alpha-mask":
        rgba = np.zeros((height, width, 4), dtype=np.uint8)
        rgba[..., 3] = 255 - levels
        return image, Image.fromarray(rgba, "RGBA"), expected
    if kind == "transparency":
        rgba = np.array(image.convert("RGBA"))
        rgba[..., 3] = np.where(expected, 0, rng.integers(128, 256, (height, width)))
        return Image.fromarray(rgba, "RGBA"), None, expected
    if kind == "soft":
        soft = np.where(expected, rng.integers(128, 256, levels.shape), rng.integers(0, 128, levels.shape))
        return image, Image.fromarray(soft.astype(np.uint8), "L"), expected
    return image, draw_mask, expected


# ---------------------------------------------------------------- exactness


@pytest.mark.parametrize("seed", range(48))  # every size with every mask kind
def test_unmasked_pixels_are_byte_identical(pipe, seed):
    image, mask, expected = _random_case(seed)
    rng = np.random.default_rng(1000 + seed)
    grow, feather, seamless = int(rng.integers(0, 12)), int(rng.integers(0, 6)), bool(rng.integers(0, 2))
    result = edit(pipe, image, mask, PROMPT, grow=grow, feather=feather, seamless=seamless, seed=seed)
    assert np.array_equal(result.mask, expected)
    before, after = np.asarray(image), np.asarray(result.image)
    assert after.shape == before.shape and result.image.mode == image.mode
    assert np.count_nonzero(before[~expected] != after[~expected]) == 0
    assert np.any(before[expected] != after[expected])  # and the masked part was actually redrawn


# ---------------------------------------------------------------- token space


def _spy(monkeypatch) -> dict:
    seen: dict = {}

    def spying(*args, **kwargs):
        seen.update(kwargs)
        seen["tokens"] = sample_tokens(*args, **kwargs)
        return seen["tokens"]

    monkeypatch.setattr(editing, "sample_tokens", spying)
    return seen


def test_tokens_outside_the_mask_are_fixed_to_the_source(pipe, monkeypatch):
    seen = _spy(monkeypatch)
    image = _photo(128, 128, 0)
    mask = np.zeros((128, 128), dtype=bool)
    mask[40:48, 72:80] = True  # exactly detail token (5, 9), inside coarse cell (2, 4)
    edit(pipe, image, mask, PROMPT)
    source = pipe.tokenizer.encode(torch.from_numpy(np.array(image)).permute(2, 0, 1)[None])
    coarse_fixed, detail_fixed = seen["coarse_fixed"][0], seen["detail_fixed"][0]
    assert (coarse_fixed == -1).nonzero().flatten().tolist() == [2 * 8 + 4]
    assert (detail_fixed == -1).nonzero().flatten().tolist() == [5 * 16 + 9]
    kept = detail_fixed >= 0
    assert torch.equal(detail_fixed[kept], source.detail.flatten()[kept])
    coarse, detail = seen["tokens"]
    assert torch.equal(coarse[0][coarse_fixed >= 0], source.coarse.flatten()[coarse_fixed >= 0])
    assert torch.equal(detail[0][kept], source.detail.flatten()[kept])


def test_coarse_cells_the_mask_only_grazes_stay_fixed_so_new_objects_stay_inside_it(pipe, monkeypatch):
    seen = _spy(monkeypatch)
    mask = np.zeros((128, 128), dtype=bool)
    mask[16:36, 16:36] = True  # all of coarse cell (1, 1), a quarter of its right and lower neighbours
    edit(pipe, _photo(128, 128, 0), mask, PROMPT)
    assert (seen["coarse_fixed"][0] == -1).nonzero().flatten().tolist() == [1 * 8 + 1]
    assert (seen["detail_fixed"][0] == -1).view(16, 16).nonzero().tolist() == [
        [i, j] for i in (2, 3, 4) for j in (2, 3, 4)
    ]


def test_grow_frees_the_tokens_around_the_mask(pipe, monkeypatch):
    seen = _spy(monkeypatch)
    mask = np.zeros((128, 128), dtype=bool)
    mask[40:48, 72:80] = True
    edit(pipe, _photo(128, 128, 0), mask, PROMPT, grow=8)
    free = (seen["detail_fixed"][0] == -1).view(16, 16)
    assert free[4:7, 8:11].all() and free.sum() == 9  # the token and its 8 neighbours (octagonal growth)


def test_large_image_free_tokens_match_the_crop_footprint(pipe, monkeypatch):
    seen = _spy(monkeypatch)
    mask = np.zeros((768, 1024), dtype=bool)
    mask[300:340, 600:610] = True
    result = edit(pipe, _photo(1024, 768, 3), mask, PROMPT)
    box = result.box
    crop = mask[box.top : box.bottom, box.left : box.right]
    assert crop.shape == (box.size, box.size) and crop.sum() == mask.sum()
    expected = torch.from_numpy(touched_tokens(crop, 16).reshape(-1))
    assert torch.equal(seen["detail_fixed"][0] == -1, expected)


def test_raster_mode_keeps_fixed_coarse_cells(pipe, monkeypatch):
    seen = _spy(monkeypatch)
    mask = np.zeros((128, 128), dtype=bool)
    mask[0:30, 0:30] = True
    edit(pipe, _photo(128, 128, 1), mask, PROMPT, sampler=SamplerConfig(mode="raster"))
    fixed = seen["coarse_fixed"][0]
    assert (fixed == -1).sum() == 4
    assert torch.equal(seen["tokens"][0][0][fixed >= 0], fixed[fixed >= 0])


# ---------------------------------------------------------------- conventions and errors


def test_mask_of_the_wrong_size(pipe):
    image = _photo(100, 80, 0)
    small = Image.new("L", (50, 40), 0)
    small.paste(255, (10, 10, 20, 20))
    with pytest.raises(MaskError, match="50x40"):
        edit(pipe, image, small, PROMPT)
    result = edit(pipe, image, small, PROMPT, resize_mask=True)
    assert result.image.size == (100, 80) and result.mask.shape == (80, 100)
    assert result.mask[22:38, 22:38].all() and result.mask.sum() < 30 * 30


def test_empty_mask_is_an_error(pipe):
    with pytest.raises(MaskError, match="nothing to edit"):
        edit(pipe, _photo(64, 64, 0), Image.new("L", (64, 64), 0), PROMPT)
    with pytest.raises(MaskError, match="nothing to edit"):
        edit(pipe, _photo(64, 64, 0), None, PROMPT)


def test_empty_prompt_and_bad_settings_are_errors(pipe):
    mask = Image.new("L", (64, 64), 255)
    with pytest.raises(ValueError, match="prompt is empty"):
        edit(pipe, _photo(64, 64, 0), mask, "  ")
    with pytest.raises(ValueError, match="negative"):
        edit(pipe, _photo(64, 64, 0), mask, PROMPT, grow=-1)


def test_all_white_mask_regenerates_everything_with_a_warning(pipe):
    image = _photo(150, 100, 0)
    result = edit(pipe, image, Image.new("L", (150, 100), 255), PROMPT)
    assert isinstance(result, EditResult) and result.whole_image and result.warning
    assert result.image.size == (150, 100)
    assert np.mean(np.asarray(result.image) != np.asarray(image)) > 0.9


def test_partial_mask_has_no_warning(pipe):
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 10, 10))
    result = edit(pipe, _photo(64, 64, 0), mask, PROMPT)
    assert not result.whole_image and result.warning is None


def test_transparent_pixels_of_the_image_are_regenerated(pipe):
    rgba = np.array(_photo(96, 96, 4, "RGBA"))
    rgba[30:60, 20:50, 3] = 0
    image = Image.fromarray(rgba, "RGBA")
    result = edit(pipe, image, None, PROMPT)
    out = np.asarray(result.image)
    assert result.image.mode == "RGBA"
    assert result.mask.sum() == 30 * 30 and result.mask[30:60, 20:50].all()
    assert np.array_equal(out[~result.mask], rgba[~result.mask])
    assert (out[30:60, 20:50, 3] == 255).all()


def test_a_path_works_for_image_and_mask(pipe, tmp_path):
    image, mask = _photo(80, 80, 5), Image.new("L", (80, 80), 0)
    mask.paste(255, (30, 30, 50, 50))
    image.save(tmp_path / "in.png")
    mask.save(tmp_path / "mask.png")
    from_files = edit(pipe, tmp_path / "in.png", tmp_path / "mask.png", PROMPT, seed=3)
    from_objects = edit(pipe, image, mask, PROMPT, seed=3)
    assert np.array_equal(np.asarray(from_files.image), np.asarray(from_objects.image))


def test_a_rotated_photo_is_edited_upright_as_its_mask_was_drawn(pipe, tmp_path):
    from PIL import ImageOps

    stored = _photo(96, 48, 6)  # the camera's pixels, landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
    stored.save(tmp_path / "phone.jpg", quality=95, exif=exif)
    with Image.open(tmp_path / "phone.jpg") as opened:
        upright = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
    assert upright.shape[:2] == (96, 48)  # what a viewer shows: portrait
    mask = Image.new("L", (48, 96), 0)  # drawn on the portrait view
    mask.paste(255, (10, 60, 30, 80))
    result = edit(pipe, tmp_path / "phone.jpg", mask, PROMPT, seed=0)
    out = np.asarray(result.image)
    assert out.shape[:2] == (96, 48)
    keep = ~np.asarray(mask, dtype=bool)
    assert np.array_equal(out[keep], upright[keep])


def test_a_mask_file_stored_sideways_is_turned_upright_like_the_photo(pipe, tmp_path):
    stored = _photo(96, 48, 6)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
    stored.save(tmp_path / "phone.jpg", quality=95, exif=exif)
    upright_mask = Image.new("L", (48, 96), 0)  # what the user drew on the portrait view
    upright_mask.paste(255, (10, 60, 30, 80))
    upright_mask.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "mask.png", exif=exif)  # stored sideways
    result = edit(pipe, tmp_path / "phone.jpg", tmp_path / "mask.png", PROMPT, seed=0)
    assert np.array_equal(result.mask, np.asarray(upright_mask) >= 128)


def test_an_image_whose_exif_block_cannot_be_parsed_is_edited_as_stored(pipe, tmp_path):
    image = _photo(96, 48, 6)  # not square: an image turned on its side would show in its size and pixels
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).rectangle((10, 10, 30, 30), fill=255)
    image.save(tmp_path / "odd.png", exif=b"Exif\x00\x00not a TIFF header at all")
    result = edit(pipe, tmp_path / "odd.png", mask, PROMPT, seed=0)
    kept = ~result.mask
    assert result.image.size == (96, 48) and np.array_equal(np.asarray(result.image)[kept], np.asarray(image)[kept])
    styled = restyle(pipe, tmp_path / "odd.png", "in pixel art style", strength=0.5, keep_size=True)[0]
    assert styled.size == (96, 48)


# ---------------------------------------------------------------- seeds and previews


def test_same_seed_same_edit_and_seeds_make_a_batch(pipe):
    image, mask, _ = _random_case(1)
    first = edit(pipe, image, mask, PROMPT, seed=7)
    again = edit(pipe, image, mask, PROMPT, seed=7)
    other = edit(pipe, image, mask, PROMPT, seed=8)
    assert np.array_equal(np.asarray(first.image), np.asarray(again.image))
    assert not np.array_equal(np.asarray(first.image), np.asarray(other.image))
    batch = edit(pipe, image, mask, PROMPT, seeds=[8, 7])
    assert len(batch.images) == 2
    assert np.array_equal(np.asarray(batch.images[1]), np.asarray(first.image))


def test_edit_previews_are_full_size_and_exact(pipe):
    image, mask, expected = _random_case(2)
    calls: list[tuple[str, int, int, list[Image.Image]]] = []
    edit(pipe, image, mask, PROMPT, callback=lambda *args: calls.append(args))
    phases = {phase for phase, *_ in calls}
    assert phases == {"coarse", "detail"}
    assert [step for phase, step, *_ in calls if phase == "detail"] == list(range(1, 17))
    for *_, previews in calls:
        preview = np.asarray(previews[0])
        assert previews[0].size == image.size
        assert np.array_equal(preview[~expected], np.asarray(image)[~expected])


# ---------------------------------------------------------------- restyle


@pytest.mark.parametrize(
    ("image", "size"),
    [
        (_photo(128, 128, 0), (128, 128)),
        (_photo(300, 120, 1, "RGBA"), (128, 51)),
        (_photo(90, 400, 2).convert("P"), (29, 128)),
        (_photo(33, 33, 3, "L"), (128, 128)),
        (_photo(1, 1, 4), (128, 128)),
        (Image.fromarray(np.arange(40_000, dtype=np.uint16).reshape(200, 200)), (128, 128)),
        (_photo(500, 3, 5, "CMYK"), (128, 1)),
    ],
)
def test_restyle_accepts_any_image(pipe, image, size):
    out = restyle(pipe, image, PROMPT, 0.5)
    assert len(out) == 1 and out[0].mode == "RGB" and out[0].size == size
    kept = restyle(pipe, image, PROMPT, 0.5, keep_size=True)[0]
    assert kept.size == image.size


def test_restyle_strength_sets_the_share_of_resampled_coarse_cells(pipe, monkeypatch):
    seen = _spy(monkeypatch)
    image = _photo(128, 128, 6)
    source = pipe.tokenizer.encode(torch.from_numpy(np.array(image)).permute(2, 0, 1)[None]).coarse.flatten()
    for strength, free in [(0.0, 0), (0.25, 16), (0.5, 32), (1.0, 64)]:
        restyle(pipe, image, PROMPT, strength)
        fixed = seen["coarse_fixed"][0]
        assert int((fixed == -1).sum()) == free
        assert torch.equal(fixed[fixed >= 0], source[fixed >= 0])
        assert torch.equal(seen["tokens"][0][0][fixed >= 0], source[fixed >= 0])
        assert seen.get("detail_fixed") is None  # the detail, where the style lives, is always fresh
    with pytest.raises(ValueError, match="strength"):
        restyle(pipe, image, PROMPT, 1.5)


def test_a_generator_trained_on_restyle_pairs_is_shown_the_reference_and_draws_every_cell(pipe, monkeypatch):
    generator = add_reference_input(pipe.generator)
    paired = Pipeline(pipe.tokenizer, generator, pipe.prompts, "paired", "0" * 64, pipe.sampler)
    seen = _spy(monkeypatch)
    image = _photo(128, 128, 6)
    grids = pipe.tokenizer.encode(torch.from_numpy(np.array(image)).permute(2, 0, 1)[None])
    source, source_detail = grids.coarse.flatten(), grids.detail.flatten()
    mask_id, bos_id = generator.config.mask_id, generator.config.bos_id
    for strength, hidden in [(0.0, 0), (0.25, 16), (0.5, 32), (1.0, 64)]:
        restyle(paired, image, PROMPT, strength, seeds=[1, 2])
        assert seen["coarse_fixed"] is None  # no cell is copied: the model draws them all
        shown = seen["coarse_reference"]
        assert shown.shape == (2, 64) and [int((row == mask_id).sum()) for row in shown] == [hidden, hidden]
        assert torch.equal(shown[shown != mask_id], source.expand(2, -1)[shown != mask_id])
        if 0 < hidden < 64:  # each seed hides its own cells, the same ones every time
            assert not torch.equal(shown[0], shown[1])
            assert torch.equal(shown, shown_reference(source[None], [1, 2], hidden, mask_id))
        # the detail phase sees the reference's detail tokens under the shown cells, [BOS] under the hidden
        shown_detail = seen["detail_reference"]
        under_shown = (shown != mask_id).view(2, 8, 8).repeat_interleave(2, 1).repeat_interleave(2, 2).flatten(1)
        assert shown_detail.shape == (2, 256)
        assert torch.equal(shown_detail[under_shown], source_detail.expand(2, -1)[under_shown])
        assert (shown_detail[~under_shown] == bos_id).all()


def test_restyle_keeps_the_cells_the_prompt_explains_best(pipe):
    config = pipe.generator.config
    generator = Generator(config).eval()
    with torch.no_grad():
        generator.coarse_head.bias[3] = 12.0  # this model believes in coarse token 3 everywhere
    biased = Pipeline(pipe.tokenizer, generator, pipe.prompts, "biased", "0" * 64, pipe.sampler)
    reference = torch.full((1, config.coarse_len), 5)
    believed = torch.tensor([0, 9, 18, 27, 36, 45, 54, 63])
    reference[0, believed] = 3
    score = reference_confidence(biased, PROMPT, reference, cfg=3.0)
    assert score.shape == (config.coarse_len,)
    assert set(torch.topk(score, len(believed)).indices.tolist()) == set(believed.tolist())


def test_restyle_same_seed_same_image(pipe):
    image = _photo(100, 70, 8, "RGBA")
    first = np.asarray(restyle(pipe, image, PROMPT, 0.4, seed=2)[0])
    again = np.asarray(restyle(pipe, image, PROMPT, 0.4, seed=2)[0])
    other = np.asarray(restyle(pipe, image, PROMPT, 0.4, seed=3)[0])
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_a_generator_with_a_coarse_reference_alone_is_shown_no_detail_reference(pipe, monkeypatch):
    config = dataclasses.replace(pipe.generator.config, reference_input=True)
    coarse_only = Pipeline(pipe.tokenizer, Generator(config).eval(), pipe.prompts, "c", "0" * 64, pipe.sampler)
    seen = _spy(monkeypatch)
    restyle(coarse_only, _photo(96, 128, 3), PROMPT, 0.0)
    assert seen["coarse_reference"] is not None and seen["detail_reference"] is None
