"""Spec -> words: the natural-language caption of a scene specification.

The bundled model learns the prompt language from these captions, so they vary
the way people phrase prompts (synonyms, digits or number words, where the
colour of a text goes, style as a prefix or a suffix) while staying inside the
language the parser reads: every word comes from `imgen.world.lexicon` or is a
filler the parser ignores, and `parse(caption(spec, rng)) == spec` holds for
every valid spec. All choices come from `rng`, so a caption is a pure function
of the spec and the rng state, which keeps the training stream reproducible.

Order carries meaning: groups, texts and relations are written in spec order
(the parser numbers them in reading order). A relation between two groups that
follow each other is written inline ("a red circle to the left of a blue star");
any other relation is written after all groups, naming its objects with "the"
("the red circle is above the second star").
"""

from __future__ import annotations

import random

from imgen.world import lexicon
from imgen.world.spec import ObjectGroup, Relation, SceneSpec, TextBlock

# Sentence frames; "{}" is the rest of the caption. Every word outside the
# braces is a style phrase of lexicon.STYLE_PHRASES or a filler.
STYLE_FRAMES: dict[str, tuple[str, ...]] = {
    "flat": ("a flat illustration of {}", "{} in a flat style", "{}, flat style"),
    "outline": ("an outline drawing of {}", "{} in outline style", "{}, drawn as outlines", "a line drawing of {}"),
    "pixel": ("pixel art of {}", "{} in pixel art style", "a pixelated image of {}", "{}, pixel art"),
    "night": ("{} at night", "a night scene of {}", "{} at nighttime", "a night time picture of {}"),
    "pastel": ("a pastel illustration of {}", "{} in pastel colors", "{} in pastel colours", "a pastel drawing of {}"),
    "sketch": ("a pencil sketch of {}", "{} as a sketch", "a sketch of {}", "{}, sketched in pencil"),
}

# Frames for plain backgrounds; "{name}" is one of lexicon.BACKGROUND_NAMES.
PLAIN_BACKGROUND_FRAMES: tuple[str, ...] = (
    "{} on a {name} background",
    "{} against a {name} backdrop",
    "{} with a {name} background",
    "on a {name} background, {}",
)
SCENE_BACKGROUND_FRAMES: dict[str, tuple[str, ...]] = {
    "sky and grass": (
        "{} on grass under a blue sky",
        "{} with blue sky and green grass",
        "{} on a sky and grass background",
        "{} in a grassy field under a blue sky",
        "on green grass under a blue sky, {}",
    ),
    "sunset": ("{} at sunset", "{} with a sunset sky", "{} against a sunset sky", "{} on a sunset background"),
}

LEAD_INS: tuple[str, ...] = ("", "", "", "an image of ", "a picture of ", "a picture showing ", "an illustration of ")

# Text block frames; "{t}" is the quoted string, "{c}" its colour word.
PLAIN_TEXT_FRAMES: tuple[str, ...] = (
    'the word "{t}"',
    'the text "{t}"',
    '"{t}"',
    'a sign that says "{t}"',
    'the letters "{t}"',
)
COLORED_TEXT_FRAMES: tuple[str, ...] = (
    'the word "{t}" in {c}',
    'the text "{t}" in {c}',
    '"{t}" written in {c}',
    '{c} text saying "{t}"',
    'the {c} word "{t}"',
    '"{t}" in {c} letters',
)

_ORDINALS: dict[int, str] = {value: word for word, value in lexicon.ORDINAL_WORDS.items()}


def caption(spec: SceneSpec, rng: random.Random) -> str:
    """Write `spec` as one English caption; paraphrases are drawn from `rng`."""
    chains, leftover = _group_chains(spec, rng)
    texts = [_text_phrase(block, rng) for block in spec.texts]
    items = _interleave(chains, texts, rng) + [_back_reference_clause(spec, rel, rng) for rel in leftover]
    body = _join(items, rng)
    use_prefix_background = spec.background is not None and rng.random() < 0.25
    if spec.background is not None and not use_prefix_background:
        body = _background_frame(spec.background, rng, suffix_only=True).format(body)
    body = _style_frame(spec.style, body, rng)
    if use_prefix_background:
        assert spec.background is not None
        body = _background_frame(spec.background, rng, suffix_only=False).format(body)
    return body


def _group_chains(spec: SceneSpec, rng: random.Random) -> tuple[list[str], list[Relation]]:
    """Write the groups in order, inlining each relation that links a group to the next one.

    Returns the phrases and the relations that could not be inlined without
    changing their order; those are written later as back-reference clauses.
    """
    chains: list[str] = []
    relations = list(spec.relations)
    pending = 0
    index = 0
    while index < len(spec.groups):
        parts = [_group_phrase(spec.groups[index], rng)]
        while (
            pending < len(relations)
            and relations[pending].subject == index
            and relations[pending].reference == index + 1
        ):
            after_region = spec.groups[index].region is not None
            parts.append(_relation_phrase(relations[pending].relation, rng, after_region))
            index += 1
            parts.append(_group_phrase(spec.groups[index], rng))
            pending += 1
        chains.append(" ".join(parts))
        index += 1
    return chains, relations[pending:]


