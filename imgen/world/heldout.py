"""The held-out split, defined by rule rather than by luck.

Three kinds of combination never occur in a training scene and are reserved for
evaluation, so the benchmark measures composition, not memory:

- colour-shape pairs (a blue heart is never drawn in training, though blue
  things and hearts are);
- words: certain strings never appear as text (compared case-insensitively,
  and with look-alike letters of the other scripts taken as the same);
- object pairs: certain two kinds never appear together in one scene.

`violations` is the single check on a spec; the training sampler rejects any
spec with a violation, and a test samples many training scenes to prove it.
`drawn_violations` applies it to what a laid-out scene draws.
"""

from __future__ import annotations

from imgen.world.scene import Scene
from imgen.world.spec import SceneSpec

HELDOUT_COLOR_SHAPES: frozenset[tuple[str, str]] = frozenset(
    {
        ("blue", "heart"),
        ("green", "star"),
        ("yellow", "square"),
        ("purple", "circle"),
        ("orange", "triangle"),
        ("pink", "diamond"),
        ("red", "square"),
        ("brown", "circle"),
    }
)

HELDOUT_WORDS: dict[str, tuple[str, ...]] = {
    "latin": ("OPEN", "STOP", "CAT", "SUN", "Hello", "PIZZA", "exit", "BOOK", "SALE", "GO", "RED", "Taxi"),
    "greek": ("ΓΕΙΑ", "ΦΩΣ", "ΝΕΡΟ", "ΑΛΦΑ", "ΗΛΙΟΣ", "ΚΑΦΕ", "ΠΙ", "ΣΟΦΙΑ"),
    "cyrillic": ("МИР", "ДОМ", "КОТ", "ВОДА", "СТОП", "Привет", "ЧАЙ", "ЛЕС"),
}
# Letters drawn with the same glyph in another script (Cyrillic К and Latin K look the same in the
# world's font), folded to the Latin letter so that a look-alike spelling of a held-out word is held out too.
_LOOKALIKES = str.maketrans(
    "АВЕКМНОРСТХаеорсхуΑΒΕΖΗΙΚΜΝΟΡΤΥΧο",
    "ABEKMHOPCTXaeopcxyABEZHIKMNOPTYXo",
)


def _glyphs(text: str) -> str:
    return text.translate(_LOOKALIKES).casefold()


_HELDOUT_WORDS_FOLDED = frozenset(w.casefold() for words in HELDOUT_WORDS.values() for w in words)
_HELDOUT_GLYPHS = frozenset(_glyphs(w) for words in HELDOUT_WORDS.values() for w in words)

HELDOUT_PAIRS: frozenset[frozenset[str]] = frozenset(
    frozenset(pair)
    for pair in (
        ("dog", "cat"),
        ("car", "tree"),
        ("circle", "star"),
        ("apple", "book"),
        ("rocket", "moon"),
        ("fish", "boat"),
        ("square", "heart"),
        ("bird", "house"),
    )
)


def is_heldout_word(text: str) -> bool:
    """A held-out word in any case, or spelled with look-alike letters of another script ("KOT" for "КОТ")."""
    return text.casefold() in _HELDOUT_WORDS_FOLDED or _glyphs(text) in _HELDOUT_GLYPHS


def violations(spec: SceneSpec) -> list[str]:
    """Every held-out combination present in `spec`, described in words (empty when none)."""
    colored = [(group.color, group.kind) for group in spec.groups if group.color]
    return _combinations(colored, [block.text for block in spec.texts], {group.kind for group in spec.groups})


def drawn_violations(scene: Scene) -> list[str]:
    """The same check on what a laid-out scene draws, colours the layout chose included.

    A training spec is redrawn until `violations` is empty, so only this
    check can still find a held-out pair among the items: an uncoloured
    "a star" whose layout picked a reserved colour.
    """
    things = [item for item in scene.items if item.kind != "text"]
    colored = [(item.color, item.kind) for item in things if item.color]
    words = [item.text for item in scene.items if item.kind == "text" and item.text]
    return _combinations(colored, words, {item.kind for item in things})


def _combinations(colored: list[tuple[str, str]], words: list[str], kinds: set[str]) -> list[str]:
    found = [f"colour-shape pair {color} {kind}" for color, kind in colored if (color, kind) in HELDOUT_COLOR_SHAPES]
    found += [f"word {text!r}" for text in words if is_heldout_word(text)]
    ordered = sorted(kinds)
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            if frozenset((a, b)) in HELDOUT_PAIRS:
                found.append(f"object pair {a} + {b}")
    return found
