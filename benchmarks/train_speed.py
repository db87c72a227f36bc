"""Training throughput and utilisation of the generator and the tokenizer, against this machine's GEMM peak.

    python -m benchmarks.train_speed [--steps 10]

Both are timed on fixed random inputs with the same loss and AdamW step as
`imgen train` (the model's cost does not depend on content; world rendering and
the tokenizer's encoding of the generator's batches are measured apart, as
`data_s` per generator step). FLOPs are counted by PyTorch's own
`FlopCounterMode` over one forward + backward, so utilisation = counted FLOPs
per second / the large-GEMM peak measured in the same run.

The generator is also timed with the fused attention kernel
(`F.scaled_dot_product_attention`) in place of the explicit attention that
training uses (`imgen.model.explicit_attention`), and the ratio reported.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import write_result
from benchmarks.sample import gemm_peak
from imgen.generator_train import GeneratorObjective, GeneratorTrainConfig, detail_rows, draw_coarse_mask
from imgen.model import GPT_SIZES, Attention, Generator, GPTConfig
from imgen.precision import resolve_precision
from imgen.tokenizer.config import vq_config
from imgen.tokenizer.model import VQTokenizer
from imgen.tokenizer.train import TokenizerTrainConfig, reconstruction_loss, to_unit
from imgen.training import autocast_context
from imgen.world.dataset import WorldExamples


def _timed(step, steps: int) -> tuple[float, float]:
    """(FLOPs of one step, best seconds per step over `steps`)."""
    step()  # warm
    with FlopCounterMode(display=False) as counter:
        step()
    best = float("inf")
    for _ in range(steps):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return float(counter.get_total_flops()), best


def benchmark_gpt(config: GeneratorTrainConfig, size: str = "small", layers: int | None = None) -> GPTConfig:
    """The generator of `size` (with `layers` blocks if given) over the small tokenizer's codebooks."""
    tokenizer_config = vq_config("small")
    shape = GPT_SIZES[size] if layers is None else {**GPT_SIZES[size], "n_layers": layers}
    return GPTConfig(
        text_vocab=600,
        coarse_vocab=tokenizer_config.coarse_vocab,
        detail_vocab=tokenizer_config.detail_vocab,
        text_len=config.text_len,
        **shape,
    )


def training_step(objective: torch.nn.Module, model: Generator, config: GeneratorTrainConfig, gpt: GPTConfig):
    """One `imgen train generator` step (loss, backward, AdamW) on fixed random inputs; the step returns its loss."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    B = config.batch_size
    text = torch.randint(1, gpt.text_vocab, (B, config.text_len), generator=generator)
    coarse = torch.randint(0, gpt.coarse_vocab, (B, gpt.coarse_len), generator=generator)
    detail = torch.randint(0, gpt.detail_vocab, (B, gpt.detail_len), generator=generator)
    masked = draw_coarse_mask(B, gpt.coarse_len, torch.Generator().manual_seed(0))
    rows = detail_rows(B, config.detail_batch)

    def step() -> float:
        with autocast_context("cpu"):  # as `imgen train` runs: bf16 where the CPU has it natively
            coarse_sum, detail_sum, _ = objective(text, coarse, masked, detail, rows)
            loss = coarse_sum / masked.sum() + detail_sum / (rows.sum() * gpt.detail_len)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach().item()

    return step


def generator_step(size: str, config: GeneratorTrainConfig):
    gpt = benchmark_gpt(config, size)
    torch.manual_seed(0)
    model = Generator(gpt).train()
    return training_step(GeneratorObjective(model), model, config, gpt), sum(p.numel() for p in model.parameters())


def tokenizer_step(size: str, config: TokenizerTrainConfig):
    torch.manual_seed(0)
    model = VQTokenizer(vq_config(size)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images = torch.randint(0, 256, (config.batch_size, 3, 128, 128), dtype=torch.uint8)
    target = to_unit(images)
    n_coarse = round(config.batch_size * config.coarse_fraction)

    def step() -> None:
        with autocast_context("cpu"):
            rec = model.autoencode(images, n_coarse)
            loss = reconstruction_loss(rec.full, target, config.edge_weight)
            loss = loss + config.coarse_weight * reconstruction_loss(rec.coarse, target[:n_coarse], config.edge_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, model.num_parameters()


def data_seconds(config: GeneratorTrainConfig) -> float:
    """Seconds to render and tokenize one generator batch (what the model step does not include)."""
    tokenizer = VQTokenizer(vq_config("small")).eval()
    source = WorldExamples(0, 128)
    start = time.perf_counter()
    images, _ = source.batch(range(config.batch_size))
    with torch.no_grad():
        tokenizer.encode(images)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--generator-size", default="small")
    parser.add_argument("--tokenizer-size", default="small")
    args = parser.parse_args()

    peak, dtype = gemm_peak(resolve_precision("auto"))  # the dtype training autocasts to
    gen_config, tok_config = GeneratorTrainConfig(), TokenizerTrainConfig()
    results = {}
    for name, (step, params), batch in (
        ("generator", generator_step(args.generator_size, gen_config), gen_config.batch_size),
        ("tokenizer", tokenizer_step(args.tokenizer_size, tok_config), tok_config.batch_size),
    ):
        flops, seconds = _timed(step, args.steps)
        results[name] = {
            "parameters": params,
            "batch": batch,
            "step_s": round(seconds, 3),
            "samples_per_s": round(batch / seconds, 1),
            "gflop_per_step": round(flops / 1e9, 2),
            "gflops": round(flops / seconds / 1e9, 1),
            "fraction_of_gemm_peak": round(flops / seconds / 1e9 / peak, 3),
        }
    Attention.explicit_when_training = False
    step, _ = generator_step(args.generator_size, gen_config)
    _, fused_seconds = _timed(step, args.steps)
    Attention.explicit_when_training = True
    generator = results["generator"]
    generator["step_s_fused_attention"] = round(fused_seconds, 3)
    generator["speedup_explicit_vs_fused_attention"] = round(fused_seconds / generator["step_s"], 2)
    generator["data_s"] = round(data_seconds(gen_config), 3)
    result = {
        "gemm_peak_gflops": round(peak, 1),
        "gemm_dtype": dtype,
        "threads": torch.get_num_threads(),
        "sizes": {"generator": args.generator_size, "tokenizer": args.tokenizer_size},
        **results,
    }
    path = write_result("train_speed", result)
    g, t = results["generator"], results["tokenizer"]
    print(
        f"generator {g['samples_per_s']} samples/s ({g['fraction_of_gemm_peak']:.0%} of {peak:.0f} GFLOP/s), "
        f"tokenizer {t['samples_per_s']} images/s ({t['fraction_of_gemm_peak']:.0%}); explicit attention "
        f"{g['speedup_explicit_vs_fused_attention']}x the fused kernel's speed -> {path}"
    )


if __name__ == "__main__":
    main()
