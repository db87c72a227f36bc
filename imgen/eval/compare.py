"""Two evaluation runs of the same suite, compared image by image.

At the scores the bundled model reaches, two runs differ by a handful of
images, and whether that is more than chance is the question. The runs share
their prompts and seeds, so the comparison is paired: the difference of the
overall scores (mean of the per-category accuracies, as `run_suite` reports
them) over the images both runs measured, and its standard error with
prompts, not images, as the independent units (the images of one prompt are
not independent of each other; see `paired_standard_error`).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

# (prompt, seed) -> (category, passed). Keyed by the prompt's text, not its place in the suite,
# so runs of different suites (or suite versions) pair only the requests they really share.
Outcomes = dict[tuple[str, int], tuple[str, bool]]


@dataclass(frozen=True)
class Comparison:
    """Overall scores of runs A and B on their shared images, and the paired difference A - B."""

    a: float
    b: float
    difference: float
    standard_error: float
    images: int
    disagreements: int


def read_outcomes(path: str | Path) -> Outcomes:
    """The measured verdicts of a `results.json` written by `imgen eval`."""
    results = json.loads(Path(path).read_text(encoding="utf-8"))
    outcomes: Outcomes = {}
    for prompt in results["prompts"]:
        for image in prompt["images"]:
            key = (prompt["prompt"], image["seed"])
            if key in outcomes:
                raise ValueError(f"{path}: {key[0]!r} with seed {key[1]} appears twice; cannot pair its images")
            if image["measured"]:
                outcomes[key] = (prompt["category"], bool(image["passed"]))
    return outcomes


def judge_version(path: str | Path) -> str:
    """The judge version a `results.json` was scored with ("1" for files written before it was recorded)."""
    return str(json.loads(Path(path).read_text(encoding="utf-8")).get("judge_version", "1"))


def overall(outcomes: Outcomes, keys: list[tuple[str, int]]) -> float:
    """Mean over categories of the share of `keys` that passed (categories without images are left out)."""
    by_category: dict[str, list[bool]] = {}
    for key in keys:
        category, passed = outcomes[key]
        by_category.setdefault(category, []).append(passed)
    return statistics.fmean(sum(v) / len(v) for v in by_category.values()) if by_category else 0.0


def compare(a: Outcomes, b: Outcomes) -> Comparison:
    """Paired comparison of two runs over the images both measured."""
    shared = sorted(set(a) & set(b))
    if not shared:
        raise ValueError("the two runs share no measured image; were they run on the same suite?")
    score_a, score_b = overall(a, shared), overall(b, shared)
    return Comparison(
        a=score_a,
        b=score_b,
        difference=score_a - score_b,
        standard_error=paired_standard_error(a, b, shared),
        images=len(shared),
        disagreements=sum(a[key][1] != b[key][1] for key in shared),
    )


def paired_standard_error(a: Outcomes, b: Outcomes, keys: list[tuple[str, int]]) -> float:
    """Standard error of `overall(a) - overall(b)` over `keys`, with prompts as the independent units.

    Category c's difference is D_c = sum_p e_p / M_c, where e_p sums (passed in A - passed in B)
    over prompt p's images and M_c counts the category's images; its variance is the cluster
    estimate n/(n-1) sum_p (e_p - m_p D_c)^2 / M_c^2 over its n prompts (s^2/n of the prompt means
    when every prompt has the same number of images). The overall score is the mean of C
    categories, so its variance is the sum of theirs over C^2. Why not a bootstrap over prompts:
    with the quick suite's 4 prompts a category, resampling understates the variance by (n-1)/n,
    the error bars by about 13%. A category with one prompt has no measurable spread and adds 0.
    """
    per_prompt: dict[str, dict[str, list[int]]] = {}  # category -> prompt -> [sum of A - B, images]
    for key in keys:
        category, passed_a = a[key]
        entry = per_prompt.setdefault(category, {}).setdefault(key[0], [0, 0])
        entry[0] += int(passed_a) - int(b[key][1])
        entry[1] += 1
    variance = 0.0
    for prompts in per_prompt.values():
        n, images = len(prompts), sum(m for _, m in prompts.values())
        if n < 2:
            continue
        mean = sum(e for e, _ in prompts.values()) / images
        variance += n / (n - 1) * sum((e - m * mean) ** 2 for e, m in prompts.values()) / images**2
    return math.sqrt(variance) / len(per_prompt)
