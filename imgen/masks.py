"""Edit masks: the conventions users bring, and the pixel geometry around an edit (pure PIL + numpy).

Conventions (those of the common image-editing tools, so a mask painted
elsewhere works unchanged):

- a grayscale or RGB mask: white = regenerate, black = keep;
- an RGBA (or LA, or palette-with-transparency) mask: transparent = regenerate.
  A mask saved as RGBA but fully opaque carries no transparency, so it is read
  by its luminance instead: painting tools often save black-and-white masks
  with an alpha channel, and reading those as "nothing to edit" would surprise;
- no mask at all: the image's own transparent pixels are the ones to regenerate.

Soft masks (grey levels, anti-aliased strokes, partial transparency) are
binarised at half: a pixel is regenerated when it is at least 50% white or at
least 50% transparent. The edit needs a hard decision per pixel because its
guarantee is absolute: every pixel the mask keeps is byte-identical in the
output. `feather` softens the blend, but only inside the mask.

Everything else here is the geometry that makes any input size work with a
fixed-size model: grow (dilate) a mask, pick a square crop with context around
it, find which tokens a mask touches, composite the generated crop back into
the original at its own resolution, and measure the seam that leaves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from imgen.io import load_image, upright
from imgen.seam import border_correction

MaskLike = Image.Image | np.ndarray | str | os.PathLike


class MaskError(ValueError):
    """A mask that cannot be used as given; the message is one line and says what to do."""


# ---------------------------------------------------------------- images


def has_transparency(image: Image.Image) -> bool:
    """Whether `image` carries alpha or a transparent palette entry / colour key."""
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and float grey images stretched to 8 bits: PIL's own conversion clips them to white."""
    if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
        return image
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        values = values / 257.0
    elif image.mode == "F" and values.size and values.min() >= 0.0 and values.max() <= 1.0:
        values = values * 255.0
    elif image.mode == "I" and values.size and values.min() >= 0 and values.max() <= 65535 and values.max() > 255:
        values = values / 257.0  # 16-bit grey as older Pillow opens it (and as callers may pass it)
    elif values.size and (values.min() < 0 or values.max() > 255):
        low, high = float(values.min()), float(values.max())
        values = (values - low) * (255.0 / max(high - low, 1e-12))
    return Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8), "L")


def working_image(image: Image.Image) -> Image.Image:
    """The image as an edit sees it: RGBA when it has transparency, else RGB.

    Exactness is defined on this form: kept pixels of the result equal those of
    `working_image(input)` byte for byte (for an RGB or RGBA input, the input itself).
    """
    image = _to_8bit(image)
    if has_transparency(image):
        return image if image.mode == "RGBA" else image.convert("RGBA")
    if image.mode == "RGB":
        return image
    try:
        return image.convert("RGB")
    except ValueError:  # modes PIL cannot convert directly (LAB, HSV): use the first three bands as they are
        bands = [*image.split(), image.getchannel(0), image.getchannel(0)][:3]
        return Image.merge("RGB", bands)


def flatten(image: Image.Image, background: tuple[int, int, int] | None = None) -> np.ndarray:
    """Any image -> uint8 (H, W, 3), transparent pixels composited over `background`.

    The default background is the mean colour of the opaque pixels: what hides
    under a transparent pixel is arbitrary (often black), and the mean colour
    disturbs the surrounding tokens least.
    """
    work = working_image(image)
    array = np.asarray(work)
    if work.mode == "RGB":
        return array.copy()
    rgb, alpha = array[..., :3].astype(np.float32), array[..., 3:].astype(np.float32) / 255.0
    if background is None:
        weight = float(alpha.sum())
        fill = (rgb * alpha).reshape(-1, 3).sum(0) / weight if weight > 0 else np.full(3, 127.0, np.float32)
    else:
        fill = np.asarray(background, dtype=np.float32)
    return np.round(rgb * alpha + fill * (1 - alpha)).clip(0, 255).astype(np.uint8)


# ---------------------------------------------------------------- masks


