"""The terminal preview: half blocks while the image fills in, the finished image inline where the terminal can."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from imgen.preview import KITTY_CHUNK, TerminalPreview, half_block_lines, inline_protocol, iterm_image, kitty_image


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _noise(width: int = 64, height: int = 48) -> Image.Image:
    """Random pixels, so the PNG is large enough to need several kitty chunks."""
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _decoded(payload: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.standard_b64decode(payload))).convert("RGB"))


def test_half_blocks_put_the_upper_pixel_in_front_and_the_lower_behind():
    image = Image.new("RGB", (2, 2))
    image.putpixel((0, 0), (255, 0, 0))
    image.putpixel((0, 1), (0, 0, 255))
    lines = half_block_lines(image, width=2)
    assert len(lines) == 1
    first_cell = lines[0].split("\u2580")[0]
    assert first_cell == "\x1b[38;2;255;0;0m\x1b[48;2;0;0;255m"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TERM": "xterm-kitty"}, "kitty"),
        ({"TERM": "xterm-256color", "KITTY_WINDOW_ID": "1"}, "kitty"),
        ({"TERM_PROGRAM": "iTerm.app"}, "iterm"),
        ({"TERM_PROGRAM": "WezTerm"}, "iterm"),
        ({"TERM": "xterm-256color"}, None),
        ({"TERM": "xterm-kitty", "TMUX": "/tmp/tmux-0/default,1,0"}, None),
        ({"TERM_PROGRAM": "iTerm.app", "TERM": "screen-256color"}, None),
        ({}, None),
    ],
)
def test_inline_images_only_where_the_terminal_draws_them(env, expected):
    assert inline_protocol(env) == expected


def test_kitty_escapes_carry_the_png_in_chunks_the_protocol_accepts():
    image = _noise()
    escapes = re.findall(r"\x1b_G([^;]*);([^\x1b]*)\x1b\\", kitty_image(image, columns=24))
    assert len(escapes) > 1  # a 9 kB PNG does not fit one chunk
    keys = [dict(pair.split("=") for pair in control.split(",")) for control, _ in escapes]
    assert keys[0]["a"] == "T" and keys[0]["f"] == "100" and keys[0]["c"] == "24"
    assert [k["m"] for k in keys] == ["1"] * (len(keys) - 1) + ["0"]
    assert all(len(chunk) <= KITTY_CHUNK for _, chunk in escapes)
    assert np.array_equal(_decoded("".join(chunk for _, chunk in escapes)), np.asarray(image))


def test_iterm_escape_carries_the_png_and_its_size():
    image = _noise()
    match = re.fullmatch(r"\x1b\]1337;File=([^:]*):([^\x07]*)\x07", iterm_image(image, columns=24))
    assert match is not None
    arguments = dict(pair.split("=") for pair in match.group(1).split(";"))
    assert arguments["inline"] == "1" and arguments["width"] == "24"
    assert int(arguments["size"]) == len(base64.standard_b64decode(match.group(2)))
    assert np.array_equal(_decoded(match.group(2)), np.asarray(image))


def test_each_redraw_moves_back_over_the_last_drawing():
    stream = FakeTTY()
    preview = TerminalPreview(stream, width=4, env={})
    image = Image.new("RGB", (4, 4), (10, 20, 30))
    preview.show(image, "coarse 1/8")
    first = stream.getvalue()
    preview.show(image, "coarse 2/8")
    second = stream.getvalue()[len(first) :]
    assert second.startswith("\x1b[3F")  # two half-block lines and the status line
    assert second.endswith("coarse 2/8\n")


@pytest.mark.parametrize(
    ("env", "marker"), [({"TERM": "xterm-kitty"}, "\x1b_G"), ({"TERM_PROGRAM": "iTerm.app"}, "1337")]
)
def test_finish_replaces_the_drawing_by_the_image_inline(env, marker):
    stream = FakeTTY()
    preview = TerminalPreview(stream, width=4, env=env)
    image = Image.new("RGB", (4, 4), (10, 20, 30))
    preview.show(image, "detail 16/16")
    before = len(stream.getvalue())
    preview.finish(image)
    written = stream.getvalue()[before:]
    assert written.startswith("\x1b[3F\x1b[0J")  # the half blocks are erased first
    assert marker in written and preview.drawn == 0


def test_finish_on_a_plain_terminal_only_erases_the_drawing():
    stream = FakeTTY()
    preview = TerminalPreview(stream, width=4, env={"TERM": "xterm-256color"})
    image = Image.new("RGB", (4, 4), (10, 20, 30))
    preview.show(image, "detail 16/16")
    before = len(stream.getvalue())
    preview.finish(image)
    assert stream.getvalue()[before:] == "\x1b[3F\x1b[0J"


def test_a_large_image_is_sent_no_larger_than_the_cells_show():
    big = Image.new("RGB", (4000, 3000), (200, 100, 50))
    match = re.fullmatch(r"\x1b\]1337;File=([^:]*):([^\x07]*)\x07", iterm_image(big, columns=24))
    assert match is not None
    sent = _decoded(match.group(2))
    assert sent.shape[1] <= 240 and abs(sent.shape[1] / sent.shape[0] - 4 / 3) < 0.02


@pytest.mark.parametrize(
    ("env", "expected"),
    [({"TERM": "xterm-256color"}, True), ({"TERM": "dumb"}, False), ({"TERM": "xterm", "NO_COLOR": "1"}, False)],
)
def test_the_preview_is_drawn_only_on_a_colour_terminal(env, expected):
    assert TerminalPreview.wanted(FakeTTY(), env) is expected
    assert TerminalPreview.wanted(io.StringIO(), {"TERM": "xterm-256color"}) is False  # piped: never
