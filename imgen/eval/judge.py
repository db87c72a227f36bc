"""The judge: does a picture show what its prompt asked? Read from the pixels alone.

`judge(image, spec)` never sees how the picture was made: not a scene record,
not a seed. It is the same function for a ground-truth render and for a
generated image, which is what makes its verdict on generated images mean
something. It works in four steps:

1. the background the spec asks for, in the spec's style, is rendered and
   corrected row by row from the picture; what differs from it is foreground
   (`imgen.eval.segment`);
2. quoted texts are found as lines of letter blobs and read with tesseract
   (`imgen.eval.reading`, `imgen.eval.ocr`);
3. every other blob is named by drawing each of the world's 30 kinds over it
   and keeping the best explanation (`imgen.eval.classify`);
4. the findings are checked against the spec: the background, how many of
   each described group, where, in which relation, what text in which colour
   and place, the style (each object must fit the asked style better than
   the other five), the size of objects whose size is named, and nothing
   unexpected.

Positions follow the layout's own definitions: an object is in a region when
its centre lies in that 3x3 cell, and relations use `layout.relation_holds`.

`check_judge` is the judge's own test: ground-truth renders of a suite must
pass, near misses (one attribute changed, `imgen.eval.mutate`) must fail.

The judge is versioned apart from the prompts (`JUDGE_VERSION`, recorded in
every results.json): a stricter judge changes the scores of the same images,
so runs judged by different versions are not compared.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from imgen.eval.classify import Detection, Picture, explain, ownership, restyled_costs
from imgen.eval.mutate import mismatched
from imgen.eval.prompts import SUITE_VERSION, EvalPrompt
from imgen.eval.prompts import suite as suite_prompts
from imgen.eval.reading import Reading, find_lines, read_block
from imgen.eval.segment import as_array, blobs_of, estimate_backdrop, foreground
from imgen.world import vocab
from imgen.world.ground_truth import render_prompt
from imgen.world.layout import layout, relation_holds
from imgen.world.render import render
from imgen.world.spec import ObjectGroup, SceneSpec, TextBlock

JUDGE_VERSION = "4"
"""1: text compared case-insensitively. 2: case must match wherever the font shows it (`ocr.normalise`).
3: Cyrillic Й is a letter of its own, not И with an accent. 4: a named size is checked; a broader group
leaves an object to a later group that asks for it in its place."""

BACKGROUND_TOLERANCE = 40.0
"""Median RGB distance per row between the picture's background and the asked one that still passes."""

STYLE_PROBES = 3
"""Largest matched objects whose style is checked."""

NOISE_AREA = 10
"""Unexpected blobs smaller than this many pixels (at 128 px) are specks, not objects."""


@dataclass(frozen=True)
class Check:
    """One question about the picture; `passed` is None when it could not be measured here."""

    name: str
    passed: bool | None
    detail: str


@dataclass(frozen=True)
class Verdict:
    """All checks of one picture. It passes only when every check passed (an unmeasured check is no pass)."""

    passed: bool
    checks: list[Check] = field(default_factory=list)
    measured: bool = True
    """False when some check could not run here (tesseract missing): the verdict says nothing then."""

    @classmethod
    def of(cls, checks: list[Check]) -> Verdict:
        return cls(
            passed=all(c.passed is True for c in checks),
            checks=list(checks),
            measured=all(c.passed is not None for c in checks),
        )

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.passed is not True]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "measured": self.measured, "checks": [asdict(c) for c in self.checks]}