def _transparency_levels(image: Image.Image) -> Image.Image | None:
    """255 - alpha as an "L" image, or None when the image has no pixel below full opacity."""
    if not has_transparency(image):
        return None
    alpha = image.convert("RGBA").getchannel("A")
    if alpha.getextrema()[0] == 255:
        return None
    return Image.fromarray(255 - np.asarray(alpha), "L")


def _regenerate_levels(mask: Image.Image) -> Image.Image:
    """A mask image -> "L" image, 255 = regenerate, 0 = keep, following the conventions above."""
    mask = _to_8bit(mask)
    levels = _transparency_levels(mask)
    if levels is not None:
        return levels
    if has_transparency(mask):  # opaque throughout: read the luminance
        mask = mask.convert("RGBA").convert("RGB")
    return mask.convert("L")


def _array_levels(mask: np.ndarray) -> Image.Image:
    """A 2-D array mask -> "L" image: bool True, floats >= 0.5 or integers >= 128 mean regenerate."""
    if mask.ndim != 2:
        raise MaskError(f"an array mask must be 2-D (height, width), got shape {mask.shape}")
    if mask.dtype == bool:
        levels = mask.astype(np.uint8) * 255
    elif np.issubdtype(mask.dtype, np.floating):
        levels = np.round(np.clip(np.nan_to_num(mask), 0.0, 1.0) * 255).astype(np.uint8)
    elif np.issubdtype(mask.dtype, np.integer):
        levels = np.clip(mask, 0, 255).astype(np.uint8)
    else:
        raise MaskError(f"an array mask must be bool, integer or float, got {mask.dtype}")
    return Image.fromarray(levels, "L")


def resolve_mask(image: Image.Image, mask: MaskLike | None, resize_mask: bool = False) -> np.ndarray:
    """The boolean (H, W) regenerate-mask of `image` (True = regenerate), or `MaskError`.

    `mask` is a PIL image, a 2-D array, a path, or None (then the image's own
    transparency is the mask). A mask of another size is an error unless
    `resize_mask`: then it is stretched (bilinear on its grey levels, then
    binarised) to the image size. An empty result is an error: nothing to edit.
    """
    width, height = image.size
    if mask is None:
        found = _transparency_levels(_to_8bit(image))
        if found is None:
            raise MaskError("no mask given and the image has no transparent pixels: nothing to edit")
        levels = found
        source = "the image's transparency"
    else:
        if isinstance(mask, (str, os.PathLike)):
            try:
                mask = upright(load_image(mask))  # drawn as a viewer shows it, like the image
            except ValueError as error:
                raise MaskError(f"mask: {error}") from None
        levels = _array_levels(mask) if isinstance(mask, np.ndarray) else _regenerate_levels(mask)
        source = "the mask"
        if levels.size != (width, height):
            if not resize_mask:
                raise MaskError(
                    f"the mask is {levels.width}x{levels.height} but the image is {width}x{height}; "
                    "give a mask of the image's size or pass --resize-mask to scale it"
                )
            levels = levels.resize((width, height), Image.Resampling.BILINEAR)
    regenerate = np.asarray(levels) >= 128
    if not regenerate.any():
        raise MaskError(f"{source} marks no pixel to regenerate: nothing to edit (white or transparent = regenerate)")
    return regenerate


def load_mask(path: str | os.PathLike[str]) -> Image.Image:
    """A mask file as a PIL image (PNG, JPEG or WebP), or `MaskError` with one line."""
    try:
        return load_image(path)
    except ValueError as error:
        raise MaskError(f"mask: {error}") from None


# ---------------------------------------------------------------- morphology


def _bounds(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the True pixels, ends exclusive; the mask must not be empty."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _step(mask: np.ndarray, grow: bool, diagonal: bool) -> np.ndarray:
    """One dilation (grow) or erosion step with the 4- or 8-neighbourhood; outside counts as the opposite."""
    out = mask.copy()
    combine = np.logical_or if grow else np.logical_and
    shifts = [(1, 0), (-1, 0), (0, 1), (0, -1)]
    if diagonal:
        shifts += [(1, 1), (1, -1), (-1, 1), (-1, -1)]
    padded = np.pad(mask, 1, constant_values=not grow)
    h, w = mask.shape
    for dy, dx in shifts:
        combine(out, padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w], out=out)
    return out


