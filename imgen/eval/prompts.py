"""The benchmark prompt suites: fixed, versioned, and built from held-out combinations.

A benchmark number means something only if the prompts behind it never change
silently, so the suites are a pure function of `SUITE_VERSION`: every choice
comes from a `random.Random` seeded with the version and the category name
(string seeds hash the same on every platform and Python version). Changing
the vocabulary or a generator changes the prompts, which is why a test pins
their digest: bump `SUITE_VERSION` when it moves, and never compare numbers
across versions.

Prompts use the held-out combinations of `imgen.world.heldout` wherever the
category allows (colour-shape pairs the training set never draws, words it
never writes, object pairs it never shows together), so the suite measures
composition rather than recall. Prompts are written in the plain canonical
phrasing of `imgen.world.lexicon`, the language the bundled model is taught.

"quick" is the first few prompts of every "full" category, so a quick number
is a sample of the full one, not a different test.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from imgen.world import heldout, lexicon, vocab
from imgen.world.captions import SCENE_BACKGROUND_FRAMES
from imgen.world.layout import color_visible

SUITE_VERSION = "1"

FULL_PER_CATEGORY = 20
QUICK_PER_CATEGORY = 4
QUICK_STYLE_PROMPTS = 5
"""The style category shows every non-flat style once in the quick suite."""
CANDIDATES = 4
"""Each generator is asked for this many times the prompts it must yield; repeats are skipped."""


@dataclass(frozen=True)
class EvalPrompt:
    """One benchmark prompt and the skill it measures."""

    category: str
    prompt: str


CATEGORIES: tuple[str, ...] = (
    "single object",
    "two objects",
    "counting 1-4",
    "counting 5-10",
    "counting 11-20",
    "colours",
    "position",
    "relations",
    "colour attribution",
    "many objects",
    "text latin",
    "text greek",
    "text cyrillic",
    "style",
)

# Stickers a pixel judge cannot tell from a plain background in every setting (a white cloud
# on white) are left out of the generated prompts; they stay in the world and its training.
_STICKERS = tuple(name for name in vocab.STICKERS if name != "cloud")
_HELDOUT_SHAPES = tuple(sorted(heldout.HELDOUT_COLOR_SHAPES))
_HELDOUT_PAIRS = tuple(sorted(tuple(sorted(pair)) for pair in heldout.HELDOUT_PAIRS))
_STYLE_FRAMES: dict[str, str] = {
    "outline": "an outline drawing of {}",
    "pixel": "pixel art of {}",
    "night": "{} at night",
    "pastel": "a pastel illustration of {}",
    "sketch": "a pencil sketch of {}",
}


# -- phrase writers --------------------------------------------------------


def group(
    kind: str,
    count: int = 1,
    color: str | None = None,
    size: str | None = None,
    region: str | None = None,
    spell_one: bool = False,
) -> str:
    """ "a blue heart", "three red stars in the top left", "an apple": the canonical group phrase.

    `spell_one` writes a single object as "one ..." (a counting prompt) instead of "a ...".
    """
    singular, plural = lexicon.KIND_WORDS[kind][0]
    words = [w for w in (size, color) if w is not None] + [singular if count == 1 else plural]
    article = "one" if spell_one else "an" if words[0][0] in "aeiou" else "a"
    determiner = article if count == 1 else lexicon.COUNT_WORDS[count]
    phrase = f"{determiner} {' '.join(words)}"
    return f"{phrase} {lexicon.REGION_PHRASES[region][0]}" if region is not None else phrase


def text(word: str, color: str | None = None, region: str | None = None) -> str:
    """'the word "OPEN"', 'the word "OPEN" in red at the top'."""
    phrase = f'the word "{word}"'
    if color is not None:
        phrase += f" in {color}"
    if region is not None:
        phrase += f" {lexicon.REGION_PHRASES[region][0]}"
    return phrase


def on_background(body: str, background: str | None) -> str:
    """Append the background phrase; white, the default, is left unsaid."""
    if background is None or background == "white":
        return body
    if background in lexicon.BACKGROUND_NAMES:
        return f"{body} on a {background} background"
    return SCENE_BACKGROUND_FRAMES[background][0].format(body)


def join(phrases: list[str]) -> str:
    """ "A", "A and B", "A, B and C"."""
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


# -- choices -----------------------------------------------------------------


def _visible_colors(background: str | None) -> list[str]:
    return [name for name in vocab.COLORS if color_visible(name, background or "white")]


def _color_for(kind: str, rng: random.Random, background: str | None = None) -> str:
    """A held-out colour for `kind` when it has one, else any colour that shows on the background."""
    held = [c for c, k in _HELDOUT_SHAPES if k == kind and color_visible(c, background or "white")]
    return held[0] if held else rng.choice(_visible_colors(background))


def _thing(rng: random.Random, index: int) -> tuple[str, str | None]:
    """Alternately a held-out colour-shape pair and a sticker: (kind, colour or None)."""
    if index % 2 == 0:
        color, kind = rng.choice(_HELDOUT_SHAPES)
        return kind, color
    return rng.choice(_STICKERS), None


def _spread(values: list[int]) -> list[int]:
    """Values from both ends inwards (5, 10, 6, 9, ...): a short prefix still spans the range."""
    out = []
    low, high = 0, len(values) - 1
    while low <= high:
        out.append(values[low])
        if high != low:
            out.append(values[high])
        low, high = low + 1, high - 1
    return out


# -- categories ------------------------------------------------------------


def _single_object(rng: random.Random, n: int) -> list[str]:
    stickers = rng.sample(_STICKERS, len(_STICKERS))
    out = []
    for i in range(n):
        if i % 2 == 0:
            color, kind = _HELDOUT_SHAPES[(i // 2) % len(_HELDOUT_SHAPES)]
            out.append(group(kind, color=color))
        else:
            out.append(group(stickers[(i // 2) % len(stickers)]))
    return out


def _two_objects(rng: random.Random, n: int) -> list[str]:
    pairs = [tuple(rng.sample(pair, 2)) for pair in rng.sample(_HELDOUT_PAIRS, len(_HELDOUT_PAIRS))]
    kinds = vocab.SHAPES + _STICKERS
    while len(pairs) < n:
        a, b = rng.sample(kinds, 2)
        if frozenset((a, b)) not in heldout.HELDOUT_PAIRS and (a, b) not in pairs:
            pairs.append((a, b))
    return [join([group(a), group(b)]) for a, b in pairs[:n]]


def _counting(low: int, high: int) -> Callable[[random.Random, int], list[str]]:
    def generate(rng: random.Random, n: int) -> list[str]:
        counts = _spread(list(range(low, high + 1)))
        out = []
        for i in range(n):
            count = counts[i % len(counts)]
            kind, color = _thing(rng, i + 1)
            out.append(group(kind, count, color, spell_one=True))
        return out

    return generate


def _colours(rng: random.Random, n: int) -> list[str]:
    names = list(vocab.COLORS)
    rng.shuffle(names)
    names.remove("white")
    names.insert(2, "white")  # white needs a dark background; keep it in the quick suite
    out = []
    for i in range(n):
        color = names[i % len(names)]
        held = [k for c, k in _HELDOUT_SHAPES if c == color]
        kind = held[0] if held and i < len(names) else rng.choice(vocab.SHAPES)
        if color == "white":
            background: str | None = rng.choice(("black", "sky and grass"))
        else:
            background = rng.choice([None, None, *[b for b in vocab.BACKGROUNDS if color_visible(color, b)]])
        out.append(on_background(group(kind, color=color), background))
    return out


def _position(rng: random.Random, n: int) -> list[str]:
    regions = ["top left", "center", "bottom right", "top", "left", "bottom", "right", "top right", "bottom left"]
    out = []
    for i in range(n):
        kind, color = _thing(rng, i + 1)
        out.append(group(kind, color=color, region=regions[i % len(regions)]))
    return out


def _relations(rng: random.Random, n: int) -> list[str]:
    out = []
    for i in range(n):
        relation = vocab.RELATIONS[i % len(vocab.RELATIONS)]
        first = _thing(rng, i)
        second = _thing(rng, i + 1)
        while second[0] == first[0]:
            second = (rng.choice(_STICKERS), None)
        phrase = lexicon.RELATION_PHRASES[relation][0]
        out.append(f"{group(first[0], color=first[1])} {phrase} {group(second[0], color=second[1])}")
    return out


def _colour_attribution(rng: random.Random, n: int) -> list[str]:
    out = []
    for i in range(n):
        first_color, first_kind = _HELDOUT_SHAPES[i % len(_HELDOUT_SHAPES)]
        second_kind = rng.choice([k for k in vocab.SHAPES if k != first_kind])
        second_color = rng.choice([c for c in _visible_colors(None) if c != first_color])
        out.append(join([group(first_kind, color=first_color), group(second_kind, color=second_color)]))
    return out


def _many_objects(rng: random.Random, n: int) -> list[str]:
    out = []
    for i in range(n):
        total = 10 if i % 2 == 0 else 20
        n_groups = rng.randint(4, 5) if total == 10 else rng.randint(7, 9)
        counts = [1] * n_groups
        while sum(counts) < total:
            j = rng.randrange(n_groups)
            if counts[j] < 4:
                counts[j] += 1
        regions = rng.sample(vocab.REGIONS, n_groups)
        used: set[tuple[str, str | None]] = set()
        phrases = []
        for count, region in zip(counts, regions, strict=True):
            while True:
                if rng.random() < 0.75:
                    kind, color = rng.choice(vocab.SHAPES), rng.choice(_visible_colors(None))
                else:
                    kind, color = rng.choice(_STICKERS), None
                if (kind, color) not in used:
                    used.add((kind, color))
                    break
            phrases.append(group(kind, count, color, region=region))
        out.append(join(phrases))
    return out


def _text(script: str) -> Callable[[random.Random, int], list[str]]:
    def generate(rng: random.Random, n: int) -> list[str]:
        words = list(heldout.HELDOUT_WORDS[script])
        short = [w for w in words if len(w) <= 6]
        order = rng.sample(short, len(short)) + [w for w in words if len(w) > 6]
        out = []
        for i in range(n):
            word = order[i % len(order)]
            round_ = i // len(order)
            color = rng.choice(_visible_colors(None)) if round_ >= 1 else None
            region = rng.choice(vocab.REGIONS) if round_ >= 1 and i % 2 == 1 else None
            out.append(text(word, color, region))
        return out

    return generate


def _style(rng: random.Random, n: int) -> list[str]:
    styles = ("outline", "pixel", "night", "pastel", "sketch")
    out = []
    for i in range(n):
        style = styles[i % len(styles)]
        # Pixel art draws in 4-pixel blocks: only large things keep a recognisable shape.
        size = "large" if style == "pixel" else rng.choice(("medium", "large"))
        kind, color = _thing(rng, i)
        phrases = [group(kind, color=color, size=size)]
        if i % 3 == 1 and style != "pixel":
            other, other_color = _thing(rng, i + 1)
            if other != kind:
                phrases.append(group(other, color=other_color, size=size))
        out.append(_STYLE_FRAMES[style].format(join(phrases)))
    return out


_GENERATORS: dict[str, Callable[[random.Random, int], list[str]]] = {
    "single object": _single_object,
    "two objects": _two_objects,
    "counting 1-4": _counting(1, 4),
    "counting 5-10": _counting(5, 10),
    "counting 11-20": _counting(11, 20),
    "colours": _colours,
    "position": _position,
    "relations": _relations,
    "colour attribution": _colour_attribution,
    "many objects": _many_objects,
    "text latin": _text("latin"),
    "text greek": _text("greek"),
    "text cyrillic": _text("cyrillic"),
    "style": _style,
}


def _category_prompts(category: str, seen: set[str]) -> list[str]:
    """The category's prompts: its generator's candidates in order, skipping any prompt already used.

    Generators cycle through their patterns (counts, regions, held-out pairs),
    so they are asked for more candidates than needed and repeats are dropped;
    `seen` spans all categories, so no prompt is measured twice.
    """
    rng = random.Random(f"imgen-eval/{SUITE_VERSION}/{category}")
    prompts = []
    for prompt in _GENERATORS[category](rng, CANDIDATES * FULL_PER_CATEGORY):
        if prompt not in seen:
            seen.add(prompt)
            prompts.append(prompt)
        if len(prompts) == FULL_PER_CATEGORY:
            return prompts
    raise RuntimeError(f"category {category!r} yields only {len(prompts)} distinct prompts")


def _build() -> dict[str, list[EvalPrompt]]:
    full: list[EvalPrompt] = []
    quick: list[EvalPrompt] = []
    seen: set[str] = set()
    for category in CATEGORIES:
        prompts = [EvalPrompt(category, p) for p in _category_prompts(category, seen)]
        full += prompts
        quick += prompts[: QUICK_STYLE_PROMPTS if category == "style" else QUICK_PER_CATEGORY]
    return {"quick": quick, "full": full}


SUITES: dict[str, list[EvalPrompt]] = _build()


def suite(name: str) -> list[EvalPrompt]:
    """The prompts of suite `name` ("quick" or "full"), in category order."""
    try:
        return list(SUITES[name])
    except KeyError:
        raise ValueError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}") from None
