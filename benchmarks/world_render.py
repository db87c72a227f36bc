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
from imgen.world.scene import Scene


def drawn_violations(scene: Scene) -> list[str]:
    """Held-out combinations among the items a scene draws: colour-shape pairs, words, object pairs."""
    found = [f"{i.color} {i.kind}" for i in scene.items if (i.color, i.kind) in heldout.HELDOUT_COLOR_SHAPES]
    found += [repr(i.text) for i in scene.items if i.kind == "text" and i.text and heldout.is_heldout_word(i.text)]
    kinds = sorted({i.kind for i in scene.items if i.kind != "text"})
    found += [f"{a} + {b}" for n, a in enumerate(kinds) for b in kinds[n + 1 :] if {a, b} in heldout.HELDOUT_PAIRS]
    return found


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
    violations = sum(bool(drawn_violations(make_example(2024, index, "train").scene)) for index in range(args.specs))
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
