"""Image input and output: atomic PNG writes with metadata, and safe loading of user images.

Writes go to a temporary file in the target folder and are moved into place
with `os.replace`, so a crash or Ctrl-C never leaves a half-written PNG behind
and an existing file is never clobbered unless the caller says so.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

from PIL import Image, ImageOps, PngImagePlugin

ALLOWED_FORMATS = ("PNG", "JPEG", "MPO", "WEBP")  # MPO: a JPEG with extra frames (previews, depth); frame 1 is used


class OutputExistsError(FileExistsError):
    """The output file exists and overwriting was not asked for."""


class ImageInputError(ValueError):
    """A user image that cannot be used; the message is one line."""


def save_png(
    image: Image.Image,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    text: dict[str, str] | None = None,
    metadata: dict | None = None,
) -> Path:
    """Write `image` to `path` atomically, with tEXt chunks `text` and an `imgen` JSON chunk."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{target} exists; pass --overwrite to replace it")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OSError(f"cannot write {target}: folder {folder} does not exist")
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    if metadata is not None:
        info.add_itxt("imgen", json.dumps(metadata, ensure_ascii=False, sort_keys=True))
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as stream:
            image.save(stream, format="PNG", pnginfo=info)
        os.chmod(temp_name, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual mode
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return target


class OutputFolderError(OSError):
    """The folder an output should go to cannot be created or written; the message is one line."""


def ensure_folder(folder: str | os.PathLike[str]) -> None:
    """Create `folder` (with its parents) and check it is writable, so a bad output path fails before any work."""
    target = Path(folder)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputFolderError(f"cannot write into {target}: {error.strerror or error}") from None
    if not os.access(target, os.W_OK):
        raise OutputFolderError(f"cannot write into {target}: permission denied")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def upright(image: Image.Image) -> Image.Image:
    """`image` as viewers show it, its EXIF orientation applied; a malformed EXIF block leaves it as stored.

    Why: masks are drawn on the image as a viewer shows it, and a portrait
    phone photo is stored sideways. Some tools write EXIF that Pillow cannot
    parse (it raises `SyntaxError` and others only when asked for it), and
    such an image must still be usable.
    """
    try:
        return ImageOps.exif_transpose(image)
    except (SyntaxError, ValueError, TypeError, KeyError, OSError, struct.error):
        return image


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open a user image (PNG, JPEG or WebP) fully decoded, or raise `ImageInputError` with one line."""
    source = Path(path)
    if not source.is_file():
        raise ImageInputError(f"{source}: no such file")
    try:
        with Image.open(source) as image:
            if image.format not in ALLOWED_FORMATS:
                raise ImageInputError(
                    f"{source}: {image.format or 'unknown'} images are not supported (use PNG, JPEG or WebP)"
                )
            image.load()
            return image.copy()
    except Image.DecompressionBombError as error:
        raise ImageInputError(f"{source}: image is too large to open safely ({error})") from None
    except ImageInputError:
        raise
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageInputError(f"{source}: not a readable image ({error})") from None
