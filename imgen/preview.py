"""A progressive preview on the terminal: the coarse image first, then rows filling in.

Drawn with the upper-half-block character and 24-bit colour (each character
cell shows two pixels: foreground on top, background below), which works in
every modern terminal. Kitty and iTerm2 can show real inline images; imgen
keeps to half blocks there too, because the preview is redrawn many times a
second and escape-sequence images flicker on redraw. The preview writes only to
a TTY on stderr, so piping stdout never mixes pictures into results.
"""

from __future__ import annotations

import sys
from typing import TextIO

from PIL import Image

UPPER_HALF = "\u2580"


def half_block_lines(image: Image.Image, width: int = 48) -> list[str]:
    """The image as terminal lines of half-block characters, `width` cells wide."""
    height = max(2, round(image.height * width / image.width / 2) * 2)
    small = image.convert("RGB").resize((width, height), Image.Resampling.BOX)
    pixels = small.load()
    lines = []
    for y in range(0, height, 2):
        cells = []
        for x in range(width):
            tr, tg, tb = pixels[x, y]
            br, bg, bb = pixels[x, y + 1]
            cells.append(f"\x1b[38;2;{tr};{tg};{tb}m\x1b[48;2;{br};{bg};{bb}m{UPPER_HALF}")
        lines.append("".join(cells) + "\x1b[0m")
    return lines


class TerminalPreview:
    """Redraws one image in place as generation progresses."""

    def __init__(self, stream: TextIO | None = None, width: int = 48) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.drawn = 0

    @staticmethod
    def wanted(stream: TextIO | None = None) -> bool:
        stream = stream or sys.stderr
        return hasattr(stream, "isatty") and stream.isatty()

    def show(self, image: Image.Image, status: str) -> None:
        lines = [*half_block_lines(image, self.width), f"\x1b[2K{status}"]
        if self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F")  # back to the first line of the last drawing
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()
        self.drawn = len(lines)

    def clear(self) -> None:
        if self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F\x1b[0J")
            self.stream.flush()
            self.drawn = 0