def judge(image: Image.Image, spec: SceneSpec) -> Verdict:
    """Check `image` against `spec` using the pixels only."""
    spec.validate()
    pixels = as_array(image)
    background = spec.background or "white"
    backdrop = estimate_backdrop(pixels, background, spec.style)
    distance, mask = foreground(pixels, backdrop)
    picture = Picture.of(pixels, backdrop, distance, background, spec.style)
    blobs = blobs_of(mask)
    checks = [_background_check(picture, background, spec.style)]

    claimed: set[int] = set()
    if spec.texts:
        owner = ownership(blobs, picture.size)
        lines = find_lines(blobs)
        for block in spec.texts:
            free = [line for line in lines if not claimed.intersection(line)]
            reading = read_block(picture, blobs, owner, free, block)
            claimed |= reading.blobs
            checks += _text_checks(block, reading)

    detections, picture = explain(picture, [b for i, b in enumerate(blobs) if i not in claimed])
    object_checks, taken = _object_checks(spec, detections, picture.size)
    checks += object_checks
    # A prompt without a style word is not held to flat drawing: decoded token grids are a little blocky,
    # and pixel art then fits most generated flat objects as well as flat does (judged so in 27 of 456).
    if spec.style != "flat" and taken:
        checks.append(_style_check(picture, detections, taken, spec.style))
    return Verdict.of(checks)


def _style_check(picture: Picture, detections: list[Detection], taken: list[int], style: str) -> Check:
    """Are the asked-for objects drawn in the asked style rather than another?

    The background shows night, but on white a pastel, sketched, outlined or
    pixelated object sits on (nearly) the same background as a flat one; only
    the objects tell. Each matched object is also fitted as a drawing of the
    same kind, colour and size in every other style, and the asked style must
    explain most of them best.
    """
    chosen = sorted(taken, key=lambda k: -detections[k].blob.area)[:STYLE_PROBES]
    asked = [detections[k].cost for k in chosen]
    rivals = [s for s in vocab.STYLES if s != style]
    others = {other: restyled_costs(picture, detections, chosen, other) for other in rivals}
    nearest = [min(rivals, key=lambda o: others[o][n]) for n in range(len(chosen))]
    best = [asked[n] <= others[nearest[n]][n] for n in range(len(chosen))]
    detail = (
        f"{sum(best)} of {len(chosen)} objects fit {style} best ("
        + ", ".join(f"{asked[n]:.2f} vs {nearest[n]} {others[nearest[n]][n]:.2f}" for n in range(len(chosen)))
        + ")"
    )
    return Check(f"style {style}", 2 * sum(best) > len(chosen), detail)


def _background_check(picture: Picture, background: str, style: str) -> Check:
    rows = np.median(picture.pixels, axis=1)
    expected = np.median(picture.backdrop.expected, axis=1)
    off = float(np.median(np.linalg.norm(rows - expected, axis=-1)))
    asked = background if style == "flat" else f"{background}, {style}"
    return Check(
        "background",
        off <= BACKGROUND_TOLERANCE,
        f"want {asked}; rows differ by {off:.0f} (tolerance {BACKGROUND_TOLERANCE:.0f})",
    )


def _text_checks(block: TextBlock, reading: Reading) -> list[Check]:
    name = f"text {block.text!r}"
    if reading.matched is None:
        why = reading.unavailable or "no text found"
        checks = [Check(name, None, f"not measured: {why}")]
    else:
        seen = "nothing" if reading.text is None else repr(reading.text)
        checks = [Check(name, reading.matched, f"want {block.text!r}, read {seen}")]
    if block.color is not None:
        checks.append(
            Check(f"colour of {name}", reading.color == block.color, f"want {block.color}, found {reading.color}")
        )
    if block.region is not None:
        checks.append(
            Check(f"place of {name}", reading.region == block.region, f"want {block.region}, found {reading.region}")
        )
    return checks


def _describe(group: ObjectGroup) -> str:
    return f"{group.color} {group.kind}" if group.color else group.kind


def size_name(side: float) -> str:
    """The named size whose band holds `side` (a normalised box side); bands meet halfway between sizes."""
    names = sorted(vocab.SIZES, key=vocab.SIZES.get)
    for smaller, larger in itertools.pairwise(names):
        if side < (vocab.SIZES[smaller] + vocab.SIZES[larger]) / 2:
            return smaller
    return names[-1]


