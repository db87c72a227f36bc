"""Words the world writes as text, per script, and random strings.

Real words make captions natural; random strings (a third of the text blocks)
force the model to spell character by character instead of memorising words.
The held-out words of `imgen.world.heldout` are filtered out at sampling time.
"""

from __future__ import annotations

import random

from imgen.world import vocab

LATIN_WORDS: tuple[str, ...] = tuple(
    [
        "HI",
        "YES",
        "NO",
        "OK",
        "UP",
        "ON",
        "OFF",
        "BIG",
        "TOP",
        "WIN",
        "JOY",
        "ART",
        "MAP",
        "BOX",
        "FUN",
        "HOT",
        "ICE",
        "SKY",
        "SEA",
        "ZOO",
        "HOME",
        "CAFE",
        "SHOP",
        "PARK",
        "BANK",
        "LOVE",
        "HOPE",
        "NEWS",
        "FISH",
        "BIRD",
        "TREE",
        "MOON",
        "STAR",
        "RAIN",
        "SNOW",
        "WIND",
        "FIRE",
        "GOLD",
        "MILK",
        "TEA",
        "BUS",
        "TRAIN",
        "EXIT",
        "PUSH",
        "PULL",
        "WAIT",
        "WALK",
        "SLOW",
        "FAST",
        "HELP",
        "HOTEL",
        "PIANO",
        "MUSIC",
        "HAPPY",
        "LIGHT",
        "NIGHT",
        "WATER",
        "GREEN",
        "PAPER",
        "TIGER",
        "ROBOT",
        "APPLE",
        "SUMMER",
        "WINTER",
        "GARDEN",
        "SCHOOL",
        "MARKET",
        "ORANGE",
        "PLANET",
        "POCKET",
        "WELCOME",
        "FREEDOM",
        "hello",
        "world",
        "river",
        "stone",
        "cloud",
        "dream",
        "smile",
        "magic",
        "ocean",
        "forest",
        "candle",
        "window",
        "Paris",
        "Tokyo",
        "Berlin",
        "London",
        "Oslo",
        "Rome",
        "Lima",
        "Cairo",
        "Delhi",
        "Sydney",
        "A",
        "B",
        "C",
        "X",
        "Z",
        "7",
        "42",
        "100",
        "2024",
        "365",
        "911",
        "1234567",
    ]
)

GREEK_WORDS: tuple[str, ...] = tuple(
    [
        "ΝΑΙ",
        "ΟΧΙ",
        "ΕΝΑ",
        "ΔΥΟ",
        "ΤΡΙΑ",
        "ΣΠΙΤΙ",
        "ΘΑΛΑΣΣΑ",
        "ΟΥΡΑΝΟΣ",
        "ΑΣΤΕΡΙ",
        "ΦΕΓΓΑΡΙ",
        "ΔΕΝΤΡΟ",
        "ΓΑΤΑ",
        "ΣΚΥΛΟΣ",
        "ΨΑΡΙ",
        "ΠΟΥΛΙ",
        "ΒΙΒΛΙΟ",
        "ΜΟΥΣΙΚΗ",
        "ΑΓΑΠΗ",
        "ΕΛΠΙΔΑ",
        "ΧΑΡΑ",
        "ΖΩΗ",
        "ΚΟΣΜΟΣ",
        "ΛΟΓΟΣ",
        "ΟΜΕΓΑ",
        "ΒΗΤΑ",
        "ΓΑΜΜΑ",
        "ΔΕΛΤΑ",
        "ΘΗΤΑ",
        "ΛΑΜΔΑ",
        "ΣΙΓΜΑ",
        "ΑΘΗΝΑ",
        "ΚΡΗΤΗ",
        "ΡΟΔΟΣ",
        "ΝΙΚΗ",
        "ΞΕΝΟΣ",
        "ΨΥΧΗ",
        "καλημερα",
        "νερο",
        "φως",
        "ηλιος",
        "ουρανος",
        "μελι",
    ]
)

CYRILLIC_WORDS: tuple[str, ...] = tuple(
    [
        "ДА",
        "НЕТ",
        "ОДИН",
        "ДВА",
        "ТРИ",
        "МОРЕ",
        "НЕБО",
        "ЗВЕЗДА",
        "ЛУНА",
        "ДЕРЕВО",
        "КОШКА",
        "СОБАКА",
        "РЫБА",
        "ПТИЦА",
        "КНИГА",
        "МУЗЫКА",
        "ЛЮБОВЬ",
        "НАДЕЖДА",
        "РАДОСТЬ",
        "ЖИЗНЬ",
        "ХЛЕБ",
        "МОЛОКО",
        "САД",
        "ПАРК",
        "ШКОЛА",
        "ВЫХОД",
        "ВХОД",
        "МОСКВА",
        "КИЕВ",
        "МИНСК",
        "СОФИЯ",
        "ЗИМА",
        "ЛЕТО",
        "ОСЕНЬ",
        "ВЕСНА",
        "СНЕГ",
        "ДОЖДЬ",
        "ОГОНЬ",
        "привет",
        "солнце",
        "город",
        "улица",
        "ночь",
        "день",
    ]
)

WORDS: dict[str, tuple[str, ...]] = {"latin": LATIN_WORDS, "greek": GREEK_WORDS, "cyrillic": CYRILLIC_WORDS}

_ALPHABETS: dict[str, tuple[str, str]] = {
    # (upper case, lower case) letters; digits are mixed into Latin strings only.
    "latin": (vocab.LATIN[:26], vocab.LATIN[26:]),
    "greek": (vocab.GREEK[:24], vocab.GREEK[24:]),
    "cyrillic": (vocab.CYRILLIC[:33], vocab.CYRILLIC[33:]),
}


def random_string(script: str, rng: random.Random, max_length: int = 8) -> str:
    """A random 1..max_length character string in one script and one case."""
    upper, lower = _ALPHABETS[script]
    letters = upper if rng.random() < 0.7 else lower
    if script == "latin" and rng.random() < 0.3:
        letters += vocab.DIGITS
    return "".join(rng.choice(letters) for _ in range(rng.randint(1, max_length)))


def random_text(script: str, rng: random.Random) -> str:
    """A word of `script` (two thirds of the time) or a random string."""
    if rng.random() < 2 / 3:
        return rng.choice(WORDS[script])
    return random_string(script, rng)
