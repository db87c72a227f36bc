"""World rendering throughput on one core, and the held-out rule over many laid-out training scenes.

    python -m benchmarks.world_render [--images 500] [--specs 20000]

Rendering must outpace training by at least 10x so data never starves it; the
held-out count must be zero. It is counted on what is drawn, not on the
specs: a spec is redrawn until it holds no held-out combination, so counting
specs could never find one, while colours the layout picks for uncoloured
shapes ("a star") could still draw a held-out pair.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import write_result
from imgen.world import heldout
from imgen.world.examples import make_example, render_example


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--specs", type=int, default=20_000, help="training scenes laid out and checked")
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()

    render_example(0, 0, size=args.size)  # warm caches (sprites, fonts)
    start = time.perf_counter()
    for index in range(args.images):
        render_example(1, index, size=args.size)
    seconds = time.perf_counter() - start
    images_per_s = args.images / seconds

    start = time.perf_counter()
    violations = sum(
        bool(heldout.drawn_violations(make_example(2024, index, "train").scene)) for index in range(args.specs)
    )
    spec_seconds = time.perf_counter() - start

    result = {
        "size": args.size,
        "images": args.images,
        "images_per_s_one_core": round(images_per_s, 1),
        "ms_per_image": round(1000 / images_per_s, 2),
        "training_scenes_checked": args.specs,
        "heldout_violations": violations,
        "scenes_laid_out_per_s": round(args.specs / spec_seconds, 1),
    }
    path = write_result(f"world_render_{args.size}", result)
    print(
        f"world render {args.size}px: {images_per_s:.0f} images/s on one core; "
        f"{violations} held-out combinations drawn in {args.specs} training scenes -> {path}"
    )


if __name__ == "__main__":
    main()
