"""Seamless compositing: match the generated pixels to the kept ones along the mask border.

Why: the image tokenizer does not reproduce pixels exactly (about 25 dB), so
even where the generator copies the source tokens, the decoded crop differs from
the original by a few colour levels. Pasting it under a hard mask shows that
difference as a seam, although nothing outside the mask changes.

The fix is gradient-domain (Poisson) blending (Pérez et al., 2003): keep the
generated content's gradients, but shift it by a smooth correction field `c`
that equals `original - generated` on the kept pixels around the mask and is
harmonic (the average of its neighbours) inside. The step across the border is
then the generated image's own local gradient, not the tokenizer's error.

`c` solves a Laplace equation on the mask's bounding box. Red-black successive
over-relaxation converges in O(width) sweeps; solving first at half resolution
and starting from the upsampled result ("cascadic" multigrid) keeps a large
mask on a large image to a few dozen sweeps per level. Kept pixels are only
ever read, never written: exactness outside the mask does not depend on this.
"""

from __future__ import annotations

import numpy as np

SWEEPS_PER_LEVEL = 12  # after the coarser level's solution, only smoothing of its 2x2 blocks is left
COARSEST = 16  # px: below this the level is solved directly with more sweeps
OVER_RELAXATION = 1.8


def border_correction(difference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Smooth field (H, W, C) equal to `difference` where `mask` is False and harmonic where it is True.

    `difference` is (H, W, C) float32 (original minus generated); only its
    values on kept pixels next to the mask matter. Where the mask touches the
    array's edge the field has no constraint there (zero normal derivative).
    """
    out = difference.astype(np.float32, copy=True)
    if not mask.any():
        return out
    rows, cols = np.nonzero(mask)
    y0, y1 = max(0, rows.min() - 1), min(mask.shape[0], rows.max() + 2)
    x0, x1 = max(0, cols.min() - 1), min(mask.shape[1], cols.max() + 2)
    region_mask = mask[y0:y1, x0:x1]
    if region_mask.all():  # nothing kept to match: no correction
        out[y0:y1, x0:x1] = 0.0
        return out
    out[y0:y1, x0:x1] = _solve(out[y0:y1, x0:x1], region_mask)
    return out


def _solve(field: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """Harmonic fill of `field` where `unknown`, keeping the other values; coarse level first."""
    h, w = unknown.shape
    sweeps = SWEEPS_PER_LEVEL
    if max(h, w) > COARSEST:  # halve until the whole level is small, thin strips too
        coarse_field, coarse_unknown = _downsample(field, unknown)
        solved = _solve(coarse_field, coarse_unknown)
        start = np.repeat(np.repeat(solved, 2, axis=0), 2, axis=1)[:h, :w]
        field = np.where(unknown[..., None], start, field)
    else:
        known = field[~unknown]
        field = field.copy()
        field[unknown] = known.mean(axis=0) if known.size else 0.0
        sweeps = 4 * max(h, w)
    return _relax(field, unknown, sweeps)


def _downsample(field: np.ndarray, unknown: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half resolution: a coarse pixel is known if any of its 2x2 children is, with their mean value."""
    h, w = unknown.shape
    ph, pw = h + h % 2, w + w % 2
    known = np.zeros((ph, pw), dtype=np.float32)
    known[:h, :w] = ~unknown
    values = np.zeros((ph, pw, field.shape[2]), dtype=np.float32)
    values[:h, :w] = field * known[:h, :w, None]
    count = known.reshape(ph // 2, 2, pw // 2, 2).sum(axis=(1, 3))
    total = values.reshape(ph // 2, 2, pw // 2, 2, -1).sum(axis=(1, 3))
    coarse = total / np.maximum(count, 1)[..., None]
    return coarse, count == 0


def _relax(field: np.ndarray, unknown: np.ndarray, sweeps: int) -> np.ndarray:
    """Red-black SOR sweeps of the 4-neighbour Laplace equation, edges mirrored (Neumann)."""
    parity = np.add.outer(np.arange(unknown.shape[0]), np.arange(unknown.shape[1])) % 2
    steps = [((unknown & (parity == p)) * OVER_RELAXATION).astype(np.float32)[..., None] for p in (0, 1)]
    padded = np.pad(field, ((1, 1), (1, 1), (0, 0)), mode="edge")
    inner = padded[1:-1, 1:-1]  # a view: updating it updates `padded`
    for _ in range(sweeps):
        for step in steps:
            mean = (padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]) * 0.25
            inner += step * (mean - inner)
            _mirror_edges(padded)
    return inner.copy()


def _mirror_edges(padded: np.ndarray) -> None:
    """Refresh the one-pixel frame from the pixels next to it (the Neumann condition)."""
    padded[0], padded[-1] = padded[1], padded[-2]
    padded[:, 0], padded[:, -1] = padded[:, 1], padded[:, -2]
