"""The `imgen` command line: a thin Typer layer over the library.

Each command parses its options, calls one library function and turns known
errors into one line on stderr and an exit code (0 ok, 1 partial failure,
2 usage or bad input, 3 model unavailable, 130 interrupted). Results go to
stdout, everything else to stderr. Heavy imports happen inside commands so
`imgen --help` never loads torch.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

EXIT_BAD_INPUT = 2

app = typer.Typer(
    name="imgen",
    help="Generate and edit images with a small token model, offline on a CPU.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
world_app = typer.Typer(
    help="The procedural world imgen is trained and judged on.\n\n"
    'Examples:\n\n  imgen world render "three red stars above a dog" -o gt.png --seed 1\n\n'
    "  imgen world sample -n 16 -o grid.png",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(world_app, name="world")


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print one line to stderr and exit with `code`."""
    typer.echo(f"imgen: error: {message}", err=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    typer.echo(f"imgen: warning: {message}", err=True)


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


EXIT_PARTIAL = 1
EXIT_MODEL_UNAVAILABLE = 3


@app.command("generate")
def generate(
    prompt: Annotated[str, typer.Argument(help="What to draw.")],
    output: Annotated[
        str | None, typer.Option("-o", "--output", help="PNG path; may use {index}, {seed}, {slug}.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the first image; image i uses seed + i.")] = 0,
    count: Annotated[int, typer.Option("-n", "--count", help="How many images.", min=1, max=1000)] = 1,
    cfg: Annotated[float, typer.Option(help="Classifier-free guidance scale (1 = off).")] = 3.0,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.", min=0.0)] = 1.0,
    top_k: Annotated[int, typer.Option(help="Keep the k most likely tokens (0 = all).", min=0)] = 0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass (1 = off).", min=0.0, max=1.0)] = 1.0,
    coarse_steps: Annotated[int, typer.Option(help="Parallel steps of the coarse phase.", min=1, max=64)] = 8,
    sampler: Annotated[str, typer.Option(help="two-phase (default) or raster (baseline).")] = "two-phase",
    model: Annotated[str | None, typer.Option(help="Checkpoint name or folder (default: bundled).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    preview: Annotated[bool, typer.Option(help="Draw the image filling in on a terminal.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per image on stdout.")] = False,
) -> None:
    """Generate images from a prompt with the bundled (or a given) checkpoint.

    Examples:

      imgen generate "a red circle in the top left"

      imgen generate 'three blue stars above a dog, the word "HI" at the bottom' -n 4 -o "out/{slug}-{seed}.png"
    """
    import json
    import time

    from imgen.api import ModelUnavailableError, load
    from imgen.checkpoints import CheckpointError
    from imgen.io import OutputExistsError, save_png
    from imgen.outputs import image_metadata, output_path, parameters_text
    from imgen.preview import TerminalPreview
    from imgen.sampler import SamplerConfig

    if not prompt.strip():
        fail("the prompt is empty")
    if sampler not in ("two-phase", "raster"):
        fail(f"unknown sampler {sampler!r}; choose two-phase or raster")
    paths = [output_path(output, prompt, seed + i, i, count) for i in range(count)]
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        fail(f"{existing[0]} exists; pass --overwrite to replace it")
    try:
        pipe = load(model)
    except (ModelUnavailableError, CheckpointError) as error:
        fail(str(error), EXIT_MODEL_UNAVAILABLE)
    unknown = pipe.unknown_words(prompt)
    if unknown:
        warn("words this checkpoint never saw: " + ", ".join(unknown))
    config = SamplerConfig(
        coarse_steps=coarse_steps, cfg=cfg, temperature=temperature, top_k=top_k, top_p=top_p, mode=sampler
    )
    show = preview and TerminalPreview.wanted()
    failures = 0
    for i, path in enumerate(paths):
        image_seed = seed + i
        terminal = TerminalPreview() if show else None

        def draw(phase: str, step: int, total: int, images: list, terminal=terminal) -> None:
            terminal.show(images[0], f"{phase} {step}/{total}")

        start = time.perf_counter()
        image = pipe.generate([prompt], sampler=config, seeds=[image_seed], callback=draw if terminal else None)[0]
        if terminal:
            terminal.clear()
        meta = image_metadata(prompt, config, image_seed, image.width, pipe.name, pipe.sha256)
        text = {"parameters": parameters_text(prompt, config, image_seed, image.width, pipe.name, pipe.sha256)}
        try:
            save_png(image, path, overwrite=overwrite, text=text, metadata=meta)
        except (OutputExistsError, OSError) as error:
            warn(str(error))
            failures += 1
            continue
        seconds = round(time.perf_counter() - start, 3)
        if as_json:
            typer.echo(json.dumps({"path": str(path), **meta, "seconds": seconds}, ensure_ascii=False))
        else:
            typer.echo(f"{path}\tseed={image_seed}")
    if failures:
        if failures == len(paths):
            fail("no image was written", EXIT_BAD_INPUT)
        raise typer.Exit(EXIT_PARTIAL)


train_app = typer.Typer(
    help="Train the image tokenizer or the generator (resumable, time-budgeted).\n\n"
    "Examples:\n\n  imgen train tokenizer --out runs/vq --max-minutes 60\n\n"
    "  imgen train generator --tokenizer runs/vq/last.safetensors --out runs/gen --max-minutes 90",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(train_app, name="train")


@train_app.command("tokenizer")
def train_tokenizer_command(
    out: Annotated[Path, typer.Option(help="Run folder: metrics, state, checkpoint.")] = Path("runs/tokenizer"),
    data: Annotated[str, typer.Option(help="'world' or a folder of PNG/JPEG/WebP images.")] = "world",
    size: Annotated[str, typer.Option(help="Model size: tiny, small or base.")] = "small",
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 4e-4,
    max_minutes: Annotated[float, typer.Option(help="Stop after this many minutes.")] = 60.0,
    max_steps: Annotated[int, typer.Option(help="Length of the cosine schedule.")] = 6_000,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(help="Torch threads (0 = default).")] = 0,
) -> None:
    """Train the VQ image tokenizer; resumes from OUT if a run is there."""
    from imgen.tokenizer.config import VQ_SIZES
    from imgen.tokenizer.train import TokenizerTrainConfig, train_tokenizer

    if size not in VQ_SIZES:
        fail(f"unknown size {size!r}; choose one of {', '.join(VQ_SIZES)}")
    if data != "world" and not Path(data).is_dir():
        fail(f"{data}: not a folder (use 'world' for the procedural world)")
    config = TokenizerTrainConfig(
        size=size,
        data=data,
        out_dir=str(out),
        batch_size=batch_size,
        lr=lr,
        max_minutes=max_minutes,
        max_steps=max_steps,
        seed=seed,
        threads=threads,
    )
    final = train_tokenizer(config, progress=lambda record: typer.echo(str(record), err=True))
    typer.echo(str(final))


@train_app.command("generator")
def train_generator_command(
    tokenizer: Annotated[Path, typer.Option(help="Trained image tokenizer (safetensors).")],
    out: Annotated[Path, typer.Option(help="Run folder: metrics, state, checkpoint.")] = Path("runs/generator"),
    size: Annotated[str, typer.Option(help="Model size: tiny, small, base or large.")] = "small",
    batch_size: Annotated[int, typer.Option(min=1, help="Examples per step for the coarse (layout) loss.")] = 32,
    detail_batch: Annotated[int, typer.Option(min=1, help="Of those, how many also train the detail loss.")] = 8,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 6e-4,
    max_minutes: Annotated[float, typer.Option(help="Stop after this many minutes.")] = 60.0,
    max_steps: Annotated[int, typer.Option(help="Length of the cosine schedule.")] = 200_000,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int, typer.Option(help="Torch threads (0 = default).")] = 0,
) -> None:
    """Train the generator on the world; resumes from OUT if a run is there."""
    from imgen.generator_train import GeneratorTrainConfig, train_generator
    from imgen.model import GPT_SIZES

    if size not in GPT_SIZES:
        fail(f"unknown size {size!r}; choose one of {', '.join(GPT_SIZES)}")
    if not tokenizer.is_file():
        fail(f"{tokenizer}: no such tokenizer checkpoint")
    config = GeneratorTrainConfig(
        tokenizer=str(tokenizer),
        out_dir=str(out),
        size=size,
        batch_size=batch_size,
        detail_batch=detail_batch,
        lr=lr,
        max_minutes=max_minutes,
        max_steps=max_steps,
        seed=seed,
        threads=threads,
    )
    final = train_generator(config, progress=lambda record: typer.echo(str(record), err=True))
    typer.echo(str(final))


def main() -> None:
    """Entry point: run the app, mapping Ctrl-C to exit code 130."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("imgen: interrupted", err=True)
        sys.exit(130)
