"""The closed vocabulary of the imgen world.

Everything the bundled model can be taught is named here, once: the renderer,
the caption grammar, the prompt parser, the held-out rules and the judge all
read these tables, so adding a colour or a sticker is a one-line change.
Coordinates elsewhere are normalised to [0, 1] so a scene renders at any size.
"""

from __future__ import annotations

# The ten GenEval colours plus gray, as sRGB. Chosen to be far apart in RGB so a
# pixel judge can segment them, and so that tokenizer errors do not flip names.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 135, 20),
    "yellow": (250, 220, 20),
    "green": (30, 160, 50),
    "blue": (30, 80, 220),
    "purple": (135, 50, 190),
    "pink": (245, 120, 185),
    "brown": (125, 75, 35),
    "black": (15, 15, 15),
    "white": (250, 250, 250),
    "gray": (130, 130, 130),
}

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "heart", "diamond")

# Sticker name -> emoji code point(s) in Noto Color Emoji. Stickers keep their
# own colours: a colour word never applies to them.
STICKERS: dict[str, str] = {
    "dog": "\U0001f415",
    "cat": "\U0001f408",
    "car": "\U0001f697",
    "tree": "\U0001f333",
    "house": "\U0001f3e0",
    "sun": "\u2600\ufe0f",
    "moon": "\U0001f319",
    "rocket": "\U0001f680",
    "pizza": "\U0001f355",
    "apple": "\U0001f34e",
    "fish": "\U0001f41f",
    "flower": "\U0001f33b",
    "balloon": "\U0001f388",
    "ball": "\u26bd",
    "bicycle": "\U0001f6b2",
    "boat": "\u26f5",
    "bird": "\U0001f426",
    "cloud": "\u2601\ufe0f",
    "umbrella": "\u2602\ufe0f",
    "cake": "\U0001f382",
    "clock": "\u23f0",
    "guitar": "\U0001f3b8",
    "key": "\U0001f511",
    "book": "\U0001f4d5",
}

KINDS: tuple[str, ...] = SHAPES + tuple(STICKERS)

# Side of the object's square bounding box as a fraction of the image side.
SIZES: dict[str, float] = {"small": 0.14, "medium": 0.22, "large": 0.34}

# 3x3 placement grid, row-major. Each region is a cell of the image divided in
# thirds; an object is "in" a region when its centre lies in that cell.
REGIONS: tuple[str, ...] = (
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
)  # fmt: skip

RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")

STYLES: tuple[str, ...] = ("flat", "outline", "pixel", "night", "pastel", "sketch")

# Plain backgrounds and two simple scenes. The value is the dominant colour,
# used to keep objects visible (an object never matches its background).
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (250, 250, 250),
    "black": (15, 15, 15),
    "light gray": (205, 205, 205),
    "light blue": (190, 220, 250),
    "light green": (200, 235, 195),
    "light yellow": (252, 245, 190),
    "beige": (235, 220, 195),
    "sky and grass": (150, 200, 245),
    "sunset": (250, 170, 120),
}

# What the two scenes show besides their dominant colour: the grass under the sky, and the
# sunset's gradient (its middle and its foot). Objects sampled for training stay visible on these too.
GRASS = (95, 175, 70)
SUNSET_FOOT = (150, 90, 160)
BACKGROUND_OTHER_COLORS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "sky and grass": (GRASS,),
    "sunset": (tuple((a + b) // 2 for a, b in zip(BACKGROUNDS["sunset"], SUNSET_FOOT, strict=True)), SUNSET_FOOT),
}

MAX_COUNT = 20
MAX_TEXT_LENGTH = 12

# Characters a text block may contain: Latin, digits, Greek and Cyrillic, and an
# inner space. Anything else is an "unsupported script" error at parse time.
LATIN = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
GREEK = "ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩαβγδεζηθικλμνξοπρστυφχψως"
CYRILLIC = "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯабвгдеёжзийклмнопрстуфхцчшщъыьэюя"
TEXT_CHARACTERS = frozenset(LATIN + DIGITS + GREEK + CYRILLIC + " ")


def script_of(text: str) -> str:
    """Name the script of a text block: 'latin', 'greek', 'cyrillic' or 'mixed'.

    Digits and spaces are neutral; a string of digits alone counts as Latin,
    because OCR reads it with the Latin model.
    """
    scripts = set()
    for ch in text:
        if ch in LATIN:
            scripts.add("latin")
        elif ch in GREEK:
            scripts.add("greek")
        elif ch in CYRILLIC:
            scripts.add("cyrillic")
    if not scripts:
        return "latin"
    return scripts.pop() if len(scripts) == 1 else "mixed"


def region_of(cx: float, cy: float) -> str:
    """Return the 3x3 region whose cell holds the normalised point (cx, cy)."""
    col = min(2, max(0, int(cx * 3)))
    row = min(2, max(0, int(cy * 3)))
    return REGIONS[row * 3 + col]


def region_center(region: str) -> tuple[float, float]:
    """Centre of a region's cell, in normalised coordinates."""
    index = REGIONS.index(region)
    return ((index % 3 + 0.5) / 3, (index // 3 + 0.5) / 3)
