"""World rendering throughput on one core, and the held-out rule over many training specs.

    python -m benchmarks.world_render [--images 500] [--specs 100000]

Rendering must outpace training by at least 10x so data never starves it; the
held-out count must be zero.
"""

from __future__ import annotations

import argparse
import random
import time

from benchmarks.common import write_result
from imgen.world import heldout
from imgen.world.examples import render_example
from imgen.world.sampling import random_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--specs", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()

    render_example(0, 0, size=args.size)  # warm caches (sprites, fonts)
    start = time.perf_counter()
    for index in range(args.images):
        render_example(1, index, size=args.size)
    seconds = time.perf_counter() - start
    images_per_s = args.images / seconds

    rng = random.Random(2024)
    start = time.perf_counter()
    violations = sum(bool(heldout.violations(random_spec(rng, "train"))) for _ in range(args.specs))
    spec_seconds = time.perf_counter() - start

    result = {
        "size": args.size,
        "images": args.images,
        "images_per_s_one_core": round(images_per_s, 1),
        "ms_per_image": round(1000 / images_per_s, 2),
        "training_specs_checked": args.specs,
        "heldout_violations": violations,
        "specs_per_s": round(args.specs / spec_seconds, 1),
    }
    path = write_result(f"world_render_{args.size}", result)
    print(
        f"world render {args.size}px: {images_per_s:.0f} images/s on one core; "
        f"{violations} held-out violations in {args.specs} training specs -> {path}"
    )


if __name__ == "__main__":
    main()
