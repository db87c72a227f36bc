"""Captions and the prompt parser: every caption reads back as its spec, bad prompts fail with one clear line."""

from __future__ import annotations

import random

import pytest

from imgen.world import lexicon, vocab
from imgen.world.captions import SCENE_BACKGROUND_FRAMES, STYLE_FRAMES, caption
from imgen.world.parser import parse
from imgen.world.spec import ObjectGroup, Relation, SceneSpec, SpecError, TextBlock

SEEDS = range(12)
TEXTS = {
    "latin": ("OPEN", "hello", "Hi Mom", "A"),
    "greek": ("ΑΒΓ", "ΝΑΙ", "μελι"),
    "cyrillic": ("МИР", "привет", "ДА НЕТ"),
    "digits": ("7", "2024", "1234567"),
}


def assert_round_trip(spec: SceneSpec, seeds: range | list[int] = SEEDS) -> None:
    """caption -> parse gives back `spec`, with no word left over, for several paraphrases."""
    spec.validate()
    for seed in seeds:
        text = caption(spec, random.Random(seed))
        parsed = parse(text)
        assert parsed == spec, f"{text!r} parsed as {parsed}"
        assert parsed.unknown_words == (), f"{text!r} left {parsed.unknown_words}"


# -- every concept of the vocabulary --------------------------------------


@pytest.mark.parametrize("color", vocab.COLORS)
def test_every_colour_round_trips_on_shapes_and_texts(color):
    assert_round_trip(SceneSpec(groups=(ObjectGroup("circle", 1, color),)))
    assert_round_trip(SceneSpec(groups=(ObjectGroup("star", 4, color),)))
    assert_round_trip(SceneSpec(texts=(TextBlock("HI", color),)))
    assert_round_trip(SceneSpec(texts=(TextBlock("ΝΑΙ", color, "bottom"),)))


@pytest.mark.parametrize("kind", vocab.KINDS)
def test_every_kind_round_trips_singular_and_plural(kind):
    color = "blue" if kind in vocab.SHAPES else None
    assert_round_trip(SceneSpec(groups=(ObjectGroup(kind, 1, color),)))
    assert_round_trip(SceneSpec(groups=(ObjectGroup(kind, 3),)))
    assert_round_trip(SceneSpec(groups=(ObjectGroup(kind, 11, color, region="left"),)))


@pytest.mark.parametrize("size", vocab.SIZES)
def test_every_size_round_trips(size):
    assert_round_trip(SceneSpec(groups=(ObjectGroup("heart", 1, "red", size),)))
    assert_round_trip(SceneSpec(groups=(ObjectGroup("umbrella", 1, None, size, "top right"),)))
    assert_round_trip(SceneSpec(groups=(ObjectGroup("diamond", 5, "gray", size),)))


@pytest.mark.parametrize("region", vocab.REGIONS)
def test_every_region_round_trips_on_groups_and_texts(region):
    assert_round_trip(SceneSpec(groups=(ObjectGroup("triangle", 1, "green", region=region),)))
    assert_round_trip(SceneSpec(groups=(ObjectGroup("apple", 2, region=region),)))
    assert_round_trip(SceneSpec(texts=(TextBlock("ΑΒΓ", "red", region),)))
    assert_round_trip(SceneSpec(texts=(TextBlock("GO", None, region),)))


@pytest.mark.parametrize("region", vocab.REGIONS)
@pytest.mark.parametrize("relation", vocab.RELATIONS)
def test_a_relation_after_a_placed_object_is_not_read_as_a_place(relation, region):
    # "a circle at the bottom left of a star" must not become the region "bottom left".
    groups = (ObjectGroup("circle", 1, "red", region=region), ObjectGroup("star", 1, "blue"))
    assert_round_trip(SceneSpec(groups=groups, relations=(Relation(0, relation, 1),)), seeds=range(6))


