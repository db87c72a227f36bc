"""The benchmark: fixed, drawable suites; a judge that passes ground truth and fails near misses; reports."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageFilter

from imgen.eval import ocr
from imgen.eval.judge import JUDGE_VERSION, check_judge, judge, size_name
from imgen.eval.prompts import CATEGORIES, SUITE_VERSION, SUITES, EvalPrompt
from imgen.eval.runner import run_suite, write_report
from imgen.world import heldout, vocab
from imgen.world.ground_truth import render_prompt
from imgen.world.layout import layout
from imgen.world.parser import parse
from imgen.world.render import render
from imgen.world.scene import Item, Scene
from imgen.world.spec import Relation
from tests.system_deps import REQUIRE_SYSTEM_DEPS, needs

# The suites are a pure function of SUITE_VERSION. If this digest moves, the prompts changed:
# bump SUITE_VERSION (numbers from different versions must never be compared) and update it.
SUITE_DIGESTS = {
    "1": {
        "quick": "7d8ef31322ae485e335eb4e22798332d069f45659aa4d8ed4b1e6547f4d2e290",
        "full": "3bfd2d2d563424bb552fe939c1275ab97a609778387a59a908d9ecfc7f5c0fed",
    }
}

needs_tesseract = needs(
    next(filter(None, (ocr.unavailable_reason(script) for script in ("latin", "greek", "cyrillic"))), None)
)


def _digest(prompts: list[EvalPrompt]) -> str:
    data = json.dumps([[p.category, p.prompt] for p in prompts], ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


# -- the suites ------------------------------------------------------------


def test_suites_are_pinned_to_their_version():
    for name, prompts in SUITES.items():
        assert _digest(prompts) == SUITE_DIGESTS[SUITE_VERSION][name], f"suite {name!r} changed: bump SUITE_VERSION"


def test_suites_cover_every_category_and_quick_is_a_sample_of_full():
    full, quick = SUITES["full"], SUITES["quick"]
    for category in CATEGORIES:
        in_full = [p for p in full if p.category == category]
        in_quick = [p for p in quick if p.category == category]
        assert len(in_full) == 20, category
        assert 4 <= len(in_quick) <= 5, category
        assert in_quick == in_full[: len(in_quick)], category
    assert len(set(p.prompt for p in full)) == len(full), "a prompt appears twice"


def test_every_suite_prompt_parses_and_lays_out():
    for entry in SUITES["full"]:
        rendered = render_prompt(entry.prompt, seed=0)
        assert rendered.spec.unknown_words == (), entry.prompt
        assert rendered.image.size == (128, 128)


def test_prompts_ask_what_their_category_measures():
    ranges = {"counting 1-4": (1, 4), "counting 5-10": (5, 10), "counting 11-20": (11, 20)}
    for entry in SUITES["full"]:
        spec = parse(entry.prompt)
        if entry.category == "single object":
            assert spec.object_count() == 1 and not spec.texts, entry.prompt
        elif entry.category == "two objects":
            assert [g.count for g in spec.groups] == [1, 1] and spec.groups[0].kind != spec.groups[1].kind
        elif entry.category == "colours":
            assert len(spec.groups) == 1 and spec.groups[0].color is not None, entry.prompt
        elif entry.category in ranges:
            low, high = ranges[entry.category]
            assert len(spec.groups) == 1 and low <= spec.groups[0].count <= high, entry.prompt
        elif entry.category.startswith("text "):
            script = entry.category.split()[1]
            (block,) = spec.texts
            assert vocab.script_of(block.text) == script, entry.prompt
            assert heldout.is_heldout_word(block.text), f"{entry.prompt}: not a held-out word"
        elif entry.category == "many objects":
            assert spec.object_count() in (10, 20) and all(g.region for g in spec.groups), entry.prompt
        elif entry.category == "relations":
            assert len(spec.relations) == 1, entry.prompt
        elif entry.category == "position":
            assert spec.groups[0].region is not None, entry.prompt
        elif entry.category == "colour attribution":
            assert len({g.color for g in spec.groups}) == 2 and None not in {g.color for g in spec.groups}
        elif entry.category == "style":
            assert spec.style != "flat", entry.prompt
        else:
            pytest.fail(f"no check for category {entry.category!r}")
    shapes = [g for p in SUITES["full"] for g in parse(p.prompt).groups if g.color]
    assert sum((g.color, g.kind) in heldout.HELDOUT_COLOR_SHAPES for g in shapes) >= 60


def test_quick_text_prompts_are_short_words():
    words = [parse(p.prompt).texts[0].text for p in SUITES["quick"] if p.category.startswith("text ")]
    assert len(words) == 12 and all(1 <= len(w) <= 6 for w in words)


# -- the judge on ground truth and near misses ----------------------------


def test_judge_passes_ground_truth_and_fails_near_misses_on_the_quick_suite():
    figures = check_judge("quick", seeds=(0, 1))
    assert set(figures["categories"]) == set(CATEGORIES)
    for category, row in figures["categories"].items():
        if row["ground_truth"] is None:  # text without tesseract is not measured, never passed
            assert not REQUIRE_SYSTEM_DEPS, f"{category}: not measured, although tesseract is required here"
            assert category.startswith("text ") and shutil.which("tesseract") is None
            continue
        assert row["ground_truth"] >= 0.97, (category, figures["ground_truth_failures"])
        assert row["mismatched"] <= 0.10, (category, figures["mismatches_passed"])
        assert row["mismatches_skipped"] == 0, category


def test_a_broader_group_gets_the_object_in_the_place_it_asks_for():
    spec = parse("a red star and a star in the top left")
    items = (
        Item(kind="star", cx=0.17, cy=0.17, size=0.3, color="red"),  # the larger one, in the top left
        Item(kind="star", cx=0.6, cy=0.7, size=0.2, color="red"),
    )
    assert judge(render(Scene(items, "white", "flat")), spec).passed


def test_a_count_off_by_one_fails_and_says_what_was_seen():
    rendered = render_prompt("three red stars", seed=4)
    assert judge(rendered.image, rendered.spec).passed
    verdict = judge(rendered.image, parse("four red stars"))
    assert not verdict.passed
    (count,) = [c for c in verdict.checks if c.name == "count of red star"]
    assert count.passed is False and "want 4, found 3" in count.detail


def test_a_swapped_relation_fails():
    rendered = render_prompt("a blue heart to the left of a cat", seed=2)
    assert judge(rendered.image, rendered.spec).passed
    flipped = replace(rendered.spec, relations=(Relation(0, "right of", 1),))
    verdict = judge(rendered.image, flipped)
    assert not verdict.passed
    assert [c.name for c in verdict.failures] == ["blue heart right of cat"]


def test_colour_kind_and_place_are_each_checked():
    rendered = render_prompt("a green star in the top left", seed=1)
    assert judge(rendered.image, rendered.spec).passed
    for wrong in ("a yellow star in the top left", "a green heart in the top left", "a green star in the bottom right"):
        assert not judge(rendered.image, parse(wrong)).passed, wrong


def test_a_blank_picture_fails_and_an_extra_object_fails():
    spec = parse("a brown circle")
    verdict = judge(Image.new("RGB", (128, 128), (250, 250, 250)), spec)
    assert not verdict.passed and "found 0" in verdict.failures[0].detail
    two = render_prompt("a brown circle and a rocket", seed=0)
    verdict = judge(two.image, spec)
    assert [c.name for c in verdict.failures] == ["nothing unexpected"] and "rocket" in verdict.failures[0].detail


def test_the_wrong_style_or_background_fails():
    for prompt in ("a pastel illustration of a medium moon", "pixel art of a large pizza"):
        rendered = render_prompt(prompt, seed=0)
        assert judge(rendered.image, rendered.spec).passed, prompt
        flat = render(Scene(rendered.scene.items, rendered.scene.background, "flat"))
        assert [c.name for c in judge(flat, rendered.spec).failures] == [f"style {rendered.spec.style}"], prompt
    outlined = render_prompt("an outline drawing of a large red square", seed=0)
    filled = render(Scene(outlined.scene.items, outlined.scene.background, "flat"))
    assert not judge(filled, outlined.spec).passed
    night = render_prompt("a large brown circle at night", seed=0)
    day = render(Scene(night.scene.items, night.scene.background, "flat"))
    assert "background" in [c.name for c in judge(day, night.spec).failures]


def test_a_named_size_is_checked_and_sizes_meet_halfway_between_their_bands():
    assert [size_name(side) for side in (0.10, 0.17, 0.19, 0.27, 0.29, 0.5)] == [
        "small", "small", "medium", "medium", "large", "large",
    ]  # fmt: skip
    rendered = render_prompt("a large blue heart", seed=0)
    assert judge(rendered.image, rendered.spec).passed
    (item,) = rendered.scene.items
    small = render(Scene((replace(item, size=vocab.SIZES["small"]),), rendered.scene.background, "flat"))
    failures = judge(small, rendered.spec).failures
    assert [c.name for c in failures] == ["size of blue heart"] and "want large, found small" in failures[0].detail


def test_softened_pictures_of_the_right_scene_still_pass():
    # Generated pictures are blurrier and noisier than renders; the judge must not demand pixel-exact art.
    for prompt in ("a blue heart and a green square", "four pink diamonds", "a sun to the right of a red square"):
        rendered = render_prompt(prompt, seed=1)
        blurred = rendered.image.filter(ImageFilter.GaussianBlur(0.7))
        assert judge(blurred, rendered.spec).passed, prompt
        shrunk = rendered.image.resize((64, 64), Image.Resampling.BILINEAR).resize((128, 128))
        assert judge(shrunk, rendered.spec).passed, prompt


def test_the_judge_reads_pixels_not_the_scene():
    # Two renders with different layouts of one spec, and the same pixels re-encoded: same verdicts.
    spec = parse("two orange triangles and a key")
    for seed in (0, 1):
        scene = layout(spec, random.Random(seed))
        image = render(scene)
        copy = Image.frombytes("RGB", image.size, image.tobytes())
        assert judge(image, spec).passed and judge(copy, spec) == judge(image, spec)


# -- text ----------------------------------------------------------------


@needs_tesseract
@pytest.mark.parametrize("word", ["OPEN", "ΓΕΙΑ", "МИР"])
def test_ocr_reads_a_rendered_word_in_each_script(word):
    rendered = render_prompt(f'the word "{word}"', seed=3)
    verdict = judge(rendered.image, rendered.spec)
    (check,) = [c for c in verdict.checks if c.name == f"text {word!r}"]
    assert check.passed is True, check.detail
    assert ocr.normalise(word) in ocr.normalise(check.detail)


@needs_tesseract
def test_a_changed_letter_and_a_misplaced_text_fail():
    rendered = render_prompt('the word "STOP" in red at the top', seed=0)
    assert judge(rendered.image, rendered.spec).passed
    assert not judge(rendered.image, parse('the word "SHOP" in red at the top')).passed
    assert not judge(rendered.image, parse('the word "STOP" in blue at the top')).passed
    assert not judge(rendered.image, parse('the word "STOP" in red at the bottom')).passed


def test_case_counts_where_the_font_shows_it():
    blind = ocr.case_blind_letters()
    assert {"O", "o", "S", "s", "К", "к"} <= blind  # one shape at any height: tesseract guesses their case
    assert not {"A", "a", "Π", "π", "Σ", "σ"} & blind  # different glyphs
    assert ocr.normalise("SOS") == ocr.normalise("sos") and ocr.normalise("ΦΩΣ") == ocr.normalise("ΦΩΣ ")
    assert ocr.normalise("ΠΙ") != ocr.normalise("πι") and ocr.normalise("Hello") != ocr.normalise("hello")
    assert ocr.normalise("φως") == ocr.normalise("φωσ") and ocr.normalise("Ёж") == ocr.normalise("Еж")
    assert ocr.normalise("ЧАИ") != ocr.normalise("ЧАЙ") and ocr.normalise("ά") == ocr.normalise("α")


@needs_tesseract
def test_cyrillic_short_i_is_a_letter_of_its_own():
    rendered = render_prompt('the word "ЧАЙ"', seed=0)
    assert judge(rendered.image, rendered.spec).passed
    assert not judge(rendered.image, parse('the word "ЧАИ"')).passed


@needs_tesseract
def test_a_word_in_the_wrong_case_fails_and_mixed_case_ground_truth_passes():
    lower = render_prompt('the word "πι"', seed=1)
    assert judge(lower.image, lower.spec).passed
    assert not judge(lower.image, parse('the word "ΠΙ"')).passed
    mixed = render_prompt('the word "Taxi"', seed=0)
    assert judge(mixed.image, mixed.spec).passed


def test_text_is_not_measured_without_tesseract(monkeypatch):
    monkeypatch.setattr(ocr, "unavailable_reason", lambda script: "tesseract is not installed")
    rendered = render_prompt('the word "CAT"', seed=0)
    verdict = judge(rendered.image, rendered.spec)
    (check,) = [c for c in verdict.checks if c.name.startswith("text ")]
    assert check.passed is None and "not installed" in check.detail
    assert not verdict.passed and not verdict.measured


# -- the runner and its reports --------------------------------------------


def _subset() -> list[EvalPrompt]:
    picked = {}
    for entry in SUITES["quick"]:
        if entry.category in ("single object", "counting 1-4", "relations"):
            picked.setdefault(entry.category, entry)
    return list(picked.values())


def test_run_suite_judges_every_image_and_writes_the_report(tmp_path):
    calls = []

    def ground_truth(prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        calls.append(len(prompts))
        return [render_prompt(p, s).image for p, s in zip(prompts, seeds, strict=True)]

    progress = []
    report = run_suite(
        ground_truth,
        _subset(),
        images_per_prompt=2,
        out_dir=tmp_path,
        progress=lambda *a: progress.append(a),
        batch_size=4,
    )
    assert calls == [4, 2] and progress[-1] == (6, 6)
    assert report.categories == {"single object": 1.0, "counting 1-4": 1.0, "relations": 1.0}
    assert report.overall == 1.0
    assert sorted((r.index, r.seed) for r in report.results) == [(i, s) for i in range(3) for s in (0, 1)]

    data = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert data["suite_version"] == SUITE_VERSION and data["overall"] == 1.0
    assert data["judge_version"] == JUDGE_VERSION
    assert [p["accuracy"] for p in data["prompts"]] == [1.0, 1.0, 1.0]
    first = data["prompts"][0]["images"][0]
    assert first["passed"] is True and (tmp_path / first["file"]).is_file()
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    for entry in _subset():
        assert entry.prompt in page
    assert page.count("<img ") == 6


def test_a_generator_that_draws_nothing_scores_zero(tmp_path):
    def blank(prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        return [Image.new("RGB", (128, 128), "white") for _ in prompts]

    report = run_suite(blank, _subset(), images_per_prompt=1, out_dir=None)
    assert report.overall == 0.0 and all(v == 0.0 for v in report.categories.values())
    json_path, html_path = write_report(report, tmp_path / "out")
    assert json_path.is_file() and html_path.is_file()
    assert "fail" in html_path.read_text(encoding="utf-8")


def test_a_generator_returning_the_wrong_number_of_images_is_an_error():
    with pytest.raises(ValueError, match="returned 0 images"):
        run_suite(lambda prompts, seeds: [], _subset(), images_per_prompt=1)


def test_lines_survive_a_mark_that_joined_another_line_first():
    from imgen.eval.reading import find_lines
    from imgen.eval.segment import Blob

    def blob(x0: int, y0: int, x1: int, y1: int) -> Blob:
        return Blob(mask=np.ones((y1 - y0, x1 - x0), dtype=bool), box=(x0, y0, x1, y1))

    # A tall word, a small mark (height 4) above it, and a tiny dot above the mark: the mark joins the word,
    # leaving its own one-blob line empty while the dot is still being placed.
    blobs = [blob(20, 15, 24, 19), blob(10, 20, 40, 40), blob(21, 12, 22, 13)]
    lines = find_lines(blobs)
    assert sorted(k for line in lines for k in line) == [0, 1, 2]
