"""Grow a trained generator deeper, its prompt vocabulary wider, or give it a reference input, computing the same.

Why: a checkpoint trained for many CPU-hours holds what a larger model would
have to learn again from scratch. Inserting transformer blocks whose residual
branches start at exactly zero (the output projections of attention and MLP are
zero) leaves every logit unchanged, so training continues from the same loss
with more capacity (function-preserving growth, as in Net2Net's deeper nets).
The new blocks' output projections get gradients at once; their inner weights
follow as soon as those projections move away from zero.

The new blocks are spread between the old ones rather than stacked at the end,
so every stage of the network gains depth.

New prompt words (`add_prompt_words`) start with the embedding of `<unk>`,
which is how the checkpoint read them until then: every prompt gives the same
logits as before, and training then tells the new words apart.

The reference inputs (`add_reference_input`, for training on restyle pairs:
one to the coarse phase, one to the detail phase) start at zero for the same
reason.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from imgen.model import Block, Generator
from imgen.text import PromptEncoder


def old_block_positions(old_layers: int, new_layers: int) -> list[int]:
    """Where each old block goes in the deeper stack (increasing, first at 0); the other places get new blocks."""
    return [i * new_layers // old_layers for i in range(old_layers)]


def identity_block(block: Block) -> Block:
    """`block` with its residual branches switched off: attention and MLP output projections at zero."""
    with torch.no_grad():
        for linear in (block.attn.proj, block.mlp[2]):
            linear.weight.zero_()
            linear.bias.zero_()
    return block


def deepen(model: Generator, layers: int) -> Generator:
    """A copy of `model` with `layers` transformer blocks that gives the same outputs (see the module docstring)."""
    old = model.config.n_layers
    if layers < old:
        raise ValueError(f"cannot grow a {old}-layer generator to {layers} layers; give at least {old}")
    grown = Generator(replace(model.config, n_layers=layers))
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("blocks.")}
    loaded = grown.load_state_dict(state, strict=False)
    if loaded.unexpected_keys or not all(key.startswith("blocks.") for key in loaded.missing_keys):
        raise ValueError(f"generator layout changed: {loaded}")  # every tensor but the blocks' must carry over
    old_at = {place: index for index, place in enumerate(old_block_positions(old, layers))}  # new place -> old block
    for place, block in enumerate(grown.blocks):
        if place in old_at:
            block.load_state_dict(model.blocks[old_at[place]].state_dict())
        else:
            identity_block(block)
    return grown.train(model.training)


def add_prompt_words(model: Generator, prompts: PromptEncoder, words: list[str]) -> tuple[Generator, PromptEncoder]:
    """`model` and `prompts` with `words` in the vocabulary, each embedded as `<unk>` was (outputs unchanged)."""
    if model.config.text_vocab != prompts.vocab_size:
        embedded, known = model.config.text_vocab, prompts.vocab_size
        raise ValueError(f"the generator embeds {embedded} prompt ids, its vocabulary has {known}")
    wider = prompts.with_words(words)
    if wider.vocab_size == prompts.vocab_size:
        return model, prompts
    grown = Generator(replace(model.config, text_vocab=wider.vocab_size))
    state = model.state_dict()
    old_rows = state["text_embed.weight"]
    new_rows = old_rows[prompts.unk_id].expand(wider.vocab_size - old_rows.shape[0], -1)
    state["text_embed.weight"] = torch.cat([old_rows, new_rows])
    grown.load_state_dict(state)
    return grown.train(model.training), wider


REFERENCE_EMBEDDINGS = {
    "reference_input": "reference_embed.weight",
    "detail_reference_input": "detail_reference_embed.weight",
}  # each reference input's flag and its embedding


def add_reference_input(model: Generator) -> Generator:
    """A copy of `model` with both reference inputs (`GPTConfig.reference_input` and
    `GPTConfig.detail_reference_input`), the missing ones at zero: the same outputs."""
    missing = [flag for flag in REFERENCE_EMBEDDINGS if not getattr(model.config, flag)]
    if not missing:
        return model
    grown = Generator(replace(model.config, **dict.fromkeys(missing, True)))
    loaded = grown.load_state_dict(model.state_dict(), strict=False)
    if loaded.unexpected_keys or sorted(loaded.missing_keys) != sorted(REFERENCE_EMBEDDINGS[f] for f in missing):
        raise ValueError(f"generator layout changed: {loaded}")
    return grown.train(model.training)