@pytest.mark.parametrize("relation", vocab.RELATIONS)
def test_every_relation_round_trips(relation):
    pair = (ObjectGroup("circle", 1, "red"), ObjectGroup("dog"))
    assert_round_trip(SceneSpec(groups=pair, relations=(Relation(0, relation, 1),)))
    # Reversed and non-adjacent relations are written with "the ...".
    three = (ObjectGroup("cat"), ObjectGroup("square", 2, "pink"), ObjectGroup("key", size="small"))
    assert_round_trip(SceneSpec(groups=three, relations=(Relation(2, relation, 0),)))


def test_relation_chains_and_back_references_round_trip():
    groups = (ObjectGroup("sun"), ObjectGroup("house"), ObjectGroup("tree", region="bottom left"))
    chain = (Relation(0, "above", 1), Relation(1, "left of", 2))
    assert_round_trip(SceneSpec(groups=groups, relations=chain))
    mixed = (Relation(0, "above", 1), Relation(2, "right of", 0), Relation(1, "below", 0))
    assert_round_trip(SceneSpec(groups=groups, relations=mixed))


def test_identical_objects_are_told_apart_by_ordinals():
    same = (ObjectGroup("circle", 1, "red"),) * 3 + (ObjectGroup("circle", 1, "red", "large"),)
    relations = (Relation(2, "left of", 0), Relation(1, "above", 3), Relation(3, "below", 2))
    assert_round_trip(SceneSpec(groups=same, relations=relations))
    text = caption(SceneSpec(groups=same, relations=relations), random.Random(0))
    assert "third" in text


@pytest.mark.parametrize("style", vocab.STYLES)
def test_every_style_round_trips(style):
    assert_round_trip(SceneSpec(groups=(ObjectGroup("star", 3, "yellow"),), style=style), seeds=range(30))
    assert_round_trip(SceneSpec(texts=(TextBlock("МИР", "blue", "bottom"),), style=style), seeds=range(30))


@pytest.mark.parametrize("background", vocab.BACKGROUNDS)
def test_every_background_round_trips(background):
    groups = (ObjectGroup("heart", 1, "purple", region="center"),)
    assert_round_trip(SceneSpec(groups=groups, background=background), seeds=range(30))
    texts = (TextBlock("SKY", "red"),)
    assert_round_trip(SceneSpec(texts=texts, background=background, style="night"), seeds=range(30))


@pytest.mark.parametrize("count", range(1, vocab.MAX_COUNT + 1))
def test_every_count_round_trips(count):
    assert_round_trip(SceneSpec(groups=(ObjectGroup("star", count, "orange"),)))
    assert_round_trip(SceneSpec(groups=(ObjectGroup("fish", count),)))


@pytest.mark.parametrize("script", TEXTS)
def test_texts_in_every_script_round_trip_verbatim(script):
    for text in TEXTS[script]:
        assert_round_trip(SceneSpec(texts=(TextBlock(text),)))
        assert_round_trip(SceneSpec(texts=(TextBlock(text, "green", "top left"), TextBlock("Ok", "black", "right"))))
        assert_round_trip(SceneSpec(groups=(ObjectGroup("bird", 2),), texts=(TextBlock(text, "brown"),)))


def test_every_synonym_in_the_lexicon_parses_to_its_meaning():
    for color, words in lexicon.COLOR_WORDS.items():
        for word in words:
            assert parse(f"a {word} square").groups == (ObjectGroup("square", 1, color),)
    for size, words in lexicon.SIZE_WORDS.items():
        for word in words:
            assert parse(f"a {word} cloud").groups == (ObjectGroup("cloud", 1, None, size),)
    for kind, forms in lexicon.KIND_WORDS.items():
        for singular, plural in forms:
            assert parse(f"one {singular}").groups == (ObjectGroup(kind, 1),), singular
            assert parse(f"two {plural}").groups == (ObjectGroup(kind, 2),), plural
    for region, phrases in lexicon.REGION_PHRASES.items():
        for phrase in phrases:
            assert parse(f"a ball {phrase}").groups == (ObjectGroup("ball", region=region),), phrase
    for relation, phrases in lexicon.RELATION_PHRASES.items():
        for phrase in phrases:
            assert parse(f"a cake {phrase} a book").relations == (Relation(0, relation, 1),), phrase
    for style, frames in STYLE_FRAMES.items():
        for frame in frames:
            assert parse(frame.format("a moon")).style == style, frame
    for background, names in lexicon.BACKGROUND_NAMES.items():
        for name in names:
            assert parse(f"a moon on a {name} background").background == background, name
    for background, frames in SCENE_BACKGROUND_FRAMES.items():
        for frame in frames:
            assert parse(frame.format("a moon")).background == background, frame


