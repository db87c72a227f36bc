"""Loss curves of a training run, drawn as a PNG with Pillow alone.

Training runs append one JSON object per line to `RUN_DIR/metrics.jsonl`. This
module turns that log into a picture so a run can be judged at a glance on a
machine without matplotlib (imgen keeps its dependencies small and CPU-only).

The log is treated as untrusted: a run killed mid-write leaves a half line, a
resumed run re-logs steps it had already logged, and event lines (start,
resume, end) carry a "step" but no losses. All of that is tolerated here
rather than made fatal, because the plot is most wanted exactly when a run
went wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from imgen.io import ensure_folder, save_png

METRICS_FILE = "metrics.jsonl"
DEFAULT_PLOT_FILE = "loss.png"

# Distinct, readable on white; the first two differ in hue and lightness so the
# usual "loss" + one component stay apart for colour-blind readers too.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),  # blue
    (255, 127, 14),  # orange
    (44, 160, 44),  # green
    (214, 39, 40),  # red
    (148, 103, 189),  # purple
    (140, 86, 75),  # brown
    (227, 119, 194),  # pink
    (23, 190, 207),  # cyan
)
BACKGROUND = (255, 255, 255)
AXIS_COLOUR = (0, 0, 0)
GRID_COLOUR = (225, 225, 225)
TEXT_COLOUR = (40, 40, 40)


def series_colour(index: int) -> tuple[int, int, int]:
    """Colour of the index-th curve; cycles so any number of keys can be drawn."""
    return PALETTE[index % len(PALETTE)]


def _is_number(value: Any) -> bool:
    """True for JSON numbers; bools are excluded because `True` is an int in Python."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _step_of(record: dict) -> int | None:
    """The record's integer step, or None when it has none worth plotting against."""
    step = record.get("step")
    if not _is_number(step) or not math.isfinite(step) or step != int(step):
        return None
    return int(step)


def read_metrics(run_dir: Path) -> list[dict]:
    """Read the records of a run's metrics log, in file order.

    `run_dir` may be the run directory or the metrics.jsonl path itself, so the
    function works both on run folders and on logs copied elsewhere. Blank and
    malformed lines (a half-written last line after a crash, a non-object value)
    are skipped: losing one point is better than losing the whole plot.
    """
    run_dir = Path(run_dir)
    path = run_dir if run_dir.is_file() else run_dir / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no metrics file at {path}: is {run_dir} a training run directory?")
    records: list[dict] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def _is_step_record(record: dict) -> bool:
    """A record logged at a training step with at least one numeric loss.

    Event lines ("start", "resume", "end") also carry a step, so they are told
    apart by having no numeric loss key; a record with an "event" key is never a
    step record, so an event that reports a summary loss cannot add a point.
    """
    if "event" in record or _step_of(record) is None:
        return False
    return any("loss" in key and _is_number(value) for key, value in record.items())


def curve_keys(records: Iterable[dict]) -> list[str]:
    """The loss keys present in the step records: "loss" first, the rest sorted.

    Sorting (rather than first-appearance order) keeps colours stable between
    runs and between plots of the same run as it grows.
    """
    keys: set[str] = set()
    for record in records:
        if _is_step_record(record):
            keys.update(key for key, value in record.items() if "loss" in key and _is_number(value))
    return sorted(keys, key=lambda key: (key != "loss", key))


def step_series(records: Iterable[dict], key: str) -> list[tuple[int, float]]:
    """The (step, value) points of one key, sorted by step, one point per step.

    A resumed run can log a step again (or go back to an earlier step after a
    crash); the last record logged for a step wins because it describes the
    training that actually continued. Non-finite values are dropped after that
    choice, so a NaN re-logged for a step removes the point rather than
    resurrecting the stale value.
    """
    by_step: dict[int, float] = {}
    for record in records:
        if not _is_step_record(record):
            continue
        value = record.get(key)
        if not _is_number(value):
            continue
        step = _step_of(record)
        assert step is not None  # guaranteed by _is_step_record
        by_step[step] = float(value)
    return [(step, by_step[step]) for step in sorted(by_step) if math.isfinite(by_step[step])]


