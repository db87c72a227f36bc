"""The `imgen` command line: a thin Typer layer over the library.

Each command parses its options, calls one library function and turns known
errors into one line on stderr and an exit code (0 ok, 1 partial failure,
2 usage or bad input, 3 model unavailable, 70 internal error, 130
interrupted). Results go to
stdout, everything else to stderr. Heavy imports happen inside commands so
`imgen --help` never loads torch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from imgen.cli_errors import (
    DEBUG_ENV,
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_MODEL_UNAVAILABLE,
    EXIT_PARTIAL,
    fail,
    warn,
)
from imgen.weights_cli import weights_app

app = typer.Typer(
    name="imgen",
    help="Generate and edit images with a small token model, offline on a CPU.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from imgen import __version__

        typer.echo(f"imgen {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    """Generate and edit images with a small token model, offline on a CPU."""


world_app = typer.Typer(
    help="The procedural world imgen is trained and judged on.\n\n"
    'Examples:\n\n  imgen world render "three red stars above a dog" -o gt.png --seed 1\n\n'
    "  imgen world sample -n 16 -o grid.png",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(world_app, name="world")
app.add_typer(weights_app, name="weights")

# Sampler options of `generate` and `eval`. None means the sampler's default, stated in each help
# (a test checks them against `SamplerConfig`), or for `generate --from-image` the recorded setting.
CfgOption = Annotated[
    float | None, typer.Option(help="Classifier-free guidance scale of the coarse phase (1 = off). [default: 3.0]")
]
DetailCfgOption = Annotated[
    float | None, typer.Option(help="Guidance scale of the detail phase (1 = off, twice as cheap). [default: 1.0]")
]
TemperatureOption = Annotated[
    float | None, typer.Option(help="Sampling temperature of the coarse phase. [default: 0.5]", min=0.0)
]
DetailTemperatureOption = Annotated[
    float | None, typer.Option(help="Sampling temperature of the detail phase. [default: 0.5]", min=0.0)
]
TopKOption = Annotated[int | None, typer.Option(help="Keep the k most likely tokens (0 = all). [default: 0]", min=0)]
CoarseStepsOption = Annotated[
    int | None, typer.Option(help="Parallel steps of the coarse phase. [default: 8]", min=1, max=64)
]
SamplerModeOption = Annotated[str | None, typer.Option(help="two-phase or raster (the baseline). [default: two-phase]")]
DetailWindowOption = Annotated[
    int | None,
    typer.Option(
        help="Decode detail rows in parallel, each this many tokens behind the row above "
        "(0 = one row at a time; 4 is slower and a little closer to it). [default: 2]",
        min=0,
    ),
]

PrecisionOption = Annotated[
    str | None,
    typer.Option(
        help="Number format of the generator: auto (the default: bf16 where the CPU multiplies bf16 "
        "natively, else fp32), fp32 or bf16."
    ),
]


@world_app.command("render")
def world_render(
    prompt: Annotated[str, typer.Argument(help="What to draw, in the world's vocabulary.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG file to write.")] = Path("world.png"),
    seed: Annotated[int, typer.Option(help="Layout seed: where the prompt leaves freedom.")] = 0,
    size: Annotated[int, typer.Option(help="Image side in pixels.", min=32, max=1024)] = 128,
    style: Annotated[str | None, typer.Option(help="Override the style (flat, outline, pixel, ...).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
) -> None:
    """Render the exact ground truth of a prompt.

    Example: imgen world render 'the word "OPEN" at the bottom, a red star in the top left' -o gt.png
    """
    from imgen.io import OutputExistsError, save_png
    from imgen.world.ground_truth import render_prompt
    from imgen.world.spec import SpecError

    try:
        result = render_prompt(prompt, seed=seed, size=size, style=style)
    except SpecError as error:
        fail(str(error))
    if result.spec.unknown_words:
        warn("unknown words ignored: " + ", ".join(result.spec.unknown_words))
    metadata = {"prompt": prompt, "seed": seed, "size": size, "scene": result.scene.to_json()}
    try:
        path = save_png(result.image, output, overwrite=overwrite, metadata=metadata)
    except (OutputExistsError, OSError) as error:
        fail(str(error))
    typer.echo(str(path))


@world_app.command("sample")
def world_sample(
    count: Annotated[int, typer.Option("-n", "--count", help="How many scenes.", min=1, max=256)] = 16,
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG file to write.")] = Path("world-grid.png"),
    seed: Annotated[int, typer.Option(help="Stream seed.")] = 0,
    split: Annotated[str, typer.Option(help="train or heldout.")] = "train",
    size: Annotated[int, typer.Option(help="Side of each scene in pixels.", min=32, max=512)] = 128,
    columns: Annotated[int, typer.Option(help="Scenes per row.", min=1)] = 4,
    captions: Annotated[bool, typer.Option(help="Also print each caption on stdout.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
) -> None:
    """Draw a grid of random world scenes with their captions: what the bundled model was taught.

    Example: imgen world sample -n 16 -o grid.png --split heldout
    """
    from imgen.io import OutputExistsError, save_png
    from imgen.world.examples import make_example
    from imgen.world.ground_truth import sample_grid
    from imgen.world.sampling import SPLITS

    if split not in SPLITS:
        fail(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    sheet = sample_grid(count=count, seed=seed, split=split, size=size, columns=columns)
    try:
        path = save_png(sheet, output, overwrite=overwrite, metadata={"seed": seed, "split": split, "count": count})
    except (OutputExistsError, OSError) as error:
        fail(str(error))
    if captions:
        for index in range(count):
            typer.echo(make_example(seed, index, split).caption)
    typer.echo(str(path))


@app.command("generate")
def generate(
    prompt: Annotated[str | None, typer.Argument(help="What to draw (or use --prompts).")] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            help="PNG path or folder (default {slug}-s{seed}.png here); may use {index}, {seed}, {slug}.",
        ),
    ] = None,
    prompts_file: Annotated[
        str | None,
        typer.Option("--prompts", help="File of prompts (one per line, # comments) or JSON lines; - for stdin."),
    ] = None,
    out_dir: Annotated[Path | None, typer.Option(help="Folder for the images (created if missing).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the first image; image i uses seed + i.")] = None,
    count: Annotated[int, typer.Option("-n", "--count", help="Images per prompt.", min=1, max=1000)] = 1,
    batch_size: Annotated[
        int,
        typer.Option(
            help="Images per call, one shard per thread (never changes an image); 0 = auto: 4 per thread.", min=0
        ),
    ] = 0,
    cfg: CfgOption = None,
    detail_cfg: DetailCfgOption = None,
    temperature: TemperatureOption = None,
    detail_temperature: DetailTemperatureOption = None,
    top_k: TopKOption = None,
    top_p: Annotated[
        float | None, typer.Option(help="Nucleus sampling mass (1 = off). [default: 1.0]", min=0.0, max=1.0)
    ] = None,
    coarse_steps: CoarseStepsOption = None,
    sampler: SamplerModeOption = None,
    detail_window: DetailWindowOption = None,
    from_image: Annotated[
        Path | None, typer.Option(help="Take prompt, seed and settings from an imgen PNG (flags given here win).")
    ] = None,
    precision: PrecisionOption = None,
    model: Annotated[str | None, typer.Option(help="Checkpoint name or folder (default: bundled).")] = None,
    threads: Annotated[
        int, typer.Option(help="Torch threads (0 = auto: 1 for one image per call, else torch's default).", min=0)
    ] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    preview: Annotated[bool, typer.Option(help="Draw the image filling in on a terminal.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per image on stdout.")] = False,
) -> None:
    """Generate images from a prompt with the bundled (or a given) checkpoint.

    Re-running a command skips images already written with the same settings, so
    an interrupted batch resumes where it stopped. Under torchrun, ranks share the
    prompts and each image is made once.

    Examples:

      imgen generate "a red circle in the top left"

      imgen generate 'three blue stars above a dog, the word "HI" at the bottom' -n 4 -o "out/{slug}-{seed}.png"

      imgen generate --prompts prompts.txt --out-dir out --batch-size 8 --json > log.jsonl

      imgen generate --from-image out/a-red-circle-s0.png -o again.png
    """
    import json

    from imgen.preview import TerminalPreview
    from imgen.recipe import NotAnImgenImage, recipe_from_image, request_from

    recipe = None
    if from_image is not None:
        try:
            recipe = recipe_from_image(from_image)
        except NotAnImgenImage as error:
            fail(str(error))
    if prompt is not None and prompts_file is not None:
        fail("give a prompt or --prompts, not both")
    try:
        request = request_from(
            recipe,
            prompt=prompt,
            seed=seed,
            precision=precision,
            model=model,
            cfg=cfg,
            detail_cfg=detail_cfg,
            temperature=temperature,
            detail_temperature=detail_temperature,
            top_k=top_k,
            top_p=top_p,
            coarse_steps=coarse_steps,
            mode=sampler,
            detail_window=detail_window,
        )
    except ValueError as error:
        fail(str(error))
    if prompts_file is None and request.prompt is None:
        fail("no prompt: give one, or --prompts FILE, or --from-image PNG")
    if prompts_file is None and not request.prompt.strip():
        fail("the prompt is empty")
    recorded_in = from_image if model is None and request.model is not None else None  # the PNG named the model
    _check_model_named(request.model, recorded_in)
    from imgen.api import ModelUnavailableError  # torch loads here, after the cheap checks
    from imgen.batch import PromptFileError, PromptLine, generate_batch, job_record, read_prompt_file
    from imgen.checkpoints import CheckpointError

    try:
        lines = read_prompt_file(prompts_file) if prompts_file is not None else [PromptLine(request.prompt)]
    except PromptFileError as error:
        fail(str(error))
    loaded: dict = {}  # the pipeline and the terminal preview, once the checkpoint is loaded
    wants_preview = preview and TerminalPreview.wanted()

    def on_loaded(pipe, jobs) -> None:
        loaded["pipe"] = pipe
        if (request.model_sha256 and request.model_sha256 != pipe.sha256) or (
            request.tokenizer_sha256 and request.tokenizer_sha256 != pipe.tokenizer_sha256
        ):
            warn(f"{from_image} was made with another checkpoint; the image will differ")
        for line in lines:
            _warn_about_prompt(pipe, line.prompt)
        if wants_preview and len(jobs) == 1:
            loaded["terminal"] = TerminalPreview()

    def draw(phase: str, step: int, total: int, images: list) -> None:
        if "terminal" in loaded:
            loaded["terminal"].show(images[0], f"{phase} {step}/{total}")

    def on_result(result) -> None:
        pipe = loaded["pipe"]
        if "terminal" in loaded:
            loaded["terminal"].finish(_written_image(result.job.path) if result.status != "failed" else None)
        if as_json:
            record = job_record(result, pipe.image_size, pipe.name, pipe.sha256, pipe.precision, pipe.tokenizer_sha256)
            typer.echo(json.dumps(record, ensure_ascii=False))
        elif result.status == "failed":
            warn(result.error or f"{result.job.path}: failed")
        else:
            typer.echo(f"{result.job.path}\tseed={result.job.seed}\t{result.status}")

    try:
        results = generate_batch(
            request, lines, output, out_dir, count, batch_size, threads, overwrite, on_result, on_loaded,
            draw if wants_preview else None,  # no decoded previews nobody sees
        )  # fmt: skip
    except (ModelUnavailableError, CheckpointError) as error:
        _fail_model_unavailable(error, recorded_in)
    except PromptFileError as error:
        fail(str(error))
    failures = sum(r.status == "failed" for r in results)
    if failures:
        if failures == len(results):
            fail("no image was written", EXIT_BAD_INPUT)
        raise typer.Exit(EXIT_PARTIAL)


def _single_output(output: str | None, default_name: str) -> Path:
    """The file an edit or restyle writes: `default_name` here, or in the folder -o names, or -o as a PNG."""
    from imgen.outputs import single_output

    if output is None:
        return Path(default_name)
    try:
        return single_output(output, default_name)
    except ValueError as error:
        fail(str(error))


def _prepare_output(path: Path, overwrite: bool) -> None:
    """Fail before any work when `path` exists (without --overwrite) or its folder cannot be written."""
    from imgen.io import OutputFolderError, ensure_folder

    if path.exists() and not overwrite:
        fail(f"{path} exists; pass --overwrite to replace it")
    try:
        ensure_folder(path.parent)
    except OutputFolderError as error:
        fail(str(error))


def _warn_about_prompt(pipe, prompt: str) -> None:
    """Say which words the checkpoint never saw, and what of a long prompt it cannot read."""
    unknown = pipe.unknown_words(prompt)
    if unknown:
        warn(f"words this checkpoint never saw in {prompt!r}: " + ", ".join(unknown))
    tail = pipe.ignored_tail(prompt)
    if tail:
        warn(f"the prompt is longer than this checkpoint reads ({pipe.prompts.max_length} tokens); ignored: {tail!r}")


def _written_image(path: Path):
    """The image just written at `path`, for the terminal to show (None if it cannot be read back)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError:
        return None


