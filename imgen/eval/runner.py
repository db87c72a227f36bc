"""Run a benchmark suite against any image generator and report per-category accuracy.

The runner knows nothing about models: it takes a `generate(prompts, seeds)`
callable that returns one image per (prompt, seed) pair, so the bundled
model, a tokenizer round trip, the ground-truth renderer or another system
can all be measured the same way. Each image is judged with `judge.judge`
against the parsed prompt; accuracy is the share of images that pass every
check, per category, and the overall figure is the mean over categories (each
skill weighs the same, however many prompts it has).

`write_report` leaves two files a person and a script can read: `results.json`
with every verdict, and `report.html`, a page of image grids per category with
each prompt and what the judge saw, the images stored as PNG files beside it.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from imgen.eval.judge import JUDGE_VERSION, Verdict, judge
from imgen.eval.prompts import CATEGORIES, SUITE_VERSION, EvalPrompt
from imgen.eval.prompts import suite as suite_prompts
from imgen.world.parser import parse

Generate = Callable[[list[str], list[int]], list[Image.Image]]
Progress = Callable[[int, int], None]

IMAGES_DIR = "images"


@dataclass
class ImageResult:
    """One generated image and the judge's verdict on it."""

    index: int
    """Position of the prompt in the suite."""
    category: str
    prompt: str
    seed: int
    verdict: Verdict
    image: Image.Image | None = field(default=None, repr=False, compare=False)

    @property
    def filename(self) -> str:
        return f"{IMAGES_DIR}/{self.index:03d}_{self.seed}.png"


@dataclass
class Report:
    """Per-category accuracy of one suite run, with every verdict."""

    suite: str
    suite_version: str
    images_per_prompt: int
    categories: dict[str, float | None]
    """Share of measured images that passed, per category; None when nothing could be measured."""
    overall: float | None
    """Mean of the measured categories."""
    results: list[ImageResult]
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    """What made the images (source, checkpoint, sampler), so two runs' results.json can be told apart."""

    def unmeasured(self, category: str | None = None) -> int:
        """Images whose verdict could not be measured here (e.g. text without tesseract)."""
        return sum(1 for r in self.results if not r.verdict.measured and category in (None, r.category))

    def to_dict(self) -> dict[str, Any]:
        prompts: dict[int, dict[str, Any]] = {}
        for result in self.results:
            entry = prompts.setdefault(
                result.index,
                {"category": result.category, "prompt": result.prompt, "accuracy": None, "images": []},
            )
            entry["images"].append({"seed": result.seed, "file": result.filename, **result.verdict.to_dict()})
        for entry in prompts.values():
            entry["accuracy"] = _accuracy([_verdict(image) for image in entry["images"]])
        return {
            "suite": self.suite,
            "suite_version": self.suite_version,
            "judge_version": JUDGE_VERSION,
            "images_per_prompt": self.images_per_prompt,
            "overall": self.overall,
            "categories": {
                name: {
                    "accuracy": accuracy,
                    "images": sum(1 for r in self.results if r.category == name),
                    "unmeasured": self.unmeasured(name),
                }
                for name, accuracy in self.categories.items()
            },
            "seconds": round(self.seconds, 2),
            "settings": self.settings,
            "prompts": [prompts[i] for i in sorted(prompts)],
        }


def _verdict(entry: dict[str, Any]) -> tuple[bool, bool]:
    return bool(entry["passed"]), bool(entry["measured"])


def _accuracy(outcomes: Sequence[tuple[bool, bool]]) -> float | None:
    """Share of measured outcomes that passed; None when none was measured."""
    measured = [passed for passed, was_measured in outcomes if was_measured]
    return round(sum(measured) / len(measured), 4) if measured else None