def use_log_scale(values: Iterable[float], log_y: bool = True) -> bool:
    """Whether the y axis is drawn on a log scale.

    Losses usually span decades, so log is the default; but a log axis cannot
    show zero or negative values, so any such value falls back to linear.
    """
    values = list(values)
    return log_y and bool(values) and all(value > 0 for value in values)


def _nice_step(span: float, target: int) -> float:
    """A 1/2/5 x 10^k spacing giving roughly `target` intervals over `span`."""
    raw = span / max(target, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= raw:
            return factor * magnitude
    return 10 * magnitude


def _linear_ticks(low: float, high: float, target: int = 5) -> list[float]:
    """Round tick values inside [low, high]."""
    step = _nice_step(high - low, target)
    first = math.ceil(low / step - 1e-9)
    ticks = []
    index = first
    while index * step <= high + step * 1e-9:
        ticks.append(round(index * step, 12))
        index += 1
    return ticks


def _log_ticks(low: float, high: float) -> list[float]:
    """Tick values for a log axis over [low, high] (both > 0).

    Decades alone when the range spans several; 1/2/5 marks when it spans one
    or two, and every integer multiple when it spans less than a decade, so
    that a short range still gets a few labels.
    """
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    ticks: list[float] = []
    for multipliers in ((1,), (1, 2, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [
            m * 10.0**exponent
            for exponent in range(first, last + 1)
            for m in multipliers
            if low <= m * 10.0**exponent <= high
        ]
        if len(ticks) >= 3:
            break
    if len(ticks) < 2:  # a range narrower than the gap between two integer multiples
        return _linear_ticks(low, high)
    return ticks[:: max(1, math.ceil(len(ticks) / 10))]


def _format_tick(value: float) -> str:
    """Short label: integers without a decimal point, others in %g form."""
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}"


def _text_size(draw: ImageDraw.ImageDraw, text: str, font: Any) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def plot_curves(
    records: Sequence[dict],
    keys: Sequence[str] | None = None,
    *,
    width: int = 800,
    height: int = 480,
    log_y: bool = True,
    title: str | None = None,
) -> Image.Image:
    """Draw loss against step, one coloured polyline per key, with axes and a legend.

    `keys` defaults to `curve_keys(records)`; keys with no finite values are
    left out. Raises ValueError when nothing at all can be plotted, so callers
    fail loudly instead of writing an empty chart.
    """
    keys = list(keys) if keys is not None else curve_keys(records)
    series = [(key, points) for key in keys if (points := step_series(records, key))]
    if not series:
        raise ValueError("no loss values to plot")

    values = [value for _, points in series for _, value in points]
    steps = [step for _, points in series for step, _ in points]
    log = use_log_scale(values, log_y)

    def transform(value: float) -> float:
        return math.log10(value) if log else value

    y_low, y_high = min(values), max(values)
    x_low, x_high = float(min(steps)), float(max(steps))
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    if log:
        if y_high == y_low:
            y_low, y_high = y_low / 2, y_high * 2
        pad = (math.log10(y_high) - math.log10(y_low)) * 0.05
        y_low, y_high = y_low / 10**pad, y_high * 10**pad
        y_ticks = _log_ticks(y_low, y_high)
    else:
        if y_high == y_low:
            spread = abs(y_low) * 0.1 or 1.0
            y_low, y_high = y_low - spread, y_high + spread
        pad = (y_high - y_low) * 0.05
        y_low, y_high = y_low - pad, y_high + pad
        y_ticks = _linear_ticks(y_low, y_high)
    x_ticks = [tick for tick in _linear_ticks(x_low, x_high, 6) if tick == int(tick)] or [x_low, x_high]

    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    y_labels = [_format_tick(tick) for tick in y_ticks]
    label_width = max((_text_size(draw, label, font)[0] for label in y_labels), default=0)
    _, text_height = _text_size(draw, "0", font)

    left = label_width + 16
    right = width - 16
    top = 2 * text_height + 20 if title else text_height + 16
    bottom = height - 2 * text_height - 20
    if right - left < 20 or bottom - top < 20:
        raise ValueError(f"image {width}x{height} is too small to plot in")

    t_low, t_high = transform(y_low), transform(y_high)

    def to_pixel(step: float, value: float) -> tuple[float, float]:
        x = left + (step - x_low) / (x_high - x_low) * (right - left)
        y = bottom - (transform(value) - t_low) / (t_high - t_low) * (bottom - top)
        return x, y

    for tick, label in zip(y_ticks, y_labels, strict=True):
        _, y = to_pixel(x_low, tick)
        draw.line([(left, y), (right, y)], fill=GRID_COLOUR)
        draw.line([(left - 4, y), (left, y)], fill=AXIS_COLOUR)
        text_width, _ = _text_size(draw, label, font)
        draw.text((left - 6 - text_width, y), label, fill=TEXT_COLOUR, font=font, anchor="lm")
    for tick in x_ticks:
        x, _ = to_pixel(tick, y_low)
        draw.line([(x, top), (x, bottom)], fill=GRID_COLOUR)
        draw.line([(x, bottom), (x, bottom + 4)], fill=AXIS_COLOUR)
        draw.text((x, bottom + 6), _format_tick(tick), fill=TEXT_COLOUR, font=font, anchor="mt")
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=AXIS_COLOUR)
    draw.text(((left + right) / 2, height - 6), "step", fill=TEXT_COLOUR, font=font, anchor="mb")
    draw.text((left, top - 6), "loss (log scale)" if log else "loss", fill=TEXT_COLOUR, font=font, anchor="lb")
    if title:
        draw.text((width / 2, 6), title, fill=TEXT_COLOUR, font=font, anchor="mt")

    for index, (_, points) in enumerate(series):
        colour = series_colour(index)
        pixels = [to_pixel(step, value) for step, value in points]
        if len(pixels) == 1:
            x, y = pixels[0]
            draw.ellipse([(x - 3, y - 3), (x + 3, y + 3)], fill=colour)
        else:
            draw.line(pixels, fill=colour, width=2, joint="curve")

    # Legend in the top-right corner, where falling loss curves rarely are.
    swatch, gap = 18, 6
    row_height = text_height + 8
    legend_width = swatch + gap + max(_text_size(draw, key, font)[0] for key, _ in series) + 2 * gap
    legend_height = row_height * len(series) + gap
    box_left, box_top = right - legend_width - 8, top + 8
    draw.rectangle(
        [(box_left, box_top), (box_left + legend_width, box_top + legend_height)],
        fill=BACKGROUND,
        outline=GRID_COLOUR,
    )
    for index, (key, _) in enumerate(series):
        y = box_top + gap + index * row_height + row_height / 2 - 2
        draw.line([(box_left + gap, y), (box_left + gap + swatch, y)], fill=series_colour(index), width=3)
        draw.text((box_left + 2 * gap + swatch, y), key, fill=TEXT_COLOUR, font=font, anchor="lm")
    return image


def plot_run(run_dir: Path, out: Path | None = None, keys: Sequence[str] | None = None) -> Path:
    """Plot a run's loss curves to a PNG and return its path.

    The default output sits next to the log (`loss.png` in the run directory)
    so the picture travels with the run it describes.
    """
    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    folder = run_dir.parent if run_dir.is_file() else run_dir
    out = Path(out) if out is not None else folder / DEFAULT_PLOT_FILE
    image = plot_curves(records, keys, title=folder.name or None)
    ensure_folder(out.parent)
    return save_png(image, out, overwrite=True)  # a derived picture: redrawn in place, atomically
