"""Tokenizer speed: training throughput (images/s) and one-image encode + decode latency.

    python -m benchmarks.tokenizer_speed --size small

Training throughput is measured on a fixed batch of random images (the model's
cost does not depend on content; world rendering is measured separately by
`benchmarks.world_render`), with the same loss and optimizer step as
`imgen.tokenizer.train`, bf16 autocast where the CPU runs it natively. Results
of each size are merged into benchmarks/results/tokenizer_speed.json, so one
file compares the sizes measured on a machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from benchmarks.common import RESULTS, write_result
from imgen.tokenizer import VQ_SIZES, VQConfig, VQTokenizer
from imgen.tokenizer.train import TokenizerTrainConfig, reconstruction_loss
from imgen.training import autocast_context, bf16_supported

NAME = "tokenizer_speed"


def train_throughput(
    config: VQConfig, batch_size: int, steps: int, warmup: int, bf16: bool, coarse_fraction: float
) -> float:
    """Images per second of full training steps (forward, loss, backward, AdamW)."""
    defaults = TokenizerTrainConfig()
    torch.manual_seed(0)
    model = VQTokenizer(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images = torch.randint(0, 256, (batch_size, 3, config.image_size, config.image_size), dtype=torch.uint8)
    target = images.float() / 255
    coarse_count = max(1, round(batch_size * coarse_fraction))

    def step() -> None:
        with autocast_context("cpu", enabled=bf16):
            rec = model.autoencode(images, coarse_count)
        loss = reconstruction_loss(rec.full, target, defaults.edge_weight)
        loss = loss + defaults.coarse_weight * reconstruction_loss(
            rec.coarse, target[:coarse_count], defaults.edge_weight
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_size / (time.perf_counter() - start)


@torch.no_grad()
def latency_ms(config: VQConfig, repeats: int) -> float:
    """Median milliseconds to encode and decode one image in eval mode (fp32)."""
    model = VQTokenizer(config).eval()
    image = torch.randint(0, 256, (1, 3, config.image_size, config.image_size), dtype=torch.uint8)
    times = []
    for i in range(repeats + 3):
        start = time.perf_counter()
        grids = model.encode(image)
        model.decode(grids.coarse, grids.detail)
        if i >= 3:  # the first calls pay for oneDNN kernel selection
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(VQ_SIZES), default="small")
    parser.add_argument("--batch-size", type=int, default=TokenizerTrainConfig().batch_size)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20, help="timed encode+decode calls")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--dtype", choices=("auto", "bf16", "fp32"), default="auto")
    parser.add_argument("--channels", type=str, default="", help="override, e.g. 48,96 (exploring sizes)")
    parser.add_argument("--encoder-blocks", type=str, default="", help="override, e.g. 1,1")
    parser.add_argument("--decoder-blocks", type=str, default="", help="override, e.g. 2,2")
    parser.add_argument("--coarse-fraction", type=float, default=TokenizerTrainConfig().coarse_fraction)
    parser.add_argument("--label", type=str, default="", help="key of this result (default: the size)")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    config = VQ_SIZES[args.size]
    for name in ("channels", "encoder_blocks", "decoder_blocks"):
        if getattr(args, name):
            config = config.with_overrides(**{name: tuple(int(c) for c in getattr(args, name).split(","))})
    bf16 = bf16_supported("cpu") if args.dtype == "auto" else args.dtype == "bf16"
    images_per_s = train_throughput(config, args.batch_size, args.steps, args.warmup, bf16, args.coarse_fraction)
    latency = latency_ms(config, args.repeats)
    entry = {
        "config": config.to_dict(),
        "parameters": VQTokenizer(config).num_parameters(),
        "batch_size": args.batch_size,
        "coarse_fraction": args.coarse_fraction,
        "dtype": "bf16" if bf16 else "fp32",
        "threads": torch.get_num_threads(),
        "train_images_per_s": round(images_per_s, 2),
        "encode_decode_ms": round(latency, 2),
    }
    previous = RESULTS / f"{NAME}.json"
    sizes: dict = {}
    if previous.exists():
        try:
            sizes = json.loads(previous.read_text(encoding="utf-8")).get("sizes", {})
        except (ValueError, AttributeError):
            sizes = {}
    label = args.label or args.size
    sizes[label] = entry
    write_result(NAME, {"sizes": sizes})
    print(
        f"tokenizer {label}: {entry['parameters'] / 1e6:.2f}M params, {entry['train_images_per_s']} images/s "
        f"training (batch {args.batch_size}, {entry['dtype']}, {entry['threads']} threads), "
        f"encode+decode {entry['encode_decode_ms']} ms/image"
    )


if __name__ == "__main__":
    main()
