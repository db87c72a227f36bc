"""Blobs -> things: name each blob by drawing every candidate the way the world would and comparing.

Hand-made shape features (fill ratio, corners, convexity) break on exactly the
cases the benchmark cares about: outline and sketch styles, pixel art, small
crowded objects and multi-coloured stickers. The world's renderer is at hand,
so the classifier analyses by synthesis instead: for each of the 30 kinds it
draws a template of that kind (shapes in the colours that best explain the
blob's paint) with the real item renderer and style, at the size that makes
its visible extent match the blob, over the background the blob stands on,
and measures how much of the blob's difference from the background the
template fails to explain. The kind that explains the most wins, and the best
shape is then tried in more colours to settle its colour the same way. Because the comparison is made on
differences from the background, the same code serves every background and
style, and a generated image is judged by how close it comes to what the world
would have drawn.

Generated images are softer than renders, and a blurred square explains
worse as a sharp square than as a sharp circle. So the picture's blur is
estimated once, from its largest blobs, and every template is blurred to
match; a ground-truth render measures as sharp and is compared exactly.
Pixel-art templates are laid on the picture's block grid and tried at
half-block offsets, since where an edge falls decides which blocks it fills.

Stickers whose parts match the background fall apart into several blobs (a
cream cake on a beige background, the sun's separate rays). `explain` merges
nearby fragments when one sticker explains them better than separate things
do; that is a comparison of the same error measure, so no tuned threshold
decides it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter

from imgen.eval.palette import candidate_colors, paint_of
from imgen.eval.segment import Backdrop, Blob, merge
from imgen.world import assets, styles, vocab
from imgen.world.render import SUPERSAMPLE, background_layer, items_layer
from imgen.world.scene import Item

TEMPLATE_PAD = 4
"""Background margin around a template, wide enough for the outline ring, the sketch edge and blur."""

MERGE_REACH = 0.5
"""A fragment may join a blob when it lies within this fraction of the blob's longer side from it."""

REFINE = 3
"""The best kinds at the estimated size are tried one pixel smaller and larger too (small items round coarsely)."""

BLURS = (0.0, 0.8, 1.6)
"""Gaussian blur radii (pixels at the picture's size) a picture may be matched at."""

BLUR_PROBES = 2
"""Largest blobs used to estimate a picture's blur."""

BLUR_GAIN = 0.8
"""Blurred templates must leave at most this share of what sharp ones leave unexplained to be used."""

BLUR_CANDIDATES = 2
"""Best sharp kinds of each probe blob that are tried blurred."""

FIRST_COLORS = 3
"""Likeliest colours each shape is tried in before the best shape is tried in more."""


@dataclass(frozen=True)
class Setting:
    """Everything about a picture that changes how a template looks, except its background colour."""

    style: str
    size: int
    threshold: float
    blur: float = 0.0


@dataclass(frozen=True)
class Look:
    """How the world draws one item: its styled difference from the background, around what is visible."""

    delta: np.ndarray
    """h x w x 3 int16: the styled template minus the styled empty background."""
    center: tuple[float, float]
    """Centre of the visible part inside `delta`, in pixels."""
    visible: tuple[int, int]
    """Width and height of the visible part in pixels (0 when nothing stands out)."""
    item: tuple[float, float]
    """The item's centre (the layout's anchor) inside `delta`, in pixels."""
    magnitude: float = 0.0
    """Sum of |delta|: how much the template draws."""
    grid: int = 0
    """Pixel-art block size the template must be laid on (0: anywhere)."""
    origin: tuple[int, int] = (0, 0)
    """Where `delta` starts on the template's canvas, whose blocks line up with the picture's."""


@dataclass(frozen=True)
class Detection:
    """One thing found in the picture, in the terms a `Scene` uses."""

    kind: str
    color: str | None
    """Paint colour for shapes; None for stickers, which keep their own colours."""
    cx: float
    cy: float
    size: float
    """Normalised centre and box side, like `imgen.world.scene.Item`."""
    cost: float
    """Share of the blob's difference from the background the best template leaves unexplained (0 = exact)."""
    blob: Blob

    @property
    def item(self) -> Item:
        return Item(kind=self.kind, cx=self.cx, cy=self.cy, size=self.size, color=self.color)

    @property
    def region(self) -> str:
        return vocab.region_of(self.cx, self.cy)

    def describe(self) -> str:
        return f"{self.color} {self.kind}" if self.color else self.kind


