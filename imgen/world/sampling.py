"""Random scene specifications: the distribution the bundled model is taught.

`random_spec(rng, split)` draws one spec from a mixture of scene types that
mirrors the evaluation categories (single objects, pairs in relations, counts
up to 20, many objects in regions, text in three scripts, styles), so every
category gets training signal. The "train" split rejects any held-out
combination; the "heldout" split plants exactly one, so evaluation scenes are
compositions the model has never seen.
"""

from __future__ import annotations

import random

from imgen.world import heldout, vocab, words
from imgen.world.layout import color_visible, color_visible_everywhere
from imgen.world.spec import ObjectGroup, Relation, SceneSpec, TextBlock

SPLITS = ("train", "heldout")

# Scene type -> weight. Text is frequent because spelling is the hardest skill.
SCENE_TYPES: dict[str, float] = {
    "single": 0.18,
    "relation": 0.14,
    "pair": 0.08,
    "count": 0.14,
    "many": 0.10,
    "text": 0.20,
    "mixed": 0.16,
}


def random_spec(rng: random.Random, split: str = "train") -> SceneSpec:
    """Draw one valid spec of `split`; deterministic for a given `rng` state."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    while True:
        spec = _draw(rng)
        found = heldout.violations(spec)
        if split == "train" and not found:
            return spec
        if split == "heldout":
            planted = _plant_heldout(spec, rng)
            if planted is not None:
                return planted


def _draw(rng: random.Random) -> SceneSpec:
    kind = rng.choices(tuple(SCENE_TYPES), weights=tuple(SCENE_TYPES.values()))[0]
    background = rng.choice(tuple(vocab.BACKGROUNDS)) if rng.random() < 0.4 else None
    style = "flat" if rng.random() < 0.6 else rng.choice(vocab.STYLES[1:])
    groups: list[ObjectGroup] = []
    texts: list[TextBlock] = []
    relations: list[Relation] = []
    bg = background or "white"
    if kind == "single":
        groups.append(_group(rng, bg, count=1, region_p=0.5, size_p=0.5))
    elif kind == "relation":
        groups += [_group(rng, bg, count=1, region_p=0.0, size_p=0.2) for _ in range(2)]
        relations.append(Relation(0, rng.choice(vocab.RELATIONS), 1))
    elif kind == "pair":
        regions = rng.sample(vocab.REGIONS, 2)
        groups += [_group(rng, bg, count=1, region=r, size_p=0.3) for r in regions]
    elif kind == "count":
        count = rng.choice((2, 2, 3, 3, 4, 4, 5, 6, 7, 8, 9, 10, *range(11, vocab.MAX_COUNT + 1)))
        groups.append(_group(rng, bg, count=count, region_p=0.3 if count <= 6 else 0.0, size_p=0.0))
    elif kind == "many":
        n_groups = rng.randint(3, 9)
        regions = rng.sample(vocab.REGIONS, n_groups)
        budget = vocab.MAX_COUNT
        for region in regions:
            count = min(rng.choice((1, 1, 1, 2, 3)), budget - (len(regions) - len(groups) - 1))
            budget -= count
            groups.append(_group(rng, bg, count=count, region=region, size_p=0.0))
    elif kind == "text":
        texts.append(_text(rng, bg, region_p=0.6))
        if rng.random() < 0.15:
            texts.append(_text(rng, bg, region_p=1.0, avoid=texts[0].region))
    else:  # mixed: objects and a text block
        n_groups = rng.randint(1, 3)
        regions = rng.sample(vocab.REGIONS, n_groups + 1)
        for region in regions[:n_groups]:
            groups.append(_group(rng, bg, count=rng.choice((1, 1, 2, 3)), region=region, size_p=0.0))
        texts.append(_text(rng, bg, region_p=1.0, region=regions[-1]))
    return SceneSpec(
        groups=tuple(groups), texts=tuple(texts), relations=tuple(relations), background=background, style=style
    )


def _color(rng: random.Random, background: str) -> str:
    return rng.choice([c for c in vocab.COLORS if color_visible_everywhere(c, background)])


def _group(
    rng: random.Random,
    background: str,
    count: int,
    region: str | None = None,
    region_p: float = 0.0,
    size_p: float = 0.0,
) -> ObjectGroup:
    kind = rng.choice(vocab.SHAPES) if rng.random() < 0.55 else rng.choice(tuple(vocab.STICKERS))
    color = None
    if kind in vocab.SHAPES and rng.random() < 0.9:
        color = _color(rng, background)
    if region is None and rng.random() < region_p:
        region = rng.choice(vocab.REGIONS)
    size = rng.choice(tuple(vocab.SIZES)) if count == 1 and rng.random() < size_p else None
    return ObjectGroup(kind=kind, count=count, color=color, size=size, region=region)


def _text(
    rng: random.Random, background: str, region_p: float, region: str | None = None, avoid: str | None = None
) -> TextBlock:
    script = rng.choices(("latin", "greek", "cyrillic"), weights=(0.5, 0.25, 0.25))[0]
    text = words.random_text(script, rng)
    color = _color(rng, background) if rng.random() < 0.5 else None
    if region is None and rng.random() < region_p:
        region = rng.choice([r for r in vocab.REGIONS if r != avoid])
    return TextBlock(text=text, color=color, region=region)


def _plant_heldout(spec: SceneSpec, rng: random.Random) -> SceneSpec | None:
    """Replace one attribute of `spec` with a held-out combination (None if no slot fits)."""
    options = []
    shape_groups = [i for i, g in enumerate(spec.groups) if g.kind in vocab.SHAPES]
    if shape_groups:
        options.append("color-shape")
    if spec.texts:
        options.append("word")
    if len(spec.groups) >= 2:
        options.append("pair")
    if not options:
        return None
    choice = rng.choice(options)
    groups, texts = list(spec.groups), list(spec.texts)
    if choice == "color-shape":
        index = rng.choice(shape_groups)
        color, kind = rng.choice(sorted(heldout.HELDOUT_COLOR_SHAPES))
        groups[index] = ObjectGroup(kind, groups[index].count, color, groups[index].size, groups[index].region)
    elif choice == "word":
        script = rng.choice(tuple(heldout.HELDOUT_WORDS))
        texts[0] = TextBlock(rng.choice(heldout.HELDOUT_WORDS[script]), texts[0].color, texts[0].region)
    else:
        a, b = sorted(rng.choice(sorted(heldout.HELDOUT_PAIRS, key=sorted)))
        for index, kind in ((0, a), (1, b)):
            old = groups[index]
            color = old.color if kind in vocab.SHAPES else None
            if kind in vocab.SHAPES and color is None:
                color = rng.choice(tuple(vocab.COLORS))
            groups[index] = ObjectGroup(kind, old.count, color, old.size, old.region)
    planted = SceneSpec(tuple(groups), tuple(texts), spec.relations, spec.background, spec.style)
    if not heldout.violations(planted):
        return None
    background = planted.background or "white"
    if any(g.color and not color_visible(g.color, background) for g in planted.groups):
        return None
    return planted
