"""Reading quoted text back from pixels with the tesseract command-line tool.

tesseract is called as a subprocess (no Python binding to install) on a clean
rendition of one text line: the line's foreground strength, drawn dark on
white, scaled so that its ink is about 40 pixels tall and padded, which is what
its line model (`--psm 7`) reads best whatever the text colour, background,
style or size. A second scale is tried when the first reading is not the
expected text, because tesseract's segmentation of a two-letter word can
flip with the scale. Each script is read with
its own language model and a character whitelist of that script plus digits,
so a Greek word is never read as look-alike Latin capitals. Dictionaries are
switched off: the judge must see a misspelling, not have it corrected.

Readings are compared case-insensitively, without accents and spaces, because
at 128 pixels "o"/"O" and "s"/"S" are the same shapes and tesseract guesses
their case; a changed letter still fails.

When tesseract or a language is missing, `read_line` returns None and the
judge reports the text as not measured, never as passed.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import unicodedata
from functools import lru_cache

import numpy as np
from PIL import Image

from imgen.world import vocab

LANGUAGES: dict[str, str] = {"latin": "eng", "greek": "ell", "cyrillic": "rus", "mixed": "eng+ell+rus"}
WHITELISTS: dict[str, str] = {
    "latin": vocab.LATIN + vocab.DIGITS,
    "greek": vocab.GREEK + vocab.DIGITS,
    "cyrillic": vocab.CYRILLIC + vocab.DIGITS,
    "mixed": vocab.LATIN + vocab.GREEK + vocab.CYRILLIC + vocab.DIGITS,
}
INK_HEIGHTS = (40, 56)
"""Ink heights in pixels a line is scaled to before reading, tried in order."""
PAD = 24
TIMEOUT_S = 30


@lru_cache(maxsize=1)
def installed_languages() -> frozenset[str]:
    """Languages the local tesseract knows; empty when tesseract is not installed."""
    binary = shutil.which("tesseract")
    if binary is None:
        return frozenset()
    try:
        listing = subprocess.run([binary, "--list-langs"], capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    lines = (listing.stdout + listing.stderr).splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and " " not in line.strip())


def unavailable_reason(script: str) -> str | None:
    """Why text in `script` cannot be read here, or None when it can."""
    if shutil.which("tesseract") is None:
        return "tesseract is not installed"
    missing = [lang for lang in LANGUAGES.get(script, "eng").split("+") if lang not in installed_languages()]
    if missing:
        return f"tesseract lacks the language data {'+'.join(missing)}"
    return None


def normalise(text: str) -> str:
    """The form readings are compared in: no accents, no spaces, case folded (final sigma included)."""
    decomposed = unicodedata.normalize("NFD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return "".join(bare.split()).casefold()


def line_image(strength: np.ndarray, ink_height: int = INK_HEIGHTS[0]) -> Image.Image:
    """A text line's foreground strength (0..1, H x W) as dark-on-white, scaled and padded for tesseract."""
    rows = np.nonzero(strength.max(axis=1) > 0.3)[0]
    height = int(rows.max() - rows.min() + 1) if rows.size else strength.shape[0]
    scale = ink_height / max(1, height)
    gray = np.clip(255.0 * (1.0 - strength), 0, 255).astype(np.uint8)
    image = Image.fromarray(gray, mode="L")
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.BICUBIC)
    canvas = Image.new("L", (image.width + 2 * PAD, image.height + 2 * PAD), 255)
    canvas.paste(image, (PAD, PAD))
    return canvas


def read_line(strength: np.ndarray, script: str, ink_height: int = INK_HEIGHTS[0]) -> str | None:
    """What tesseract reads in one line of text, or None when it cannot run here."""
    if unavailable_reason(script) is not None:
        return None
    buffer = io.BytesIO()
    line_image(strength, ink_height).save(buffer, format="PNG")
    command = [
        "tesseract",
        "stdin",
        "stdout",
        "-l",
        LANGUAGES.get(script, LANGUAGES["mixed"]),
        "--psm",
        "7",
        "-c",
        f"tessedit_char_whitelist={WHITELISTS.get(script, WHITELISTS['mixed'])}",
        "-c",
        "load_system_dawg=0",
        "-c",
        "load_freq_dawg=0",
    ]
    try:
        done = subprocess.run(command, input=buffer.getvalue(), capture_output=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", errors="replace").strip()
