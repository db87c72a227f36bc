"""The prompt tokenizer: words outside quotes, one token per character inside them, fixed-length rows."""

from __future__ import annotations

import pytest

from imgen.text import PAD, UNK, PromptEncoder, pre_tokenize, train_text_tokenizer

CAPTIONS = ["a red circle in the top left", 'the word "OPEN" at the bottom', "two blue stars above a cat"]


@pytest.fixture(scope="module")
def encoder() -> PromptEncoder:
    return PromptEncoder(train_text_tokenizer(CAPTIONS), max_length=12)


def test_quoted_text_is_split_into_characters_and_words_are_lower_case():
    assert pre_tokenize('The word "Ок 1" at the TOP') == [
        "the", "word", "<q>", "c:О", "c:к", "c:_", "c:1", "</q>", "at", "the", "top",
    ]  # fmt: skip
    assert pre_tokenize("a cat's ball") == ["a", "cat", "s", "ball"]  # an apostrophe inside a word is no quote
    assert pre_tokenize("«МИР» and „ΦΩΣ“") == [
        "<q>",
        "c:М",
        "c:И",
        "c:Р",
        "</q>",
        "and",
        "<q>",
        "c:Φ",
        "c:Ω",
        "c:Σ",
        "</q>",
    ]


def test_rows_are_padded_and_truncated_to_the_prompt_length(encoder):
    short = encoder.encode("a red circle")
    assert len(short) == 12 and short[3:] == [encoder.pad_id] * 9 and encoder.pad_id not in short[:3]
    long = encoder.encode("a red circle in the top left and two blue stars above a cat")
    assert len(long) == 12 and encoder.pad_id not in long


def test_every_character_of_the_world_has_its_own_token_even_if_no_caption_used_it(encoder):
    ids = encoder.encode('"ΩЖz"')
    assert encoder.unk_id not in ids and len(set(ids[1:4])) == 3


def test_unknown_words_are_named_once_in_order(encoder):
    assert encoder.unknown_words("a zebra and a red zebra near a kite") == ["zebra", "and", "near", "kite"]
    assert encoder.encode("a zebra")[1] == encoder.unk_id
    assert encoder.unknown_words('the word "QQQ"') == []  # characters in quotes are always known


def test_the_ignored_tail_is_what_lies_past_the_prompt_length(encoder):
    assert encoder.ignored_tail("a red circle in the top left") == ""
    fits_exactly = 'the word "OPEN" at the top left'
    assert len(pre_tokenize(fits_exactly)) == 12 and encoder.ignored_tail(fits_exactly) == ""
    assert encoder.ignored_tail('the word "OPEN" at the bottom, a cat at night') == "cat at night"
    assert encoder.ignored_tail('a red circle in the top left and the word "HELLO WORLD"') == 'ELLO WORLD"'


def test_the_tokenizer_travels_as_json(encoder):
    again = PromptEncoder.from_json(encoder.to_json(), max_length=12)
    for prompt in ("a red circle", 'the word "OPEN"', "a zebra"):
        assert again.encode(prompt) == encoder.encode(prompt)
    assert (again.tokenizer.token_to_id(PAD), again.tokenizer.token_to_id(UNK)) == (encoder.pad_id, encoder.unk_id)
