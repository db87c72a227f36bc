"""How far bf16 sampling steps drift from fp32: KL divergence of their next-token distributions.

    python -m benchmarks.sampling_precision [--model default]

The same inputs go through the sampler's own model calls twice, in fp32 and in
bf16: the first coarse step (half the grid given, guided as sampling guides it)
and every parallel detail step of the default window over fixed token grids
(teacher forcing through the KV cache). Reported per phase: mean, median and
99th-percentile KL(fp32 || bf16) in nats per token, and how often both agree on
the most likely token. A change to how a step computes (an attention kernel, a
cache layout) should not raise these: the judge is too coarse to see a small
loss of precision, this is not.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import write_result
from imgen.api import Pipeline, load
from imgen.sampler import SamplerConfig, _prefilled, coarse_logits, prompt_cache, window_plan

PROMPTS = (
    "three red stars above a blue square",
    "a cat",
    "a green triangle on a black background",
    "two yellow stars",
    "a car left of a tree",
    'the word "HI"',
    "a rocket in pixel art style",
    "a blue heart",
)


@torch.inference_mode()
def step_logits(pipe: Pipeline, coarse: torch.Tensor, detail: torch.Tensor) -> dict[str, torch.Tensor]:
    """fp32 logits of the first coarse step (N*64, Vc) and of every parallel detail step's tokens (N*256, Vd)."""
    model, config = pipe.generator, SamplerConfig()
    text, null = pipe.text_ids(list(PROMPTS))
    cache = prompt_cache(model, text, null)
    grid = torch.full_like(coarse, model.config.mask_id)
    grid[:, ::2] = coarse[:, ::2]
    coarse_out = coarse_logits(model, grid, cache, config.cfg).float().flatten(0, 1)
    detail_cache, first, _ = _prefilled(model, text, null, coarse, cache, config.detail_cfg)
    steps = [first.float()[:, None]]
    for step in window_plan(model, config.detail_window)[1:]:
        previous = torch.where(step.input_known, detail[:, step.inputs], model.config.bos_id)
        logits = model.decode_slots(previous, step.positions, detail_cache, step.allowed)
        steps.append(logits[:, step.sampled].float())
    return {"coarse": coarse_out, "detail": torch.cat(steps, 1).flatten(0, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    reference, low = load(args.model, precision="fp32"), load(args.model, precision="bf16")
    g = reference.generator.config
    draw = torch.Generator().manual_seed(0)
    coarse = torch.randint(0, g.coarse_vocab, (len(PROMPTS), g.coarse_len), generator=draw)
    detail = torch.randint(0, g.detail_vocab, (len(PROMPTS), g.detail_len), generator=draw)
    exact, rounded = step_logits(reference, coarse, detail), step_logits(low, coarse, detail)
    result = {}
    for phase in exact:
        p, q = exact[phase].log_softmax(-1), rounded[phase].log_softmax(-1)
        kl = (p.exp() * (p - q)).sum(-1)
        result[phase] = {
            "tokens": kl.numel(),
            "mean_kl": round(kl.mean().item(), 6),
            "median_kl": round(kl.median().item(), 6),
            "p99_kl": round(kl.quantile(0.99).item(), 6),
            "top1_agreement": round((exact[phase].argmax(-1) == rounded[phase].argmax(-1)).float().mean().item(), 4),
        }
    path = write_result("sampling_precision", {"checkpoint_sha256": reference.sha256, **result})
    summary = "; ".join(
        f"{phase} mean KL {row['mean_kl']:.5f}, top-1 agreement {row['top1_agreement']:.3f}"
        for phase, row in result.items()
    )
    print(f"{summary} -> {path}")


if __name__ == "__main__":
    main()
