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


def compare(a: Outcomes, b: Outcomes, resamples: int = 1000, seed: int = 0) -> Comparison:
    """Paired comparison of two runs over the images both measured."""
    shared = sorted(set(a) & set(b))
    if not shared:
        raise ValueError("the two runs share no measured image; were they run on the same suite?")
    seeds_of: dict[str, list[int]] = {}
    for prompt, image_seed in shared:
        seeds_of.setdefault(prompt, []).append(image_seed)
    prompts_by_category: dict[str, list[str]] = {}
    for prompt, seeds in seeds_of.items():
        prompts_by_category.setdefault(a[(prompt, seeds[0])][0], []).append(prompt)
    rng = random.Random(seed)
    differences = []
    for _ in range(resamples):
        keys = [
            (prompt, s)
            for prompts in prompts_by_category.values()
            for prompt in rng.choices(prompts, k=len(prompts))
            for s in seeds_of[prompt]
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
