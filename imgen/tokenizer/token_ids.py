"""What decides a tokenizer's token ids, and a fingerprint of it.

Why: a generator is trained on the ids one tokenizer gives. A tokenizer of the
same size trained apart gives other ids for the same pictures; paired with
that generator it loads and draws noise, and sizes alone cannot tell. The
fingerprint hashes only the layers the ids depend on, so a tokenizer whose
decoder alone was trained again (`imgen train tokenizer --decoder-only`)
keeps it, and pairs with every generator trained on its ids, while one
trained apart does not. A generator records the fingerprint of the tokenizer
it was trained with (`TOKEN_IDS_KEY` in its header; `imgen.api.check_pair`).
"""

from __future__ import annotations

import hashlib

import torch

from imgen.tokenizer.model import VQTokenizer

TOKEN_IDS_KEY = "tokenizer_token_ids"


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


def token_id_fingerprint(model: VQTokenizer) -> str:
    """sha256 (hex) of the id-deciding weights and the grid geometry, as 16-bit values.

    Floating-point tensors are hashed as fp16, the precision checkpoints are
    shipped in, so a run's fp32 tokenizer and its 16-bit export agree.
    """
    digest = hashlib.sha256()
    config = model.config
    digest.update(f"{config.coarse_grid},{config.detail_grid},{model.coarse_vocab},{model.detail_vocab};".encode())
    for prefix, module in token_id_modules(model).items():
        for name, tensor in sorted(module.state_dict().items()):
            value = tensor.detach().cpu()
            if value.is_floating_point():
                value = value.to(torch.float16)
            digest.update(f"{prefix}.{name}{tuple(value.shape)};".encode())
            digest.update(value.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())  # logical order
    return digest.hexdigest()
