"""A progressive preview on the terminal: the coarse image first, then rows filling in.

Drawn with the upper-half-block character and 24-bit colour (each character
cell shows two pixels: foreground on top, background below), which works in
every modern terminal. Kitty and iTerm2 (and WezTerm, which speaks iTerm2's
protocol) can show real inline images: there the finished image replaces the
half-block drawing, sent once as a PNG through the terminal's own graphics
protocol. While the image fills in, imgen keeps to half blocks there too,
because the preview is redrawn many times a second and escape-sequence images
flicker on redraw. Inside tmux or screen the graphics escapes do not reach the
terminal, so only half blocks are drawn. The preview writes only to a TTY on
stderr, so piping stdout never mixes pictures into results.
"""

from __future__ import annotations

import base64
import io
import os
import sys
from collections.abc import Mapping
from typing import TextIO

from PIL import Image

UPPER_HALF = "\u2580"
KITTY_CHUNK = 4096  # the kitty graphics protocol's largest base64 payload per escape
PIXELS_PER_CELL = 10  # about a terminal cell's width in pixels


def inline_protocol(env: Mapping[str, str] | None = None) -> str | None:
    """ "kitty" or "iterm" when the terminal can show inline images, else None (read from the environment)."""
    env = os.environ if env is None else env
    if env.get("TMUX") or env.get("STY") or env.get("TERM", "").startswith(("screen", "tmux")):
        return None
    if env.get("TERM") == "xterm-kitty" or env.get("KITTY_WINDOW_ID"):
        return "kitty"
    if env.get("TERM_PROGRAM") in ("iTerm.app", "WezTerm"):
        return "iterm"
    return None


def _png_bytes(image: Image.Image, columns: int) -> bytes:
    """The image as PNG, no larger than `columns` terminal cells show (about 10 px each): an edit of a
    12-megapixel photo must not push tens of megabytes through the terminal."""
    small = image.convert("RGB")
    small.thumbnail((columns * PIXELS_PER_CELL, columns * PIXELS_PER_CELL * 2))
    buffer = io.BytesIO()
    small.save(buffer, format="PNG")
    return buffer.getvalue()


def kitty_image(image: Image.Image, columns: int) -> str:
    """The kitty graphics escapes that show `image` at the cursor, `columns` cells wide, in base64 chunks."""
    payload = base64.standard_b64encode(_png_bytes(image, columns)).decode("ascii")
    chunks = [payload[i : i + KITTY_CHUNK] for i in range(0, len(payload), KITTY_CHUNK)]
    escapes = []
    for index, chunk in enumerate(chunks):
        more = int(index < len(chunks) - 1)
        keys = f"a=T,f=100,c={columns},m={more}" if index == 0 else f"m={more}"
        escapes.append(f"\x1b_G{keys};{chunk}\x1b\\")
    return "".join(escapes)


def iterm_image(image: Image.Image, columns: int) -> str:
    """iTerm2's inline-image escape (OSC 1337) that shows `image` at the cursor, `columns` cells wide."""
    data = _png_bytes(image, columns)
    payload = base64.standard_b64encode(data).decode("ascii")
    return f"\x1b]1337;File=inline=1;size={len(data)};width={columns};preserveAspectRatio=1:{payload}\x07"


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

    def __init__(self, stream: TextIO | None = None, width: int = 48, env: Mapping[str, str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.drawn = 0
        self.protocol = inline_protocol(env)

    @staticmethod
    def wanted(stream: TextIO | None = None, env: Mapping[str, str] | None = None) -> bool:
        """Only on a terminal that shows colour: not when piped, not on TERM=dumb, not under NO_COLOR."""
        stream = stream or sys.stderr
        env = os.environ if env is None else env
        if env.get("NO_COLOR") or env.get("TERM") == "dumb":
            return False
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

    def finish(self, image: Image.Image | None) -> None:
        """Remove the drawing; on a terminal with inline images, show the finished `image` there instead."""
        self.clear()
        if image is None or self.protocol is None:
            return
        draw = kitty_image if self.protocol == "kitty" else iterm_image
        self.stream.write(draw(image, self.width) + "\n")
        self.stream.flush()
