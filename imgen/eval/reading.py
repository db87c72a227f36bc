"""Text blocks in a picture: find the lines of letters, read them, and say where and in what colour they are.

Letters are blobs like any other, so lines are found geometrically first:
blobs of similar height, overlapping vertically and close horizontally, chain
into a line; dots and accents join the line they sit on. For each quoted text
of the spec, the lines whose proportions fit that text in the world's font are
read with OCR, most plausible first, until one reads right. The line that was
read is then fitted with the world's own text rendering (classify.look) to get
its colour and its anchor point, which is what the layout placed in a region.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from imgen.eval import ocr
from imgen.eval.classify import Look, Observed, Picture, fit_side, look, mismatch, placement
from imgen.eval.segment import Blob, merge
from imgen.world import assets, vocab
from imgen.world.spec import TextBlock

MAX_READS = 3
"""OCR calls per text block at most (candidate lines times ink heights); OCR is the slow part of judging."""

ASPECT_TOLERANCE = 0.8
"""A line is a candidate when |log(its width/height ratio / the text's)| is below this."""


@dataclass(frozen=True)
class Reading:
    """What the judge found for one text block."""

    text: str | None
    """The OCR reading of the best line; None when OCR is unavailable or no line was found."""
    matched: bool | None
    """True when the reading equals the asked text (normalised); None when OCR is unavailable."""
    blobs: frozenset[int]
    """Indices of the blobs that make up the line (claimed as text, not objects)."""
    color: str | None = None
    region: str | None = None
    unavailable: str | None = None
    """Why OCR could not run, when it could not."""


def _overlap(a: Blob, b: Blob) -> int:
    return min(a.box[3], b.box[3]) - max(a.box[1], b.box[1])


def _gap(a: Blob, b: Blob) -> int:
    return max(a.box[0], b.box[0]) - min(a.box[2], b.box[2])


def find_lines(blobs: list[Blob]) -> list[list[int]]:
    """Group blob indices into lines of letters (every blob lands in exactly one group)."""
    parent = list(range(len(blobs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(blobs):
        for j in range(i + 1, len(blobs)):
            b = blobs[j]
            low, high = sorted((a.height, b.height))
            if low < 0.35 * high:
                continue
            if _overlap(a, b) >= 0.5 * low and _gap(a, b) <= 0.6 * high:
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(blobs)):
        groups.setdefault(root(i), []).append(i)
    lines = list(groups.values())
    # Dots, accents and the short strokes of some letters join the line below or above them.
    tall = [line for line in lines if len(line) > 1 or blobs[line[0]].height >= 4]
    for line in [line for line in lines if len(line) == 1]:
        mark = blobs[line[0]]
        for home in tall:
            if home is line or not home:  # a single mark already moved into another line leaves an empty one
                continue
            whole = merge([blobs[k] for k in home])
            if max(mark.height, mark.width) >= 0.5 * whole.height:
                continue
            inside = whole.box[0] - 1 <= mark.box[0] and mark.box[2] <= whole.box[2] + 1
            near = -0.5 * whole.height <= _overlap(mark, whole)
            if inside and near:
                home.append(line[0])
                line.clear()
                break
    return [sorted(line) for line in lines if line]


@lru_cache(maxsize=1024)
def text_aspect(text: str) -> float:
    """Width over height of `text`'s ink in the world's font."""
    x0, y0, x1, y1 = assets.font(200).getbbox(text)
    return max(1, x1 - x0) / max(1, y1 - y0)


def _strength(
    picture: Picture, owner: np.ndarray, members: frozenset[int], box: tuple[int, int, int, int]
) -> np.ndarray:
    """Foreground strength (0..1) of the line's own pixels inside `box`, 2 px of margin around it.

    Other blobs inside the box are blanked, so a neighbouring object is not read as a letter.
    """
    size = picture.size
    x0, y0 = max(0, box[0] - 2), max(0, box[1] - 2)
    x1, y1 = min(size, box[2] + 2), min(size, box[3] + 2)
    distance = picture.distance[y0:y1, x0:x1]
    own = owner[y0:y1, x0:x1]
    keep = (own < 0) | np.isin(own, list(members))
    inked = distance[np.isin(own, list(members))]
    full = float(np.quantile(inked, 0.9)) if inked.size else 1.0
    return np.where(keep, np.clip(distance / max(full, 1.0), 0.0, 1.0), 0.0)


def read_block(
    picture: Picture, blobs: list[Blob], owner: np.ndarray, lines: list[list[int]], block: TextBlock
) -> Reading:
    """Find and read the line that shows `block`; then measure its colour and region."""
    script = vocab.script_of(block.text)
    unavailable = ocr.unavailable_reason(script)
    want = text_aspect(block.text)

    def misfit(line: list[int]) -> float:
        whole = merge([blobs[k] for k in line])
        return abs(math.log(max(1, whole.width) / max(1, whole.height) / want))

    ranked = sorted((line for line in lines if line), key=misfit)
    if not ranked:
        return Reading(text=None, matched=None if unavailable else False, blobs=frozenset(), unavailable=unavailable)
    candidates = [line for line in ranked if misfit(line) < ASPECT_TOLERANCE][:MAX_READS] or ranked[:1]
    if unavailable is not None:
        chosen, reading, matched = candidates[0], None, None
    else:
        chosen, reading, matched = candidates[0], None, False
        attempts = [(line, height) for height in ocr.INK_HEIGHTS for line in candidates][:MAX_READS]
        for line, height in attempts:
            members = frozenset(line)
            whole = merge([blobs[k] for k in line])
            got = ocr.read_line(_strength(picture, owner, members, whole.box), script, height)
            if got is None:
                continue
            if reading is None:
                chosen, reading = line, got
            if ocr.normalise(got) == ocr.normalise(block.text):
                chosen, reading, matched = line, got, True
                break
    members = frozenset(chosen)
    color, region = _fit_text(picture, owner, members, merge([blobs[k] for k in chosen]), block.text)
    return Reading(text=reading, matched=matched, blobs=members, color=color, region=region, unavailable=unavailable)


def _fit_text(picture: Picture, owner: np.ndarray, members: frozenset[int], line: Blob, text: str) -> tuple[str, str]:
    """(colour, region) of a line, by drawing `text` the way the world does over it in every colour."""
    observed = Observed.around(picture, owner, members, line)
    ground = picture.ground(line.center[1])
    setting = picture.setting
    best: tuple[float, str, Look] | None = None
    for name in vocab.COLORS:
        em = fit_side("text", name, line, ground, setting, text)
        template = look("text", name, em, ground, setting, text)
        if template.visible[0] == 0:
            continue
        unexplained, total = mismatch(observed, line, template)
        cost = unexplained / max(total, 1e-6)
        if best is None or cost < best[0]:
            best = (cost, name, template)
    if best is None:
        cx, cy = line.center
        return "unknown", vocab.region_of(cx / picture.size, cy / picture.size)
    _, name, template = best
    x, y = placement(line, template)
    return name, vocab.region_of((x + template.item[0]) / picture.size, (y + template.item[1]) / picture.size)