def grow_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Dilate a boolean mask by `pixels`, alternating 4- and 8-neighbour steps (an octagon close to a disc)."""
    if pixels <= 0 or not mask.any():
        return mask.copy()
    top, bottom, left, right = _bounds(mask)
    h, w = mask.shape
    y0, y1, x0, x1 = max(0, top - pixels), min(h, bottom + pixels), max(0, left - pixels), min(w, right + pixels)
    region = mask[y0:y1, x0:x1]
    for i in range(pixels):
        region = _step(region, grow=True, diagonal=i % 2 == 1)
    out = mask.copy()
    out[y0:y1, x0:x1] = region
    return out


def feather_weights(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Blend weight of the generated image per pixel: 0 outside the mask, ramping to 1 inside it.

    A mask pixel at depth d (1 = touching a kept pixel; octagonal distance)
    gets min(1, d / (pixels + 1)); with `pixels` = 0 every mask pixel gets 1.
    The image border is not a kept pixel: there is nothing to blend with there.
    Kept pixels always get exactly 0, which is what makes edits exact.
    """
    weights = mask.astype(np.float32)
    if pixels <= 0 or not mask.any():
        return weights
    top, bottom, left, right = _bounds(mask)
    h, w = mask.shape
    m = pixels + 1
    y0, y1, x0, x1 = max(0, top - m), min(h, bottom + m), max(0, left - m), min(w, right + m)
    region = mask[y0:y1, x0:x1].copy()
    # Pixels outside the image behave as mask pixels: pad the region where it meets the image edge.
    pad = ((m if y0 == 0 else 0, m if y1 == h else 0), (m if x0 == 0 else 0, m if x1 == w else 0))
    region = np.pad(region, pad, constant_values=True)
    depth = region.astype(np.float32)
    for i in range(pixels):
        region = _step(region, grow=False, diagonal=i % 2 == 1)
        depth += region
    depth = depth[pad[0][0] : depth.shape[0] - pad[0][1], pad[1][0] : depth.shape[1] - pad[1][1]]
    weights[y0:y1, x0:x1] = np.minimum(1.0, depth / m) * mask[y0:y1, x0:x1]
    return weights


# ---------------------------------------------------------------- crop geometry


