"""One training example of the world: spec, caption, scene and image, from (seed, index).

An example is a pure function of `(seed, split, index)`: no global random state,
no dependence on which worker or process asks for it. That is what makes the
stream reproducible, shardable across DataLoader workers and torchrun ranks,
and byte-identical across runs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from PIL import Image

from imgen.world import vocab
from imgen.world.captions import STYLE_FRAMES, caption
from imgen.world.layout import layout
from imgen.world.render import render
from imgen.world.sampling import random_spec
from imgen.world.scene import Scene
from imgen.world.spec import SceneSpec, SpecError

MAX_DRAWS = 20
"""Specs that cannot be laid out are redrawn from the same stream; this many tries is ample."""


@dataclass(frozen=True)
class Example:
    spec: SceneSpec
    caption: str
    scene: Scene


def example_rng(seed: int, split: str, index: int) -> random.Random:
    """The random stream of one example; string seeds hash the same on every platform."""
    return random.Random(f"imgen-world/{split}/{seed}/{index}")


def make_example(seed: int, index: int, split: str = "train") -> Example:
    """Draw the spec, write its caption and lay out its scene (no pixels yet)."""
    rng = example_rng(seed, split, index)
    for _ in range(MAX_DRAWS):
        spec = random_spec(rng, split)
        try:
            scene = layout(spec, rng)
        except SpecError:
            continue
        return Example(spec=spec, caption=caption(spec, rng), scene=scene)
    raise SpecError(f"no spec of example {index} (seed {seed}, {split}) fitted in {MAX_DRAWS} draws")


def render_example(seed: int, index: int, split: str = "train", size: int = 128) -> tuple[Image.Image, Example]:
    example = make_example(seed, index, split)
    return render(example.scene, size), example


def other_styles(style: str) -> tuple[str, ...]:
    """The world's styles but `style`, in their fixed order: what a restyle pair's reference may be drawn in."""
    return tuple(other for other in vocab.STYLES if other != style)


def style_only_caption(seed: int, index: int, frame: int, split: str = "train") -> str:
    """A caption of example `index` that names its style alone ("the scene at night"): the prompt a restyle
    is often given, everything else left to the reference. `frame` picks one of the style's sentence frames."""
    style = make_example(seed, index, split).scene.style
    frames = STYLE_FRAMES[style]
    return frames[frame % len(frames)].format("the scene")


def render_example_restyled(seed: int, index: int, pick: int, split: str = "train", size: int = 128) -> Image.Image:
    """Example `index`'s scene drawn in the `pick`-th of its `other_styles`: the other half of a restyle pair."""
    example = make_example(seed, index, split)
    return render(replace(example.scene, style=other_styles(example.scene.style)[pick]), size)