def _group_phrase(group: ObjectGroup, rng: random.Random) -> str:
    """E.g. "two small red circles in the top left", "an apple", "7 dogs"."""
    words = _attribute_words(group, rng)
    if group.count == 1:
        determiner = rng.choices(("a", "one", "a single"), weights=(6, 1, 1))[0]
        if determiner == "a" and words[0][0] in "aeiou":
            determiner = "an"
    else:
        determiner = str(group.count) if rng.random() < 0.3 else lexicon.COUNT_WORDS[group.count]
    phrase = f"{determiner} {' '.join(words)}"
    if group.region is not None:
        phrase += " " + rng.choice(lexicon.REGION_PHRASES[group.region])
    return phrase


def _attribute_words(group: ObjectGroup, rng: random.Random) -> list[str]:
    """Size, colour and noun (singular or plural by count), as chosen synonyms."""
    words = []
    if group.size is not None:
        words.append(rng.choice(lexicon.SIZE_WORDS[group.size]))
    if group.color is not None:
        words.append(rng.choice(lexicon.COLOR_WORDS[group.color]))
    singular, plural = rng.choice(lexicon.KIND_WORDS[group.kind])
    words.append(singular if group.count == 1 else plural)
    return words


def _relation_phrase(relation: str, rng: random.Random, after_region: bool) -> str:
    """A relation phrase; after a region, never one starting with a region word (see lexicon)."""
    options = lexicon.RELATION_PHRASES[relation]
    if after_region:
        options = tuple(p for p in options if lexicon.words_of(p)[0] not in lexicon.REGION_HEAD_WORDS)
    phrase = rng.choice(options)
    return f"is {phrase}" if rng.random() < 0.15 else phrase


def _back_reference_clause(spec: SceneSpec, relation: Relation, rng: random.Random) -> str:
    """ "the red circle is above the second star": both objects were already introduced."""
    subject = _back_reference(spec, relation.subject, rng)
    reference = _back_reference(spec, relation.reference, rng)
    verb = "is " if rng.random() < 0.5 else ""
    return f"{subject} {verb}{rng.choice(lexicon.RELATION_PHRASES[relation.relation])} {reference}"


def _back_reference(spec: SceneSpec, index: int, rng: random.Random) -> str:
    """ "the [ordinal] [size] [colour] noun", with an ordinal only when the description is shared.

    The parser resolves "the ..." to the earlier single object with exactly
    these attributes; the ordinal counts among those objects in spec order.
    """
    group = spec.groups[index]
    same = [
        i
        for i, g in enumerate(spec.groups)
        if g.count == 1 and (g.kind, g.color, g.size) == (group.kind, group.color, group.size)
    ]
    words = _attribute_words(group, rng)
    if len(same) > 1:
        words.insert(0, _ORDINALS[same.index(index) + 1])
    return "the " + " ".join(words)


def _text_phrase(block: TextBlock, rng: random.Random) -> str:
    """E.g. 'the word "OPEN" in red at the bottom'; the quoted string is kept exactly."""
    region = rng.choice(lexicon.REGION_PHRASES[block.region]) if block.region is not None else None
    if block.color is None:
        phrase = rng.choice(PLAIN_TEXT_FRAMES).format(t=block.text)
    else:
        color = rng.choice(lexicon.COLOR_WORDS[block.color])
        frame = rng.choice(COLORED_TEXT_FRAMES)
        if region is not None and frame.endswith("{c}") and rng.random() < 0.3:
            # The colour may also follow the place: 'the word "HI" at the top in red'.
            head = frame[: -len(" in {c}")] if frame.endswith(" in {c}") else frame[: -len(" {c}")]
            tail = frame[len(head) :]
            return f"{head.format(t=block.text)} {region}{tail.format(c=color)}"
        phrase = frame.format(t=block.text, c=color)
    return f"{phrase} {region}" if region is not None else phrase


def _interleave(first: list[str], second: list[str], rng: random.Random) -> list[str]:
    """Merge two lists at random, keeping the order within each."""
    merged: list[str] = []
    i = j = 0
    while i < len(first) or j < len(second):
        take_first = j >= len(second) or (i < len(first) and rng.random() < 0.5)
        if take_first:
            merged.append(first[i])
            i += 1
        else:
            merged.append(second[j])
            j += 1
    return merged


def _join(items: list[str], rng: random.Random) -> str:
    """ "A", "A and B", "A, B and C" / "A, B, and C" / "A, B, C"."""
    if len(items) == 1:
        return items[0]
    if len(items) == 2:
        return items[0] + rng.choice((" and ", " and ", ", ")) + items[1]
    return ", ".join(items[:-1]) + rng.choice((" and ", ", and ", ", ")) + items[-1]


def _background_frame(background: str, rng: random.Random, suffix_only: bool) -> str:
    """A frame with "{}" for the rest; `suffix_only` keeps the background after it."""
    if background in SCENE_BACKGROUND_FRAMES:
        frames = SCENE_BACKGROUND_FRAMES[background]
    else:
        name = rng.choice(lexicon.BACKGROUND_NAMES[background])
        frames = tuple(frame.replace("{name}", name) for frame in PLAIN_BACKGROUND_FRAMES)
    if suffix_only:
        frames = tuple(frame for frame in frames if frame.startswith("{}"))
    else:
        frames = tuple(frame for frame in frames if not frame.startswith("{}")) or frames
    return rng.choice(frames)


def _style_frame(style: str, body: str, rng: random.Random) -> str:
    """Say the style (flat, the default, is usually left unsaid) or add a neutral lead-in."""
    if style == "flat" and rng.random() < 0.7:
        return rng.choice(LEAD_INS) + body
    frame = rng.choice(STYLE_FRAMES[style])
    if frame.startswith("{}"):
        body = rng.choice(LEAD_INS) + body
    return frame.format(body)