def test_count_words_cover_the_drawable_range():
    assert sorted(lexicon.COUNT_WORDS) == list(range(1, vocab.MAX_COUNT + 1))
    assert set(lexicon.KIND_WORDS) == set(vocab.KINDS)
    assert set(lexicon.REGION_PHRASES) == set(vocab.REGIONS)
    assert set(lexicon.RELATION_PHRASES) == set(vocab.RELATIONS)
    assert set(lexicon.STYLE_PHRASES) == set(STYLE_FRAMES) == set(vocab.STYLES)
    assert set(lexicon.BACKGROUND_NAMES) | set(SCENE_BACKGROUND_FRAMES) == set(vocab.BACKGROUNDS)


# -- randomized round trip ----------------------------------------------------


def _random_spec(rng: random.Random) -> SceneSpec:
    """Any valid spec, including shapes of spec the training sampler never draws (relations among many)."""
    groups: list[ObjectGroup] = []
    budget = vocab.MAX_COUNT
    for _ in range(rng.randint(0, 5)):
        kind = rng.choice(vocab.KINDS)
        count = min(budget, rng.choice((1, 1, 1, 1, 2, 3, 6, 13, 20)))
        if count < 1:
            break
        budget -= count
        color = rng.choice((None, *vocab.COLORS)) if kind in vocab.SHAPES else None
        size = rng.choice((None, None, *vocab.SIZES))
        region = rng.choice((None, None, *vocab.REGIONS))
        groups.append(ObjectGroup(kind, count, color, size, region))
    texts = []
    for _ in range(rng.randint(0 if groups else 1, 2)):
        text = rng.choice([t for pool in TEXTS.values() for t in pool])
        texts.append(TextBlock(text, rng.choice((None, *vocab.COLORS)), rng.choice((None, *vocab.REGIONS))))
    singles = [i for i, g in enumerate(groups) if g.count == 1]
    relations = []
    if len(singles) >= 2:
        for _ in range(rng.randint(0, 3)):
            subject, reference = rng.sample(singles, 2)
            relations.append(Relation(subject, rng.choice(vocab.RELATIONS), reference))
    background = rng.choice((None, *vocab.BACKGROUNDS))
    return SceneSpec(tuple(groups), tuple(texts), tuple(relations), background, rng.choice(vocab.STYLES))


def test_random_specs_round_trip():
    rng = random.Random(1234)
    for n in range(400):
        assert_round_trip(_random_spec(rng), seeds=[n])


def test_training_specs_round_trip():
    from imgen.world import sampling

    rng = random.Random(99)
    for _ in range(300):
        spec = sampling.random_spec(rng)
        spec.validate()  # every spec the model is taught is a valid one
        text = caption(spec, rng)
        assert parse(text) == spec, text


# -- unknown words, errors, variety ---------------------------------------------


def test_unknown_words_are_reported_by_name_in_order():
    spec = parse("a red circle next to a purple zebra, very shiny")
    assert spec.groups == (ObjectGroup("circle", 1, "red"),)
    assert "zebra" in spec.unknown_words
    assert spec.unknown_words.index("next") < spec.unknown_words.index("zebra") < spec.unknown_words.index("shiny")
    with pytest.raises(SpecError, match="zebra"):
        parse("a purple zebra")


