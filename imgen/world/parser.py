"""Words -> spec: read a prompt into a `SceneSpec`, the inverse of `captions.caption`.

The parser is deliberately small and forgiving: it reads the words it knows
(all of them listed in `imgen.world.lexicon`, the same tables the caption
writer draws from), skips filler, and reports every other word in
`SceneSpec.unknown_words` so the caller can warn instead of failing. It fails
only when the prompt cannot be drawn, with one line that names the problem.

Grammar
-------
1. Quoted strings are text blocks, taken verbatim (case and all) before anything
   else: "...", '...', “...”, „...“, ‘...’ and «...». Each is checked with
   `validate_text` (1-12 characters of Latin, Greek, Cyrillic or digits).
2. The rest is lower-cased and split into words; hyphens count as spaces
   ("top-left", "medium-sized", "twenty-five"). ".,;:!?" and "and" are
   boundaries between items.
3. Words are matched greedily against the lexicon, longest phrase first, so
   "on the left of" (a relation) wins over "on the left" (a region), and
   "light blue background" over the colour "blue". What no phrase matches is a
   number ("7", "twenty one", "a hundred"), an ordinal ("second"), "the", a
   filler word ("a", "of", "with", "there", "is", "image", "showing", "word",
   "text", "says", ...) or an unknown word.
4. Items, in reading order:

       group      := [the [ordinal]] [count] [size] [colour] kind [region]
       text       := [colour] QUOTED [colour] [region] [colour]
       relation   := group RELATION group
       region     := REGION        (after an item: that item's place;
                                    at the start or after a boundary: the next item's,
                                    or the last item's when no item follows)
       style      := STYLE         (anywhere: "pixel art of ...", "... at night")
       background := BACKGROUND    (anywhere: "on a beige background", "at sunset")

   Count, size and colour words attach to the next kind noun (or, for a colour,
   to the next quoted text). A colour or size left over when an item ends
   ("the word "HI" in red", "a circle in blue") goes to the item just read,
   if that item has none. A plural noun needs a count; a singular one defaults
   to one. Two places given to one item combine when they can ("at the top, on
   the left" is "top left").
5. "the" followed by a singular noun without a count refers back to an object
   already mentioned when one matches exactly (same kind, colour and size; an
   ordinal picks among several: "the second red circle"), or else when exactly
   one matches the words given ("the circle"); otherwise it introduces a new
   object. This is how a relation between objects that are not next to each
   other is written: "a cat, a star and a dog, the dog is left of the cat".
6. Groups, texts and relations are numbered in reading order.

Errors (`SpecError`, one line): an empty prompt; a count above the limit
("21 stars", "twenty-five stars"); a bad quoted text (too long, unsupported
script, unclosed quote); a colour given to a sticker; a plural without a count;
conflicting colours, sizes, places, styles or backgrounds; a relation without
an object on each side; and whatever `SceneSpec.validate` rejects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from imgen.world import lexicon, vocab
from imgen.world.spec import ObjectGroup, Relation, SceneSpec, SpecError, TextBlock, validate_text

# Opening quote -> the characters that may close it. Typed prompts mix straight
# and typographic quotes, so a double quote closes any double quote.
_QUOTES: dict[str, str] = {
    '"': '"”“',
    "“": '”“"',
    "„": '“”"',
    "«": "»",
    "'": "'’",
    "‘": "’'",
}
_APOSTROPHES = "'‘"
_PLACEHOLDER = "\ue000"  # a private-use character marks where a quoted text stood
_TOKEN = re.compile(_PLACEHOLDER + r"\d+|[^\W_]+|[.,;:!?]")
_ORDINAL_DIGITS = re.compile(r"(\d+)(?:st|nd|rd|th)")
_POSSESSIVE = re.compile(r"(?<=\w)['’]s\b")  # "the dog's ball" reads as "the dog ball"
_PUNCTUATION = frozenset(".,;:!?")
_VERTICAL = ("top", "bottom")
_HORIZONTAL = ("left", "right")


@dataclass(frozen=True)
class _Token:
    """One lexed item: its category, its meaning and the words it was read from."""

    category: str
    value: object
    surface: str
    position: int


@dataclass(eq=False)
class _Group:
    kind: str
    count: int
    color: str | None
    size: str | None
    region: str | None


@dataclass(eq=False)
class _Text:
    text: str
    color: str | None
    region: str | None


def parse(prompt: str) -> SceneSpec:
    """Read `prompt` into a validated spec; raise `SpecError` with one line when it cannot be drawn."""
    if not prompt or not prompt.strip():
        raise SpecError("the prompt is empty")
    rest, texts = _extract_quotes(prompt.replace(_PLACEHOLDER, " "))
    return _Reader(texts).read(_lex(rest, texts))


def _extract_quotes(prompt: str) -> tuple[str, list[str]]:
    """Replace each quoted string by a placeholder word; return the rest and the strings in order."""
    texts: list[str] = []
    out: list[str] = []
    i = 0
    while i < len(prompt):
        char = prompt[i]
        is_apostrophe = char in _APOSTROPHES and i > 0 and prompt[i - 1].isalnum()
        if char not in _QUOTES or is_apostrophe:
            out.append(char)
            i += 1
            continue
        end = _closing_quote(prompt, i)
        if end is None:
            if char in _APOSTROPHES:
                out.append(char)
                i += 1
                continue
            raise SpecError(f"the quote opened with {char} is never closed")
        text = validate_text(prompt[i + 1 : end])
        out.append(f" {_PLACEHOLDER}{len(texts)} ")
        texts.append(text)
        i = end + 1
    return "".join(out), texts


def _closing_quote(prompt: str, start: int) -> int | None:
    """Index of the quote closing the one at `start`; a single quote inside a word is an apostrophe."""
    closers = _QUOTES[prompt[start]]
    for j in range(start + 1, len(prompt)):
        if prompt[j] in closers:
            if prompt[j] in "'’" and j + 1 < len(prompt) and prompt[j + 1].isalnum():
                continue
            return j
    return None


def _lex(rest: str, texts: list[str]) -> list[_Token]:
    """Split the unquoted part into tokens, matching the longest lexicon phrase at each word."""
    cleaned = _POSSESSIVE.sub("", rest.lower()).replace("&", " and ")
    for dash in "-‐‑–—":
        cleaned = cleaned.replace(dash, " ")
    words = _TOKEN.findall(cleaned)
    table = lexicon.phrase_table()
    longest = lexicon.longest_phrase()
    tokens: list[_Token] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith(_PLACEHOLDER):
            tokens.append(_Token("text", texts[int(word[1:])], "", i))
            i += 1
            continue
        if word in _PUNCTUATION:
            tokens.append(_Token("boundary", None, word, i))
            i += 1
            continue
        for length in range(min(longest, len(words) - i), 0, -1):
            key = tuple(words[i : i + length])
            if key in table:
                category, value = table[key]
                tokens.append(_Token(category, value, " ".join(key), i))
                i += length
                break
        else:
            token, i = _lex_word(words, i)
            tokens.append(token)
    return tokens


def _lex_word(words: list[str], i: int) -> tuple[_Token, int]:
    """A word no phrase starts with: a number, an ordinal, "the", a boundary, a filler or unknown."""
    word = words[i]
    if word.isdigit():
        return _Token("count", int(word), word, i), i + 1
    if word in lexicon.NUMBER_WORDS or word in lexicon.MULTIPLIER_WORDS:
        value, end = _read_number(words, i)
        return _Token("count", value, " ".join(words[i:end]), i), end
    ordinal = _ORDINAL_DIGITS.fullmatch(word)
    if word in lexicon.ORDINAL_WORDS or ordinal:
        value = lexicon.ORDINAL_WORDS[word] if ordinal is None else int(ordinal.group(1))
        return _Token("ordinal", value, word, i), i + 1
    if word == lexicon.DEFINITE_ARTICLE:
        return _Token("the", None, word, i), i + 1
    if word in lexicon.BOUNDARY_WORDS:
        return _Token("boundary", None, word, i), i + 1
    if word in lexicon.FILLER_WORDS:
        return _Token("filler", None, word, i), i + 1
    return _Token("unknown", None, word, i), i + 1


def _read_number(words: list[str], i: int) -> tuple[int, int]:
    """Read number words from `i`: "seven", "twenty one", "a hundred", "two hundred five"."""

    def small(j: int) -> tuple[int | None, int]:
        if j >= len(words) or words[j] not in lexicon.NUMBER_WORDS:
            return None, j
        value = lexicon.NUMBER_WORDS[words[j]]
        if (
            words[j] in lexicon.TENS_WORDS
            and j + 1 < len(words)
            and 1 <= lexicon.NUMBER_WORDS.get(words[j + 1], 0) <= 9
        ):
            return value + lexicon.NUMBER_WORDS[words[j + 1]], j + 2
        return value, j + 1

    value, j = small(i)
    value = 1 if value is None else value
    while j < len(words) and words[j] in lexicon.MULTIPLIER_WORDS:
        value *= lexicon.MULTIPLIER_WORDS[words[j]]
        extra, after = small(j + 1)
        value, j = (value + extra, after) if extra is not None else (value, j + 1)
    return value, j


class _Pending:
    """Count, size, colour, ordinal and "the" read so far, waiting for their noun."""

    def __init__(self) -> None:
        self.count: _Token | None = None
        self.size: _Token | None = None
        self.color: _Token | None = None
        self.ordinal: _Token | None = None
        self.definite = False

    def tokens(self) -> list[_Token]:
        return [t for t in (self.count, self.size, self.color, self.ordinal) if t is not None]


class _Reader:
    """The item assembler: a left-to-right pass over tokens with one item of look-behind."""

    def __init__(self, texts: list[str]) -> None:
        self.groups: list[_Group] = []
        self.texts: list[_Text] = []
        self.relations: list[Relation] = []
        self.last: _Group | _Text | None = None
        self.pending = _Pending()
        self.relation: tuple[int, str, str] | None = None  # subject index, relation, words
        self.forward_region: _Token | None = None
        self.after_boundary = True
        self.style: _Token | None = None
        self.background: _Token | None = None
        self.ignored: list[tuple[int, str]] = []

    def read(self, tokens: list[_Token]) -> SceneSpec:
        handlers = {
            "boundary": self._boundary,
            "the": self._the,
            "count": self._attribute,
            "size": self._attribute,
            "color": self._attribute,
            "ordinal": self._attribute,
            "kind": self._kind,
            "text": self._text,
            "region": self._region,
            "relation": self._relation,
            "style": self._setting,
            "background": self._setting,
            "filler": lambda token: None,
            "unknown": lambda token: self.ignored.append((token.position, token.surface)),
        }
        for token in tokens:
            handlers[token.category](token)
        self._flush()
        if self.relation is not None:
            raise SpecError(f"{self.relation[2]!r} needs an object after it")
        if self.forward_region is not None:
            self._place_late(self.forward_region)
        return self._spec()

    def _spec(self) -> SceneSpec:
        unknown = tuple(dict.fromkeys(word for _, word in sorted(self.ignored)))
        if not self.groups and not self.texts and unknown:
            raise SpecError(f"the prompt names nothing imgen can draw (unknown words: {', '.join(unknown)})")
        spec = SceneSpec(
            groups=tuple(ObjectGroup(g.kind, g.count, g.color, g.size, g.region) for g in self.groups),
            texts=tuple(TextBlock(t.text, t.color, t.region) for t in self.texts),
            relations=tuple(self.relations),
            background=None if self.background is None else str(self.background.value),
            style="flat" if self.style is None else str(self.style.value),
            unknown_words=unknown,
        )
        return spec.validate()

    # -- token handlers ---------------------------------------------------

    def _boundary(self, token: _Token) -> None:
        self._flush()
        self.after_boundary = True

    def _the(self, token: _Token) -> None:
        self.pending.definite = True

    def _attribute(self, token: _Token) -> None:
        slot = token.category
        held: _Token | None = getattr(self.pending, slot)
        if held is not None and held.value != token.value:
            if slot in ("count", "ordinal"):
                self._ignore(held)
            else:
                noun = "colours" if slot == "color" else "sizes"
                raise SpecError(f"two {noun}, {held.surface!r} and {token.surface!r}, for one object")
        setattr(self.pending, slot, token)

    def _kind(self, token: _Token) -> None:
        kind, plural = token.value  # type: ignore[misc]
        pending = self.pending
        if pending.definite and pending.count is None and not plural:
            index = self._refer_back(kind)
            if index is not None:
                self.pending = _Pending()
                self._enter_group(index)
                return
        elif pending.ordinal is not None:
            self._ignore(pending.ordinal)
        if pending.count is None:
            if plural:
                raise SpecError(
                    f'how many {token.surface}? put a number before "{token.surface}" (1 to {vocab.MAX_COUNT})'
                )
            count = 1
        else:
            count = int(pending.count.value)  # type: ignore[call-overload]
            if count > vocab.MAX_COUNT:
                raise SpecError(
                    f"{count} {token.surface} are too many: imgen draws at most {vocab.MAX_COUNT} objects of a kind"
                )
        color = None if pending.color is None else str(pending.color.value)
        if color is not None:
            _check_sticker_color(kind, color)
        size = None if pending.size is None else str(pending.size.value)
        self.groups.append(_Group(kind, count, color, size, None))
        self.pending = _Pending()
        self._enter_group(len(self.groups) - 1)

    def _text(self, token: _Token) -> None:
        if self.relation is not None:
            raise SpecError(f"{self.relation[2]!r} must be followed by an object, not the text {token.value!r}")
        pending = self.pending
        for held in (pending.size, pending.ordinal):
            if held is not None:
                self._ignore(held)
        if pending.count is not None and pending.count.value != 1:
            self._ignore(pending.count)
        color = None if pending.color is None else str(pending.color.value)
        self.texts.append(_Text(str(token.value), color, None))
        self.pending = _Pending()
        self._enter(self.texts[-1])

    def _region(self, token: _Token) -> None:
        self._flush()
        if self.after_boundary or self.last is None:
            if self.forward_region is not None:
                self._ignore(self.forward_region)
            self.forward_region = token
        else:
            self._place(self.last, token)

    def _relation(self, token: _Token) -> None:
        self._flush()
        if self.relation is not None:
            raise SpecError(f"{self.relation[2]!r} and {token.surface!r} follow each other with no object between")
        if not isinstance(self.last, _Group):
            after = ", not quoted text" if isinstance(self.last, _Text) else ""
            raise SpecError(f"{token.surface!r} needs an object before it{after}")
        subject = next(i for i, group in enumerate(self.groups) if group is self.last)
        self.relation = (subject, str(token.value), token.surface)
        self.after_boundary = False

    def _setting(self, token: _Token) -> None:
        self._flush()
        held: _Token | None = getattr(self, token.category)
        if held is not None and held.value != token.value:
            raise SpecError(f"two {token.category}s, {held.surface!r} and {token.surface!r}: choose one")
        setattr(self, token.category, token)

    # -- helpers ----------------------------------------------------------

    def _enter_group(self, index: int) -> None:
        """Make group `index` the current item and close a pending relation with it."""
        if self.relation is not None:
            subject, relation, _ = self.relation
            self.relations.append(Relation(subject, relation, index))
            self.relation = None
        self._enter(self.groups[index])

    def _enter(self, item: _Group | _Text) -> None:
        self.last = item
        self.after_boundary = False
        if self.forward_region is not None:
            region, self.forward_region = self.forward_region, None
            self._place(item, region)

    def _refer_back(self, kind: str) -> int | None:
        """Index of the earlier single object "the ..." names, or None for a new object."""
        pending = self.pending
        color = None if pending.color is None else pending.color.value
        size = None if pending.size is None else pending.size.value
        singles = [i for i, g in enumerate(self.groups) if g.count == 1 and g.kind == kind]
        exact = [i for i in singles if (self.groups[i].color, self.groups[i].size) == (color, size)]
        loose = [i for i in singles if color in (None, self.groups[i].color) and size in (None, self.groups[i].size)]
        words = " ".join(t.surface for t in pending.tokens() if t is not pending.ordinal)
        described = f"{words} {kind}".strip()
        if pending.ordinal is not None:
            nth = int(pending.ordinal.value)  # type: ignore[call-overload]
            for candidates in (exact, loose):
                if 1 <= nth <= len(candidates):
                    return candidates[nth - 1]
            raise SpecError(f"there is no {pending.ordinal.surface} {described} to refer to")
        for candidates in (exact, loose):
            if len(candidates) == 1:
                return candidates[0]
            if len(candidates) > 1:
                raise SpecError(
                    f"'the {described}' could be any of {len(candidates)} objects; say 'the first {described}'"
                )
        return None

    def _place_late(self, token: _Token) -> None:
        """A place at the very end ("a circle at the top, on the left") belongs to the last item if it fits."""
        if self.last is None:
            self._ignore(token)
            return
        try:
            self._place(self.last, token)
        except SpecError:
            self._ignore(token)

    def _place(self, item: _Group | _Text, token: _Token) -> None:
        region = str(token.value)
        if item.region is None or item.region == region:
            item.region = region
            return
        pair = {item.region, region}
        vertical = [r for r in pair if r in _VERTICAL]
        horizontal = [r for r in pair if r in _HORIZONTAL]
        if vertical and horizontal:
            item.region = f"{vertical[0]} {horizontal[0]}"
            return
        name = item.kind if isinstance(item, _Group) else repr(item.text)
        raise SpecError(f"{name} is given two places, {item.region!r} and {region!r}")

    def _flush(self) -> None:
        """End the current item: leftover colour/size go to it, other leftovers are ignored."""
        pending, self.pending = self.pending, _Pending()
        item = self.last
        if pending.color is not None:
            color = str(pending.color.value)
            if item is not None and item.color is None:
                if isinstance(item, _Group):
                    _check_sticker_color(item.kind, color)
                item.color = color
            elif item is None or item.color != color:
                self._ignore(pending.color)
        if pending.size is not None:
            size = str(pending.size.value)
            if isinstance(item, _Group) and item.size is None:
                item.size = size
            elif not isinstance(item, _Group) or item.size != size:
                self._ignore(pending.size)
        for held in (pending.count, pending.ordinal):
            if held is not None:
                self._ignore(held)

    def _ignore(self, token: _Token) -> None:
        self.ignored.append((token.position, token.surface))


def _check_sticker_color(kind: str, color: str) -> None:
    if kind in vocab.STICKERS:
        raise SpecError(f"a {kind} is a sticker with its own colours; it cannot be made {color}")
