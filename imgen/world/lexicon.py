"""The words of the caption language, shared by the caption writer and the prompt parser.

Every synonym the caption writer may say is listed here once, next to the
vocabulary value it stands for, and the parser's phrase table is built from
the very same lists. That is what makes "the parser reads back every caption"
true by construction rather than by luck: a synonym cannot be added to one side
only. `phrase_table()` refuses to build when one phrase would mean two things,
so an ambiguous synonym fails loudly at import time instead of silently
mis-parsing prompts.

Phrases are written as plain lower-case English; hyphens count as spaces
("top-left" is "top left"), which is also how the parser tokenises prompts.
"""

from __future__ import annotations

from functools import cache

from imgen.world import vocab

# Colour name -> words for it. The first word is the canonical vocabulary name.
COLOR_WORDS: dict[str, tuple[str, ...]] = {name: (name,) for name in vocab.COLORS} | {"gray": ("gray", "grey")}

SIZE_WORDS: dict[str, tuple[str, ...]] = {
    "small": ("small", "little", "tiny"),
    "medium": ("medium", "medium-sized", "mid-sized"),
    "large": ("large", "big", "huge"),
}

# Kind -> (singular, plural) nouns. Plurals are spelled out rather than derived
# because English is irregular ("fish", "puppies") and the parser must know them.
KIND_WORDS: dict[str, tuple[tuple[str, str], ...]] = {
    "circle": (("circle", "circles"),),
    "square": (("square", "squares"),),
    "triangle": (("triangle", "triangles"),),
    "star": (("star", "stars"),),
    "heart": (("heart", "hearts"),),
    "diamond": (("diamond", "diamonds"),),
    "dog": (("dog", "dogs"), ("puppy", "puppies")),
    "cat": (("cat", "cats"), ("kitten", "kittens")),
    "car": (("car", "cars"), ("automobile", "automobiles")),
    "tree": (("tree", "trees"),),
    "house": (("house", "houses"),),
    "sun": (("sun", "suns"),),
    "moon": (("moon", "moons"), ("crescent moon", "crescent moons")),
    "rocket": (("rocket", "rockets"), ("rocket ship", "rocket ships")),
    "pizza": (("pizza", "pizzas"), ("slice of pizza", "slices of pizza")),
    "apple": (("apple", "apples"),),
    "fish": (("fish", "fish"),),
    "flower": (("flower", "flowers"), ("sunflower", "sunflowers")),
    "balloon": (("balloon", "balloons"),),
    "ball": (("ball", "balls"), ("soccer ball", "soccer balls"), ("football", "footballs")),
    "bicycle": (("bicycle", "bicycles"), ("bike", "bikes")),
    "boat": (("boat", "boats"), ("sailboat", "sailboats")),
    "bird": (("bird", "birds"),),
    "cloud": (("cloud", "clouds"),),
    "umbrella": (("umbrella", "umbrellas"),),
    "cake": (("cake", "cakes"), ("birthday cake", "birthday cakes")),
    "clock": (("clock", "clocks"), ("alarm clock", "alarm clocks")),
    "guitar": (("guitar", "guitars"),),
    "key": (("key", "keys"),),
    "book": (("book", "books"),),
}

_UNITS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_TEENS = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")

# Number words the parser understands. Beyond the drawable range on purpose, so
# "twenty-five stars" is reported as too many rather than as an unknown word.
NUMBER_WORDS: dict[str, int] = (
    {"zero": 0}
    | {word: i + 1 for i, word in enumerate(_UNITS)}
    | {word: i + 10 for i, word in enumerate(_TEENS)}
    | {word: (i + 2) * 10 for i, word in enumerate(_TENS)}
)
TENS_WORDS: frozenset[str] = frozenset(_TENS)
MULTIPLIER_WORDS: dict[str, int] = {"hundred": 100, "thousand": 1000}

# Count -> the word the caption writer spells it with (1..MAX_COUNT).
COUNT_WORDS: dict[int, str] = {value: word for word, value in NUMBER_WORDS.items() if 1 <= value <= vocab.MAX_COUNT}