@pytest.mark.parametrize(
    ("prompt", "named"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("21 red circles", "21.*20"),
        ("twenty-five stars", "25.*20"),
        ('the word "ABCDEFGHIJKLM"', "13 characters.*12"),
        ('the text "你好"', "unsupported characters"),
        ("a red dog", "dog.*sticker.*red"),
        ('a sign that says "HI', "never closed"),
        ("three stars and five circles and fourteen hearts", "22 objects"),
        ("stars at the top", "how many stars"),
        ("a circle left of", "'left of' needs an object after it"),
        ("a pastel drawing of a cat in pixel art style", "two styles"),
        ("two hearts above a star", "single objects"),
    ],
)
def test_bad_prompts_fail_with_one_line_naming_the_problem(prompt, named):
    with pytest.raises(SpecError, match=named) as error:
        parse(prompt)
    assert "\n" not in str(error.value)


def test_the_same_spec_is_paraphrased_many_ways():
    spec = SceneSpec(
        groups=(ObjectGroup("star", 7, "gray", region="top left"), ObjectGroup("bicycle")),
        texts=(TextBlock("OPEN", "red", "bottom"),),
        background="sky and grass",
        style="pixel",
    )
    captions = {caption(spec, random.Random(seed)) for seed in range(50)}
    assert len(captions) >= 3
    assert all('"OPEN"' in text for text in captions)


def test_captions_are_deterministic_for_an_rng_state():
    spec = SceneSpec(groups=(ObjectGroup("car", 2, region="right"),), texts=(TextBlock("ΝΑΙ"),))
    assert caption(spec, random.Random(5)) == caption(spec, random.Random(5))


def test_unset_fields_are_not_expressed():
    text = caption(SceneSpec(groups=(ObjectGroup("heart"),)), random.Random(3))
    for word in ("background", "small", "large", "left", "top", "center", "night", "pixel", "red"):
        assert word not in text


# -- prompts people type ------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        (
            "In the top left corner there is a red circle, and a blue star at the bottom",
            SceneSpec(
                groups=(
                    ObjectGroup("circle", 1, "red", region="top left"),
                    ObjectGroup("star", 1, "blue", region="bottom"),
                )
            ),
        ),
        (
            "The sun above the house at sunset",
            SceneSpec(
                groups=(ObjectGroup("sun"), ObjectGroup("house")),
                relations=(Relation(0, "above", 1),),
                background="sunset",
            ),
        ),
        (
            "a cat, a star and a dog; the dog is left of the cat",
            SceneSpec(
                groups=(ObjectGroup("cat"), ObjectGroup("star"), ObjectGroup("dog")),
                relations=(Relation(2, "left of", 0),),
            ),
        ),
        (
            "a dog's ball, «МИР» in blue and “ΑΒΓ” at the top-left",
            SceneSpec(
                groups=(ObjectGroup("dog"), ObjectGroup("ball")),
                texts=(TextBlock("МИР", "blue"), TextBlock("ΑΒΓ", region="top left")),
            ),
        ),
        ("a circle at the top, on the left", SceneSpec(groups=(ObjectGroup("circle", region="top left"),))),
        (
            "Two small red circles on the left of the image",
            SceneSpec(groups=(ObjectGroup("circle", 2, "red", "small", "left"),)),
        ),
        (
            "7 Grey Stars in pixel art style on grass under a blue sky",
            SceneSpec(groups=(ObjectGroup("star", 7, "gray"),), background="sky and grass", style="pixel"),
        ),
        ("Red text saying 'STOP'", SceneSpec(texts=(TextBlock("STOP", "red"),))),
        ("a sign that says ‘HI’ in white", SceneSpec(texts=(TextBlock("HI", "white"),))),
    ],
)
def test_hand_written_prompts(prompt, expected):
    assert parse(prompt) == expected