def _with_options(base, **options):
    """`base` with the sampler options the command line gave (None = not given); an unknown mode fails."""
    from imgen.sampler_config import with_options

    try:
        return with_options(base, **options)
    except ValueError as error:
        fail(str(error))


def _write_one(
    image, path: Path, overwrite: bool, as_json: bool, record: dict, parameters: str, seconds: float
) -> None:
    """Write one edited/restyled image atomically with its metadata, then report it on stdout."""
    import json

    from imgen.io import OutputExistsError, save_png

    try:
        save_png(image, path, overwrite=overwrite, text={"parameters": parameters}, metadata=record)
    except (OutputExistsError, OSError) as error:
        fail(str(error))
    if as_json:
        typer.echo(json.dumps({"path": str(path), **record, "seconds": round(seconds, 3)}, ensure_ascii=False))
    else:
        typer.echo(f"{path}\tseed={record['seed']}")


def _precision(value: str | None) -> str:
    """A `--precision` value checked before any work (None is "auto"); an unknown one fails."""
    from imgen.precision import resolve_precision

    try:
        return resolve_precision(value or "auto")
    except ValueError as error:
        fail(str(error))


def _check_model_named(model: str | None, recorded_in: Path | None = None) -> None:
    """Refuse a `--model` that names no checkpoint before torch loads (`imgen.weights.check_model_named`)."""
    from imgen.weights import WeightsError, check_model_named

    try:
        check_model_named(model)
    except WeightsError as error:
        _fail_model_unavailable(error, recorded_in)