# Ordinals pick one of several identical objects mentioned earlier ("the second red circle").
ORDINAL_WORDS: dict[str, int] = {
    word: i + 1
    for i, word in enumerate(
        (
            "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
            "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth",
            "eighteenth", "nineteenth", "twentieth",
        )
    )
}  # fmt: skip

# Region -> phrases the caption writer uses. The parser also accepts each phrase
# without its leading preposition and article ("top left corner").
REGION_PHRASES: dict[str, tuple[str, ...]] = {
    "top left": (
        "in the top left",
        "in the upper left corner",
        "at the top-left",
        "in the top-left corner",
        "at the upper left",
    ),
    "top": ("at the top", "along the top", "in the top middle", "at the top center"),
    "top right": (
        "in the top right",
        "in the upper right corner",
        "at the top-right",
        "in the top-right corner",
        "at the upper right",
    ),
    "left": ("on the left", "on the left side", "on the left-hand side", "in the middle left"),
    "center": ("in the center", "in the middle", "in the centre", "at the center"),
    "right": ("on the right", "on the right side", "on the right-hand side", "in the middle right"),
    "bottom left": (
        "in the bottom left",
        "in the lower left corner",
        "at the bottom-left",
        "in the bottom-left corner",
        "at the lower left",
    ),
    "bottom": ("at the bottom", "along the bottom", "in the bottom middle", "at the bottom center"),
    "bottom right": (
        "in the bottom right",
        "in the lower right corner",
        "at the bottom-right",
        "in the bottom-right corner",
        "at the lower right",
    ),
}

# Understood but never written: "on the left of the image" names a region, not
# a relation to an object.
_REGION_EXTRAS: dict[str, tuple[str, ...]] = {
    side: tuple(
        f"{prefix}{side}{suffix} of the {frame}"
        for prefix in ("", "on the ")
        for suffix in ("", " side")
        for frame in ("image", "picture", "frame", "canvas", "scene")
    )
    for side in ("left", "right")
}

# Words that stand for a region on their own. The caption writer must not put a
# bare "left of" right after one of them: "at the bottom left of a star" would
# read as the region "bottom left".
REGION_HEAD_WORDS: frozenset[str] = frozenset(
    {"top", "bottom", "left", "right", "center", "centre", "middle", "upper", "lower"}
)

RELATION_PHRASES: dict[str, tuple[str, ...]] = {
    "left of": ("to the left of", "left of", "on the left of"),
    "right of": ("to the right of", "right of", "on the right of"),
    "above": ("above", "over", "on top of"),
    "below": ("below", "under", "beneath", "underneath"),
}

# Style -> phrases that select it anywhere in a prompt. The caption writer's
# sentence frames (captions.STYLE_FRAMES) are built from these words.
STYLE_PHRASES: dict[str, tuple[str, ...]] = {
    "flat": ("flat",),
    "outline": ("outline", "outlines", "outlined", "line drawing", "line art"),
    "pixel": ("pixel", "pixel art", "pixelated"),
    "night": ("night", "at night", "nighttime", "night time", "night scene", "night sky"),
    "pastel": ("pastel", "pastels"),
    "sketch": ("sketch", "sketched", "pencil", "pencil sketch", "pencil drawing"),
}

# Background -> the name used before "background"/"backdrop"; scenes have their own phrases.
BACKGROUND_NAMES: dict[str, tuple[str, ...]] = {
    "white": ("white",),
    "black": ("black",),
    "light gray": ("light gray", "light grey", "pale gray", "pale grey"),
    "light blue": ("light blue", "pale blue"),
    "light green": ("light green", "pale green"),
    "light yellow": ("light yellow", "pale yellow"),
    "beige": ("beige",),
}
SCENE_BACKGROUND_PHRASES: dict[str, tuple[str, ...]] = {
    "sky and grass": (
        "sky and grass",
        "grass and sky",
        "grass under a blue sky",
        "green grass under a blue sky",
        "blue sky and green grass",
        "grassy field under a blue sky",
    ),
    "sunset": ("sunset", "sunset sky", "at sunset"),
}

