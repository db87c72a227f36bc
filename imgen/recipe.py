"""What an imgen PNG records, read back as the settings that made it: its recipe.

Why a module of its own: `imgen generate --from-image`, `imgen info`, batch
resume and the Python API all read the same JSON record, and old records need
one reading everywhere: images from before the detail phase had its own
guidance and temperature used the coarse phase's for both, and images from
before bf16 sampling record no precision because they were all fp32.

    from imgen import load, recipe_from_image

    recipe = recipe_from_image("out/a-red-circle-s0.png")
    pipe = load(recipe.model, precision=recipe.precision)
    image = pipe.generate(recipe.prompt, seed=recipe.seed, sampler=recipe.sampler)[0]
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from PIL import Image

from imgen.sampler_config import SamplerConfig, with_options


class NotAnImgenImage(ValueError):
    """The file holds no generate recipe: another program's image, not an image, or an imgen edit,
    restyle or world render (their pixels depend on a source image or on the world, not on a prompt alone)."""


@dataclass(frozen=True)
class Recipe:
    """The settings an imgen PNG was made with; generating them again gives the same pixels."""

    prompt: str | None
    seed: int
    sampler: SamplerConfig
    precision: str  # "fp32" or "bf16" as recorded; "auto" in a new request that names none
    model: str | None  # the checkpoint as it was given (a name in the lock, or a path); None: the bundled default
    model_sha256: str | None  # the checkpoint's digest, to tell whether `model` still is that file
    tokenizer_sha256: str | None = None  # its image tokenizer's (None in images made before it was recorded)


def read_metadata(path: str | os.PathLike) -> dict | None:
    """imgen's JSON record of a PNG, or None when the file is not an imgen PNG."""
    try:
        with Image.open(path) as image:
            raw = image.info.get("imgen") if image.format == "PNG" else None
    except (OSError, SyntaxError, ValueError):
        return None
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def sampler_from_metadata(record: dict) -> SamplerConfig:
    """The sampler settings an imgen PNG records (unknown keys ignored, missing ones default).

    Images from before `detail_cfg` and `detail_temperature` existed used one
    guidance scale and one temperature for both phases, so a record without
    them takes its `cfg` and `temperature`.
    """
    known = asdict(SamplerConfig())
    values = {k: v for k, v in (record.get("sampler") or {}).items() if k in known}
    if "cfg" in values and "detail_cfg" not in values:
        values["detail_cfg"] = values["cfg"]
    if "temperature" in values and "detail_temperature" not in values:
        values["detail_temperature"] = values["temperature"]
    return SamplerConfig(**values)


def recipe_from_image(path: str | os.PathLike) -> Recipe:
    """The recipe recorded in an imgen PNG; `NotAnImgenImage` when it has none."""
    record = read_metadata(path)
    if not record:
        raise NotAnImgenImage(f"{path}: not a PNG written by imgen (no imgen metadata)")
    task = record.get("task")
    if task is not None:
        raise NotAnImgenImage(
            f"{path} was made by `imgen {task}` from a source image; its prompt alone does not make it again"
        )
    if "sampler" not in record:
        raise NotAnImgenImage(f"{path}: not made by `imgen generate` (no sampler settings; a world render?)")
    model = record.get("model")
    if not isinstance(record["sampler"], dict):
        raise NotAnImgenImage(f"{path}: its recorded sampler settings are not a table of settings")
    try:
        sampler = sampler_from_metadata(record)
    except (TypeError, ValueError) as error:
        raise NotAnImgenImage(f"{path}: its recorded sampler settings cannot be used ({error})") from None
    seed = record.get("seed", 0)
    expected = {"prompt": (record.get("prompt"), str), "seed": (seed, int), "model": (model, str)}
    expected |= {"precision": (record.get("precision", "fp32"), str), "model_sha256": (record.get("model_sha256"), str)}
    expected |= {"tokenizer_sha256": (record.get("tokenizer_sha256"), str)}
    for field, (value, kind) in expected.items():
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise NotAnImgenImage(f"{path}: its recorded {field} is {value!r}, not a {kind.__name__}")
    return Recipe(
        prompt=record.get("prompt"),
        seed=seed,
        sampler=sampler,
        precision=record.get("precision", "fp32"),
        model=None if model in (None, "default") else model,
        model_sha256=record.get("model_sha256"),
        tokenizer_sha256=record.get("tokenizer_sha256"),
    )


def request_from(
    recipe: Recipe | None,
    *,
    prompt: str | None = None,
    seed: int | None = None,
    precision: str | None = None,
    model: str | None = None,
    **sampler_options: object,
) -> Recipe:
    """The settings of a new generate request: what is given here wins over `recipe`, and `recipe` over the defaults.

    `recipe` is an earlier image's (`generate --from-image`) or None. Options
    left None keep the recipe's value, so `--from-image a.png --seed 5` makes
    a.png's picture with another seed. The recipe's checkpoint digests are kept,
    for the caller to warn when the checkpoint it loads is another one. An
    unknown sampler mode is a `ValueError`.
    """
    base = recipe or Recipe(None, 0, SamplerConfig(), "auto", None, None)
    return Recipe(
        prompt=prompt if prompt is not None else base.prompt,
        seed=seed if seed is not None else base.seed,
        sampler=with_options(base.sampler, **sampler_options),
        precision=precision or base.precision,
        model=model if model is not None else base.model,
        model_sha256=base.model_sha256,
        tokenizer_sha256=base.tokenizer_sha256,
    )
