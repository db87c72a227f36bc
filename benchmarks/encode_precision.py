"""How many token ids the tokenizer gives differently under bf16 autocast than in fp32.

    python -m benchmarks.encode_precision [--tokenizer PATH] [--images 128] [--seed 14]

Sampling, editing and the evaluation encode images in fp32; the generator's
training encoded its targets under bf16 autocast until that was found to give
other ids for the same images. This counts them on world training images, per
grid: the share of coarse and of detail ids that differ.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import write_result
from imgen.api import TOKENIZER_FILE, resolve_checkpoint
from imgen.checkpoints import load_tokenizer
from imgen.training import autocast_context
from imgen.world.examples import render_example


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", type=Path, default=None, help="default: the bundled checkpoint's")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    path = args.tokenizer or resolve_checkpoint("default") / TOKENIZER_FILE
    tokenizer = load_tokenizer(path).eval()
    size = tokenizer.config.image_size
    images = torch.stack(
        [
            torch.from_numpy(np.array(render_example(args.seed, i, "train", size=size)[0])).permute(2, 0, 1)
            for i in range(args.images)
        ]
    )
    with torch.no_grad():
        exact = tokenizer.encode(images)
        with autocast_context(torch.device("cpu")):
            rounded = tokenizer.encode(images)
    result = {
        "tokenizer": path.name if args.tokenizer else "default",
        "images": args.images,
        "seed": args.seed,
        "coarse_ids_differing": round((exact.coarse != rounded.coarse).float().mean().item(), 4),
        "detail_ids_differing": round((exact.detail != rounded.detail).float().mean().item(), 4),
    }
    out = write_result("encode_precision", result)
    print(
        f"bf16 autocast against fp32: {result['coarse_ids_differing']:.1%} of coarse ids and "
        f"{result['detail_ids_differing']:.1%} of detail ids differ ({args.images} world images) -> {out}"
    )


if __name__ == "__main__":
    main()
