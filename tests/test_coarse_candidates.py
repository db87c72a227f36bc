"""Best-of-N coarse grids on a tiny random model: the kept grid, its independence of the batch, fixed cells."""

from __future__ import annotations

import pytest
import torch

from imgen.coarse_candidates import best_coarse, candidate_seed
from imgen.model import Generator, GPTConfig
from imgen.sampler import SamplerConfig, coarse_phase, prompt_cache, sample_tokens

CONFIG = GPTConfig(text_vocab=50, coarse_vocab=30, detail_vocab=40, text_len=6, d_model=32, n_layers=2, n_heads=4)
NULL = torch.zeros(1, 6, dtype=torch.long)


def _model() -> Generator:
    torch.manual_seed(0)
    return Generator(CONFIG).eval()


def _text(batch: int) -> torch.Tensor:
    return torch.randint(1, 50, (batch, 6), generator=torch.Generator().manual_seed(1))


def _one_candidate(model: Generator, text: torch.Tensor, config: SamplerConfig, seed: int, j: int):
    """Candidate j of one image, drawn on its own, with its prompt evidence."""
    evidence = torch.zeros(1)
    generators = [torch.Generator().manual_seed(candidate_seed(seed, j))]
    grid = coarse_phase(model, text, NULL, config, generators, cache=prompt_cache(model, text, NULL), evidence=evidence)
    return grid[0], float(evidence[0])


def test_the_kept_grid_is_the_candidate_the_prompt_explains_best():
    model, text = _model(), _text(1)
    config = SamplerConfig(coarse_steps=4, coarse_candidates=5)
    drawn = [_one_candidate(model, text, config, seed=3, j=j) for j in range(5)]
    assert len({tuple(grid.tolist()) for grid, _ in drawn}) > 1  # the candidates differ, so the choice matters
    best_grid, _ = max(drawn, key=lambda pair: pair[1])
    kept = best_coarse(model, text, NULL, config, seeds=[3])
    assert torch.equal(kept[0], best_grid)


def test_an_image_keeps_the_same_grid_alone_and_in_a_batch():
    model, text = _model(), _text(3)
    config = SamplerConfig(coarse_steps=4, coarse_candidates=3)
    batch = best_coarse(model, text, NULL, config, seeds=[5, 6, 7])
    alone = best_coarse(model, text[2:], NULL, config, seeds=[7])
    assert torch.equal(batch[2], alone[0])


def test_evidence_is_zero_when_the_prompt_is_the_empty_prompt():
    """With no prompt, the prompt rows and the empty-prompt rows are the same model: nothing to prefer."""
    model = _model()
    config = SamplerConfig(coarse_steps=4)
    for text, expect_zero in ((NULL.clone(), True), (_text(1), False)):
        evidence = torch.zeros(1)
        generators = [torch.Generator().manual_seed(0)]
        coarse_phase(model, text, NULL, config, generators, evidence=evidence)
        assert (abs(float(evidence[0])) < 1e-4) == expect_zero


def test_collecting_evidence_does_not_change_the_draws():
    model, text = _model(), _text(2)
    config = SamplerConfig(coarse_steps=4)
    plain = coarse_phase(model, text, NULL, config, [torch.Generator().manual_seed(s) for s in (1, 2)])
    scored = coarse_phase(
        model, text, NULL, config, [torch.Generator().manual_seed(s) for s in (1, 2)], evidence=torch.zeros(2)
    )
    assert torch.equal(plain, scored)


def test_fixed_cells_stay_fixed_in_every_candidate():
    model, text = _model(), _text(2)
    fixed = torch.full((2, 64), -1)
    fixed[:, :40] = torch.randint(0, 30, (2, 40), generator=torch.Generator().manual_seed(2))
    coarse, detail = sample_tokens(model, text, NULL, SamplerConfig(coarse_steps=4, coarse_candidates=4), [0, 1], fixed)
    assert torch.equal(coarse[:, :40], fixed[:, :40])
    assert (coarse < CONFIG.coarse_vocab).all() and (detail >= 0).all()


def test_zero_candidates_is_refused():
    model, text = _model(), _text(1)
    with pytest.raises(ValueError, match="at least 1"):
        sample_tokens(model, text, NULL, SamplerConfig(coarse_candidates=0), [0])
