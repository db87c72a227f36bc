"""What `imgen eval` runs: a checkpoint (or its tokenizer alone) measured on a benchmark suite.

Four image sources share one runner and one judge, so their figures sit side
by side and say where prompt following is lost:

- `generator`: prompt -> image, both phases (what a user gets);
- `given-coarse`: the ground-truth render's coarse grid, then the generator's
  detail phase on it (what the detail phase adds or loses on its own);
- `coarse-preview`: the ground-truth coarse grid decoded alone (what the coarse
  phase would reach if it were perfect and the detail phase added nothing);
- `reconstruction`: the tokenizer's encode -> decode of the ground-truth render
  (the ceiling any generator on this tokenizer can reach).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from imgen.api import Pipeline
from imgen.eval.runner import Generate, Report, run_suite
from imgen.sampler import SamplerConfig, sample_detail
from imgen.world.ground_truth import render_prompt

Progress = Callable[[int, int], None]


def generator_source(pipe: Pipeline, sampler: SamplerConfig) -> Generate:
    """Images from the generator; seeds are the suite's, so two runs compare like with like."""

    def generate(prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        return pipe.generate(prompts, sampler=sampler, seeds=seeds)

    return generate


def ground_truth_tokens(pipe: Pipeline, prompts: list[str], seeds: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The tokenizer's coarse (B, C) and detail (B, D) ids of the prompts' ground-truth renders."""
    renders = [render_prompt(p, seed=s, size=pipe.image_size).image for p, s in zip(prompts, seeds, strict=True)]
    pixels = torch.from_numpy(np.stack([np.asarray(r.convert("RGB"), dtype=np.uint8) for r in renders]))
    with torch.no_grad():
        grids = pipe.tokenizer.encode(pixels.permute(0, 3, 1, 2))
    return grids.coarse.flatten(1), grids.detail.flatten(1)


def reconstruction_source(pipe: Pipeline) -> Generate:
    """Ground-truth renders of the prompts, passed through the tokenizer (encode -> decode)."""

    def generate(prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        return pipe.decode(*ground_truth_tokens(pipe, prompts, seeds))

    return generate


def coarse_preview_source(pipe: Pipeline) -> Generate:
    """The ground-truth renders' coarse grids, decoded without detail tokens."""

    def generate(prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        coarse, _ = ground_truth_tokens(pipe, prompts, seeds)
        return pipe.decode(coarse, None)

    return generate


def given_coarse_source(pipe: Pipeline, sampler: SamplerConfig) -> Generate:
    """The ground-truth coarse grids, with detail tokens from the generator's detail phase."""

    def generate(prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        coarse, _ = ground_truth_tokens(pipe, prompts, seeds)
        text, null = pipe.text_ids(prompts)
        return pipe.decode(coarse, sample_detail(pipe.generator, text, null, coarse, sampler, seeds))

    return generate


SOURCES = {  # name -> what its images are, as the report names them
    "generator": "generator",
    "given-coarse": "detail phase on ground-truth coarse grids",
    "coarse-preview": "ground-truth coarse grids alone",
    "reconstruction": "tokenizer reconstructions",
}


def image_source(pipe: Pipeline, source: str, sampler: SamplerConfig) -> Generate:
    """The `generate(prompts, seeds)` callable of one of `SOURCES`."""
    if source == "generator":
        return generator_source(pipe, sampler)
    if source == "given-coarse":
        return given_coarse_source(pipe, sampler)
    if source == "coarse-preview":
        return coarse_preview_source(pipe)
    if source == "reconstruction":
        return reconstruction_source(pipe)
    raise ValueError(f"unknown image source {source!r}; choose one of {', '.join(SOURCES)}")


def evaluate(
    pipe: Pipeline,
    suite: str = "quick",
    images_per_prompt: int = 2,
    out_dir: str | Path | None = None,
    reconstruct: bool = False,
    sampler: SamplerConfig | None = None,
    batch_size: int = 16,
    progress: Progress | None = None,
    source: str = "generator",
) -> Report:
    """Run `suite` on one of `SOURCES` (`reconstruct` is short for "reconstruction") and judge every image."""
    if reconstruct and source not in ("generator", "reconstruction"):
        raise ValueError(f"reconstruct=True and source={source!r} ask for different images; give one of them")
    source = "reconstruction" if reconstruct else source
    sampler = sampler or SamplerConfig()
    settings = {
        "source": source,
        "checkpoint": pipe.name,
        "checkpoint_sha256": pipe.sha256,
        "precision": pipe.precision,
    }
    if source in ("generator", "given-coarse"):  # the sources that sample
        settings["sampler"] = asdict(sampler)
    generate = image_source(pipe, source, sampler)
    return run_suite(generate, suite, images_per_prompt, out_dir, progress, batch_size, settings)
