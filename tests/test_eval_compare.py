"""Paired comparison of two evaluation runs: the difference and its standard error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imgen.eval.compare import compare, judge_version, overall, read_outcomes


def _run(passed: dict[tuple[int, int], bool], categories: dict[int, str]) -> dict:
    prompts = []
    for index in sorted(categories):
        images = [
            {"seed": seed, "passed": ok, "measured": True} for (i, seed), ok in sorted(passed.items()) if i == index
        ]
        prompts.append({"category": categories[index], "prompt": f"p{index}", "images": images})
    return {"prompts": prompts}


CATEGORIES = {0: "colours", 1: "colours", 2: "position", 3: "position"}


def test_reading_back_a_results_file_keeps_only_measured_images(tmp_path: Path):
    run = _run({(0, 0): True, (1, 0): False, (2, 0): True, (3, 0): False}, CATEGORIES)
    run["prompts"][3]["images"][0]["measured"] = False
    (tmp_path / "results.json").write_text(json.dumps(run))
    outcomes = read_outcomes(tmp_path / "results.json")
    assert outcomes == {("p0", 0): ("colours", True), ("p1", 0): ("colours", False), ("p2", 0): ("position", True)}


def test_overall_is_the_mean_of_the_category_accuracies():
    outcomes = {(0, 0): ("colours", True), (1, 0): ("colours", False), (2, 0): ("position", True)}
    assert overall(outcomes, list(outcomes)) == pytest.approx((0.5 + 1.0) / 2)


def test_identical_runs_differ_by_nothing_with_no_uncertainty():
    passed = {(i, s): (i + s) % 3 == 0 for i in CATEGORIES for s in range(4)}
    outcomes = {key: (CATEGORIES[key[0]], ok) for key, ok in passed.items()}
    result = compare(outcomes, dict(outcomes))
    assert result.difference == 0 and result.standard_error == 0 and result.disagreements == 0


def test_a_run_that_passes_more_is_ahead_and_the_error_shrinks_with_more_prompts():
    def runs(prompts_per_category: int) -> tuple[dict, dict]:
        a, b = {}, {}
        for i in range(2 * prompts_per_category):
            category = "colours" if i % 2 else "position"
            for s in range(4):
                a[(i, s)] = (category, s <= (i // 2) % 3)  # 1, 2 or 3 of 4 pass, by prompt
                b[(i, s)] = (category, s == 0)  # 1 of 4
        return a, b

    small, large = compare(*runs(6)), compare(*runs(60))
    assert small.difference == pytest.approx(0.25) and large.difference == pytest.approx(0.25)
    assert 0 < large.standard_error < small.standard_error
    assert small.images == 48 and small.disagreements == 12


def test_the_standard_error_is_the_spread_of_prompt_means_over_root_n():
    # one category, three prompts of two images: prompt differences 1, 0, 0 -> mean 1/3,
    # sample variance ((2/3)^2 + 2 (1/3)^2) / 2 = 1/3, standard error sqrt(1/3 / 3) = 1/3
    a = {(f"p{i}", s): ("colours", i == 0) for i in range(3) for s in range(2)}
    b = {key: ("colours", False) for key in a}
    assert compare(a, b).standard_error == pytest.approx(1 / 3)
    # a second category with no difference halves the overall difference and its error
    a.update({(f"q{i}", 0): ("position", True) for i in range(3)})
    b.update({(f"q{i}", 0): ("position", True) for i in range(3)})
    result = compare(a, b)
    assert result.difference == pytest.approx(1 / 6) and result.standard_error == pytest.approx(1 / 6)


def test_runs_of_different_suites_cannot_be_compared():
    with pytest.raises(ValueError, match="share no measured image"):
        compare({("a red circle", 0): ("colours", True)}, {("a blue star", 0): ("colours", True)})


def test_runs_pair_images_by_prompt_text_not_by_place_in_the_suite(tmp_path: Path):
    """A prompt at another index in run B (another suite or version) is still the same request."""
    run_a = _run({(0, 0): True, (1, 0): False}, {0: "colours", 1: "colours"})
    run_b = _run({(0, 0): False, (1, 0): True, (2, 0): True}, {0: "colours", 1: "colours", 2: "position"})
    run_b["prompts"] = [run_b["prompts"][2], run_b["prompts"][1], run_b["prompts"][0]]  # p2, p1, p0
    (tmp_path / "a.json").write_text(json.dumps(run_a))
    (tmp_path / "b.json").write_text(json.dumps(run_b))
    result = compare(read_outcomes(tmp_path / "a.json"), read_outcomes(tmp_path / "b.json"))
    assert result.images == 2 and result.disagreements == 2  # p0 and p1 only; p2 is not in run A


def test_the_judge_version_is_read_back_and_older_files_count_as_version_1(tmp_path: Path):
    run = _run({(0, 0): True}, {0: "colours"})
    (tmp_path / "old.json").write_text(json.dumps(run))
    (tmp_path / "new.json").write_text(json.dumps({**run, "judge_version": "2"}))
    assert judge_version(tmp_path / "old.json") == "1" and judge_version(tmp_path / "new.json") == "2"
