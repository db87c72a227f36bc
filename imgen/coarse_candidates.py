"""Best of N coarse grids: draw several layouts per image and keep the one the prompt explains best.

Why: the coarse grid decides what goes where, and it is the phase where the
bundled generator loses most of what the tokenizer lets through (README). A
weak model often draws a grid that its own prior, not the prompt, explains: a
blob of the right colour in no particular shape. Scoring each finished grid by
the evidence it gives for the prompt (`prompt_evidence`: log p(grid | prompt) -
log p(grid), the implicit classifier of classifier-free guidance) and keeping
the best spends more compute on the cheap phase (the coarse grid has 64 cells;
the detail phase, which follows once, has 256) to ask the model the question
it is best at: "which of these fits the prompt?" rather than "draw it right the
first time". Only the model scores the candidates; the judge of `imgen eval`
never sees them.

Candidate j of an image draws from its own generator, seeded from the image's
seed and j (`candidate_seed`), so the chosen grid does not depend on the batch;
the detail phase then draws from the image's own generator, as without
candidates.
"""

from __future__ import annotations

import torch

from imgen.model import Generator, KVCache
from imgen.sampler import ProgressCallback, SamplerConfig, coarse_phase


def candidate_seed(seed: int, candidate: int) -> int:
    """The seed of candidate `candidate` of an image with seed `seed`: distinct per pair, within 63 bits."""
    return (seed * 1_000_003 + 7_919 * (candidate + 1)) % (2**63 - 1)


@torch.inference_mode()
def best_coarse(
    model: Generator,
    text_ids: torch.Tensor,  # (B, T)
    null_ids: torch.Tensor,  # (1, T)
    config: SamplerConfig,
    seeds: list[int],
    coarse_fixed: torch.Tensor | None = None,  # (B, C), -1 = free
    callback: ProgressCallback | None = None,
) -> torch.Tensor:
    """`config.coarse_candidates` coarse grids per image, the one with the most prompt evidence kept. (B, C)"""
    count, (B, C) = config.coarse_candidates, (text_ids.shape[0], model.config.coarse_len)
    rows = text_ids.repeat_interleave(count, 0)
    fixed = None if coarse_fixed is None else coarse_fixed.repeat_interleave(count, 0)
    generators = [torch.Generator().manual_seed(candidate_seed(seed, j)) for seed in seeds for j in range(count)]
    cache = _coarse_cache(model, rows, null_ids)
    evidence = torch.zeros(B * count)
    grids = coarse_phase(model, rows, null_ids, config, generators, fixed, None, cache, evidence)
    best = evidence.view(B, count).argmax(-1)
    chosen = grids.view(B, count, C)[torch.arange(B), best]
    if callback is not None:
        callback("coarse", config.coarse_steps, config.coarse_steps, chosen, torch.full((B, model.config.detail_len), -1))
    return chosen


def _coarse_cache(model: Generator, text_ids: torch.Tensor, null_ids: torch.Tensor) -> KVCache:
    """A guidance-doubled cache just long enough for the coarse phase (prompt + the grid's scratch slots)."""
    c = model.config
    dtype = next(model.parameters()).dtype
    cache = KVCache.empty(c, 2 * text_ids.shape[0], c.text_len + c.coarse_len, dtype, text_ids.device)
    model.encode_prompt(torch.cat([text_ids, null_ids.expand_as(text_ids)]), cache)
    return cache