@dataclass(frozen=True)
class CropBox:
    """A square region of the image, `size` px wide, top-left at (left, top); may reach past the image."""

    left: int
    top: int
    size: int

    @property
    def right(self) -> int:
        return self.left + self.size

    @property
    def bottom(self) -> int:
        return self.top + self.size

    def inside(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The part of the box inside a width x height image: (left, top, right, bottom)."""
        return max(0, self.left), max(0, self.top), min(width, self.right), min(height, self.bottom)


def crop_box(mask: np.ndarray, model_size: int, context: float = 0.5) -> CropBox:
    """The square the model edits: the mask's bounding box plus context on each side.

    Context is `context` times the box's longer side on every side (at least 8 px),
    so the model sees what surrounds the edit. The square is never smaller than
    `model_size` (a small mask on a large image is edited at full resolution
    rather than blown up) nor larger than the image's longer side; it is shifted
    to stay inside the image where it fits, and centred (padded) where it does not.
    """
    height, width = mask.shape
    top, bottom, left, right = _bounds(mask)
    side = max(bottom - top, right - left)
    side += 2 * max(8, round(context * side))
    side = min(max(side, model_size), max(width, height))

    def place(start: int, end: int, extent: int) -> int:
        if side >= extent:
            return -((side - extent) // 2)
        return min(max((start + end - side) // 2, 0), extent - side)

    return CropBox(left=place(left, right, width), top=place(top, bottom, height), size=side)


def crop_square(array: np.ndarray, box: CropBox, fill: bool | None = None) -> np.ndarray:
    """The box's pixels of an (H, W, ...) array; outside the image: edge pixels repeated, or `fill`."""
    height, width = array.shape[:2]
    x0, y0, x1, y1 = box.inside(width, height)
    part = array[y0:y1, x0:x1]
    pad = [(y0 - box.top, box.bottom - y1), (x0 - box.left, box.right - x1)] + [(0, 0)] * (array.ndim - 2)
    if fill is None:
        return np.pad(part, pad, mode="edge")
    return np.pad(part, pad, constant_values=fill)


def token_coverage(mask: np.ndarray, grid: int) -> np.ndarray:
    """(grid, grid) float: the fraction of each token's pixel footprint that a square mask covers."""
    side = mask.shape[0]
    starts = [(k * side) // grid for k in range(grid)]
    ends = [-((-(k + 1) * side) // grid) for k in range(grid)]
    out = np.zeros((grid, grid))
    for i in range(grid):
        rows = mask[starts[i] : ends[i]]
        for j in range(grid):
            out[i, j] = rows[:, starts[j] : ends[j]].mean()
    return out


def mostly_covered_tokens(mask: np.ndarray, grid: int, share: float = 0.5) -> np.ndarray:
    """(grid, grid) bool: tokens whose footprint the mask covers by at least `share`.

    Where no token is covered that much (a mask smaller than a token, a thin
    stroke), the most covered ones are chosen instead, so a non-empty mask
    always frees at least one token.
    """
    coverage = token_coverage(mask, grid)
    return coverage >= min(share, coverage.max()) if coverage.max() > 0 else np.zeros((grid, grid), dtype=bool)


def touched_tokens(mask: np.ndarray, grid: int) -> np.ndarray:
    """(grid, grid) bool: which tokens of a square mask's grid overlap at least one True pixel.

    Token (i, j) covers pixels [i*S/grid, (i+1)*S/grid) of an S-pixel side; a
    pixel counts when any part of it falls in that span, so a token is only
    kept fixed when the mask does not touch its footprint at all.
    """
    return token_coverage(mask, grid) > 0


def resize_rgb(array: np.ndarray, size: int) -> np.ndarray:
    """A square uint8 (S, S, 3) array resized to (size, size, 3), Lanczos (antialiased when shrinking)."""
    if array.shape[0] == size:
        return array
    return np.asarray(Image.fromarray(array, "RGB").resize((size, size), Image.Resampling.LANCZOS))


# ---------------------------------------------------------------- compositing


TOKENIZER_TINT = 24  # colour levels: a larger original-minus-generated step is new content, not tokenizer error


def content_threshold(step: np.ndarray, inside: np.ndarray) -> float:
    """The original-minus-generated step (H, W) above which a kept pixel shows new content, not tokenizer tint.

    `TOKENIZER_TINT`, or twice the median step along the mask's border if
    that is larger: on a photo the tokenizer's error alone can pass 24
    levels all along the border, and the field must then still be pinned
    there (a new object crosses only a part of the border).
    """
    ring = np.zeros_like(inside)
    ring[1:] |= inside[:-1]
    ring[:-1] |= inside[1:]
    ring[:, 1:] |= inside[:, :-1]
    ring[:, :-1] |= inside[:, 1:]
    ring &= ~inside
    return max(float(TOKENIZER_TINT), 2.0 * float(np.median(step[ring]))) if ring.any() else float(TOKENIZER_TINT)


def composite(
    original: Image.Image,
    generated: np.ndarray,
    box: CropBox,
    mask: np.ndarray,
    weights: np.ndarray,
    seamless: bool = True,
) -> Image.Image:
    """Paste the generated crop (uint8 (S, S, 3), S = box.size) into `original` where `mask` is True.

    `original` is a working image (RGB or RGBA). Pixels where `mask` is False
    are copied, never recomputed, so they are byte-identical by construction.
    With `seamless`, the generated pixels are first shifted by a smooth field
    that makes them meet the kept pixels along the border (`imgen.seam`). The
    field is pinned only where the two differ by tint (`content_threshold`):
    where the generator drew something new across the border (an object larger
    than the mask, as it often draws), the difference is content, and matching
    it would wash the new object out towards the old background (the edit
    benchmark lost half of the objects it found that way).
    Inside the mask the result is `weights * generated + (1 - weights) * original`;
    for RGBA the original's share is further scaled by its opacity (what hides
    under a transparent pixel is not content) and regenerated pixels are opaque.
    """
    out = np.array(original)  # a writable copy
    height, width = out.shape[:2]
    x0, y0, x1, y1 = box.inside(width, height)
    new = generated[y0 - box.top : y1 - box.top, x0 - box.left : x1 - box.left].astype(np.float32)
    region = out[y0:y1, x0:x1]
    inside = mask[y0:y1, x0:x1]
    opacity = region[..., 3:].astype(np.float32) / 255.0 if out.shape[2] == 4 else None
    if seamless:  # weighted by opacity: a transparent neighbour has no colour to meet
        difference = region[..., :3].astype(np.float32) - new
        difference = difference if opacity is None else difference * opacity
        step = np.abs(difference).max(-1)
        drawn_over = step > content_threshold(step, inside)  # kept pixels where new content was drawn
        new = new + border_correction(difference, inside | drawn_over)
    weight = weights[y0:y1, x0:x1, None].astype(np.float32)
    if opacity is not None:
        weight = 1 - (1 - weight) * opacity
        blended_rgb = np.round(weight * new + (1 - weight) * region[..., :3]).clip(0, 255).astype(np.uint8)
        blended = np.concatenate([blended_rgb, np.full_like(region[..., 3:], 255)], axis=-1)
    else:
        blended = np.round(weight * new + (1 - weight) * region).clip(0, 255).astype(np.uint8)
    region[inside] = blended[inside]
    return Image.fromarray(out, original.mode)


# ---------------------------------------------------------------- seam metric


def seam_step(original: Image.Image, edited: Image.Image, mask: np.ndarray) -> tuple[float, float]:
    """How visible the edit's border is: (border_step, interior_step), in 8-bit colour levels.

    `border_step` is the mean absolute colour difference (over RGB) between
    4-neighbour pixels of `edited` that lie on either side of the mask border;
    `interior_step` is the same mean over neighbour pairs of `original` that
    both lie outside the mask, i.e. how much neighbouring pixels differ in the
    untouched picture anyway. A seamless edit has border_step close to
    interior_step; a visible seam has it well above. NaN where there are no pairs.
    """
    before = np.asarray(original.convert("RGB"), dtype=np.float32)
    after = np.asarray(edited.convert("RGB"), dtype=np.float32)
    border: list[np.ndarray] = []
    interior: list[np.ndarray] = []
    for axis in (0, 1):
        first = [slice(None), slice(None)]
        second = [slice(None), slice(None)]
        first[axis], second[axis] = slice(None, -1), slice(1, None)
        a, b = tuple(first), tuple(second)
        crossing = mask[a] != mask[b]
        outside = ~mask[a] & ~mask[b]
        border.append(np.abs(after[a] - after[b]).mean(-1)[crossing])
        interior.append(np.abs(before[a] - before[b]).mean(-1)[outside])
    border_all, interior_all = np.concatenate(border), np.concatenate(interior)
    return (
        float(border_all.mean()) if border_all.size else float("nan"),
        float(interior_all.mean()) if interior_all.size else float("nan"),
    )


def letterbox(array: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Fit a uint8 (H, W, 3) image into a size x size square without distorting it.

    The longer side becomes `size`, the shorter is centred and padded by
    repeating its edge pixels (a neutral extension of the scene, not a frame the
    model would try to draw). Returns the square and the content's
    (left, top, width, height) in it, to cut the result back out.
    """
    height, width = array.shape[:2]
    scale = size / max(height, width)
    new_w, new_h = max(1, min(size, round(width * scale))), max(1, min(size, round(height * scale)))
    resized = np.asarray(Image.fromarray(array, "RGB").resize((new_w, new_h), Image.Resampling.LANCZOS))
    left, top = (size - new_w) // 2, (size - new_h) // 2
    padded = np.pad(resized, ((top, size - new_h - top), (left, size - new_w - left), (0, 0)), mode="edge")
    return padded, (left, top, new_w, new_h)
