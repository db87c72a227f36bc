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

Readings are compared without accents and spaces, and case-insensitively only
for the letters whose two cases are one shape in the world's font ("o"/"O",
"s"/"S", Cyrillic "к"/"К"...): scaled to one height they cannot be told apart,
so tesseract guesses their case. Every other letter must come back in the case
it was asked in: "ΠΙ" read as "πι" fails, since a lower-case pi is another
glyph (accepting it let illegible smudges pass as Greek words). A changed
letter always fails, Cyrillic Й for И included (Ё passes as Е, as Russian
writes it). Which pairs are one shape is measured on the font itself
(`case_blind_letters`), not listed by hand.

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
from PIL import Image, ImageDraw

from imgen.world import assets, vocab

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
CASE_SHAPE_IOU = 0.8
"""Upper and lower case are one shape when their ink, scaled to one height, overlaps this much (IoU)."""
SHAPE_HEIGHT = 48


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


def _glyph_ink(letter: str) -> np.ndarray:
    """`letter`'s ink in the world's font, cropped and scaled to SHAPE_HEIGHT rows (bool)."""
    canvas = Image.new("L", (400, 400), 0)
    ImageDraw.Draw(canvas).text((100, 50), letter, font=assets.font(200), fill=255)
    ink = np.asarray(canvas) > 127
    rows, cols = np.nonzero(ink)
    ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    width = max(1, round(ink.shape[1] * SHAPE_HEIGHT / ink.shape[0]))
    scaled = Image.fromarray(ink.astype(np.uint8) * 255).resize((width, SHAPE_HEIGHT), Image.Resampling.BILINEAR)
    return np.asarray(scaled) > 127


def shape_overlap(a: str, b: str) -> float:
    """IoU of two letters' ink scaled to one height and centred on each other: 1 for the same shape."""
    inks = [_glyph_ink(a), _glyph_ink(b)]
    width = max(ink.shape[1] for ink in inks)
    boards = []
    for ink in inks:
        board = np.zeros((SHAPE_HEIGHT, width), dtype=bool)
        left = (width - ink.shape[1]) // 2
        board[:, left : left + ink.shape[1]] = ink
        boards.append(board)
    return float((boards[0] & boards[1]).sum() / max(1, (boards[0] | boards[1]).sum()))


@lru_cache(maxsize=1)
def case_blind_letters() -> frozenset[str]:
    """Letters (both cases) whose upper and lower case are one shape in the world's font."""
    blind: set[str] = set()
    for alphabet in (vocab.LATIN, vocab.GREEK, vocab.CYRILLIC):
        for upper in alphabet:
            lower = upper.lower()
            pair = upper.isupper() and lower != upper and lower in alphabet
            if pair and shape_overlap(upper, lower) >= CASE_SHAPE_IOU:
                blind.update((upper, lower))
    return frozenset(blind)


def normalise(text: str) -> str:
    """The form readings are compared in: no accents, no spaces, final sigma as sigma, and the
    case folded only where it cannot be seen (`case_blind_letters`).

    Accents are marks on a letter of the same name: Greek tonos, which
    tesseract adds or drops at will, and Cyrillic Ё, which Russian text
    writes as Е. The breve of Й is not: Й is another letter, so "ЧАИ" must
    not pass for "ЧАЙ".
    """
    kept: list[str] = []
    for ch in unicodedata.normalize("NFD", text):
        if ch.isspace():
            continue
        if unicodedata.combining(ch) and not (ch == BREVE and kept and _is_cyrillic(kept[-1])):
            continue
        kept.append(ch)
    bare = unicodedata.normalize("NFC", "".join(kept))
    blind = case_blind_letters()
    return "".join(ch.lower() if ch in blind else ch for ch in bare).replace("ς", "σ")


BREVE = "\u0306"  # what NFD splits off Й (and й)


def _is_cyrillic(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith("CYRILLIC")


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
