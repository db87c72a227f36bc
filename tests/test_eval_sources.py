"""The image sources `imgen eval` judges: where prompt following is lost, phase by phase."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from imgen.eval.evaluate import SOURCES, evaluate, ground_truth_tokens, image_source
from imgen.eval.prompts import EvalPrompt
from imgen.sampler import SamplerConfig
from imgen.world.captions import caption
from imgen.world.ground_truth import render_prompt
from imgen.world.sampling import random_spec
from tests.cli_runner import run
from tests.tiny_checkpoint import tiny_pipeline

PROMPTS = ["a red circle", "two blue stars in the top left"]


@pytest.fixture(scope="module")
def pipe():
    rng = random.Random(0)
    return tiny_pipeline([caption(random_spec(rng), rng) for _ in range(200)] + PROMPTS, text_len=24)


def _pixels(images) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.asarray(image) for image in images]))


def test_every_source_gives_one_image_per_request_and_repeats_itself(pipe):
    for source in SOURCES:
        generate = image_source(pipe, source, SamplerConfig(coarse_steps=2))
        first = generate(PROMPTS, [0, 1])
        assert [image.size for image in first] == [(pipe.image_size, pipe.image_size)] * 2, source
        assert torch.equal(_pixels(first), _pixels(generate(PROMPTS, [0, 1]))), source


def test_the_ground_truth_sources_differ_only_in_what_they_keep(pipe):
    coarse, detail = ground_truth_tokens(pipe, PROMPTS, [0, 1])
    sampler = SamplerConfig(coarse_steps=2)
    preview = image_source(pipe, "coarse-preview", sampler)(PROMPTS, [0, 1])
    rebuilt = image_source(pipe, "reconstruction", sampler)(PROMPTS, [0, 1])
    given = image_source(pipe, "given-coarse", sampler)(PROMPTS, [0, 1])
    assert torch.equal(_pixels(preview), _pixels(pipe.decode(coarse, None)))
    assert torch.equal(_pixels(rebuilt), _pixels(pipe.decode(coarse, detail)))
    assert not torch.equal(_pixels(given), _pixels(rebuilt))  # the random generator's detail is not the truth


def test_ground_truth_tokens_are_the_ids_of_each_prompt_s_own_render(pipe):
    renders = [render_prompt(prompt, seed=seed, size=pipe.image_size).image.convert("RGB") for prompt, seed in
               zip(PROMPTS, [0, 1], strict=True)]  # fmt: skip
    pixels = torch.stack([torch.from_numpy(np.array(r)).permute(2, 0, 1) for r in renders])
    with torch.no_grad():
        grids = pipe.tokenizer.encode(pixels)
    coarse, detail = ground_truth_tokens(pipe, PROMPTS, [0, 1])
    assert torch.equal(coarse, grids.coarse.flatten(1)) and torch.equal(detail, grids.detail.flatten(1))
    assert not torch.equal(coarse[0], coarse[1])
    swapped, _ = ground_truth_tokens(pipe, PROMPTS[::-1], [1, 0])  # each prompt keeps its own seed
    assert torch.equal(swapped, coarse.flip(0))


def test_an_unknown_source_names_the_choices(pipe):
    with pytest.raises(ValueError, match="given-coarse"):
        evaluate(pipe, [EvalPrompt("single object", "a red circle")], 1, source="everything")


def test_reconstruct_and_another_source_contradict_each_other(pipe):
    with pytest.raises(ValueError, match="different images"):
        evaluate(pipe, [EvalPrompt("single object", "a red circle")], 1, reconstruct=True, source="given-coarse")


def test_the_cli_rejects_an_unknown_or_contradictory_source(tmp_path: Path, tiny_checkpoint: Path):
    unknown = run("eval", "--source", "everything", "--model", str(tiny_checkpoint), cwd=tmp_path)
    assert unknown.returncode == 2 and "choose one of generator" in unknown.stderr
    both = run("eval", "--reconstruct", "--source", "given-coarse", "--model", str(tiny_checkpoint), cwd=tmp_path)
    assert both.returncode == 2 and len(both.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_results_record_what_made_the_images(pipe, tmp_path: Path):
    suite = [EvalPrompt("single object", "a red circle")]
    evaluate(pipe, suite, 1, tmp_path / "generated", sampler=SamplerConfig(coarse_steps=3, detail_temperature=0.7))
    evaluate(pipe, suite, 1, tmp_path / "preview", source="coarse-preview")
    generated = json.loads((tmp_path / "generated" / "results.json").read_text(encoding="utf-8"))["settings"]
    assert generated["source"] == "generator" and generated["checkpoint_sha256"] == pipe.sha256
    assert generated["sampler"]["coarse_steps"] == 3 and generated["sampler"]["detail_temperature"] == 0.7
    preview = json.loads((tmp_path / "preview" / "results.json").read_text(encoding="utf-8"))["settings"]
    assert preview["source"] == "coarse-preview" and "sampler" not in preview  # nothing was sampled
