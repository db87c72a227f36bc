"""Grow a trained tokenizer's decoder, and the parts a decoder-only run may train.

Why: the tokenizer's token ids are what a generator is trained on, so
retraining the whole tokenizer makes every generator checkpoint worthless.
Its decoder (and the layer that turns detail codes back into features) can
change freely: the same ids then decode to sharper images, for every generator
trained on them. A decoder given more residual blocks keeps computing
exactly what it did, because each block's last convolution starts at zero
(`ResBlock`), so such a run starts from the trained loss with more capacity
(function-preserving growth, as `imgen.growth` does for the generator).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from imgen.tokenizer.model import VQTokenizer
from imgen.tokenizer.token_ids import token_id_modules


def parse_blocks(text: str) -> tuple[int, ...]:
    """'2,4' -> (2, 4); a clear ValueError otherwise."""
    try:
        blocks = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"decoder blocks must be comma-separated counts such as 2,4, not {text!r}") from None
    if any(count < 0 for count in blocks):
        raise ValueError(f"decoder block counts cannot be negative: {text!r}")
    return blocks


def deepen_decoder(model: VQTokenizer, blocks: tuple[int, ...]) -> VQTokenizer:
    """A copy of `model` whose decoder stages have `blocks` residual blocks (stem's resolution first) and
    that decodes every token grid to the same image. New blocks follow the old ones of their stage."""
    old = model.config.decoder_blocks
    if len(blocks) != len(old):
        raise ValueError(f"give {len(old)} decoder block counts (one per stage), not {len(blocks)}")
    if any(new < was for new, was in zip(blocks, old, strict=True)):
        raise ValueError(f"the decoder can only grow: it has {','.join(map(str, old))} blocks")
    grown = VQTokenizer(replace(model.config, decoder_blocks=blocks))
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("decoder.stages.")}
    loaded = grown.load_state_dict(state, strict=False)
    if loaded.unexpected_keys or not all(key.startswith("decoder.stages.") for key in loaded.missing_keys):
        raise ValueError(f"tokenizer layout changed: {loaded}")
    stages = len(old)
    for index, (new_stage, old_stage) in enumerate(zip(grown.decoder.stages, model.decoder.stages, strict=True)):
        level = stages - 1 - index  # the decoder runs from the detail grid's stage up to the stem's
        count, was = blocks[level], old[level]
        for k in range(was):
            new_stage[k].load_state_dict(old_stage[k].state_dict())
        if level > 0:  # the stage ends in its upsampling
            new_stage[count].load_state_dict(old_stage[was].state_dict())
    return grown.to(memory_format=torch.channels_last).train(model.training)


def freeze_token_ids(model: VQTokenizer) -> list[torch.nn.Parameter]:
    """Freeze what decides the token ids (`token_id_modules`); return the rest, what a decoder-only run trains.

    What remains trainable is the decoder and `detail_up`, which turns detail
    codes into features. The frozen part gets no gradients, so autograd skips
    the encoder's backward pass entirely.
    """
    for module in token_id_modules(model).values():
        module.requires_grad_(False)
    return [p for p in model.parameters() if p.requires_grad]