# Words that carry no meaning of their own in a prompt: articles, prepositions,
# verbs of the "there is" kind and the nouns that introduce quoted text.
_FILLERS = """
    a an of with there is are it its this that which here also plus as be being has have having
    in on at to along into inside against set placed sits sitting standing shown drawn
    image picture photo illustration drawing painting art style scene frame canvas vector design
    showing shows show depicting depicts featuring features containing contains
    word words text letters letter label labeled labelled sign says saying say reads reading read
    written writing caption title number phrase called named
    background backdrop colors colours color colour colored coloured
    single object objects shape shapes sticker stickers emoji icon icons
    side corner please draw make create render generate
"""
FILLER_WORDS: frozenset[str] = frozenset(_FILLERS.split())

BOUNDARY_WORDS: frozenset[str] = frozenset({"and"})
DEFINITE_ARTICLE = "the"


def words_of(phrase: str) -> tuple[str, ...]:
    """Split a phrase the way the parser splits prompts: lower case, hyphens as spaces."""
    return tuple(phrase.lower().replace("-", " ").split())


def _strip_leading(words: tuple[str, ...]) -> tuple[str, ...]:
    """Drop leading prepositions and articles: "in the top left" -> "top left"."""
    while words and (words[0] in FILLER_WORDS or words[0] == DEFINITE_ARTICLE):
        words = words[1:]
    return words


@cache
def phrase_table() -> dict[tuple[str, ...], tuple[str, object]]:
    """Map each phrase (as a word tuple) to its meaning: (category, value).

    Categories: "color", "size", "kind" (value: (kind, is_plural)), "region",
    "relation", "style", "background". Raises `ValueError` when one phrase would
    mean two different things, or shadows a filler, number or ordinal word.
    """
    table: dict[tuple[str, ...], tuple[str, object]] = {}

    def add(phrase: str | tuple[str, ...], meaning: tuple[str, object]) -> None:
        key = words_of(phrase) if isinstance(phrase, str) else phrase
        if not key:
            return
        if len(key) == 1 and (
            key[0] in FILLER_WORDS
            or key[0] in NUMBER_WORDS
            or key[0] in ORDINAL_WORDS
            or key[0] in BOUNDARY_WORDS
            or key[0] == DEFINITE_ARTICLE
        ):
            raise ValueError(f"phrase {key[0]!r} is also a filler, number or ordinal word")
        if table.get(key, meaning) != meaning:
            raise ValueError(f"phrase {' '.join(key)!r} means both {table[key]} and {meaning}")
        table[key] = meaning

    for color, names in COLOR_WORDS.items():
        for name in names:
            add(name, ("color", color))
    for size, names in SIZE_WORDS.items():
        for name in names:
            add(name, ("size", size))
    for kind, forms in KIND_WORDS.items():
        for singular, plural in forms:
            add(singular, ("kind", (kind, False)))
            if plural != singular:
                add(plural, ("kind", (kind, True)))
    for region, phrases in REGION_PHRASES.items():
        for phrase in phrases + _REGION_EXTRAS.get(region, ()):
            add(phrase, ("region", region))
            add(_strip_leading(words_of(phrase)), ("region", region))
    for relation, phrases in RELATION_PHRASES.items():
        for phrase in phrases:
            add(phrase, ("relation", relation))
    for style, phrases in STYLE_PHRASES.items():
        for phrase in phrases:
            add(phrase, ("style", style))
    for background, names in BACKGROUND_NAMES.items():
        for name in names:
            for noun in ("background", "backdrop"):
                add(f"{name} {noun}", ("background", background))
    for background, phrases in SCENE_BACKGROUND_PHRASES.items():
        for phrase in phrases:
            add(phrase, ("background", background))
    return table


@cache
def longest_phrase() -> int:
    """Length in words of the longest phrase, the parser's look-ahead."""
    return max(len(key) for key in phrase_table())
