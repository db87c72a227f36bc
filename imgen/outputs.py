"""Where generated images go and what they record about themselves.

Names: with no `-o`, a readable name from the prompt and seed (`a-red-circle-s0.png`);
`-o` may hold `{index}`, `{seed}` and `{slug}`. Metadata: an AUTOMATIC1111-style
`parameters` text chunk (so other tools show the prompt and seed) plus imgen's
own JSON chunk with everything needed to make the image again.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the commands that name a file must not wait for torch to load
    from imgen.sampler_config import SamplerConfig


def slugify(prompt: str, limit: int = 48) -> str:
    """A file-name-safe, lower-case slug of the prompt (Greek and Cyrillic letters are kept)."""
    text = unicodedata.normalize("NFKC", prompt).lower()
    text = re.sub(r"[^\w]+", "-", text, flags=re.UNICODE).strip("-_")
    return (text[:limit].rstrip("-_")) or "image"


def output_path(pattern: str | None, prompt: str, seed: int, index: int, count: int) -> Path:
    """The file for image `index` of `count`: the pattern filled in, or a name from the prompt.

    A pattern that names a folder (one that exists, or any path ending in "/")
    gets the default name inside it; a name without a suffix gets ".png"; any
    other suffix is a `ValueError`, since imgen writes PNG (with its recipe) only.
    """
    slug = slugify(prompt)
    default = Path(f"{slug}-s{seed}.png")
    if pattern is None:
        return default
    if "{" in pattern:
        try:
            return png_path(Path(pattern.format(index=index, seed=seed, slug=slug)))
        except (KeyError, IndexError, ValueError, AttributeError) as error:
            if isinstance(error, NotPngError):
                raise
            raise ValueError(
                f"-o {pattern!r} cannot be filled in ({type(error).__name__}: {error}); "
                "the placeholders are {index}, {seed} and {slug}"
            ) from None
    if pattern.endswith(("/", os.sep)) or Path(pattern).is_dir():
        return Path(pattern) / default
    path = png_path(Path(pattern))
    if count > 1:  # several images and one plain name: number them
        return path.with_name(f"{path.stem}-{index}{path.suffix}")
    return path


class NotPngError(ValueError):
    """An output path whose suffix says another format than the PNG imgen writes."""


OTHER_IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".heic", ".jxl", ".ppm"}
)


def png_path(path: Path) -> Path:
    """`path` as a PNG file name: kept if it ends in .png, refused (`NotPngError`) if it names another image
    format, else ".png" is added ("cat v1.0" becomes "cat v1.0.png")."""
    suffix = path.suffix.lower()
    if suffix == ".png":
        return path
    if suffix in OTHER_IMAGE_SUFFIXES:
        raise NotPngError(f"{path}: imgen writes PNG files (with their recipe); name the output .png")
    return path.with_name(path.name + ".png")


def single_output(path: str | Path, default_name: str) -> Path:
    """Where `-o PATH` puts one image: inside PATH under `default_name` if PATH is a folder (one that exists, or
    any path ending in "/"), else PATH as a PNG."""
    if str(path).endswith(("/", os.sep)) or Path(path).is_dir():
        return Path(path) / default_name
    return png_path(Path(path))


def parameters_text(prompt: str, sampler: SamplerConfig, seed: int, size: int, model: str, sha256: str) -> str:
    """The AUTOMATIC1111 `parameters` chunk: prompt line, then comma-separated settings."""
    steps = sampler.coarse_steps if sampler.mode == "two-phase" else 0
    return (
        f"{prompt}\n"
        f"Steps: {steps}, Sampler: imgen {sampler.mode}, CFG scale: {sampler.cfg}, Seed: {seed}, "
        f"Size: {size}x{size}, Model hash: {sha256[:10]}, Model: {model}"
    )


def image_metadata(
    prompt: str,
    sampler: SamplerConfig,
    seed: int,
    size: int,
    model: str,
    sha256: str,
    precision: str = "fp32",
    tokenizer_sha256: str | None = None,
) -> dict:
    """imgen's own JSON record: enough to regenerate the image exactly.

    The precision the generator ran in is recorded when it is not fp32, so
    records of fp32 images stay as they were before bf16 sampling existed.
    `sha256` is the generator file's digest and `tokenizer_sha256` the image
    tokenizer's: a decoder retrained under the same generator decodes the same
    tokens to other pixels, so both decide whether an image is up to date.
    """
    record = {
        "prompt": prompt,
        "seed": seed,
        "size": size,
        "sampler": asdict(sampler),
        "model": model,
        "model_sha256": sha256,
    }
    if tokenizer_sha256 is not None:
        record["tokenizer_sha256"] = tokenizer_sha256
    if precision != "fp32":
        record["precision"] = precision
    return record
