"""The generator and its sampler on a tiny random model: cache parity, masks, seeds, batches."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from imgen.model import Generator, GPTConfig, KVCache
from imgen.sampler import (
    SamplerConfig,
    coarse_logits,
    coarse_schedule,
    filter_logits,
    guide,
    prompt_cache,
    sample_detail,
    sample_rows,
    sample_tokens,
)

CONFIG = GPTConfig(text_vocab=50, coarse_vocab=30, detail_vocab=40, text_len=6, d_model=32, n_layers=2, n_heads=4)


def _model() -> Generator:
    torch.manual_seed(0)
    return Generator(CONFIG).eval()


def _inputs(batch: int = 2):
    g = torch.Generator().manual_seed(1)
    text = torch.randint(1, 50, (batch, 6), generator=g)
    coarse = torch.randint(0, 30, (batch, 64), generator=g)
    detail = torch.randint(0, 40, (batch, 256), generator=g)
    return text, coarse, detail


def test_cached_detail_decoding_matches_the_full_forward_pass():
    model = _model()
    text, coarse, detail = _inputs()
    with torch.no_grad():
        _, full = model(text, coarse, coarse, detail)
        cache = KVCache.empty(CONFIG, 2, model.sequence_capacity(), torch.float32, torch.device("cpu"))
        steps = [model.prefill(text, coarse, cache)]
        steps += [model.decode_one(detail[:, p - 1], p, cache) for p in range(1, 256)]
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_training_attention_gives_the_fused_kernels_outputs_and_gradients():
    """Training runs explicit attention (a faster backward on CPU); it must compute what the fused kernel does."""
    text, coarse, detail = _inputs()
    masked = coarse.clone()
    masked[:, ::3] = CONFIG.mask_id
    results = []
    for train in (True, False):
        model = _model().train(train)
        coarse_logits, detail_logits = model(text, masked, coarse, detail)
        (coarse_logits.square().mean() + detail_logits.square().mean()).backward()
        grads = [p.grad.clone() for p in model.parameters()]
        results.append((coarse_logits.detach(), detail_logits.detach(), grads))
    (c1, d1, g1), (c2, d2, g2) = results
    torch.testing.assert_close(c1, c2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(d1, d2, atol=1e-5, rtol=1e-5)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_coarse_phase_logits_match_the_training_forward():
    model = _model()
    text, coarse, detail = _inputs()
    masked = coarse.clone()
    masked[:, ::3] = CONFIG.mask_id
    with torch.no_grad():
        train_logits, _ = model(text, masked, coarse, detail)
        torch.testing.assert_close(model.coarse_logits(text, masked), train_logits, atol=1e-5, rtol=1e-5)


def test_coarse_steps_over_a_cached_prompt_match_the_training_forward_and_leave_it_intact():
    model = _model()
    text, coarse, detail = _inputs()
    cache = KVCache.empty(CONFIG, 2, model.sequence_capacity(), torch.float32, torch.device("cpu"))
    with torch.no_grad():
        model.encode_prompt(text, cache)
        for step, stride in enumerate((2, 3, 5)):  # several steps reuse the same scratch slots
            masked = coarse.clone()
            masked[:, step::stride] = CONFIG.mask_id
            train_logits, _ = model(text, masked, coarse, detail)
            torch.testing.assert_close(model.coarse_step(masked, cache), train_logits, atol=1e-5, rtol=1e-5)
        _, full = model(text, coarse, coarse, detail)
        first = model.prefill_detail(coarse, cache)  # the detail phase after the coarse steps, same cache
    torch.testing.assert_close(first, full[:, 0], atol=1e-5, rtol=1e-5)


def test_guiding_the_hidden_states_gives_the_guided_logits():
    model = _model()
    text, coarse, _ = _inputs()  # row 0 plays the prompt, row 1 the empty prompt
    masked = coarse.clone()
    masked[:, ::2] = CONFIG.mask_id
    caches = [KVCache.empty(CONFIG, 2, model.sequence_capacity(), torch.float32, torch.device("cpu")) for _ in "ab"]
    with torch.no_grad():
        for cache in caches:
            model.encode_prompt(text, cache)
        for scale in (1.0, 3.0):
            plain, guided = model.coarse_step(masked, caches[0]), model.coarse_step(masked, caches[1], scale)
            torch.testing.assert_close(guided, guide(plain, scale), atol=1e-5, rtol=1e-5)
        plain, guided = model.prefill_detail(coarse, caches[0]), model.prefill_detail(coarse, caches[1], 3.0)
        torch.testing.assert_close(guided, guide(plain, 3.0), atol=1e-5, rtol=1e-5)


def test_sampled_rows_follow_their_probabilities_and_never_take_impossible_tokens():
    probs = torch.tensor([[0.5, 0.0, 0.3, 0.2, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0]])
    probs = probs[:, None].expand(2, 20_000, 5)
    drawn = sample_rows(probs, [torch.Generator().manual_seed(s) for s in (0, 1)])
    assert drawn.shape == (2, 20_000)
    frequencies = torch.bincount(drawn[0], minlength=5).float() / 20_000
    torch.testing.assert_close(frequencies, probs[0, 0], atol=0.015, rtol=0)
    assert frequencies[1] == 0 and frequencies[4] == 0
    assert (drawn[1] == 4).all()


def test_uniforms_at_either_end_still_land_on_possible_tokens(monkeypatch):
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.5, 0.0]])
    for uniform, expected in ((0.0, 1), (1.0 - 2**-24, 3)):  # the smallest and largest value torch.rand gives
        monkeypatch.setattr(torch, "rand", lambda n, generator=None, u=uniform: torch.full((n,), u))
        assert sample_rows(probs, [torch.Generator()]).item() == expected


def test_a_sampled_row_depends_only_on_its_own_generator():
    probs = torch.rand(3, 7, 11).softmax(-1)
    alone = sample_rows(probs[1:2], [torch.Generator().manual_seed(5)])
    batch = sample_rows(probs, [torch.Generator().manual_seed(s) for s in (9, 5, 2)])
    assert torch.equal(batch[1:2], alone)


def test_detail_only_pass_matches_the_training_forward():
    model = _model()
    text, coarse, detail = _inputs()
    masked = coarse.clone()
    masked[:, 1::2] = CONFIG.mask_id
    with torch.no_grad():
        _, train_logits = model(text, masked, coarse, detail)
        torch.testing.assert_close(model.detail_forward(text, coarse, detail), train_logits, atol=1e-5, rtol=1e-5)


def test_detail_tokens_never_see_the_future():
    model = _model()
    text, coarse, detail = _inputs(1)
    changed = detail.clone()
    changed[:, 100:] = (changed[:, 100:] + 1) % 40
    with torch.no_grad():
        _, a = model(text, coarse, coarse, detail)
        _, b = model(text, coarse, coarse, changed)
    torch.testing.assert_close(a[:, :101], b[:, :101])  # position 100 sees token 99 only
    assert not torch.allclose(a[:, 101:], b[:, 101:])


def test_masked_coarse_never_sees_the_clean_copy_or_the_detail():
    model = _model()
    text, coarse, detail = _inputs(1)
    masked = torch.full_like(coarse, CONFIG.mask_id)
    with torch.no_grad():
        a, _ = model(text, masked, coarse, detail)
        b, _ = model(text, masked, (coarse + 1) % 30, (detail + 1) % 40)
    torch.testing.assert_close(a, b)


def test_cosine_schedule_ends_with_nothing_masked():
    assert [coarse_schedule(s, 8, 64) for s in range(8)][-1] == 0
    counts = [coarse_schedule(s, 8, 64) for s in range(8)]
    assert counts == sorted(counts, reverse=True)


def test_same_seed_same_tokens_whatever_the_batch():
    model = _model()
    text, _, _ = _inputs(3)
    null = torch.zeros(1, 6, dtype=torch.long)
    config = SamplerConfig(coarse_steps=6)
    coarse, detail = sample_tokens(model, text, null, config, seeds=[10, 11, 12])
    alone_c, alone_d = sample_tokens(model, text[1:2], null, config, seeds=[11])
    assert torch.equal(coarse[1], alone_c[0]) and torch.equal(detail[1], alone_d[0])
    again_c, again_d = sample_tokens(model, text, null, config, seeds=[10, 11, 12])
    assert torch.equal(coarse, again_c) and torch.equal(detail, again_d)
    assert (coarse < CONFIG.coarse_vocab).all() and (detail < CONFIG.detail_vocab).all()


def test_an_image_with_few_free_cells_is_the_same_alone_and_beside_one_with_many():
    """An image whose coarse grid fills early must stop drawing then, as it does alone, not when the batch is done."""
    model = _model()
    text, coarse, _ = _inputs(2)
    null = torch.zeros(1, 6, dtype=torch.long)
    fixed = torch.full_like(coarse, -1)
    fixed[1, 1:] = coarse[1, 1:]  # image 1: one free cell, filled in the first step; image 0: all free
    config = SamplerConfig(coarse_steps=6)
    both_c, both_d = sample_tokens(model, text, null, config, [7, 8], coarse_fixed=fixed)
    alone_c, alone_d = sample_tokens(model, text[1:], null, config, [8], coarse_fixed=fixed[1:])
    assert torch.equal(both_c[1], alone_c[0]) and torch.equal(both_d[1], alone_d[0])


def test_fixed_tokens_are_kept():
    model = _model()
    text, coarse, detail = _inputs(1)
    coarse_fixed = torch.full_like(coarse, -1)
    coarse_fixed[:, :20] = coarse[:, :20]
    detail_fixed = torch.full_like(detail, -1)
    detail_fixed[:, 50:] = detail[:, 50:]
    null = torch.zeros(1, 6, dtype=torch.long)
    c, d = sample_tokens(model, text, null, SamplerConfig(), [3], coarse_fixed, detail_fixed)
    assert torch.equal(c[:, :20], coarse[:, :20]) and torch.equal(d[:, 50:], detail[:, 50:])


def test_the_detail_phase_alone_is_the_detail_of_a_fully_given_coarse_grid():
    model = _model()
    text, coarse, _ = _inputs(2)
    null = torch.zeros(1, 6, dtype=torch.long)
    config = SamplerConfig()
    both_c, both_d = sample_tokens(model, text, null, config, [4, 5], coarse_fixed=coarse)
    alone = sample_detail(model, text, null, coarse, config, [4, 5])
    assert torch.equal(both_c, coarse) and torch.equal(alone, both_d)
    other_seeds = sample_detail(model, text, null, coarse, config, [6, 7])
    assert not torch.equal(other_seeds, alone)
    raster = sample_detail(model, text, null, coarse, SamplerConfig(mode="raster"), [4, 5])
    assert raster.shape == alone.shape and ((raster >= 0) & (raster < CONFIG.detail_vocab)).all()


def test_the_detail_phase_is_unguided_by_default_and_guided_on_request():
    model = _model()
    text, coarse, _ = _inputs(2)
    null = torch.zeros(1, 6, dtype=torch.long)
    plain = sample_detail(model, text, null, coarse, SamplerConfig(cfg=1.0), [4, 5])
    assert torch.equal(sample_detail(model, text, null, coarse, SamplerConfig(cfg=7.0), [4, 5]), plain)
    assert not torch.equal(sample_detail(model, text, null, coarse, SamplerConfig(detail_cfg=7.0), [4, 5]), plain)


def test_each_phase_samples_at_its_own_temperature():
    model = _model()
    text, coarse, _ = _inputs(2)
    null = torch.zeros(1, 6, dtype=torch.long)
    base_c, base_d = sample_tokens(model, text, null, SamplerConfig(), [4, 5])
    cold_c, cold_d = sample_tokens(model, text, null, SamplerConfig(detail_temperature=0.2), [4, 5])
    assert torch.equal(cold_c, base_c) and not torch.equal(cold_d, base_d)
    plain = sample_detail(model, text, null, coarse, SamplerConfig(), [4, 5])
    assert torch.equal(sample_detail(model, text, null, coarse, SamplerConfig(temperature=0.2), [4, 5]), plain)


def test_the_unguided_detail_prefill_is_the_prompt_half_of_the_guided_one():
    model = _model()
    text, coarse, _ = _inputs(2)
    null = torch.zeros(1, 6, dtype=torch.long)
    with torch.inference_mode():
        doubled = prompt_cache(model, text, null)
        guided_at_1 = model.prefill_detail(torch.cat([coarse, coarse]), doubled, 1.0)
        halved = prompt_cache(model, text, null).first_rows(2)
        alone = model.prefill_detail(coarse, halved, None)
    assert torch.allclose(alone, guided_at_1, atol=1e-5)


def test_unguided_coarse_steps_run_the_prompt_rows_alone_and_match_the_guided_ones_at_1(monkeypatch):
    model = _model()
    text, coarse, _ = _inputs(2)
    null = torch.zeros(1, 6, dtype=torch.long)
    grid = torch.where(torch.arange(64) % 3 == 0, coarse, CONFIG.mask_id)
    with torch.inference_mode():
        guided_at_1 = model.coarse_step(torch.cat([grid, grid]), prompt_cache(model, text, null), 1.0)
        alone = coarse_logits(model, grid, prompt_cache(model, text, null), 1.0)
    torch.testing.assert_close(alone, guided_at_1, atol=1e-5, rtol=1e-5)
    rows_seen = []
    step = model.coarse_step
    monkeypatch.setattr(model, "coarse_step", lambda grid, *args: rows_seen.append(len(grid)) or step(grid, *args))
    for mode in ("two-phase", "raster"):
        sample_tokens(model, text, null, SamplerConfig(cfg=1.0, mode=mode, coarse_steps=4), [4, 5])
    assert rows_seen and set(rows_seen) == {2}
    sample_tokens(model, text, null, SamplerConfig(cfg=3.0, coarse_steps=4), [4, 5])
    assert rows_seen[-1] == 4


def test_raster_baseline_fills_every_cell():
    model = _model()
    text, _, _ = _inputs(1)
    null = torch.zeros(1, 6, dtype=torch.long)
    c, d = sample_tokens(model, text, null, SamplerConfig(mode="raster"), [0])
    assert (c < CONFIG.coarse_vocab).all() and (d >= 0).all()


def test_top_k_and_top_p_remove_unlikely_tokens():
    logits = torch.tensor([[4.0, 3.0, 0.0, -1.0]])
    assert torch.isinf(filter_logits(logits, 1.0, 2, 1.0)[0, 2:]).all()
    kept = ~torch.isinf(filter_logits(logits, 1.0, 0, 0.5))
    assert kept[0].tolist() == [True, False, False, False]


@pytest.mark.parametrize("with_reference, detail_cfg", [(False, 1.0), (True, 1.0), (True, 3.0)])
def test_parallel_row_decoding_with_a_full_row_lag_is_the_sequential_sampler(with_reference: bool, detail_cfg: float):
    from imgen.sampler import detail_phase, make_generators, parallel_detail_phase

    model, reference = _model(), None
    if with_reference:  # a detail reference reaches each position in both samplers alike
        model, reference = _detail_reference_model(), torch.randint(0, 40, (2, 256), generator=torch.Generator())
    text, coarse, _ = _inputs(2)
    null = torch.zeros(1, 6, dtype=torch.long)
    config = SamplerConfig(detail_window=0, detail_cfg=detail_cfg)
    sequential = detail_phase(model, text, null, coarse, config, make_generators([5, 6]), reference=reference)
    parallel = parallel_detail_phase(model, text, null, coarse, config, make_generators([5, 6]), reference=reference)
    assert torch.equal(sequential, parallel)
    if with_reference:
        plain = detail_phase(model, text, null, coarse, config, make_generators([5, 6]))
        assert not torch.equal(plain, sequential)


def _detail_reference_model() -> Generator:
    torch.manual_seed(0)
    model = Generator(replace(CONFIG, reference_input=True, detail_reference_input=True)).eval()
    with torch.no_grad():
        model.detail_reference_embed.weight.normal_(0, 1.0)  # as if trained on restyle pairs
    return model


def test_parallel_row_decoding_takes_fewer_steps_and_sees_only_written_slots():
    from imgen.sampler import detail_schedule

    schedule = detail_schedule(16, 4)
    assert len(schedule) == 15 * 4 + 16 and sorted(p for step in schedule for p in step) == list(range(256))
    step_of = {p: s for s, step in enumerate(schedule) for p in step}
    for p in range(16, 256):  # the token above is written before the one below it
        assert step_of[p - 16] < step_of[p]
    model = _model()
    text, _, _ = _inputs(2)
    null = torch.zeros(1, 6, dtype=torch.long)
    calls = []
    original = model.decode_slots
    model.decode_slots = lambda *args: calls.append(args[1].numel()) or original(*args)
    _coarse, detail = sample_tokens(model, text, null, SamplerConfig(coarse_steps=4, detail_window=4), [1, 2])
    assert len(calls) == 75 and sum(calls) == 255 + 15  # step 0 comes from the prefill; 15 row starts fed again
    assert (detail >= 0).all() and (detail < CONFIG.detail_vocab).all()
    _alone_c, alone_d = sample_tokens(model, text[1:], null, SamplerConfig(coarse_steps=4, detail_window=4), [2])
    assert torch.equal(detail[1], alone_d[0])  # one seed, one image, whatever the batch


def test_the_raster_baseline_writes_one_detail_token_per_step_whatever_the_window():
    model = _model()
    text, _, _ = _inputs(1)
    null = torch.zeros(1, 6, dtype=torch.long)
    calls = []
    original = model.decode_one
    model.decode_one = lambda *args: calls.append(1) or original(*args)
    sample_tokens(model, text, null, SamplerConfig(mode="raster", detail_window=4), [0])
    assert len(calls) == 255


def test_a_parallel_step_attends_to_the_prefix_and_to_written_earlier_slots_only():
    from imgen.sampler import detail_schedule, window_plan

    model = _model()
    c = model.config
    prefix = c.text_len + c.coarse_len
    schedule = detail_schedule(c.detail_grid, 2)
    step_of = {p: s for s, step in enumerate(schedule) for p in step}
    plan = window_plan(model, 2)
    assert [step.positions[step.sampled].tolist() for step in plan] == schedule
    # each row's first slot, fed BOS when it was written, is fed again the step after the token above it
    refed = {p: index for index, step in enumerate(plan) for p in step.positions[~step.sampled].tolist()}
    grid = c.detail_grid
    assert refed == {r * grid: step_of[r * grid - 1] + 1 for r in range(1, grid)}
    for index, step in enumerate(plan):
        for row, position in enumerate(step.positions.tolist()):
            allowed = step.allowed[row]
            assert allowed[:prefix].all()
            seen = {slot - prefix for slot in allowed.nonzero().flatten().tolist() if slot >= prefix}
            expected = {p for p in range(position + 1) if step_of[p] <= index}
            assert seen == expected
            assert bool(step.input_known[row]) == (position > 0 and step_of[position - 1] < index)


def test_every_detail_token_reaches_the_model_in_parallel_decoding():
    """The last token of a row enters only as the input of the next row's first slot, which parallel rows
    feed before that token exists; it must be fed again, or no later token ever sees the last column."""
    model = _model()
    text, _, _ = _inputs(2)
    null = torch.zeros(1, 6, dtype=torch.long)
    fed: list[tuple[list[int], torch.Tensor]] = []
    original = model.decode_slots

    def recording(previous, positions, *args, **kwargs):
        fed.append((positions.tolist(), previous[:2].clone()))
        return original(previous, positions, *args, **kwargs)

    model.decode_slots = recording
    _, detail = sample_tokens(model, text, null, SamplerConfig(detail_window=2), [0, 1])
    grid = model.config.detail_grid
    for r in range(1, grid):
        q = r * grid
        inputs = [previous[:, positions.index(q)] for positions, previous in fed if q in positions]
        assert any(torch.equal(given, detail[:, q - 1]) for given in inputs), f"token {q - 1} never fed"


def test_a_reference_reaches_every_coarse_step_guided_or_not_and_both_modes():
    torch.manual_seed(0)
    model = Generator(replace(CONFIG, reference_input=True)).eval()
    with torch.no_grad():
        model.reference_embed.weight.normal_(0, 1.0)  # as if trained on restyle pairs
    text, coarse, detail = _inputs(2)
    null = torch.zeros(1, 6, dtype=torch.long)
    reference = torch.randint(0, 30, (2, 64), generator=torch.Generator().manual_seed(7))
    grid = torch.where(torch.arange(64) % 3 == 0, coarse, CONFIG.mask_id)
    with torch.inference_mode():
        trained, _ = model(text, grid, coarse, detail, reference)
        over_cache = coarse_logits(model, grid, prompt_cache(model, text, null), 1.0, reference)
        guided = coarse_logits(model, grid, prompt_cache(model, text, null), 3.0, reference)
        empty, _ = model(null.expand(2, -1), grid, coarse, detail, reference)
    torch.testing.assert_close(over_cache, trained, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(guided, guide(torch.cat([trained, empty]), 3.0), atol=1e-4, rtol=1e-4)
    for mode in ("two-phase", "raster"):
        config = SamplerConfig(coarse_steps=4, mode=mode, temperature=1e-3)
        plain, _ = sample_tokens(model, text, null, config, [4, 5])
        seen, _ = sample_tokens(model, text, null, config, [4, 5], coarse_reference=reference)
        assert not torch.equal(plain, seen), mode
    with pytest.raises(ValueError, match="no reference input"):
        sample_tokens(_model(), text, null, SamplerConfig(coarse_steps=4), [4, 5], coarse_reference=reference)
    for wrong in (reference[:, :10], reference[:1], torch.full_like(reference, -1)):  # -1 means "free" elsewhere
        with pytest.raises(ValueError, match="coarse_reference"):
            sample_tokens(model, text, null, SamplerConfig(coarse_steps=4), [4, 5], coarse_reference=wrong)


def test_a_detail_reference_reaches_every_detail_step_cached_guided_and_in_parallel():
    model = _detail_reference_model()
    text, coarse, detail = _inputs(2)
    null = torch.zeros(1, 6, dtype=torch.long)
    reference = torch.randint(0, 40, (2, 256), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        _, full = model(text, coarse, coarse, detail, None, reference)
        cache = KVCache.empty(CONFIG, 2, model.sequence_capacity(), torch.float32, torch.device("cpu"))
        model.encode_prompt(text, cache)
        steps = [model.prefill_detail(coarse, cache, None, reference)]
        steps += [model.decode_one(detail[:, p - 1], p, cache) for p in range(1, 256)]
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # guided: the empty-prompt rows see the reference too
        _, empty = model(null.expand(2, -1), coarse, coarse, detail, None, reference)
        doubled = prompt_cache(model, text, null)
        guided = model.prefill_detail(torch.cat([coarse, coarse]), doubled, 3.0, torch.cat([reference, reference]))
    torch.testing.assert_close(guided, guide(torch.cat([full[:, 0], empty[:, 0]]), 3.0), atol=1e-4, rtol=1e-4)
    for mode, window, detail_cfg in (
        ("two-phase", 2, 1.0),
        ("two-phase", 2, 3.0),
        ("two-phase", 0, 1.0),
        ("raster", 2, 1.0),
    ):
        config = SamplerConfig(coarse_steps=4, mode=mode, detail_window=window, detail_cfg=detail_cfg)
        plain_coarse, plain = sample_tokens(model, text, null, config, [4, 5])
        seen_coarse, seen = sample_tokens(model, text, null, config, [4, 5], detail_reference=reference)
        assert torch.equal(plain_coarse, seen_coarse), mode  # the coarse phase has its own reference
        assert not torch.equal(plain, seen), (mode, window, detail_cfg)
    none_given = torch.full_like(reference, CONFIG.bos_id)
    config = SamplerConfig(coarse_steps=4)
    assert torch.equal(
        sample_tokens(model, text, null, config, [4, 5])[1],
        sample_tokens(model, text, null, config, [4, 5], detail_reference=none_given)[1],
    )
    with pytest.raises(ValueError, match="no reference input for detail_reference"):
        sample_tokens(_model(), text, null, config, [4, 5], detail_reference=reference)
    for wrong in (reference[:, :10], reference[:1], torch.full_like(reference, -1), reference + 40):
        with pytest.raises(ValueError, match="detail_reference"):
            sample_tokens(model, text, null, config, [4, 5], detail_reference=wrong)
