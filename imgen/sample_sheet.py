"""A captioned grid of images: how training shows its progress as pictures, not only numbers."""

from __future__ import annotations

import textwrap

from PIL import Image, ImageDraw


def contact_sheet(images: list[Image.Image], captions: list[str], columns: int = 4) -> Image.Image:
    """Images in rows of `columns`, each with up to two lines of its caption underneath."""
    from imgen.world import assets  # the bundled font covers Latin, Greek and Cyrillic captions

    if len(images) != len(captions):
        raise ValueError("one caption per image")
    if not images:
        raise ValueError("no images")
    font = assets.font(11)
    size = max(max(im.width, im.height) for im in images)
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    cell_w, cell_h, gap = size, size + 30, 6
    sheet = Image.new("RGB", (columns * (cell_w + gap), rows * (cell_h + gap)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, text) in enumerate(zip(images, captions, strict=True)):
        x, y = (i % columns) * (cell_w + gap), (i // columns) * (cell_h + gap)
        sheet.paste(image.convert("RGB"), (x, y))
        for j, line in enumerate(textwrap.wrap(text, width=max(8, size // 6))[:2]):
            draw.text((x, y + size + 2 + 13 * j), line, fill="black", font=font)
    return sheet