@dataclass(frozen=True)
class Picture:
    """One picture ready for classification: pixels, their difference from the backdrop, and the setting."""

    pixels: np.ndarray
    delta: np.ndarray
    """Pixels minus the estimated backdrop, H x W x 3."""
    distance: np.ndarray
    """RGB distance from the estimated backdrop, H x W."""
    backdrop: Backdrop
    background: str
    setting: Setting

    @classmethod
    def of(cls, pixels: np.ndarray, backdrop: Backdrop, distance: np.ndarray, background: str, style: str) -> Picture:
        setting = Setting(style=style, size=int(pixels.shape[0]), threshold=backdrop.threshold)
        return cls(pixels, pixels - backdrop.estimate, distance, backdrop, background, setting)

    @property
    def size(self) -> int:
        return self.setting.size

    @property
    def style(self) -> str:
        return self.setting.style

    def ground(self, y: float) -> Ground:
        """What a template centred on row `y` is drawn over, before the style."""
        if self.background in SCENE_BACKGROUNDS:
            return Ground(self.background, min(self.size - 1, max(0, round(y))))
        return Ground(self.background)


SCENE_BACKGROUNDS = ("sky and grass", "sunset")
"""Backgrounds that change from row to row; templates over them copy the rows they stand on."""


@dataclass(frozen=True)
class Ground:
    """The unstyled background under a template: a plain colour, or the rows of a scene around `row`."""

    name: str
    row: int | None = None

    def image(self, canvas: int, size: int) -> Image.Image:
        layer = background_layer(self.name, size)
        if self.row is None:
            return Image.new("RGB", (canvas, canvas), layer.getpixel((0, 0)))
        rows = np.asarray(layer, dtype=np.uint8)[:, 0]
        top = self.row - canvas // 2
        index = np.clip(np.arange(top, top + canvas), 0, size - 1)
        return Image.fromarray(np.repeat(rows[index][:, None, :], canvas, axis=1), mode="RGB")


