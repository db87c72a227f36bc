"""Near misses: the same scene graph with exactly one attribute changed.

A judge that passes every ground-truth render could simply be lenient. The
self-check therefore also renders a near miss of each benchmark prompt (one
colour, count, kind, region, relation, size, style or letter changed) and judges it
against the *original* spec; a good judge fails nearly all of them. Each
category changes the attribute it is about, so the check asks the question the
category asks: a counting prompt gets a wrong count, a text prompt a wrong
letter.
"""

from __future__ import annotations

import random
from dataclasses import replace

from imgen.eval.ocr import normalise
from imgen.world import vocab
from imgen.world.layout import color_visible
from imgen.world.spec import ObjectGroup, SceneSpec, SpecError, TextBlock

# Letters that OCR tells apart from nearly every other letter of their script.
_DISTINCT_LETTERS: dict[str, str] = {
    "latin": "AEKMRSWXZ",
    "greek": "ΔΖΛΞΣΦΨΩ",
    "cyrillic": "БДЖЗЛФШЯ",
}

_CHANGES: dict[str, tuple[str, ...]] = {
    "single object": ("kind",),
    "two objects": ("kind",),
    "counting 1-4": ("count",),
    "counting 5-10": ("count",),
    "counting 11-20": ("count",),
    "colours": ("color",),
    "position": ("region",),
    "relations": ("relation",),
    "colour attribution": ("swap color",),
    "many objects": ("count", "color", "region", "kind"),
    "text latin": ("letter",),
    "text greek": ("letter",),
    "text cyrillic": ("letter",),
    "style": ("color", "kind", "style", "size"),
}
_FALLBACK = ("kind", "color", "count", "region", "relation", "letter", "style", "size")


def mismatched(spec: SceneSpec, category: str, rng: random.Random) -> tuple[SceneSpec, str] | None:
    """`spec` with one attribute changed the way `category` is about, and a description of the change.

    Returns None when no attribute of that kind can change (the caller skips
    the prompt rather than judging a copy of the original).
    """
    preferred = list(_CHANGES.get(category, _FALLBACK))
    rng.shuffle(preferred)
    for change in preferred + [c for c in _FALLBACK if c not in preferred]:
        for _ in range(8):
            result = _apply(spec, change, rng)
            if result is None:
                break
            changed, description = result
            try:
                changed.validate()
            except SpecError:
                continue
            return changed, description
    return None


def _with_group(spec: SceneSpec, index: int, group: ObjectGroup) -> SceneSpec:
    groups = list(spec.groups)
    groups[index] = group
    return replace(spec, groups=tuple(groups))


def _descriptions(groups: tuple[ObjectGroup, ...]) -> set[tuple[str, str | None]]:
    return {(g.kind, g.color) for g in groups}


def _describe(group: ObjectGroup) -> str:
    return f"{group.color} {group.kind}" if group.color else group.kind


def _apply(spec: SceneSpec, change: str, rng: random.Random) -> tuple[SceneSpec, str] | None:
    background = spec.background or "white"
    groups = spec.groups
    if change == "kind" and groups:
        index = rng.randrange(len(groups))
        group = groups[index]
        pool = vocab.SHAPES if group.kind in vocab.SHAPES else tuple(vocab.STICKERS)
        taken = {g.kind for g in groups}
        options = [k for k in pool if k not in taken and k != "cloud"]
        options = options or [k for k in pool if k != group.kind and (k, group.color) not in _descriptions(groups)]
        if not options:
            return None
        kind = rng.choice(options)
        return _with_group(spec, index, replace(group, kind=kind)), f"{_describe(group)} drawn as {kind}"
    if change == "count" and groups:
        index = rng.randrange(len(groups))
        group = groups[index]
        if any(index in (r.subject, r.reference) for r in spec.relations):
            return None
        room = vocab.MAX_COUNT - spec.object_count()
        steps = [s for s in (-2, -1, 1, 2) if 1 <= group.count + s <= vocab.MAX_COUNT and s <= room]
        if group.count <= 4:
            steps = [s for s in steps if abs(s) == 1] or steps
        if not steps:
            return None
        count = group.count + rng.choice(steps)
        return _with_group(
            spec, index, replace(group, count=count)
        ), f"{_describe(group)}: {count} instead of {group.count}"
    if change in ("color", "swap color"):
        shapes = [i for i, g in enumerate(groups) if g.kind in vocab.SHAPES and g.color is not None]
        if not shapes:
            return None
        index = rng.choice(shapes)
        group = groups[index]
        others = [g.color for i, g in enumerate(groups) if i != index and g.color not in (None, group.color)]
        if change == "swap color" and others:
            color = rng.choice(others)
        else:
            options = [c for c in vocab.COLORS if c != group.color and color_visible(c, background)]
            color = rng.choice(options)
        return _with_group(spec, index, replace(group, color=color)), f"{_describe(group)} painted {color}"
    if change == "region":
        placed = [i for i, g in enumerate(groups) if g.region is not None]
        if not placed:
            return None
        index = rng.choice(placed)
        group = groups[index]
        used = {g.region for g in groups}
        options = [r for r in vocab.REGIONS if r not in used] or [r for r in vocab.REGIONS if r != group.region]
        region = rng.choice(options)
        return _with_group(
            spec, index, replace(group, region=region)
        ), f"{_describe(group)} {region} not {group.region}"
    if change == "relation" and spec.relations:
        relations = list(spec.relations)
        index = rng.randrange(len(relations))
        old = relations[index]
        new = rng.choice([r for r in vocab.RELATIONS if r != old.relation])
        relations[index] = replace(old, relation=new)
        return replace(spec, relations=tuple(relations)), f"{new} instead of {old.relation}"
    if change == "size":
        sized = [i for i, g in enumerate(groups) if g.size is not None]
        if not sized:
            return None
        index = rng.choice(sized)
        group = groups[index]
        size = rng.choice([s for s in vocab.SIZES if s != group.size])
        return _with_group(spec, index, replace(group, size=size)), f"{_describe(group)}: {size} not {group.size}"
    if change == "style" and spec.style != "flat":
        return replace(spec, style="flat"), f"drawn flat instead of {spec.style}"
    if change == "letter" and spec.texts:
        index = rng.randrange(len(spec.texts))
        block = spec.texts[index]
        changed = _change_letter(block.text, rng)
        if changed is None:
            return None
        texts = list(spec.texts)
        texts[index] = TextBlock(changed, block.color, block.region)
        return replace(spec, texts=tuple(texts)), f"text {changed!r} instead of {block.text!r}"
    return None


def _change_letter(text: str, rng: random.Random) -> str | None:
    """`text` with one letter replaced by a clearly different letter of the same script and case."""
    script = vocab.script_of(text)
    letters = _DISTINCT_LETTERS.get(script)
    positions = [i for i, ch in enumerate(text) if ch.isalpha()]
    if letters is None or not positions:
        return None
    position = rng.choice(positions)
    old = text[position]
    options = [ch if old.isupper() else ch.lower() for ch in letters]
    options = [ch for ch in options if normalise(ch) != normalise(old)]
    new = rng.choice(options)
    return text[:position] + new + text[position + 1 :]