def _fail_model_unavailable(error: Exception, recorded_in: Path | None = None) -> NoReturn:
    """Exit 3 with `error`; `recorded_in` is the PNG whose metadata named the model (`--from-image`).

    Why: a user who never typed `--model` needs to hear where the name came
    from and how to draw with another checkpoint.
    """
    if recorded_in is not None:
        fail(f"{error} ({recorded_in} records it; pass --model to draw with another)", EXIT_MODEL_UNAVAILABLE)
    fail(str(error), EXIT_MODEL_UNAVAILABLE)


def _load_for_edit(model: str | None, threads: int, precision: str | None):
    from imgen.api import ModelUnavailableError, load
    from imgen.checkpoints import CheckpointError

    try:
        return load(model, threads=threads or 1, precision=_precision(precision))
    except (ModelUnavailableError, CheckpointError) as error:
        fail(str(error), EXIT_MODEL_UNAVAILABLE)


def _edit_preview(preview: bool):
    from imgen.preview import TerminalPreview

    if not (preview and TerminalPreview.wanted()):
        return None, None
    terminal = TerminalPreview()

    def draw(phase: str, step: int, total: int, images: list) -> None:
        terminal.show(images[0], f"{phase} {step}/{total}")

    return terminal, draw


@app.command("edit")
def edit_command(
    image: Annotated[Path, typer.Argument(help="The image to edit (PNG, JPEG or WebP, any size).")],
    prompt: Annotated[str, typer.Argument(help="The whole desired picture, including what goes in the mask.")],
    mask: Annotated[
        Path | None,
        typer.Option(help="White = regenerate, black = keep; RGBA: transparent = regenerate. Default: IMAGE's alpha."),
    ] = None,
    output: Annotated[
        str | None, typer.Option("-o", "--output", help="PNG path or folder (default IMAGE-edit-sSEED.png here).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the edit.")] = 0,
    grow: Annotated[int, typer.Option(help="Also free the tokens this many px around the mask.", min=0)] = 0,
    feather: Annotated[int, typer.Option(help="Soften the blend this many px inside the mask.", min=0)] = 6,
    seamless: Annotated[
        bool, typer.Option(help="Shift the new pixels smoothly to meet the kept ones at the border (no seam).")
    ] = True,
    resize_mask: Annotated[bool, typer.Option(help="Accept a mask of another size (scaled to the image).")] = False,
    cfg: Annotated[float, typer.Option(help="Classifier-free guidance scale of the coarse phase (1 = off).")] = 3.0,
    temperature: Annotated[float, typer.Option(help="Sampling temperature of the coarse phase.", min=0.0)] = 0.5,
    model: Annotated[str | None, typer.Option(help="Checkpoint name or folder (default: bundled).")] = None,
    precision: PrecisionOption = None,
    threads: Annotated[int, typer.Option(help="Torch threads (0 = 1).", min=0)] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    preview: Annotated[bool, typer.Option(help="Draw the edit filling in on a terminal.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Regenerate the masked part of an image; every pixel outside the mask stays byte-identical.

    The prompt describes the whole picture you want (the model learnt from captions
    of whole scenes), e.g. the scene's other objects plus the new one.

    Examples:

      imgen edit scene.png --mask mask.png "a yellow star in the top left and a dog" -o edited.png

      imgen edit cutout.png "a red heart in the center"      # transparent pixels are regenerated
    """
    import time

    from imgen.io import ImageInputError, load_image

    if not prompt.strip():
        fail("the prompt is empty")
    path = _single_output(output, f"{image.stem}-edit-s{seed}.png")
    try:
        source = load_image(image)
        mask_image = load_image(mask) if mask is not None else None
    except ImageInputError as error:
        fail(str(error))
    from imgen.io import upright
    from imgen.masks import MaskError, resolve_mask, working_image

    try:  # as `edit` would: a mask it would refuse is refused before the model loads, and is resolved once
        regenerate = resolve_mask(working_image(upright(source)), mask_image, resize_mask)
    except MaskError as error:
        fail(str(error))
    _check_model_named(model)
    _prepare_output(path, overwrite)  # after the inputs are known good: a refused command leaves no folder
    from imgen.editing import edit  # torch: only once the command's arguments are known good
    from imgen.outputs import image_metadata, parameters_text
    from imgen.sampler_config import SamplerConfig

    pipe = _load_for_edit(model, threads, precision)
    _warn_about_prompt(pipe, prompt)
    config = SamplerConfig(cfg=cfg, temperature=temperature)
    terminal, draw = _edit_preview(preview)
    start = time.perf_counter()
    try:
        result = edit(
            pipe, source, regenerate, prompt, grow=grow, feather=feather, seamless=seamless,
            seed=seed, sampler=config, callback=draw,
        )  # fmt: skip
    except (MaskError, ValueError) as error:
        fail(str(error))
    if terminal is not None:
        terminal.finish(result.image)
    if result.warning:
        warn(result.warning)
    record = image_metadata(
        prompt, config, seed, pipe.image_size, pipe.name, pipe.sha256, pipe.precision, pipe.tokenizer_sha256
    )
    record.update({"task": "edit", "source": image.name, "mask": mask.name if mask else None, "grow": grow})
    record.update({"feather": feather, "seamless": seamless})
    text = parameters_text(prompt, config, seed, pipe.image_size, pipe.name, pipe.sha256)
    _write_one(result.image, path, overwrite, as_json, record, text, time.perf_counter() - start)


@app.command("restyle")
def restyle_command(
    reference: Annotated[Path, typer.Argument(help="The image whose layout to keep (any image).")],
    prompt: Annotated[str, typer.Argument(help="What it should become, e.g. 'in pixel art style' or colours.")],
    output: Annotated[
        str | None, typer.Option("-o", "--output", help="PNG path or folder (default REF-restyle-sSEED.png here).")
    ] = None,
    strength: Annotated[
        float, typer.Option(help="0 = nearly the reference, 1 = only the prompt.", min=0.0, max=1.0)
    ] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of the result.")] = 0,
    keep_size: Annotated[bool, typer.Option(help="Return the reference's exact size.")] = False,
    cfg: Annotated[float, typer.Option(help="Classifier-free guidance scale of the coarse phase (1 = off).")] = 3.0,
    temperature: Annotated[float, typer.Option(help="Sampling temperature of the coarse phase.", min=0.0)] = 0.5,
    model: Annotated[str | None, typer.Option(help="Checkpoint name or folder (default: bundled).")] = None,
    precision: PrecisionOption = None,
    threads: Annotated[int, typer.Option(help="Torch threads (0 = 1).", min=0)] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    preview: Annotated[bool, typer.Option(help="Draw the result filling in on a terminal.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Redraw an image as the prompt says (a style, other colours) while keeping what is where.

    Examples:

      imgen restyle scene.png "three red stars and a dog in pixel art style" -o pixel.png

      imgen restyle photo.jpg "at night" --strength 0.7
    """
    import time

    from imgen.io import ImageInputError, load_image

    if not prompt.strip():
        fail("the prompt is empty")
    path = _single_output(output, f"{reference.stem}-restyle-s{seed}.png")
    try:
        source = load_image(reference)
    except ImageInputError as error:
        fail(str(error))
    _check_model_named(model)
    _prepare_output(path, overwrite)  # after the input is known good: a refused command leaves no folder
    from imgen.editing import restyle  # torch: only once the command's arguments are known good
    from imgen.outputs import image_metadata, parameters_text
    from imgen.sampler_config import SamplerConfig

    pipe = _load_for_edit(model, threads, precision)
    _warn_about_prompt(pipe, prompt)
    config = SamplerConfig(cfg=cfg, temperature=temperature)
    terminal, draw = _edit_preview(preview)
    start = time.perf_counter()
    try:
        images = restyle(pipe, source, prompt, strength, keep_size=keep_size, seed=seed, sampler=config, callback=draw)
    except ValueError as error:
        fail(str(error))
    image = images[0]
    if terminal is not None:
        terminal.finish(image)
    record = image_metadata(
        prompt, config, seed, pipe.image_size, pipe.name, pipe.sha256, pipe.precision, pipe.tokenizer_sha256
    )
    record.update({"task": "restyle", "reference": reference.name, "strength": strength})
    text = parameters_text(prompt, config, seed, pipe.image_size, pipe.name, pipe.sha256)
    _write_one(image, path, overwrite, as_json, record, text, time.perf_counter() - start)


@app.command("eval")
def eval_command(
    model: Annotated[str | None, typer.Option(help="Checkpoint name or folder (default: bundled).")] = None,
    suite: Annotated[str, typer.Option(help="quick (about 3 minutes) or full (the reference).")] = "quick",
    images_per_prompt: Annotated[int, typer.Option(help="Images per prompt (seeds 0..N-1).", min=1)] = 2,
    out: Annotated[Path, typer.Option(help="Folder for results.json, report.html and the images.")] = Path("eval-out"),
    reconstruct: Annotated[
        bool, typer.Option(help="Judge tokenizer reconstructions of ground truth instead (the ceiling).")
    ] = False,
    source: Annotated[
        str,
        typer.Option(
            help="What to judge: generator; given-coarse (ground-truth coarse grid, generated detail); "
            "coarse-preview (ground-truth coarse grid alone); reconstruction (same as --reconstruct)."
        ),
    ] = "generator",
    check_judge: Annotated[
        bool, typer.Option(help="Score the judge itself: ground truth must pass, near misses fail.")
    ] = False,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.", min=1)] = 16,
    cfg: CfgOption = None,
    detail_cfg: DetailCfgOption = None,
    temperature: TemperatureOption = None,
    detail_temperature: DetailTemperatureOption = None,
    top_k: TopKOption = None,
    coarse_steps: CoarseStepsOption = None,
    mask_temperature: Annotated[
        float | None,
        typer.Option(help="Noise on the coarse phase's choice of cells to keep (MaskGIT). [default: 4.5]", min=0.0),
    ] = None,
    sampler: SamplerModeOption = None,
    detail_window: DetailWindowOption = None,
    precision: PrecisionOption = None,
    threads: Annotated[int, typer.Option(help="Torch threads (0 = torch's default).", min=0)] = 0,
) -> None:
    """Benchmark prompt following on held-out world prompts, judged from pixels only.

    Prints a table per category, writes OUT/results.json (every verdict) and
    OUT/report.html (image grids with prompts and verdicts).

    Examples:

      imgen eval --suite quick

      imgen eval --reconstruct            # what the tokenizer alone lets through

      imgen eval --source given-coarse    # the detail phase alone, on true coarse grids

      imgen eval --check-judge            # the judge on ground truth and near misses
    """
    import json

    from imgen.eval.prompts import SUITES

    if suite not in SUITES:
        fail(f"unknown suite {suite!r}; choose one of {', '.join(SUITES)}")
    if sampler is not None and sampler not in ("two-phase", "raster"):
        fail(f"unknown sampler {sampler!r}; choose two-phase or raster")
    from imgen.eval.evaluate import SOURCES

    if source not in SOURCES:
        fail(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    if reconstruct and source not in ("generator", "reconstruction"):
        fail(f"--reconstruct and --source {source} ask for different images; give one of them")
    source = "reconstruction" if reconstruct else source
    from imgen.io import OutputFolderError, ensure_folder

    try:
        ensure_folder(out)  # a bad --out fails now, not after minutes of sampling
    except OutputFolderError as error:
        fail(str(error))
    if check_judge:
        from imgen.eval.judge import check_judge as run_check

        figures = run_check(suite, seeds=range(images_per_prompt))
        for name, row in figures["categories"].items():
            typer.echo(f"{name:22s} ground truth {row['ground_truth']}  near misses {row['mismatched']}")
        out.mkdir(parents=True, exist_ok=True)
        (out / "judge-check.json").write_text(json.dumps(figures, indent=2, default=str), encoding="utf-8")
        return

    from imgen.api import ModelUnavailableError, load
    from imgen.checkpoints import CheckpointError
    from imgen.eval.evaluate import evaluate
    from imgen.sampler_config import SamplerConfig

    try:
        pipe = load(model, threads=threads or None, precision=_precision(precision))
    except (ModelUnavailableError, CheckpointError) as error:
        fail(str(error), EXIT_MODEL_UNAVAILABLE)

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            typer.echo(f"\r{done}/{total} images", err=True, nl=False)

    config = _with_options(
        SamplerConfig(),
        cfg=cfg,
        detail_cfg=detail_cfg,
        temperature=temperature,
        detail_temperature=detail_temperature,
        top_k=top_k,
        coarse_steps=coarse_steps,
        mask_temperature=mask_temperature,
        mode=sampler,
        detail_window=detail_window,
    )
    report = evaluate(
        pipe, suite, images_per_prompt, out, sampler=config, batch_size=batch_size, progress=progress, source=source
    )
    if sys.stderr.isatty():
        typer.echo("", err=True)
    typer.echo(f"{suite} suite v{report.suite_version}, {SOURCES[source]}, checkpoint {pipe.name} ({pipe.sha256[:10]})")
    for name, accuracy in report.categories.items():
        shown = "not measured" if accuracy is None else f"{accuracy:.3f}"
        typer.echo(f"  {name:22s} {shown}")
    overall = "not measured" if report.overall is None else f"{report.overall:.3f}"
    typer.echo(f"  {'overall':22s} {overall}   ({report.seconds:.0f} s) -> {out / 'report.html'}")


@app.command("info")
def info(image: Annotated[Path, typer.Argument(help="A PNG written by imgen.")]) -> None:
    """Print what an imgen PNG records: prompt, seed, sampler settings, checkpoint.

    Example:

      imgen info out/a-red-circle-s0.png
    """
    import json

    from imgen.recipe import read_metadata

    if not image.is_file():
        fail(f"{image}: no such file")
    record = read_metadata(image)
    if record is None:
        fail(f"{image}: not a PNG written by imgen (no imgen metadata)")
    typer.echo(json.dumps(record, ensure_ascii=False, indent=2, sort_keys=True))


train_app = typer.Typer(
    help="Train the image tokenizer or the generator (resumable, time-budgeted).\n\n"
    "Examples:\n\n  imgen train tokenizer --out runs/vq --max-minutes 60\n\n"
    "  imgen train generator --tokenizer runs/vq/last.safetensors --out runs/gen --max-minutes 90",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(train_app, name="train")


def _run_config(ctx: typer.Context, cls: type, config_file: Path | None, renames: dict[str, str]):
    """The run's config: defaults < `--config` TOML < flags typed on the command line."""
    from imgen.train_config import ConfigError, build_config, read_config_file

    given = {}
    for name, value in ctx.params.items():
        source = getattr(ctx.get_parameter_source(name), "name", "")  # by name: typer may bundle its own click
        if name == "config" or value is None or source in ("DEFAULT", "DEFAULT_MAP"):
            continue
        given[renames.get(name, name)] = str(value) if isinstance(value, Path) else value
    try:
        file_values = read_config_file(config_file) if config_file else {}
        run = build_config(cls, file_values, given, str(config_file))
        run.check_can_start()  # before any folder is made or weights are read
        return run
    except ConfigError as error:
        fail(str(error))


def _print_record(record: dict) -> None:
    """A training record as one JSON line on stderr, as in metrics.jsonl, so a script can read progress too."""
    import json

    typer.echo(json.dumps(record), err=True)


def _run_training(train, run) -> None:
    """Run a trainer, print where its result is; Ctrl-C (saved) exits 130, known errors one line.

    Under torchrun a worker leaves through `leave_worker`, past the interpreter shutdown where gloo can abort.
    """
    from safetensors import SafetensorError

    from imgen.api import ModelUnavailableError
    from imgen.checkpoints import CheckpointError, one_line
    from imgen.distributed import launched_by_torchrun, leave_worker
    from imgen.training import TrainingDiverged, TrainingInterrupted

    try:
        final = train(run, progress=_print_record)
    except TrainingInterrupted as stopped:
        typer.echo(f"imgen: {stopped}", err=True)
        if launched_by_torchrun():
            leave_worker(EXIT_INTERRUPTED)
        sys.exit(EXIT_INTERRUPTED)
    except TrainingDiverged as error:
        fail(str(error), EXIT_PARTIAL)
    except ModelUnavailableError as error:
        fail(str(error), EXIT_MODEL_UNAVAILABLE)
    except (ValueError, CheckpointError) as error:
        fail(str(error))
    except (OSError, SafetensorError) as error:  # an unwritable --out, a full disk: what was saved before stays
        where = f"{error.filename}: " if getattr(error, "filename", None) else ""
        fail(f"{where}{getattr(error, 'strerror', None) or one_line(error)}")
    typer.echo(str(final))
    if launched_by_torchrun():  # a finished run must not turn into a failed one at interpreter shutdown
        leave_worker(0)


WarmupOption = Annotated[
    int | None, typer.Option(min=0, help="Steps of linear warm-up at the start of the schedule (default 200).")
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", help="TOML file of options (keys as below with underscores, --out as out_dir); flags win."
    ),
]


@train_app.command("tokenizer")
def train_tokenizer_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Run folder: metrics, state, checkpoint.")] = Path("runs/tokenizer"),
    data: Annotated[str, typer.Option(help="'world' or a folder of images (captions not needed).")] = "world",
    init: Annotated[
        str | None, typer.Option(help="Start from these weights: a tokenizer file, or a checkpoint name or folder.")
    ] = None,
    size: Annotated[str, typer.Option(help="Model size: tiny, small or base.")] = "small",
    decoder_only: Annotated[
        bool, typer.Option(help="Train only the decoder: the token ids stay the same, so generators stay valid.")
    ] = False,
    decoder_blocks: Annotated[
        str | None, typer.Option(help="With --init: grow the decoder to these blocks per stage, e.g. 2,4.")
    ] = None,
    text_weight: Annotated[
        float,
        typer.Option(min=1.0, help="Weigh the pixels of the world's text blocks this many times in the loss."),
    ] = 1.0,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 4e-4,
    warmup_steps: WarmupOption = None,
    max_minutes: Annotated[float, typer.Option(help="Stop after this many minutes.")] = 60.0,
    max_steps: Annotated[int, typer.Option(help="Length of the cosine schedule.")] = 6_000,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(help="Torch threads (0 = default).")] = 0,
    config: ConfigOption = None,
) -> None:
    """Train the VQ image tokenizer; resumes from OUT if a run is there.

    Examples:

      imgen train tokenizer --out runs/vq --max-minutes 60

      imgen train tokenizer --data my_icons/ --init default --out runs/icons-vq --config vq.toml

      imgen train tokenizer --init default --decoder-only --decoder-blocks 5,8 --out runs/vq-decoder

      imgen train tokenizer --init default --decoder-only --text-weight 4 --out runs/vq-letters

      torchrun --nproc-per-node 2 -m imgen train tokenizer --out runs/vq
    """
    from imgen.tokenizer.train import TokenizerTrainConfig, train_tokenizer

    _run_training(train_tokenizer, _run_config(ctx, TokenizerTrainConfig, config, {"out": "out_dir"}))


@train_app.command("export")
def train_export_command(
    run: Annotated[Path, typer.Argument(help="A checkpoint folder (e.g. runs/generator/checkpoint).")],
    out: Annotated[Path, typer.Option(help="Folder to write the 16-bit checkpoint to.")],
    dtype: Annotated[str, typer.Option(help="fp16 or bf16.")] = "fp16",
    overwrite: Annotated[bool, typer.Option(help="Replace a checkpoint already in --out.")] = False,
) -> None:
    """Write a 16-bit copy of a checkpoint folder (what gets bundled or published).

    Example:

      imgen train export runs/generator/checkpoint --out release/icons && imgen weights add release/icons --name icons
    """
    from imgen.checkpoints import CheckpointError, export_checkpoint_folder

    if dtype not in ("fp16", "bf16"):
        fail(f"unknown dtype {dtype!r}; choose fp16 or bf16")
    try:
        typer.echo(str(export_checkpoint_folder(run, out, dtype, overwrite=overwrite)))
    except CheckpointError as error:
        fail(str(error), EXIT_MODEL_UNAVAILABLE)
    except FileExistsError as error:  # a checkpoint already in --out, without --overwrite
        fail(str(error))
    except OSError as error:  # a folder that cannot be written; nothing in it was replaced
        fail(f"cannot write into {out}: {error.strerror or error}")


@train_app.command("generator")
def train_generator_command(
    ctx: typer.Context,
    tokenizer: Annotated[
        Path | None, typer.Option(help="Trained image tokenizer (safetensors); default: the one of --init.")
    ] = None,
    data: Annotated[
        str, typer.Option(help="'world' or a folder of captioned images (see `imgen data check`).")
    ] = "world",
    init: Annotated[
        str | None, typer.Option(help="Fine-tune this checkpoint (name in weights.lock or folder), e.g. 'default'.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Run folder: metrics, state, checkpoint, samples.")] = Path(
        "runs/generator"
    ),
    size: Annotated[
        str, typer.Option(help="Model size when starting from scratch: tiny, small, base or large.")
    ] = "small",
    layers: Annotated[
        int, typer.Option(min=0, help="With --init: grow the checkpoint to this many blocks (outputs unchanged).")
    ] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Examples per step (global, over all processes).")] = 32,
    detail_batch: Annotated[int, typer.Option(min=1, help="Of those, how many also train the detail loss.")] = 8,
    box_masks: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Fraction of examples whose coarse mask is one rectangle, as edits make."),
    ] = 0.0,
    restyle_pairs: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Fraction of world examples that also show the scene in another style (for restyle)."
        ),
    ] = 0.0,
    object_weight: Annotated[
        float,
        typer.Option(
            min=0.0, help="Weight of the coarse loss on object cells (not the grid's most common token); others 1."
        ),
    ] = 1.0,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 6e-4,
    warmup_steps: WarmupOption = None,
    max_minutes: Annotated[float, typer.Option(help="Stop after this many minutes.")] = 60.0,
    max_steps: Annotated[int, typer.Option(help="Length of the learning-rate schedule.")] = 200_000,
    schedule: Annotated[
        str, typer.Option(help="cosine, or wsd: the peak held, then a linear decay over --decay-steps.")
    ] = "cosine",
    decay_steps: Annotated[int, typer.Option(min=0, help="With --schedule wsd: steps of the final decay.")] = 0,
    ema: Annotated[
        float, typer.Option(min=0.0, max=0.99999, help="Save an average of the weights (e.g. 0.999); 0: the weights.")
    ] = 0.0,
    sample_minutes: Annotated[float, typer.Option(help="Save a grid of samples every this many minutes.")] = 10.0,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(help="Torch threads (0 = default).")] = 0,
    compile: Annotated[
        bool, typer.Option("--compile", help="Compile the training step (torch.compile; a CPU needs a C++ compiler).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Train the generator; resumes from OUT if a run is there. Ctrl-C saves, then stops.

    Under `torchrun --nproc-per-node N` the same command trains with DDP (gloo on
    CPU, NCCL on GPU): each process takes its share of every batch, rank 0 writes.

    Examples:

      imgen train generator --tokenizer runs/vq/last.safetensors --out runs/gen --max-minutes 90

      imgen train generator --data my_icons/ --init default --out runs/icons --max-minutes 30

      imgen train generator --init default --layers 10 --out runs/deeper --max-minutes 90

      imgen train generator --init default --out runs/long --schedule wsd --ema 0.999 --max-minutes 100

      imgen train generator --init default --restyle-pairs 0.25 --out runs/restyle --max-minutes 30

      torchrun --nproc-per-node 2 -m imgen train generator --tokenizer runs/vq/last.safetensors
    """
    from imgen.generator_train import GeneratorTrainConfig, train_generator

    _run_training(train_generator, _run_config(ctx, GeneratorTrainConfig, config, {"out": "out_dir"}))


@train_app.command("plot")
def train_plot_command(
    run: Annotated[Path, typer.Argument(help="A run folder with metrics.jsonl.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="PNG to write (default RUN/loss.png).")] = None,
) -> None:
    """Draw a run's loss curves as a PNG.

    Example:

      imgen train plot runs/generator -o loss.png
    """
    from imgen.io import OutputFolderError
    from imgen.plot import plot_run

    try:
        typer.echo(str(plot_run(run, output)))
    except (FileNotFoundError, ValueError, OutputFolderError) as error:
        fail(str(error))
    except OSError as error:  # the write itself failed (disk full, ...)
        fail(f"cannot write {output or 'the plot'}: {error}")


data_app = typer.Typer(
    help="Check a folder of captioned images before training on it.\n\n"
    "Captions come from metadata.jsonl / metadata.csv (file_name, text) or sidecar .txt files.\n\n"
    "Example:\n\n  imgen data check my_icons/",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(data_app, name="data")


@data_app.command("check")
def data_check(
    folder: Annotated[Path, typer.Argument(help="Folder of images with captions.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Report what a training folder holds: counts, sizes, caption lengths and every problem.

    Exit code 0 when every image is readable and captioned, 1 when some files have problems
    (training still runs, skipping them), 2 when there is nothing to train on.
    """
    import json

    from imgen.folder_data import scan_folder

    try:
        report = scan_folder(folder).summary()
    except ValueError as error:
        fail(str(error))
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        words = report["caption_words"]
        typer.echo(f"{report['folder']}: {report['images']} images, {report['captioned']} with captions")
        if report["images"]:
            sizes = ", ".join(f"{k} ({v})" for k, v in report["sizes"].items())
            typer.echo(f"  sizes: {sizes}; sides {report['min_side']}..{report['max_side']} px")
        if words["mean"] is not None:
            typer.echo(f"  caption words: min {words['min']}, mean {words['mean']}, max {words['max']}")
        for line in report["problems"]:
            typer.echo(f"  problem: {line}")
    if not report["images"]:
        raise typer.Exit(EXIT_BAD_INPUT)
    if report["problems"]:
        raise typer.Exit(EXIT_PARTIAL)


def internal_error(error: Exception) -> NoReturn:
    """An exception no command turned into a message: a defect. One line and exit 70, the traceback on request.

    Why not let it propagate: Python then exits 1, which imgen documents as
    "some images were written", and a script would go on as if they were.
    """
    if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
        raise error
    name = type(error).__name__
    typer.echo(f"imgen: internal error: {name}: {error} (run with {DEBUG_ENV}=1 for the traceback)", err=True)
    sys.exit(EXIT_INTERNAL)


def main() -> None:
    """Entry point: run the app; Ctrl-C says so in one line and exits 130, whatever the Typer version.

    Why not plain `app()`: Typer turns Ctrl-C into a silent exit 130 (recent
    versions) or click's "Aborted!" and exit 1 (older ones), before any handler
    here could see it. Run without standalone mode, the interrupt and usage
    errors come back here and are reported the same way everywhere.
    """
    try:
        code = app(standalone_mode=False)
    except (KeyboardInterrupt, typer.Abort):
        code = EXIT_INTERRUPTED
    except Exception as error:  # usage errors: Click's ClickException, or that of the Click that Typer vendors
        show, exit_code = getattr(error, "show", None), getattr(error, "exit_code", None)
        if not (callable(show) and isinstance(exit_code, int)):
            internal_error(error)
        show()
        sys.exit(exit_code)
    if code == EXIT_INTERRUPTED:
        typer.echo("imgen: interrupted", err=True)
    sys.exit(code if isinstance(code, int) else 0)
