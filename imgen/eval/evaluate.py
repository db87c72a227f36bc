"""What `imgen eval` runs: a checkpoint (or its tokenizer alone) measured on a benchmark suite.

Two image sources share one runner and one judge, so their figures sit side by
side: the generator (prompt -> image), and the tokenizer's reconstruction of a
ground-truth render of the prompt (the ceiling any generator on this tokenizer
can reach: what the judge still recognises after encode -> decode).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from imgen.api import Pipeline
from imgen.eval.runner import Report, run_suite
from imgen.sampler import SamplerConfig
from imgen.world.ground_truth import render_prompt

Progress = Callable[[int, int], None]


def generator_source(pipe: Pipeline, sampler: SamplerConfig) -> Callable[[list[str], list[int]], list[Image.Image]]:
    """Images from the generator; seeds are the suite's, so two runs compare like with like."""

    def generate(prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        return pipe.generate(prompts, sampler=sampler, seeds=seeds)

    return generate


def reconstruction_source(pipe: Pipeline) -> Callable[[list[str], list[int]], list[Image.Image]]:
    """Ground-truth renders of the prompts, passed through the tokenizer (encode -> decode)."""

    def generate(prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        renders = [render_prompt(p, seed=s, size=pipe.image_size).image for p, s in zip(prompts, seeds, strict=True)]
        pixels = torch.from_numpy(np.stack([np.asarray(r.convert("RGB"), dtype=np.uint8) for r in renders]))
        with torch.no_grad():
            grids = pipe.tokenizer.encode(pixels.permute(0, 3, 1, 2))
        return pipe.decode(grids.coarse.flatten(1), grids.detail.flatten(1))

    return generate


def evaluate(
    pipe: Pipeline,
    suite: str = "quick",
    images_per_prompt: int = 2,
    out_dir: str | Path | None = None,
    reconstruct: bool = False,
    sampler: SamplerConfig | None = None,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> Report:
    """Run `suite` on the checkpoint's generator (or, with `reconstruct`, its tokenizer) and judge every image."""
    source = reconstruction_source(pipe) if reconstruct else generator_source(pipe, sampler or SamplerConfig())
    return run_suite(source, suite, images_per_prompt, out_dir, progress=progress, batch_size=batch_size)
