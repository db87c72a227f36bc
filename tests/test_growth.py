"""Growing a trained generator deeper or its prompt vocabulary wider: same outputs, and the new parts learn."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from imgen.growth import add_prompt_words, add_reference_input, deepen, old_block_positions
from imgen.model import Generator, GPTConfig
from imgen.text import PromptEncoder, train_text_tokenizer

CONFIG = GPTConfig(text_vocab=50, coarse_vocab=30, detail_vocab=40, text_len=6, d_model=32, n_layers=3, n_heads=4)


def _inputs():
    g = torch.Generator().manual_seed(1)
    text = torch.randint(1, 50, (2, 6), generator=g)
    coarse = torch.randint(0, 30, (2, 64), generator=g)
    masked = coarse.masked_fill(torch.rand(2, 64, generator=g) < 0.5, CONFIG.mask_id)
    detail = torch.randint(0, 40, (2, 256), generator=g)
    return text, masked, coarse, detail


def _trained_looking_model() -> Generator:
    """Random weights everywhere (no zero output projections), so identity blocks are the only zeros."""
    torch.manual_seed(0)
    model = Generator(CONFIG).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


def test_a_deeper_copy_computes_exactly_the_same_logits():
    model = _trained_looking_model()
    grown = deepen(model, 5)
    assert grown.config.n_layers == 5 and len(grown.blocks) == 5
    with torch.no_grad():
        before, after = model(*_inputs()), grown(*_inputs())
    for a, b in zip(before, after, strict=True):
        assert torch.equal(a, b)


def test_old_blocks_keep_their_order_and_new_ones_sit_between_them():
    assert old_block_positions(6, 8) == [0, 1, 2, 4, 5, 6]
    assert old_block_positions(3, 3) == [0, 1, 2]
    model = _trained_looking_model()
    grown = deepen(model, 5)
    for old_index, new_index in enumerate(old_block_positions(3, 5)):
        assert torch.equal(grown.blocks[new_index].mlp[0].weight, model.blocks[old_index].mlp[0].weight)


def test_the_new_blocks_get_gradients_and_start_to_change_the_output():
    model = deepen(_trained_looking_model(), 5).train()
    new = [i for i in range(5) if i not in old_block_positions(3, 5)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    coarse_logits, detail_logits = model(*_inputs())
    (coarse_logits.square().mean() + detail_logits.square().mean()).backward()
    for index in new:
        assert model.blocks[index].mlp[2].weight.grad.abs().sum() > 0
        assert model.blocks[index].attn.proj.weight.grad.abs().sum() > 0
    optimizer.step()
    for index in new:
        assert model.blocks[index].mlp[2].weight.abs().sum() > 0


def test_growing_to_fewer_layers_is_refused():
    with pytest.raises(ValueError, match="at least 3"):
        deepen(_trained_looking_model(), 2)


def _prompt_encoder() -> PromptEncoder:
    return PromptEncoder(train_text_tokenizer(["two red stars", "a blue circle"]), max_length=CONFIG.text_len)


def test_new_prompt_words_get_new_ids_and_every_old_id_stays():
    prompts = _prompt_encoder()
    assert prompts.missing_words(["eleven red stars", 'a "ZOO" sign', "eleven kites"]) == ["eleven", "sign", "kites"]
    wider = prompts.with_words(["eleven", "kites", "red"])
    assert wider.vocab_size == prompts.vocab_size + 2
    assert wider.encode("two red stars") == prompts.encode("two red stars")
    assert wider.encode('a "ZOO"') == prompts.encode('a "ZOO"')
    eleven = wider.encode("eleven")[0]
    assert eleven >= prompts.vocab_size and eleven != wider.unk_id and wider.missing_words(["eleven kites"]) == []


def test_a_generator_given_new_words_reads_them_as_it_read_unk_until_it_trains():
    prompts = _prompt_encoder()
    model = Generator(dataclasses.replace(CONFIG, text_vocab=prompts.vocab_size)).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    grown, wider = add_prompt_words(model, prompts, ["eleven", "kites"])
    assert grown.config.text_vocab == wider.vocab_size == prompts.vocab_size + 2
    _, masked, coarse, detail = _inputs()
    before = torch.tensor([prompts.encode("eleven red kites")] * 2)
    after = torch.tensor([wider.encode("eleven red kites")] * 2)
    assert not torch.equal(before, after)
    with torch.no_grad():
        for old, new in zip(model(before, masked, coarse, detail), grown(after, masked, coarse, detail), strict=True):
            assert torch.equal(old, new)
    assert add_prompt_words(grown, wider, ["eleven"]) == (grown, wider)  # nothing new: unchanged
    with pytest.raises(ValueError, match="prompt ids"):
        add_prompt_words(model, wider, ["twelve"])


def test_a_reference_input_starts_at_zero_so_no_reference_changes_a_logit():
    model = _trained_looking_model()
    grown = add_reference_input(model)
    assert grown.config.reference_input and not model.config.reference_input
    assert grown.config.detail_reference_input and not model.config.detail_reference_input
    text, masked, coarse, detail = _inputs()
    reference = torch.randint(0, 30, (2, 64), generator=torch.Generator().manual_seed(3))
    detail_reference = torch.randint(0, 40, (2, 256), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        before = model(text, masked, coarse, detail)
        for given, detail_given in ((None, None), (reference, detail_reference)):
            for a, b in zip(before, grown(text, masked, coarse, detail, given, detail_given), strict=True):
                assert torch.equal(a, b)
    assert add_reference_input(grown) is grown


def test_a_generator_with_a_coarse_reference_alone_gains_the_detail_one_and_keeps_what_it_learnt():
    coarse_only = Generator(dataclasses.replace(CONFIG, reference_input=True)).eval()
    with torch.no_grad():
        coarse_only.reference_embed.weight.normal_(0, 0.5)  # as if trained on restyle pairs
    grown = add_reference_input(coarse_only)
    assert grown.config.detail_reference_input
    assert torch.equal(grown.reference_embed.weight, coarse_only.reference_embed.weight)
    text, masked, coarse, detail = _inputs()
    reference = torch.randint(0, 30, (2, 64), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        for a, b in zip(
            coarse_only(text, masked, coarse, detail, reference),
            grown(text, masked, coarse, detail, reference),
            strict=True,
        ):
            assert torch.equal(a, b)


def test_a_detail_reference_reaches_the_detail_position_it_names_and_those_after_it_only():
    grown = add_reference_input(_trained_looking_model())
    with torch.no_grad():
        grown.detail_reference_embed.weight.normal_(0, 0.5)
    text, masked, coarse, detail = _inputs()
    reference = torch.randint(0, 40, (2, 256), generator=torch.Generator().manual_seed(4))
    changed = reference.clone()
    changed[:, 100] = (changed[:, 100] + 1) % 40
    none_given = torch.full_like(reference, CONFIG.bos_id)
    with torch.no_grad():
        plain_coarse, plain_detail = grown(text, masked, coarse, detail)
        seen_coarse, seen_detail = grown(text, masked, coarse, detail, None, reference)
        _, changed_detail = grown(text, masked, coarse, detail, None, changed)
        _, none_detail = grown(text, masked, coarse, detail, None, none_given)
        torch.testing.assert_close(
            grown.detail_forward(text, coarse, detail, reference), seen_detail, atol=1e-5, rtol=1e-5
        )
    assert torch.equal(plain_coarse, seen_coarse)  # the coarse phase has its own reference input
    assert not torch.allclose(plain_detail, seen_detail)
    assert torch.equal(plain_detail, none_detail)  # [BOS] everywhere: no reference
    assert torch.equal(changed_detail[:, :100], seen_detail[:, :100])  # the past never sees a later position's
    assert not torch.allclose(changed_detail[:, 100], seen_detail[:, 100])
    assert not torch.allclose(changed_detail[:, 101:], seen_detail[:, 101:])  # what comes after attends to it
    with pytest.raises(ValueError, match="no detail reference input"):
        _trained_looking_model().detail_forward(text, coarse, detail, reference)


def test_a_reference_reaches_only_the_cells_the_coarse_phase_predicts():
    grown = add_reference_input(_trained_looking_model())
    with torch.no_grad():
        grown.reference_embed.weight.normal_(0, 0.5)  # as if trained on restyle pairs
    text, masked, coarse, detail = _inputs()
    reference = torch.randint(0, 30, (2, 64), generator=torch.Generator().manual_seed(3))
    none_given = torch.full_like(reference, CONFIG.mask_id)
    with torch.no_grad():
        plain_coarse, plain_detail = grown(text, masked, coarse, detail)
        seen_coarse, seen_detail = grown(text, masked, coarse, detail, reference)
        none_coarse, _ = grown(text, masked, coarse, detail, none_given)
        torch.testing.assert_close(grown.coarse_logits(text, masked, reference), seen_coarse, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(plain_coarse, seen_coarse)
    assert torch.equal(plain_detail, seen_detail)  # the detail reads the image's own clean grid
    assert torch.equal(plain_coarse, none_coarse)  # [MASK] everywhere: no reference
    with pytest.raises(ValueError, match="no reference input"):
        _trained_looking_model()(text, masked, coarse, detail, reference)