def run_suite(
    generate: Generate,
    suite: str | Sequence[EvalPrompt] = "quick",
    images_per_prompt: int = 4,
    out_dir: str | Path | None = None,
    progress: Progress | None = None,
    batch_size: int = 32,
    settings: dict[str, Any] | None = None,
) -> Report:
    """Generate `images_per_prompt` images for every prompt of `suite`, judge them, and report.

    `suite` is a suite name ("quick", "full") or a list of prompts.
    Image k of every prompt uses seed k, so two runs of a deterministic
    generator see the same requests. `generate` is called with batches of at
    most `batch_size` (prompt, seed) pairs and must return one image per pair.
    `progress(done, total)` is called after each batch. With `out_dir`, the
    report is also written there (see `write_report`); `settings` (what made
    the images) is recorded in it as given.
    """
    if images_per_prompt < 1:
        raise ValueError("images_per_prompt must be at least 1")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    prompts = suite_prompts(suite) if isinstance(suite, str) else list(suite)
    name = suite if isinstance(suite, str) else "custom"
    requests = [(i, entry, seed) for i, entry in enumerate(prompts) for seed in range(images_per_prompt)]
    specs = {entry.prompt: parse(entry.prompt) for entry in prompts}
    start = time.perf_counter()
    results: list[ImageResult] = []
    for begin in range(0, len(requests), batch_size):
        batch = requests[begin : begin + batch_size]
        images = generate([entry.prompt for _, entry, _ in batch], [seed for _, _, seed in batch])
        if len(images) != len(batch):
            raise ValueError(f"generate returned {len(images)} images for {len(batch)} prompts")
        for (index, entry, seed), image in zip(batch, images, strict=True):
            image = image.convert("RGB")
            verdict = judge(image, specs[entry.prompt])
            results.append(ImageResult(index, entry.category, entry.prompt, seed, verdict, image))
        if progress is not None:
            progress(len(results), len(requests))
    categories = {
        category: _accuracy([(r.verdict.passed, r.verdict.measured) for r in results if r.category == category])
        for category in _ordered({entry.category for entry in prompts})
    }
    measured = [value for value in categories.values() if value is not None]
    report = Report(
        suite=name,
        suite_version=SUITE_VERSION,
        images_per_prompt=images_per_prompt,
        categories=categories,
        overall=round(sum(measured) / len(measured), 4) if measured else None,
        results=results,
        seconds=time.perf_counter() - start,
        settings=dict(settings or {}),
    )
    if out_dir is not None:
        write_report(report, out_dir)
    return report


def _ordered(categories: set[str]) -> list[str]:
    """The suite's category order, with any unknown categories after it."""
    return [c for c in CATEGORIES if c in categories] + sorted(categories - set(CATEGORIES))


def write_report(report: Report, out_dir: str | Path) -> tuple[Path, Path]:
    """Write `results.json`, `report.html` and the images (PNG, under `images/`) to `out_dir`.

    Returns the paths of the JSON and HTML files. Results whose image is no
    longer held (None) are reported without a picture.
    """
    out = Path(out_dir)
    (out / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    for result in report.results:
        if result.image is not None:
            result.image.save(out / result.filename)
    json_path = out / "results.json"
    json_path.write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
    html_path = out / "report.html"
    html_path.write_text(_html(report), encoding="utf-8")
    return json_path, html_path


def _percent(value: float | None) -> str:
    return "not measured" if value is None else f"{100 * value:.1f}%"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.75em; text-align: left; }
.prompt { margin: 1em 0 0.3em; font-weight: 600; }
.grid { display: flex; flex-wrap: wrap; gap: 0.6em; }
figure { margin: 0; width: 160px; font-size: 0.75em; }
figure img { width: 128px; height: 128px; image-rendering: pixelated; border: 3px solid #bbb; }
figure.pass img { border-color: #2a2; }
figure.fail img { border-color: #c22; }
figure.unmeasured img { border-color: #999; border-style: dashed; }
figcaption ul { margin: 0.2em 0 0; padding-left: 1.1em; }
"""


def _html(report: Report) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{_percent(value)}</td></tr>" for name, value in report.categories.items()
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>imgen benchmark: {html.escape(report.suite)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>imgen benchmark: {html.escape(report.suite)} suite (version {html.escape(report.suite_version)})</h1>",
        f"<p>{len(report.results)} images, {report.images_per_prompt} per prompt. "
        f"Overall (mean over categories): <b>{_percent(report.overall)}</b>.</p>",
        f"<table><tr><th>category</th><th>accuracy</th></tr>{rows}</table>",
    ]
    for category in report.categories:
        parts.append(f"<h2>{html.escape(category)}: {_percent(report.categories[category])}</h2>")
        by_prompt: dict[int, list[ImageResult]] = {}
        for result in report.results:
            if result.category == category:
                by_prompt.setdefault(result.index, []).append(result)
        for index in sorted(by_prompt):
            results = by_prompt[index]
            parts.append(f"<div class='prompt'>{html.escape(results[0].prompt)}</div><div class='grid'>")
            parts.extend(_figure(result) for result in results)
            parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _figure(result: ImageResult) -> str:
    verdict = result.verdict
    state = "unmeasured" if not verdict.measured else "pass" if verdict.passed else "fail"
    label = {"pass": "pass", "fail": "fail", "unmeasured": "not measured"}[state]
    notes = "".join(f"<li>{html.escape(c.name)}: {html.escape(c.detail)}</li>" for c in verdict.failures)
    picture = f"<img src='{html.escape(result.filename)}' alt='seed {result.seed}'>" if result.image is not None else ""
    everything = html.escape("\n".join(f"{c.name}: {c.detail}" for c in verdict.checks))
    return (
        f"<figure class='{state}' title='{everything}'>{picture}"
        f"<figcaption>seed {result.seed}: {label}<ul>{notes}</ul></figcaption></figure>"
    )
