"""The number format the generator samples in: bf16 where the CPU multiplies it natively, else fp32.

On a CPU with avx512_bf16 or AMX a bf16 matrix product runs at more than twice
the fp32 rate, and sampling a batch of 16 images ran 1.3-1.6x faster in bf16
than in fp32 on such a machine (README, Speed). Without those instructions bf16 is
emulated and slower than fp32, so "auto" keeps fp32 there. Only the generator
changes format: the image tokenizer decodes in fp32, and logits are turned
into fp32 before any sampling (`sampler.filter_logits`).

An image depends on the precision it was sampled in, so a PNG made in bf16
records it (`outputs.image_metadata`) and `generate --from-image` reuses it.
`--precision fp32` samples in fp32, as a CPU without bf16 does.
"""

from __future__ import annotations

import torch

from imgen.training import cpu_has_native_bf16

PRECISIONS = ("auto", "fp32", "bf16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def resolve_precision(precision: str = "auto") -> str:
    """ "fp32" or "bf16" for a requested precision; "auto" picks bf16 only where the CPU runs it natively."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return precision