def _canvas_size(style: str, side: int, size: int) -> int:
    """A canvas on which `style` draws as on the full image (some styles depend on the image size)."""
    small = side + 2 * TEMPLATE_PAD
    if style == "pixel":
        block = _pixel_block(size)
        return -(-small // block) * block
    if style == "outline" and (max(3, small // 40) | 1) != (max(3, size // 40) | 1):
        return max(small, size)
    if style == "sketch" and (small >= 192) != (size >= 192):
        return max(small, size)
    return small


def _pixel_block(size: int) -> int:
    """The block side of the pixel style on a `size` image (see `imgen.world.styles.pixel`)."""
    return max(2, size // 32)


def _styled(setting: Setting, ground: Ground, layer: Image.Image) -> Image.Image:
    """`layer` over `ground` in the setting's style, as the world would draw it on a full image.

    Pixel art takes its block size from the image width, so on a small canvas
    it is reproduced directly: the flat image averaged over blocks of the full
    image's size (the 24-colour palette step is left out; a lone item needs fewer).
    """
    canvas = layer.width
    plain = ground.image(canvas, setting.size)
    if setting.style != "pixel":
        return styles.apply(setting.style, plain, layer)
    flat = styles.apply("flat", plain, layer)
    block = _pixel_block(setting.size)
    small = flat.resize((canvas // block, canvas // block), Image.Resampling.BOX)
    return small.resize((canvas, canvas), Image.Resampling.NEAREST)


@lru_cache(maxsize=64)
def _empty(ground: Ground, setting: Setting, canvas: int) -> np.ndarray:
    layer = Image.new("RGBA", (canvas, canvas), (0, 0, 0, 0))
    return np.asarray(_styled(setting, ground, layer), dtype=np.float32)


@lru_cache(maxsize=8192)
def look(
    kind: str,
    color: str | None,
    side: int,
    ground: Ground,
    setting: Setting,
    text: str | None = None,
    phase: tuple[int, int] = (0, 0),
) -> Look:
    """Draw one item with the world's renderer and style; cached, treat as read-only.

    `side` is the box side of a shape or sticker, or the em height of a text
    (`kind == "text"`, with `text` the string). `phase` moves the item by
    whole pixels on its canvas: in pixel art it decides which blocks an edge
    falls into.
    """
    width = side
    if kind == "text":
        font = assets.font(max(4, side * SUPERSAMPLE))
        width = math.ceil(font.getlength(text or "") / SUPERSAMPLE)
    canvas = _canvas_size(setting.style, max(side, width) + max(phase), setting.size)
    item_x, item_y = canvas / 2 + phase[0], canvas / 2 + phase[1]
    item = Item(kind=kind, cx=item_x / canvas, cy=item_y / canvas, size=side / canvas, color=color, text=text)
    layer = items_layer((item,), canvas)
    drawn = _styled(setting, ground, layer)
    if setting.blur > 0:
        drawn = drawn.filter(ImageFilter.GaussianBlur(setting.blur))
    delta = np.asarray(drawn, dtype=np.float32) - _empty(ground, replace(setting, blur=0.0), canvas)
    visible = np.linalg.norm(delta, axis=-1) > setting.threshold
    if not visible.any():
        return Look(np.zeros((1, 1, 3), np.int16), (0.5, 0.5), (0, 0), (0.5, 0.5))
    ys, xs = np.nonzero(visible)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    cx0, cy0 = max(0, x0 - 1), max(0, y0 - 1)
    # Differences of 8-bit images are whole numbers: int16 holds them exactly in half the memory of float32.
    crop = delta[cy0 : min(canvas, y1 + 1), cx0 : min(canvas, x1 + 1)].astype(np.int16)
    crop.setflags(write=False)
    return Look(
        delta=crop,
        center=((x0 + x1) / 2 - cx0, (y0 + y1) / 2 - cy0),
        visible=(x1 - x0, y1 - y0),
        item=(item_x - cx0, item_y - cy0),
        magnitude=float(np.abs(crop).sum()),
        grid=_pixel_block(setting.size) if setting.style == "pixel" else 0,
        origin=(cx0, cy0),
    )


def fit_side(
    kind: str, color: str | None, blob: Blob, ground: Ground, setting: Setting, text: str | None = None
) -> int:
    """The item side (or text em height) at which `kind` would be as large as `blob` on screen."""
    reference = max(16, round(0.3 * setting.size))
    geometry = look(kind, color, reference, ground, setting, text)
    width, height = geometry.visible
    if width == 0 or height == 0:
        return max(4, round(max(blob.width, blob.height)))
    side = reference * math.sqrt(blob.width / width * blob.height / height)
    return int(min(setting.size, max(4, round(side))))


@dataclass(frozen=True)
class Observed:
    """The picture's difference from the backdrop around one blob, other blobs blanked out.

    Only a window around the blob is kept (templates are fitted to the blob, so
    they never reach far beyond it), with an integral image of its magnitude so
    that a comparison costs one array difference.
    """

    delta: np.ndarray
    integral: np.ndarray
    """(h + 1) x (w + 1) running sums of |delta| over rows, columns and channels."""
    x0: int
    y0: int

    @classmethod
    def around(cls, picture: Picture, owner: np.ndarray, members: frozenset[int], blob: Blob) -> Observed:
        margin = max(8, max(blob.width, blob.height) // 2)
        size = picture.size
        x0, y0 = max(0, blob.box[0] - margin), max(0, blob.box[1] - margin)
        x1, y1 = min(size, blob.box[2] + margin), min(size, blob.box[3] + margin)
        own = owner[y0:y1, x0:x1]
        foreign = (own >= 0) & ~np.isin(own, list(members))
        delta = picture.delta[y0:y1, x0:x1].copy()
        delta[foreign] = 0.0
        integral = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.float64)
        integral[1:, 1:] = np.abs(delta).sum(axis=2).cumsum(axis=0).cumsum(axis=1)
        return cls(delta, integral, x0, y0)

    def magnitude(self, x0: int, y0: int, x1: int, y1: int) -> float:
        """Sum of |delta| over the window [x0, x1) x [y0, y1) (window coordinates)."""
        s = self.integral
        return float(s[y1, x1] - s[y0, x1] - s[y1, x0] + s[y0, x0])


def placement(blob: Blob, template: Look) -> tuple[int, int]:
    """Where `template`'s top-left goes in the picture: its visible centre on the blob's box centre.

    A pixel-art template is moved to the nearest position where its blocks
    line up with the picture's blocks.
    """
    bx, by = blob.center
    x, y = bx - template.center[0], by - template.center[1]
    if template.grid:
        step = template.grid
        ox, oy = template.origin
        return ox + step * round((x - ox) / step), oy + step * round((y - oy) / step)
    return round(x), round(y)


def mismatch(observed: Observed, blob: Blob, template: Look) -> tuple[float, float]:
    """(unexplained difference, total difference) of `template` laid over `blob`.

    Other blobs are blanked in `observed`, so a neighbour never counts against
    a candidate. What is left is summed absolute RGB difference over the
    blob's box and the template's.
    """
    h, w = observed.delta.shape[:2]
    th, tw = template.delta.shape[:2]
    # Everything in the observed window's own coordinates.
    tx0, ty0 = placement(blob, template)
    tx0, ty0 = tx0 - observed.x0, ty0 - observed.y0
    x0 = max(0, min(blob.box[0] - 1 - observed.x0, tx0))
    y0 = max(0, min(blob.box[1] - 1 - observed.y0, ty0))
    x1 = min(w, max(blob.box[2] + 1 - observed.x0, tx0 + tw))
    y1 = min(h, max(blob.box[3] + 1 - observed.y0, ty0 + th))
    seen = observed.magnitude(x0, y0, x1, y1)
    sx0, sy0 = max(x0, tx0), max(y0, ty0)
    sx1, sy1 = min(x1, tx0 + tw), min(y1, ty0 + th)
    drawn_total = template.magnitude
    if sx1 <= sx0 or sy1 <= sy0:
        return seen + drawn_total, seen + drawn_total
    part = observed.delta[sy0:sy1, sx0:sx1]
    drawn = template.delta[sy0 - ty0 : sy1 - ty0, sx0 - tx0 : sx1 - tx0]
    drawn_part = float(np.abs(drawn).sum())
    # Outside the overlap the picture is unexplained and the template's clipped part is unmatched.
    overlap = observed.magnitude(sx0, sy0, sx1, sy1)
    unexplained = seen - overlap + float(np.abs(part - drawn).sum()) + drawn_total - drawn_part
    return unexplained, seen + drawn_total


@dataclass(frozen=True)
class _Fit:
    kind: str
    color: str | None
    unexplained: float
    total: float
    side: int
    template: Look

    @property
    def cost(self) -> float:
        """Share of the difference left unexplained: 0 for an exact match, 1 for nothing in common."""
        return self.unexplained / max(self.total, 1e-6)


class _Fitter:
    """Fits templates to one blob (or a merged group of blobs) of a picture."""

    def __init__(self, picture: Picture, owner: np.ndarray, members: frozenset[int], blob: Blob) -> None:
        self.picture = picture
        self.blob = blob
        self.observed = Observed.around(picture, owner, members, blob)
        self.ground = picture.ground(blob.center[1])
        paint = paint_of(picture.pixels, picture.distance, blob, picture.style)
        row = min(picture.size - 1, max(0, round(blob.center[1])))
        self.colors = candidate_colors(paint, picture.backdrop.estimate[row, picture.size // 2], picture.style, 6)
        self._first: dict[tuple[tuple[str, ...], Setting], list[_Fit]] = {}

    def first_pass(self, kinds: tuple[str, ...], setting: Setting) -> list[_Fit]:
        """Every kind at its fitted size (shapes in each of the likeliest colours), best first; memoised."""
        key = (kinds, setting)
        if key not in self._first:
            fits = []
            for kind in kinds:
                for color in self.colors[:FIRST_COLORS] if kind in vocab.SHAPES else (None,):
                    fits.append(self.fit(kind, color, setting))
            self._first[key] = sorted(fits, key=lambda f: f.cost)
        return self._first[key]

    def fit(
        self, kind: str, color: str | None, setting: Setting, side: int | None = None, phase: tuple[int, int] = (0, 0)
    ) -> _Fit:
        if side is None:
            side = fit_side(kind, color, self.blob, self.ground, setting)
        template = look(kind, color, side, self.ground, setting, None, phase)
        unexplained, total = mismatch(self.observed, self.blob, template)
        return _Fit(kind, color, unexplained, total, side, template)

    def phased(self, fit: _Fit, setting: Setting) -> _Fit:
        """`fit` tried at each half-block position in pixel art (where an edge falls decides its blocks)."""
        if setting.style != "pixel":
            return fit
        half = _pixel_block(setting.size) // 2
        phases = [(x, y) for x in (0, half) for y in (0, half) if (x, y) != (0, 0)]
        return min([fit, *(self.fit(fit.kind, fit.color, setting, fit.side, p) for p in phases)], key=lambda f: f.cost)

    def best(self, kinds: tuple[str, ...], setting: Setting) -> _Fit:
        """The candidate kind whose template explains the blob best (lowest share left unexplained)."""
        first = self.first_pass(kinds, setting)[:REFINE]
        refined = [
            self.fit(f.kind, f.color, setting, f.side + step) for f in first for step in (-1, 1) if f.side + step >= 4
        ]
        best = self.phased(min(first + refined, key=lambda f: f.cost), setting)
        if best.kind in vocab.SHAPES:
            # Anti-aliased edges, outline rings, pixel blocks and blur blend the paint with the
            # background; drawing the shape in the likely colours and keeping the closest undoes the blend.
            recolored = [self.fit(best.kind, name, setting, best.side) for name in self.colors if name != best.color]
            best = min([best, *recolored], key=lambda f: f.cost)
        return best


def estimate_blur(picture: Picture, fitters: list[_Fitter]) -> float:
    """The blur radius at which the best templates explain the largest blobs best."""
    probes = sorted(fitters, key=lambda f: -f.blob.area)[:BLUR_PROBES]
    if not probes:
        return 0.0
    sharp = picture.setting
    totals = dict.fromkeys(BLURS, 0.0)
    for fitter in probes:
        ranked = fitter.first_pass(vocab.KINDS, sharp)[:BLUR_CANDIDATES]
        totals[0.0] += ranked[0].cost
        for radius in BLURS[1:]:
            setting = replace(sharp, blur=radius)
            totals[radius] += min(fitter.fit(f.kind, f.color, setting).cost for f in ranked)
    best = min(BLURS, key=lambda r: totals[r])
    # A sharp picture can fit a blurred template a little better for unrelated reasons (a sticker
    # part not yet merged); blur is assumed only when it explains clearly more.
    return best if totals[best] < BLUR_GAIN * totals[0.0] else 0.0


def _detection(picture: Picture, blob: Blob, fit: _Fit) -> Detection:
    x, y = placement(blob, fit.template)
    size = picture.size
    return Detection(
        kind=fit.kind,
        color=fit.color,
        cx=(x + fit.template.item[0]) / size,
        cy=(y + fit.template.item[1]) / size,
        size=fit.side / size,
        cost=fit.cost,
        blob=blob,
    )


def _near(inner: Blob, outer: Blob) -> bool:
    """True when `inner` lies within reach of `outer` (inside its box grown by MERGE_REACH of its longer side)."""
    reach = MERGE_REACH * max(outer.width, outer.height) + 2
    x0, y0, x1, y1 = outer.box
    ix0, iy0, ix1, iy1 = inner.box
    return ix0 >= x0 - reach and iy0 >= y0 - reach and ix1 <= x1 + reach and iy1 <= y1 + reach


def _inside(inner: Blob, outer: Blob) -> bool:
    x0, y0, x1, y1 = outer.box
    ix0, iy0, ix1, iy1 = inner.box
    return ix0 >= x0 and iy0 >= y0 and ix1 <= x1 and iy1 <= y1


def absorb_contained(blobs: list[Blob]) -> list[Blob]:
    """Merge every blob that lies inside a larger blob's box into it.

    The layout never lets two items' boxes overlap, so a blob within another's
    box is a part of it: a sticker's detail separated by a background-coloured
    patch, the window of a rocket, a speck of anti-aliasing.
    """
    order = sorted(blobs, key=lambda b: -b.area)
    kept: list[list[Blob]] = []
    for blob in order:
        home = next((parts for parts in kept if _inside(blob, parts[0])), None)
        if home is None:
            kept.append([blob])
        else:
            home.append(blob)
    return [merge(parts) if len(parts) > 1 else parts[0] for parts in kept]


def ownership(blobs: list[Blob], size: int) -> np.ndarray:
    """An H x W map of which blob each pixel belongs to (-1 for background)."""
    owner = np.full((size, size), -1, dtype=np.int32)
    for index, blob in enumerate(blobs):
        x0, y0, x1, y1 = blob.box
        owner[y0:y1, x0:x1][blob.mask] = index
    return owner


def explain(picture: Picture, blobs: list[Blob]) -> tuple[list[Detection], Picture]:
    """Name every blob, merging sticker fragments where one sticker explains them better.

    Returns the detections, largest first, and the picture with its estimated
    blur. Blobs are taken largest first. For each, the smaller blobs within
    reach are candidate fragments; the blob with all of them, and with each one
    alone, is fitted against the stickers, and the merge is kept only when it
    leaves less unexplained than the separate fits.
    """
    blobs = absorb_contained(blobs)
    owner = ownership(blobs, picture.size)
    fitters = [_Fitter(picture, owner, frozenset({i}), b) for i, b in enumerate(blobs)]
    blur = estimate_blur(picture, fitters)
    if blur:
        picture = replace(picture, setting=replace(picture.setting, blur=blur))
        fitters = [_Fitter(picture, owner, frozenset({i}), b) for i, b in enumerate(blobs)]
    setting = picture.setting
    fits = {i: fitter.best(vocab.KINDS, setting) for i, fitter in enumerate(fitters)}
    alive = dict(enumerate(blobs))
    groups: dict[int, frozenset[int]] = {i: frozenset({i}) for i in alive}
    stickers = tuple(vocab.STICKERS)
    for index in sorted(alive, key=lambda i: -blobs[i].area):
        if index not in alive:
            continue
        blob = alive[index]
        fragments = [
            j for j, other in alive.items() if j != index and other.area < 0.6 * blob.area and _near(other, blob)
        ]
        if not fragments:
            continue
        candidates = [fragments] + ([[j] for j in fragments] if len(fragments) > 1 else [])
        best: tuple[float, list[int], _Fit, Blob] | None = None
        for chosen in candidates[:6]:
            union = merge([blob] + [alive[j] for j in chosen])
            members = groups[index].union(*(groups[j] for j in chosen))
            fit = _Fitter(picture, owner, members, union).best(stickers, setting)
            separate = fits[index].unexplained + sum(fits[j].unexplained for j in chosen)
            gain = fit.unexplained / max(separate, 1e-6)
            if gain < 1.0 and (best is None or gain < best[0]):
                best = (gain, chosen, fit, union)
        if best is None:
            continue
        _, chosen, fit, union = best
        for j in chosen:
            groups[index] = groups[index] | groups.pop(j)
            del alive[j]
            del fits[j]
        alive[index] = union
        fits[index] = fit
    detections = [_detection(picture, alive[i], fits[i]) for i in sorted(alive, key=lambda i: -alive[i].area)]
    return detections, picture


def restyled_costs(picture: Picture, detections: list[Detection], indices: list[int], style: str) -> list[float]:
    """Costs of the detections `indices` if they had been drawn in `style` (same kind, colour and size).

    Comparing these with the detections' own costs tells whether a picture is
    drawn in the style its prompt asked for: a flat red square explains an
    outlined one worse than an outlined red square does.
    """
    owner = ownership([d.blob for d in detections], picture.size)
    setting = replace(picture.setting, style=style)
    costs = []
    for index in indices:
        detection = detections[index]
        fitter = _Fitter(picture, owner, frozenset({index}), detection.blob)
        side = max(4, round(detection.size * picture.size))
        fits = [
            fitter.fit(detection.kind, detection.color, setting),
            fitter.fit(detection.kind, detection.color, setting, side),
        ]
        costs.append(fitter.phased(min(fits, key=lambda f: f.cost), setting).cost)
    return costs
