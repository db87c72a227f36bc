"""The top-level Python API: `from imgen import load, edit, restyle, recipe_from_image`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import imgen
from tests.cli_runner import imgen as run_imgen
from tests.tiny_checkpoint import tiny_pipeline


def test_importing_imgen_does_not_import_torch_until_a_name_is_used():
    code = (
        "import sys, imgen; before = 'torch' in sys.modules; "
        "from imgen import load; print(before, 'torch' in sys.modules, callable(load))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "True"]


def test_every_public_name_resolves_and_unknown_names_fail():
    import importlib

    assert set(imgen.__all__) == {"__version__", *imgen._EXPORTS}
    for name, module in imgen._EXPORTS.items():
        assert getattr(imgen, name) is getattr(importlib.import_module(module), name), name
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        _ = imgen.nonsense


def test_a_recipe_read_from_a_png_regenerates_its_pixels_through_the_api(tmp_path: Path, tiny_checkpoint: Path):
    model = str(tiny_checkpoint)
    run_imgen("generate", "two red stars", "--seed", "7", "--cfg", "2.5", "-o", "x.png", "--model", model,
              "--precision", "fp32", cwd=tmp_path)  # fmt: skip
    recipe = imgen.recipe_from_image(tmp_path / "x.png")
    assert (recipe.prompt, recipe.seed, recipe.sampler.cfg, recipe.precision) == ("two red stars", 7, 2.5, "fp32")
    assert recipe.model == model and recipe.model_sha256  # a folder is recorded as it was given

    pipe = imgen.load(recipe.model, precision=recipe.precision)
    assert pipe.sha256 == recipe.model_sha256
    again = pipe.generate(recipe.prompt, seed=recipe.seed, sampler=recipe.sampler)[0]
    with Image.open(tmp_path / "x.png") as original:
        assert np.array_equal(np.asarray(again.convert("RGB")), np.asarray(original.convert("RGB")))


def test_a_png_without_imgen_metadata_has_no_recipe(tmp_path: Path):
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    (tmp_path / "text.png").write_text("not an image")
    for name in ("plain.png", "text.png", "missing.png"):
        with pytest.raises(imgen.NotAnImgenImage, match="not a PNG written by imgen"):
            imgen.recipe_from_image(tmp_path / name)


def test_edits_restyles_and_world_renders_have_no_generate_recipe(tmp_path: Path):
    from imgen.io import save_png

    generated = {"prompt": "a cat", "seed": 1, "size": 128, "sampler": {"cfg": 3.0}, "model": "default"}
    records = {
        "edit.png": ({**generated, "task": "edit", "source": "scene.png"}, "made by `imgen edit`"),
        "restyle.png": ({**generated, "task": "restyle", "reference": "ref.png"}, "made by `imgen restyle`"),
        "world.png": ({"prompt": "a cat", "seed": 1, "size": 128, "scene": "{}"}, "not made by `imgen generate`"),
    }
    for name, (record, message) in records.items():
        save_png(Image.new("RGB", (8, 8)), tmp_path / name, metadata=record)
        with pytest.raises(imgen.NotAnImgenImage, match=message):
            imgen.recipe_from_image(tmp_path / name)
    save_png(Image.new("RGB", (8, 8)), tmp_path / "generated.png", metadata=generated)
    assert imgen.recipe_from_image(tmp_path / "generated.png").prompt == "a cat"


def test_the_library_refuses_an_empty_prompt_anywhere_in_a_batch():
    pipe = tiny_pipeline(["a cat"], text_len=8)
    for prompts in (["a cat", "  "], "", ["\n"]):
        with pytest.raises(ValueError, match="the prompt is empty"):
            pipe.generate(prompts, seed=0)
    with pytest.raises(ValueError, match="shards must be at least 1"):
        pipe.generate(["a cat"], shards=0)


def test_loading_a_checkpoint_leaves_the_callers_random_state_alone(tiny_checkpoint: Path):
    import torch

    from imgen.api import load

    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    load(str(tiny_checkpoint), precision="fp32")
    assert torch.equal(torch.rand(3), expected)


def test_coarse_previews_paint_undrawn_cells_grey_and_leave_drawn_ones_as_decoded():
    import numpy
    import torch

    from imgen.api import UNDRAWN_GREY

    pipe = tiny_pipeline(["a cat"], text_len=8)
    g = pipe.generator.config
    coarse = torch.randint(0, g.coarse_vocab, (1, g.coarse_len), generator=torch.Generator().manual_seed(0))
    partial = coarse.clone()
    partial[0, 0] = g.mask_id  # the top-left cell is still open
    full, preview = pipe.decode(coarse, None)[0], pipe.decode(partial, None)[0]
    cell = full.width // g.coarse_grid
    grey = round(UNDRAWN_GREY * 255)
    before, after = numpy.asarray(full), numpy.asarray(preview)
    assert (after[:cell, :cell] == grey).all() and not (before[:cell, :cell] == grey).all()
    half = full.width // 2  # beyond the decoder's reach of cell 0
    assert numpy.array_equal(after[half:, half:], before[half:, half:])


def test_a_pipeline_is_named_as_its_checkpoint_was_given_so_its_images_name_it_again(
    tmp_path: Path, tiny_checkpoint: Path
):
    import shutil

    from imgen.api import load
    from imgen.io import save_png
    from imgen.outputs import image_metadata

    lookalike = tmp_path / "default"  # a user's folder that happens to share the bundled checkpoint's name
    shutil.copytree(tiny_checkpoint, lookalike)
    pipe = load(str(lookalike), precision="fp32")
    assert pipe.name == str(lookalike)
    image = pipe.generate("a cat", seed=0)[0]
    record = image_metadata("a cat", pipe.sampler, 0, pipe.image_size, pipe.name, pipe.sha256)
    save_png(image, tmp_path / "x.png", metadata=record)
    assert imgen.recipe_from_image(tmp_path / "x.png").model == str(lookalike)
    assert load(None, precision="fp32").name == "default"


def test_undrawn_detail_rows_decode_as_the_neutral_code_not_the_codebooks_corner():
    import numpy
    import torch

    pipe = tiny_pipeline(["a cat"], text_len=8)
    g = pipe.generator.config
    coarse = torch.randint(0, g.coarse_vocab, (1, g.coarse_len), generator=torch.Generator().manual_seed(0))
    undrawn = torch.full((1, g.detail_len), -1)
    neutral = torch.full_like(undrawn, pipe.tokenizer.quantizer.detail_fsq.centre_id)
    shown = numpy.asarray(pipe.decode(coarse, undrawn)[0])
    assert numpy.array_equal(shown, numpy.asarray(pipe.decode(coarse, neutral)[0]))
    assert not numpy.array_equal(shown, numpy.asarray(pipe.decode(coarse, torch.zeros_like(undrawn))[0]))


def test_one_seed_per_prompt_or_a_clear_error():
    pipe = tiny_pipeline(["a cat"], text_len=8)
    with pytest.raises(ValueError, match="one seed per prompt: 1 seeds for 2 prompts"):
        pipe.generate(["a cat", "a dog"], seeds=[1])
