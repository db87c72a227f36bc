"""The Python API: `load()` a checkpoint, then `generate` images from prompts.

    from imgen import load
    pipe = load()                                   # the bundled checkpoint
    images = pipe.generate(["a red circle"], seed=0)   # list of PIL images

A checkpoint is a folder with `tokenizer.safetensors` (the VQ image tokenizer)
and `generator.safetensors` (the transformer, with the prompt tokenizer in its
metadata). The CLI calls exactly these functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from imgen.checkpoints import (
    CHECKPOINT_FILES,
    CheckpointError,
    load_checkpoint,
    load_strict,
    load_tokenizer,
    one_line,
)
from imgen.model import Generator, GPTConfig
from imgen.precision import DTYPES, resolve_precision
from imgen.sampler import SamplerConfig, sample_tokens
from imgen.shards import run_sharded
from imgen.text import PromptEncoder
from imgen.tokenizer import VQTokenizer
from imgen.tokenizer.token_ids import TOKEN_IDS_KEY, pairing_problem

BUNDLED = Path(__file__).parent / "weights" / "default"
TOKENIZER_FILE, GENERATOR_FILE = CHECKPOINT_FILES

# callback(phase, step, total, preview image per prompt)
PreviewCallback = Callable[[str, int, int, list[Image.Image]], None]


class ModelUnavailableError(RuntimeError):
    """No usable checkpoint at the requested place; the message says what to do."""


def save_generator(model: Generator, prompts: PromptEncoder, path: Path, extra: dict[str, str] | None = None) -> None:
    """Write the generator (16-bit or fp32 as its weights are) with config and prompt tokenizer in the header."""
    from imgen.checkpoints import save_checkpoint

    metadata = {
        **(extra or {}),  # first, so a stray key can never overwrite what the file's loader relies on
        "kind": GENERATOR_KIND,
        "format_version": GENERATOR_FORMAT_VERSION,
        "config": model.config.to_json(),
        "text_tokenizer": prompts.to_json(),
    }
    save_checkpoint(path, {k: v.detach() for k, v in model.state_dict().items()}, metadata)


GENERATOR_KIND = "imgen-generator"
GENERATOR_FORMAT_VERSION = "1"
UNDRAWN_GREY = 0.5  # how coarse previews paint cells the sampler has not drawn yet (on the [0, 1] scale)


def load_generator(path: Path) -> tuple[Generator, PromptEncoder, dict[str, str]]:
    """Rebuild the generator and its prompt encoder from one safetensors file (strict).

    Every way the header can be wrong (another kind or format version, a
    missing or malformed config, an unreadable prompt tokenizer) is a
    `CheckpointError` naming the file, so the command line can say it in one
    line: a file from a newer imgen must not end in a traceback.
    """
    tensors, metadata = load_checkpoint(path)
    if metadata.get("kind") != GENERATOR_KIND:
        raise CheckpointError(f"{path}: not an imgen generator checkpoint (kind={metadata.get('kind')!r})")
    version = metadata.get("format_version")
    if version != GENERATOR_FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: generator format version {version!r} is not supported (expected {GENERATOR_FORMAT_VERSION})"
        )
    try:
        config = GPTConfig.from_json(metadata["config"])
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: the config in the header is missing or invalid ({one_line(error)})") from None
    with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten; the caller's RNG is left alone
        model = Generator(config)
    load_strict(model, tensors, path)
    try:
        prompts = PromptEncoder.from_json(metadata["text_tokenizer"], max_length=config.text_len)
    except Exception as error:  # the tokenizers library raises its own exception types
        raise CheckpointError(
            f"{path}: the prompt tokenizer in the header is missing or invalid ({one_line(error)})"
        ) from None
    return model.eval(), prompts, metadata


def check_pair(tokenizer: VQTokenizer, generator: Generator, folder: Path, generator_header: dict[str, str]) -> None:
    """Refuse a tokenizer and generator that do not belong together.

    Grids or codebook sizes that differ are a tokenizer of another size or
    geometry. A generator also records the fingerprint of the token ids it
    was trained on (`imgen.tokenizer.token_ids`); a tokenizer of the same size
    trained apart gives other ids for the same pictures, and would load and
    draw noise. A tokenizer whose decoder alone was trained again keeps its
    ids, and pairs. Generators saved before the fingerprint existed are
    checked by size alone.
    """
    t, g = tokenizer.config, generator.config
    ours = (tokenizer.coarse_vocab, tokenizer.detail_vocab, t.coarse_grid, t.detail_grid)
    theirs = (g.coarse_vocab, g.detail_vocab, g.coarse_grid, g.detail_grid)
    if ours != theirs:
        raise CheckpointError(
            f"{folder}: the tokenizer (codebooks {ours[0]}/{ours[1]}, grids {ours[2]}/{ours[3]}) does not match "
            f"the generator (codebooks {theirs[0]}/{theirs[1]}, grids {theirs[2]}/{theirs[3]})"
        )
    problem = pairing_problem(tokenizer, generator_header.get(TOKEN_IDS_KEY))
    if problem:
        raise CheckpointError(f"{folder}: {problem}; keep the two files of a checkpoint together")


@dataclass
class Pipeline:
    """A loaded checkpoint: image tokenizer, generator and prompt encoder."""

    tokenizer: VQTokenizer
    generator: Generator
    prompts: PromptEncoder
    name: str
    sha256: str  # the generator file's digest
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    precision: str = "fp32"
    """What the generator runs in: "fp32" or "bf16" (`imgen.precision`)."""
    tokenizer_sha256: str | None = None
    """The image tokenizer file's digest: a retrained decoder changes the pixels, not the generator's file."""

    @property
    def image_size(self) -> int:
        return self.tokenizer.config.image_size

    def unknown_words(self, prompt: str) -> list[str]:
        return self.prompts.unknown_words(prompt)

    def ignored_tail(self, prompt: str) -> str:
        """The end of `prompt` past the generator's prompt length, which it does not read ("" if it fits)."""
        return self.prompts.ignored_tail(prompt)

    def text_ids(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt ids (B, T) and the empty prompt's ids (1, T), the unguided half of guidance."""
        text = torch.tensor([self.prompts.encode(p) for p in prompts], dtype=torch.long)
        null = torch.tensor([self.prompts.encode("")], dtype=torch.long)
        return text, null

    @torch.no_grad()
    def decode(self, coarse: torch.Tensor, detail: torch.Tensor | None) -> list[Image.Image]:
        """Token grids -> PIL images (detail None gives the coarse preview).

        Tokens not drawn yet (the mask id or -1, in previews) are decoded as
        the codebook's neutral entry (all-zero code; id 0 is its corner, the
        most extreme code), and undrawn coarse cells are then painted
        `UNDRAWN_GREY`, so a preview shows which cells are still open instead
        of inventing them; undrawn detail rows show the coarse picture alone.
        """
        g = self.generator.config
        drawn = (coarse >= 0) & (coarse < g.coarse_vocab)
        undrawn = (~drawn).view(-1, 1, g.coarse_grid, g.coarse_grid)
        c = torch.where(drawn, coarse, self.tokenizer.quantizer.coarse_fsq.centre_id).view(
            -1, g.coarse_grid, g.coarse_grid
        )
        d = None
        if detail is not None:
            neutral = self.tokenizer.quantizer.detail_fsq.centre_id
            d = torch.where((detail >= 0) & (detail < g.detail_vocab), detail, neutral)
            d = d.view(-1, g.detail_grid, g.detail_grid)
        pixels = self.tokenizer.decode(c, d)  # (B, 3, H, W) in [0, 1]
        if undrawn.any():
            cover = torch.nn.functional.interpolate(undrawn.float(), size=pixels.shape[-2:], mode="nearest") > 0
            pixels = torch.where(cover, torch.tensor(UNDRAWN_GREY, dtype=pixels.dtype), pixels)
        array = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return [Image.fromarray(a) for a in array]

    @torch.no_grad()
    def generate(
        self,
        prompts: list[str] | str,
        seed: int = 0,
        sampler: SamplerConfig | None = None,
        seeds: list[int] | None = None,
        callback: PreviewCallback | None = None,
        shards: int | None = None,
    ) -> list[Image.Image]:
        """One image per prompt; prompt i uses seed `seed + i` unless `seeds` are given.

        Without a callback, a batch is split into `shards` parts (default: one
        per torch thread), each run on its own thread (`imgen.shards`); the
        images are the same either way. `shards=1` runs the batch whole, as a
        call with a callback always does (the preview follows one batch).
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if shards is not None and shards < 1:
            raise ValueError(f"shards must be at least 1, not {shards}")
        if not prompts:
            return []
        for prompt in prompts:
            if not prompt.strip():
                raise ValueError("the prompt is empty")
        seeds = seeds if seeds is not None else [seed + i for i in range(len(prompts))]
        if len(seeds) != len(prompts):
            raise ValueError(f"give one seed per prompt: {len(seeds)} seeds for {len(prompts)} prompts")
        text, null = self.text_ids(prompts)
        progress = None
        if callback is not None:

            def progress(phase: str, step: int, total: int, coarse: torch.Tensor, detail: torch.Tensor) -> None:
                if phase == "coarse":
                    callback(phase, step, total, self.decode(coarse, None))
                else:
                    callback(phase, step, total, self.decode(coarse, detail))

        config = sampler or self.sampler
        if progress is None:  # a batch without a preview runs as one shard per core (`imgen.shards`)

            def shard(start: int, end: int) -> list[Image.Image]:
                coarse, detail = sample_tokens(self.generator, text[start:end], null, config, seeds[start:end])
                return self.decode(coarse, detail)

            return run_sharded(shard, len(prompts), shards)
        coarse, detail = sample_tokens(self.generator, text, null, config, seeds, callback=progress)
        return self.decode(coarse, detail)


def resolve_checkpoint(model: str | Path | None) -> Path:
    """A checkpoint folder from a name in weights.lock, a path, or None / "default" (the bundled one).

    Resolution (and the hash check against the lock) lives in `imgen.weights`;
    here its errors become `ModelUnavailableError`, which the CLI reports with exit code 3.
    """
    from imgen.weights import WeightsError, resolve_model

    try:
        return resolve_model(None if model is None else str(model))
    except WeightsError as error:
        raise ModelUnavailableError(str(error)) from None


def load(model: str | Path | None = None, threads: int | None = None, precision: str = "auto") -> Pipeline:
    """Load a checkpoint folder (default: the bundled one) into a ready `Pipeline`.

    `precision` is "auto" (bf16 where the CPU multiplies bf16 natively, else
    fp32), "fp32" or "bf16"; see `imgen.precision`.
    """
    chosen = resolve_precision(precision)  # a bad value fails before any file is read
    if threads:
        torch.set_num_threads(threads)
    folder = resolve_checkpoint(model)
    tokenizer = load_tokenizer(folder / TOKENIZER_FILE).eval()
    generator, prompts, header = load_generator(folder / GENERATOR_FILE)
    check_pair(tokenizer, generator, folder, header)
    from imgen.weights import file_sha256

    digest = file_sha256(folder / GENERATOR_FILE)
    # What `--from-image` passes back as --model: the lock name or the path as given, never a folder's bare
    # name (a user's folder called "default" would be taken for the bundled checkpoint, "checkpoint" for nothing).
    name = "default" if model is None or folder == BUNDLED else str(model)
    return Pipeline(
        tokenizer=tokenizer,
        generator=generator.to(DTYPES[chosen]),
        prompts=prompts,
        name=name,
        sha256=digest,
        precision=chosen,
        tokenizer_sha256=file_sha256(folder / TOKENIZER_FILE),
    )