def _matches(detection: Detection, group: ObjectGroup) -> bool:
    return detection.kind == group.kind and (group.color is None or detection.color == group.color)


def _seen(detections: list[Detection]) -> str:
    counts = Counter(d.describe() for d in detections)
    return ", ".join(f"{n} {what}" for what, n in counts.most_common()) or "nothing"


def _object_checks(spec: SceneSpec, detections: list[Detection], size: int) -> tuple[list[Check], list[int]]:
    """Counts, places and relations of the spec's groups, and anything the spec did not ask for.

    Groups are served most specific first ("a red star" before "a star"). A
    detection that only one group can explain counts for that group even
    beyond its number, so an extra red star fails "one red star" instead of
    vanishing; detections that a later, broader group could also explain are
    shared out only up to the number asked, those in the place a later group
    asks for last ("a red star and a star in the top left" leaves a red star
    in the top left to the second group when there is another red star).
    """
    order = sorted(
        range(len(spec.groups)),
        key=lambda i: -((spec.groups[i].color is not None) + (spec.groups[i].region is not None)),
    )
    free = list(range(len(detections)))
    taken: dict[int, list[Detection]] = {}
    checks: list[Check] = []
    for position, index in enumerate(order):
        group = spec.groups[index]
        later = [spec.groups[j] for j in order[position + 1 :]]
        pool = [k for k in free if _matches(detections[k], group)]

        def placed(k: int, group: ObjectGroup = group) -> bool:
            return group.region is None or detections[k].region == group.region

        exclusive = [k for k in pool if not any(_matches(detections[k], other) for other in later)]

        def wanted_later(k: int, later: list[ObjectGroup] = later) -> bool:  # a later group wants it where it is
            return any(_matches(detections[k], g) and g.region == detections[k].region for g in later if g.region)

        shared = sorted((k for k in pool if k not in exclusive), key=lambda k: (not placed(k), wanted_later(k)))
        mine = exclusive + shared[: max(0, group.count - len(exclusive))]
        mine.sort(key=lambda k: not placed(k))
        free = [k for k in free if k not in mine]
        taken[index] = [detections[k] for k in mine]
        name = _describe(group)
        detail = f"want {group.count}, found {len(mine)}"
        if len(mine) != group.count:
            related = [d for d in detections if d.kind == group.kind or (group.color and d.color == group.color)]
            detail += f" (seen of that kind or colour: {_seen(related)})"
        checks.append(Check(f"count of {name}", len(mine) == group.count, detail))
        if group.size is not None and mine:
            seen = [size_name(detections[k].size) for k in mine]
            detail = f"want {group.size}, found " + ", ".join(
                f"{n} ({detections[k].size:.2f})" for n, k in zip(seen, mine, strict=True)
            )
            checks.append(Check(f"size of {name}", all(n == group.size for n in seen), detail))
        if group.region is not None:
            inside = sum(placed(k) for k in mine)
            where = Counter(detections[k].region for k in mine if not placed(k))
            detail = f"want {group.count} in the {group.region}, found {inside}"
            if where:
                detail += " (elsewhere: " + ", ".join(f"{n} {r}" for r, n in where.items()) + ")"
            checks.append(Check(f"place of {name}", inside >= group.count, detail))
    for relation in spec.relations:
        subject, reference = spec.groups[relation.subject], spec.groups[relation.reference]
        name = f"{_describe(subject)} {relation.relation} {_describe(reference)}"
        subjects, references = taken.get(relation.subject, []), taken.get(relation.reference, [])
        if not subjects or not references:
            missing = _describe(subject) if not subjects else _describe(reference)
            checks.append(Check(name, False, f"{missing} not found"))
            continue
        holds = any(relation_holds(a.item, relation.relation, b.item) for a in subjects for b in references)
        a, b = subjects[0], references[0]
        detail = f"centres {a.cx:.2f},{a.cy:.2f} and {b.cx:.2f},{b.cy:.2f}"
        if not holds:
            actual = [r for r in vocab.RELATIONS if relation_holds(a.item, r, b.item)]
            detail += f"; seen: {actual[0] if actual else 'no clear relation'}"
        checks.append(Check(name, holds, detail))
    noise = NOISE_AREA * (size / 128) ** 2
    extra = [detections[k] for k in free if detections[k].blob.area >= noise]
    checks.append(
        Check("nothing unexpected", not extra, f"unexpected: {_seen(extra)}" if extra else "nothing else drawn")
    )
    matched = [k for k in range(len(detections)) if k not in free]
    return checks, matched


