"""Two evaluation runs of the same suite, compared image by image.

At the scores the bundled model reaches, two runs differ by a handful of
images, and whether that is more than chance is the question. The runs share
their prompts and seeds, so the comparison is paired: the difference of the
overall scores (mean of the per-category accuracies, as `run_suite` reports
them) over the images both runs measured, and its standard error from a
bootstrap that resamples prompts within each category (the images of one
prompt are not independent of each other).
"""

from __future__ import annotations

import json
import random
import statistics
from dataclasses import dataclass
from pathlib import Path

# (prompt index, seed) -> (category, passed)
Outcomes = dict[tuple[int, int], tuple[str, bool]]


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
    for index, prompt in enumerate(results["prompts"]):
        for image in prompt["images"]:
            if image["measured"]:
                outcomes[(index, image["seed"])] = (prompt["category"], bool(image["passed"]))
    return outcomes


def overall(outcomes: Outcomes, keys: list[tuple[int, int]]) -> float:
    """Mean over categories of the share of `keys` that passed (categories without images are left out)."""
    by_category: dict[str, list[bool]] = {}
    for key in keys:
        category, passed = outcomes[key]
        by_category.setdefault(category, []).append(passed)
    return statistics.fmean(sum(v) / len(v) for v in by_category.values()) if by_category else 0.0


def compare(a: Outcomes, b: Outcomes, resamples: int = 1000, seed: int = 0) -> Comparison:
    """Paired comparison of two runs over the images both measured."""
    shared = sorted(set(a) & set(b))
    if not shared:
        raise ValueError("the two runs share no measured image; were they run on the same suite?")
    seeds_of: dict[int, list[int]] = {}
    for index, image_seed in shared:
        seeds_of.setdefault(index, []).append(image_seed)
    prompts_by_category: dict[str, list[int]] = {}
    for index, seeds in seeds_of.items():
        prompts_by_category.setdefault(a[(index, seeds[0])][0], []).append(index)
    rng = random.Random(seed)
    differences = []
    for _ in range(resamples):
        keys = [
            (index, s)
            for indices in prompts_by_category.values()
            for index in rng.choices(indices, k=len(indices))
            for s in seeds_of[index]
        ]
        differences.append(overall(a, keys) - overall(b, keys))
    score_a, score_b = overall(a, shared), overall(b, shared)
    return Comparison(
        a=score_a,
        b=score_b,
        difference=score_a - score_b,
        standard_error=statistics.stdev(differences) if resamples > 1 else 0.0,
        images=len(shared),
        disagreements=sum(a[key][1] != b[key][1] for key in shared),
    )
