"""What decides a tokenizer's token ids, and a fingerprint of it.

Why: a generator is trained on the ids one tokenizer gives. A tokenizer of the
same size trained apart gives other ids for the same pictures; paired with
that generator it loads and draws noise, and sizes alone cannot tell. The
fingerprint hashes only what the ids depend on (the quantiser's levels and the
layers before it), so a tokenizer whose decoder alone was trained again
(`imgen train tokenizer --decoder-only`) keeps it and pairs with every
generator trained on its ids, while one trained apart does not. A generator
records the fingerprint of the tokenizer it was trained with (`TOKEN_IDS_KEY`
in its header; `imgen.api.check_pair`).

The weights are hashed at the 16-bit precision checkpoints are stored in,
named in the fingerprint ("fp16:<sha256>"): casting is idempotent, so a run's
fp32 tokenizer and its fp16 export agree. A bf16 export rounds differently,
so `imgen train export --dtype bf16` records the bf16 fingerprint instead.
"""

from __future__ import annotations

import hashlib

import torch

from imgen.tokenizer.model import VQTokenizer

TOKEN_IDS_KEY = "tokenizer_token_ids"
_PRECISIONS = {"fp16": torch.float16, "bf16": torch.bfloat16}


def token_id_modules(model: VQTokenizer) -> dict[str, torch.nn.Module]:
    """The layers the token ids depend on, by name.

    The encoder, the quantiser's input projections and the coarse features
    (`coarse_up`, `coarse_mix`): the detail grid codes the residual the
    coarse features leave. The decoder and `detail_up` (detail codes back to
    features) only change how the ids are drawn.
    """
    quantizer = model.quantizer
    return {
        "encoder": model.encoder,
        "quantizer.coarse_in": quantizer.coarse_in,
        "quantizer.coarse_up": quantizer.coarse_up,
        "quantizer.coarse_mix": quantizer.coarse_mix,
        "quantizer.detail_in": quantizer.detail_in,
    }


def token_id_fingerprint(model: VQTokenizer, precision: str = "fp16") -> str:
    """The fingerprint, "PRECISION:sha256" of the quantiser's geometry and its id-deciding weights at `precision`."""
    if precision not in _PRECISIONS:
        raise ValueError(f"unknown fingerprint precision {precision!r}; choose one of {', '.join(_PRECISIONS)}")
    digest = hashlib.sha256()
    config = model.config
    digest.update(f"{config.coarse_grid},{config.detail_grid},{config.coarse_levels},{config.detail_levels};".encode())
    for prefix, module in token_id_modules(model).items():
        for name, tensor in sorted(module.state_dict().items()):
            value = tensor.detach().cpu()
            if value.is_floating_point():
                value = value.to(_PRECISIONS[precision])
            digest.update(f"{prefix}.{name}{tuple(value.shape)};".encode())
            digest.update(value.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())  # logical order
    return f"{precision}:{digest.hexdigest()}"


def pairing_problem(tokenizer: VQTokenizer, recorded: str | None) -> str | None:
    """Why `tokenizer` cannot serve a generator that recorded `recorded`, or None (also when nothing is recorded)."""
    if not recorded:  # a generator saved before imgen recorded fingerprints: sizes are all there is to check
        return None
    precision = recorded.split(":", 1)[0]
    if precision not in _PRECISIONS or ":" not in recorded:
        return f"the generator records its tokenizer in a form this imgen does not know ({recorded[:24]!r})"
    if token_id_fingerprint(tokenizer, precision) != recorded:
        return "the tokenizer is not the one the generator was trained with (its token ids differ)"
    return None
