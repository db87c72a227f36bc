"""Where a scene's letters are: a pixel mask of its text blocks.

Why: letters cover a few percent of a scene's pixels, so a per-pixel loss
spends almost nothing on whether they stay readable, and a tokenizer trained
on it blurs them (its reconstructions read back in about a third of the
held-out text scenes). `imgen train tokenizer --text-weight` weighs the
pixels of this mask up.
"""

from __future__ import annotations

import math

import numpy as np

from imgen.world.scene import Scene


def text_mask(scene: Scene, size: int, margin: int = 3) -> np.ndarray:
    """bool (size, size): True inside each text block's box (grown by `margin` pixels), clipped to the image.

    The box is the one the layout measured (`Item.box`: the font's em height by
    the text's width, centred where it is drawn); the margin covers outlines and
    strokes that reach past it in the outline, sketch and pixel styles.
    """
    mask = np.zeros((size, size), dtype=bool)
    for item in scene.items:
        if item.kind != "text":
            continue
        left, top, right, bottom = item.box
        x0, y0 = max(0, math.floor(left * size) - margin), max(0, math.floor(top * size) - margin)
        x1, y1 = min(size, math.ceil(right * size) + margin), min(size, math.ceil(bottom * size) + margin)
        mask[y0:y1, x0:x1] = True
    return mask