def check_judge(
    suite: str | Sequence[EvalPrompt] = "quick", seeds: Sequence[int] = (0, 1, 2), size: int = 128
) -> dict[str, Any]:
    """Score the judge itself on `suite` (a name or a list of prompts): ground truth must pass, near misses fail.

    For every prompt and seed the ground-truth render is judged against its
    spec, and a near miss (the same scene graph with one attribute changed,
    laid out with the same seed) is judged against the *original* spec. Per
    category it returns the pass rate of each; a sound judge is near 1 on the
    first and near 0 on the second. Verdicts that could not be measured (no
    tesseract) are counted apart and left out of both rates.
    """
    prompts = suite_prompts(suite) if isinstance(suite, str) else list(suite)
    tallies: dict[str, Counter[str]] = {}
    truth_failures: list[dict[str, Any]] = []
    misses_passed: list[dict[str, Any]] = []
    for entry in prompts:
        tally = tallies.setdefault(entry.category, Counter())
        for seed in seeds:
            rendered = render_prompt(entry.prompt, seed, size)
            verdict = judge(rendered.image, rendered.spec)
            _tally(tally, "truth", verdict)
            if verdict.measured and not verdict.passed:
                truth_failures.append(_failure(entry, seed, verdict))
            near = mismatched(rendered.spec, entry.category, random.Random(f"imgen-eval-miss/{entry.prompt}/{seed}"))
            if near is None:
                tally["miss_skipped"] += 1
                continue
            changed, change = near
            try:
                scene = layout(changed, random.Random(f"imgen-render/{seed}"))
            except ValueError:
                tally["miss_skipped"] += 1
                continue
            miss_verdict = judge(render(scene, size), rendered.spec)
            _tally(tally, "miss", miss_verdict)
            if miss_verdict.measured and miss_verdict.passed:
                misses_passed.append({**_failure(entry, seed, miss_verdict), "change": change})
    categories = {}
    for category, tally in tallies.items():
        categories[category] = {
            "ground_truth": _rate(tally, "truth"),
            "mismatched": _rate(tally, "miss"),
            "images": tally["truth_measured"] + tally["truth_unmeasured"],
            "unmeasured": tally["truth_unmeasured"] + tally["miss_unmeasured"],
            "mismatches_skipped": tally["miss_skipped"],
        }
    return {
        "suite": suite if isinstance(suite, str) else "custom",
        "suite_version": SUITE_VERSION,
        "judge_version": JUDGE_VERSION,
        "seeds": list(seeds),
        "size": size,
        "categories": categories,
        "ground_truth_failures": truth_failures,
        "mismatches_passed": misses_passed,
    }


def _tally(tally: Counter[str], kind: str, verdict: Verdict) -> None:
    if verdict.measured:
        tally[f"{kind}_measured"] += 1
        tally[f"{kind}_passed"] += int(verdict.passed)
    else:
        tally[f"{kind}_unmeasured"] += 1


def _rate(tally: Counter[str], kind: str) -> float | None:
    measured = tally[f"{kind}_measured"]
    return round(tally[f"{kind}_passed"] / measured, 4) if measured else None


def _failure(entry: EvalPrompt, seed: int, verdict: Verdict) -> dict[str, Any]:
    return {
        "category": entry.category,
        "prompt": entry.prompt,
        "seed": seed,
        "checks": [f"{c.name}: {c.detail}" for c in verdict.checks if c.passed is not True or verdict.passed],
    }
