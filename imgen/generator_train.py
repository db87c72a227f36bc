"""Training the generator: images -> image tokens -> masked coarse loss + causal detail loss.

Each step takes one global batch (world scenes rendered on the fly, or a
user's captioned folder), turns images into coarse and detail token grids with
the frozen image tokenizer, and captions into prompt ids. The coarse grid is
masked with a ratio drawn from the cosine schedule the sampler uses (so every
sampling step has been practised); the detail grid is learnt by teacher
forcing on every `batch_size // detail_batch`-th example (the detail pass is
4x longer, and layout, which decides prompt following, is learnt from the
coarse loss); 10% of prompts become the empty prompt so classifier-free
guidance has an unconditional model to push against.

With `restyle_pairs`, that fraction of world examples also shows the coarse
phase a reference: the same scene drawn in one of the other styles, a share
of its cells drawn per example visible (the rest [MASK]), and the detail
phase that reference's detail tokens under the visible cells; half of those
are captioned by their style alone. The target is
the example as captioned, so the model learns to keep the reference's layout
and take the look from the prompt (`imgen.editing.restyle`).

Everything random in a step (masks, prompt dropout) comes from a generator
seeded by (seed, step), and the data position is a global stream index, so:

- an interrupted run (Ctrl-C saves first, or a kill after the last periodic
  save) resumes with the same losses at the same steps as an unbroken one;
- under `torchrun` each rank takes its slice of the same global batch and the
  losses are sums over global counts, so N processes follow the loss curve of
  one process (see `imgen.distributed`).

The loop stops by itself at a time budget, appends metrics as JSON lines,
writes a usable checkpoint folder (tokenizer + generator) every few minutes and
a grid of samples of fixed prompts, so progress can be seen, not only read.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

import torch
import torch.nn.functional as F

from imgen.api import GENERATOR_FILE, TOKENIZER_FILE, Pipeline, load_generator, save_generator
from imgen.checkpoints import load_tokenizer, read_header
from imgen.distributed import Rank, all_sum, any_rank, joined
from imgen.growth import add_prompt_words, add_reference_input, deepen
from imgen.model import GPT_SIZES, Generator, GPTConfig, covering_cells
from imgen.text import PromptEncoder, train_text_tokenizer
from imgen.tokenizer.token_ids import TOKEN_IDS_KEY, pairing_problem, token_id_fingerprint
from imgen.train_config import ConfigError, check_limits
from imgen.training import (
    MetricsLog,
    NonFiniteGuard,
    StopRequest,
    TimeBudget,
    TrainingInterrupted,
    autocast_context,
    cosine_lr,
    load_training_state,
    read_training_metadata,
    resume_changes,
    save_training_state,
    wsd_lr,
)
from imgen.weight_average import AVERAGE_MARK, WeightAverage
from imgen.world.vocab import STYLES

if TYPE_CHECKING:
    from imgen.tokenizer.model import VQTokenizer
    from imgen.world.dataset import WorldExamples

WORLD_SAMPLE_PROMPTS = (
    "a red circle",
    "a blue square in the top left",
    "two yellow stars",
    "a cat",
    "a car left of a tree",
    'the word "HI"',
    "a green triangle on a black background",
    "a rocket in pixel art style",
)


@dataclass
class GeneratorTrainConfig:
    """Options of `imgen train generator`; every field is a CLI flag or a TOML key."""

    tokenizer: str = ""  # tokenizer.safetensors; empty: the one of `init`
    data: str = "world"  # "world" or a folder of captioned images
    init: str = ""  # a checkpoint (name in weights.lock or folder) to fine-tune; empty: from scratch
    out_dir: str = "runs/generator"
    size: str = "small"
    layers: int = 0  # with `init`: grow the checkpoint to this many blocks, outputs unchanged (imgen.growth); 0: keep
    batch_size: int = 32  # global: split over torchrun processes
    detail_batch: int = 8  # examples of each batch that also train the (4x longer) detail pass
    lr: float = 6e-4
    weight_decay: float = 0.05
    warmup_steps: int = 200
    max_steps: int = 200_000
    schedule: str = "cosine"  # or "wsd": warm-up, the peak held, a linear decay over the last `decay_steps`
    decay_steps: int = 0  # with "wsd": steps of the final decay (0: hold the peak to the end)
    ema: float = 0.0  # >0: the checkpoint holds an average of the weights, each step moving it by 1 - ema
    max_minutes: float = 60.0
    seed: int = 0
    cfg_dropout: float = 0.1
    box_masks: float = 0.0  # fraction of examples whose coarse mask is one rectangle of cells, as `imgen edit` makes
    restyle_pairs: float = 0.0  # fraction of (world) examples whose two phases also see the scene in another style
    object_weight: float = 1.0  # weight in the coarse loss of a grid's object cells (`object_cells`) against 1
    text_len: int = 48
    log_every: int = 20
    checkpoint_minutes: float = 5.0
    sample_minutes: float = 10.0  # a grid of samples every this many minutes (0: only at the end)
    sample_prompts: int = 8
    caption_corpus: int = 20_000  # world captions the prompt vocabulary is learnt from
    threads: int = 0
    compile: bool = False  # torch.compile the training step (needs a C++ compiler on a CPU)

    LIMITS: ClassVar[dict[str, tuple[float, float | None]]] = {
        "layers": (0, None), "batch_size": (1, None), "detail_batch": (1, None), "lr": (0.0, None),
        "weight_decay": (0.0, None), "warmup_steps": (0, None), "max_steps": (0, None), "max_minutes": (0.0, None),
        "cfg_dropout": (0.0, 1.0), "box_masks": (0.0, 1.0), "restyle_pairs": (0.0, 1.0), "text_len": (1, None),
        "object_weight": (0.0, None),
        "log_every": (1, None),
        "checkpoint_minutes": (0.0, None), "sample_minutes": (0.0, None), "sample_prompts": (0, None),
        "caption_corpus": (1, None), "threads": (0, None), "decay_steps": (0, None), "ema": (0.0, 0.99999),
    }  # fmt: skip
    SCHEDULES: ClassVar[tuple[str, ...]] = ("cosine", "wsd")

    def __post_init__(self) -> None:
        check_limits(self, self.LIMITS)
        if self.schedule not in self.SCHEDULES:
            raise ConfigError(f"schedule: {self.schedule!r} is not one of {', '.join(self.SCHEDULES)}")
        if self.size not in GPT_SIZES:
            raise ConfigError(f"unknown size {self.size!r}; choose one of {', '.join(GPT_SIZES)}")

    def check_can_start(self) -> None:
        """`ConfigError` naming what a run with these options lacks (`train_generator` and the CLI both ask)."""
        if self.tokenizer and not Path(self.tokenizer).is_file():
            raise ConfigError(f"{self.tokenizer}: no such tokenizer checkpoint")
        if not self.tokenizer and not self.init:
            raise ConfigError(
                "give the image tokenizer (--tokenizer FILE) or a checkpoint to start from (--init NAME|PATH)"
            )
        if self.layers and not self.init:
            raise ConfigError(
                "--layers grows a trained checkpoint: give it with --init (from scratch, --size sets the depth)"
            )
        if self.data != "world" and not Path(self.data).is_dir():
            raise ConfigError(f"{self.data}: not a folder (use 'world' for the procedural world)")
        if self.restyle_pairs > 0 and self.data != "world":
            raise ConfigError("--restyle-pairs draws scenes in two styles: it needs --data world")
        if self.compile:
            compiler_problem = missing_cpp_compiler()
            if compiler_problem:
                raise ConfigError(f"--compile needs a working C++ compiler ({compiler_problem}); run without it")

    def learning_rate(self, step: int) -> float:
        """The learning rate of `step` under this run's schedule."""
        if self.schedule == "wsd":
            return wsd_lr(step, self.max_steps, self.warmup_steps, self.decay_steps, self.lr)
        return cosine_lr(step, self.max_steps, self.warmup_steps, self.lr)


def missing_cpp_compiler() -> str | None:
    """Why `torch.compile` cannot build CPU kernels here (no C++ compiler), or None: asked before a run starts.

    Without this check the first compiled step fails deep inside inductor,
    after the data and models have loaded, with a long traceback.
    """
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler  # inductor's own search: $CXX, then g++ / clang++

        get_cpp_compiler()
    except Exception as error:  # inductor raises its own types; any of them means no compiler to use
        return " ".join(str(error).split())[:200] or type(error).__name__
    return None


# ---------------------------------------------------------------- data


class ExampleSource(Protocol):
    def batch(self, positions: range) -> tuple[torch.Tensor, list[str]]: ...


def world_captions(config: GeneratorTrainConfig) -> list[str]:
    """World captions (specs only, no rendering: fast) to learn the prompt vocabulary from."""
    from imgen.world.captions import caption
    from imgen.world.examples import example_rng
    from imgen.world.sampling import random_spec

    captions = []
    for index in range(config.caption_corpus):
        rng = example_rng(config.seed + 1_000_003, "train", index)
        captions.append(caption(random_spec(rng, "train"), rng))
    return captions


def open_data(
    config: GeneratorTrainConfig, image_size: int, log: Callable[[dict], None]
) -> tuple[ExampleSource, list[str] | None]:
    """The example source and a folder's captions (None for the world, whose captions are drawn when needed)."""
    if config.data == "world":
        from imgen.world.dataset import WorldExamples

        return WorldExamples(config.seed, image_size), None
    from imgen.folder_data import scan_folder
    from imgen.folder_examples import FolderExamples

    scan = scan_folder(config.data)
    summary = scan.summary()
    log({"event": "data", **{k: summary[k] for k in ("folder", "images", "captioned")}, "problems": scan.problems()})
    if not scan.captioned:
        raise ValueError(f"{config.data}: no captioned images to train the generator on")
    return FolderExamples(scan.captioned, config.seed, image_size), [item.caption or "" for item in scan.captioned]


# ---------------------------------------------------------------- loss


def step_generator(seed: int, step: int) -> torch.Generator:
    """The randomness of one step, independent of what came before: resuming replays it exactly."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) % (2**63))


def draw_coarse_mask(batch: int, cells: int, generator: torch.Generator) -> torch.Tensor:
    """(batch, cells) bool: each row masked with a cosine-distributed ratio, at least one cell."""
    ratio = torch.cos(math.pi / 2 * torch.rand(batch, generator=generator))
    n_masked = (ratio * cells).ceil().clamp(1, cells).long()
    ranks = torch.rand(batch, cells, generator=generator).argsort(-1).argsort(-1)
    return ranks < n_masked[:, None]


def add_box_masks(masked: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Replace a `fraction` of the rows of a (batch, cells) mask by one rectangle of 2 to side/2+1 cells a side.

    Why: an edit hides one object's cells and keeps everything around them, so
    the coarse phase must draw a whole object into a hole from the prompt. The
    cosine-ratio masks of `draw_coarse_mask` scatter their cells: at the low
    ratios an edit has, they almost never hide all of an object, and the model
    learns to fill a hole with what its neighbours show. Rectangles of the size
    of a world object (2-5 cells of an 8x8 grid) practise the edit's case.
    """
    batch, cells = masked.shape
    side = math.isqrt(cells)
    if side * side != cells or side < 2:
        return masked
    boxed = torch.rand(batch, generator=generator) < fraction
    high = side // 2 + 2
    height = torch.randint(2, high, (batch,), generator=generator)
    width = torch.randint(2, high, (batch,), generator=generator)
    top = (torch.rand(batch, generator=generator) * (side - height + 1)).long()
    left = (torch.rand(batch, generator=generator) * (side - width + 1)).long()
    rows = torch.arange(side).repeat_interleave(side)
    cols = torch.arange(side).repeat(side)
    box = (
        (rows >= top[:, None])
        & (rows < (top + height)[:, None])
        & (cols >= left[:, None])
        & (cols < (left + width)[:, None])
    )
    return torch.where(boxed[:, None], box, masked)


@dataclass(frozen=True)
class RestylePairs:
    """Which rows of a global batch get a reference (`paired`, (B,) bool), drawn in which style (`picks`, (B,)
    indices into the styles other than the scene's own, `imgen.world.examples.other_styles`) and which of
    its coarse cells each shows (`visible`, (B, C) bool); `style_only` (B,) bool marks the rows whose caption
    is to name the style alone, in sentence frame `frames` (B,)."""

    paired: torch.Tensor
    picks: torch.Tensor
    visible: torch.Tensor
    style_only: torch.Tensor
    frames: torch.Tensor

    def references(
        self, grids: torch.Tensor, rows: torch.Tensor, none_id: int, cover: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(b, N) reference inputs of a shard: the references' `grids` (one per paired row of the shard,
        in order) where visible, `none_id` elsewhere and in every unpaired row. `rows`: the shard's global rows.
        Coarse grids as they are; detail grids with `cover` (`imgen.model.covering_cells`), each position
        visible where the coarse cell covering it is."""
        visible = self.visible if cover is None else self.visible[:, cover]
        out = torch.full((len(rows), visible.shape[1]), none_id, dtype=torch.long)
        paired = self.paired[rows]
        shown = visible[rows][paired]
        out[paired] = torch.where(shown, grids.to(out.device), torch.full_like(grids, none_id))
        return out


def draw_restyle_pairs(
    batch: int, cells: int, fraction: float, styles: int, generator: torch.Generator
) -> RestylePairs:
    """A `fraction` of rows paired, each with one of `styles` other styles and a uniform share of its cells visible.

    A quarter of the paired rows show every cell: the reference whole, as
    `imgen restyle` gives it at strength 0; the rest practise the strengths in
    between (a hidden cell is one the prompt alone decides). Half of the
    paired rows are captioned by their style alone ("the scene at night"), as
    a restyle is often asked for: what is where must then come from the
    reference.
    """
    paired = torch.rand(batch, generator=generator) < fraction
    pick = torch.randint(styles, (batch,), generator=generator)
    share = torch.rand(batch, generator=generator)
    share = torch.where(torch.rand(batch, generator=generator) < 0.25, torch.ones_like(share), share)
    ranks = torch.rand(batch, cells, generator=generator).argsort(-1).argsort(-1)
    visible = ranks < (share * cells).round().long()[:, None]
    style_only = paired & (torch.rand(batch, generator=generator) < 0.5)
    frames = torch.randint(1 << 16, (batch,), generator=generator)
    return RestylePairs(paired=paired, picks=pick, visible=visible, style_only=style_only, frames=frames)


def restyle_captions(
    pairs: RestylePairs, source: WorldExamples, position: int, shard: range, captions: list[str]
) -> list[str]:
    """This process's captions, those of its `style_only` rows replaced by their style alone."""
    return [
        source.style_caption(position + row, int(pairs.frames[row])) if pairs.style_only[row] else text
        for row, text in zip(shard, captions, strict=True)
    ]


def reference_inputs(
    pairs: RestylePairs,
    source: WorldExamples,
    tokenizer: VQTokenizer,
    position: int,
    shard: range,
    config: GPTConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference inputs of this process's rows, coarse (b, C) and detail (b, D): its paired scenes drawn in
    their styles and encoded, hidden cells [MASK] and the detail positions under them [BOS]."""
    rows = torch.arange(shard.start, shard.stop)
    chosen = rows[pairs.paired[rows]].tolist()
    coarse = torch.zeros(0, config.coarse_len, dtype=torch.long)
    detail = torch.zeros(0, config.detail_len, dtype=torch.long)
    if chosen:
        picks = [int(pairs.picks[row]) for row in chosen]
        images = source.restyled([position + row for row in chosen], picks)
        grids = tokenizer.encode(images.to(next(tokenizer.parameters()).device))
        coarse, detail = grids.coarse.flatten(1).cpu(), grids.detail.flatten(1).cpu()
    return (
        pairs.references(coarse, rows, config.mask_id),
        pairs.references(detail, rows, config.bos_id, covering_cells(config)),
    )


def detail_rows(batch: int, detail_batch: int) -> torch.Tensor:
    """The `detail_batch` global rows (at most all) that also train the detail pass, spread evenly so each rank
    gets a share: for 32 and 8, every fourth row."""
    count = min(batch, detail_batch)  # both at least 1 (`GeneratorTrainConfig.LIMITS`)
    rows = torch.zeros(batch, dtype=torch.bool)
    rows[torch.arange(count) * batch // count] = True
    return rows


def object_cells(coarse: torch.Tensor) -> torch.Tensor:
    """(B, C) bool: the cells of each coarse grid whose token is not the grid's most common one.

    Why: a world scene is mostly background, one token repeated, so a loss
    averaged over every cell is mostly about the background; the objects a
    prompt or a reference asks for live in the other cells."""
    background = torch.mode(coarse, dim=-1).values
    return coarse != background[:, None]


class GeneratorObjective(torch.nn.Module):
    """Both losses in one `forward`, as DDP needs: (coarse objective sum, detail CE sum, coarse CE sum).

    Sums, not means: the caller divides by the global counts, so the gradient
    of a batch split over processes equals the gradient of the whole batch.
    The coarse objective weighs the cross-entropy of object cells
    (`object_cells`) by `object_weight`, the background's by 1: with a
    weight above 1 the gradient spends more of itself on what prompts ask
    for, the 10-20% of cells a plain mean leaves a small share. The plain
    coarse sum comes back beside it, for the metrics, so that runs with
    different weights report losses that compare.
    """

    def __init__(self, model: Generator, object_weight: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.object_weight = object_weight

    def forward(
        self,
        text: torch.Tensor,  # (b, T)
        coarse: torch.Tensor,  # (b, C) clean ids
        masked: torch.Tensor,  # (b, C) bool
        detail: torch.Tensor,  # (b, D)
        with_detail: torch.Tensor,  # (b,) bool
        reference: torch.Tensor | None = None,  # (b, C) reference grids, [MASK] = none (`Generator.embed_coarse`)
        detail_reference: torch.Tensor | None = None,  # (b, D) their detail grids, [BOS] = none (`embed_detail`)
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        coarse_in = coarse.masked_fill(masked, self.model.config.mask_id)
        logits = self.model.coarse_logits(text, coarse_in, reference).float()
        cell_losses = F.cross_entropy(logits[masked], coarse[masked], reduction="none")
        coarse_sum = cell_losses.sum()
        objective_sum = coarse_sum
        if self.object_weight != 1.0:
            on_objects = object_cells(coarse)[masked]
            objective_sum = torch.where(on_objects, cell_losses * self.object_weight, cell_losses).sum()
        rows = with_detail.nonzero().squeeze(1)
        weight = 1.0
        if rows.numel() == 0:  # this rank has no detail row: run one with weight 0 so every parameter gets a grad
            rows, weight = rows.new_zeros(1), 0.0
        shown = None if detail_reference is None else detail_reference[rows]
        detail_logits = self.model.detail_forward(text[rows], coarse[rows], detail[rows], shown).float()
        detail_sum = F.cross_entropy(detail_logits.flatten(0, 1), detail[rows].flatten(), reduction="sum") * weight
        return objective_sum, detail_sum, coarse_sum.detach()


# ---------------------------------------------------------------- model set-up


def initial_model(
    config: GeneratorTrainConfig, tokenizer_config, captions: list[str]
) -> tuple[Generator, PromptEncoder]:
    """A fresh generator whose prompt vocabulary is learnt from `captions`."""
    prompts = PromptEncoder(train_text_tokenizer(captions), max_length=config.text_len)
    gpt = GPTConfig(
        text_vocab=prompts.vocab_size,
        coarse_vocab=math.prod(tokenizer_config.coarse_levels),
        detail_vocab=math.prod(tokenizer_config.detail_levels),
        text_len=config.text_len,
        coarse_grid=tokenizer_config.coarse_grid,
        detail_grid=tokenizer_config.detail_grid,
        **GPT_SIZES[config.size],
    )
    torch.manual_seed(config.seed)
    return Generator(gpt), prompts


def saved_train_config(state_path: Path, final: Path) -> str | None:
    """The options a run folder was last saved with: in its state, or (runs saved before that) its checkpoint."""
    saved = read_training_metadata(state_path).get("train_config")
    if saved is None and (final / GENERATOR_FILE).is_file():
        saved = read_header(final / GENERATOR_FILE).get("train_config")
    return saved


def replace_folder(new: Path, old: Path) -> None:
    """Put the complete folder `new` where `old` is, so that a crash at any moment leaves one of them whole.

    `old` is first renamed aside (`recover_checkpoint_folder` puts it back if
    the crash comes before `new` has taken its place), and deleted last.
    """
    aside = old.with_name(old.name + ".old")
    shutil.rmtree(aside, ignore_errors=True)
    if old.exists():
        old.rename(aside)
    new.rename(old)
    shutil.rmtree(aside, ignore_errors=True)


def recover_checkpoint_folder(final: Path) -> None:
    """Undo a save that stopped between moving the old checkpoint aside and moving the new one in."""
    aside = final.with_name(final.name + ".old")
    if not final.exists() and aside.is_dir():
        with contextlib.suppress(FileNotFoundError):  # another process of a torchrun run moved it back first
            aside.rename(final)


def tokenizer_source(config: GeneratorTrainConfig, init_folder: Path | None) -> Path:
    """The tokenizer file to train with: `--tokenizer`, else the one of `--init`."""
    if config.tokenizer:
        return Path(config.tokenizer)
    if init_folder is not None:
        return init_folder / TOKENIZER_FILE
    raise ValueError("give a tokenizer (--tokenizer FILE) or a checkpoint to start from (--init NAME|PATH)")


# ---------------------------------------------------------------- the loop


def train_generator(config: GeneratorTrainConfig, progress: Callable[[dict], None] | None = None) -> Path:
    """Train (or resume) in `config.out_dir`; returns the checkpoint folder written last.

    Raises `TrainingInterrupted` after saving when the run was stopped by Ctrl-C / SIGTERM.
    """
    with joined() as rank:
        return _train(config, rank, progress)


def _train(config: GeneratorTrainConfig, rank: Rank, progress: Callable[[dict], None] | None) -> Path:
    config.check_can_start()
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path, final = out / "state.safetensors", out / "checkpoint"
    log = MetricsLog(out / "metrics.jsonl")

    def report(record: dict) -> None:
        if rank.is_main:
            log.write(record)
            if progress:
                progress(record)

    resuming = state_path.exists()
    changes: dict[str, list] = {}
    init_folder = None
    if resuming:  # the run's own copy of its tokenizer: the file it started from may have changed since
        recover_checkpoint_folder(final)
        changes = resume_changes(saved_train_config(state_path, final), config, out)
        tokenizer_file = final / TOKENIZER_FILE
    else:
        if config.init:
            from imgen.api import resolve_checkpoint

            init_folder = resolve_checkpoint(config.init)  # resolved (and hash-checked) once
        tokenizer_file = tokenizer_source(config, init_folder)
    tokenizer = load_tokenizer(tokenizer_file).eval().to(rank.device)
    for param in tokenizer.parameters():
        param.requires_grad_(False)
    source, captions = open_data(config, tokenizer.config.image_size, report)

    if resuming:
        model, prompts, _ = load_generator(final / GENERATOR_FILE)
    elif init_folder is not None:
        model, prompts, init_header = load_generator(init_folder / GENERATOR_FILE)
        mismatch = pairing_problem(tokenizer, init_header.get(TOKEN_IDS_KEY))
        if mismatch:  # its weights were fitted to other ids; the new checkpoint would hide that
            raise ValueError(f"{tokenizer_file} and --init {config.init}: {mismatch}")
        if config.layers:
            model = deepen(model, config.layers)
            report({"event": "grown", "layers": config.layers})
        new_words = prompts.missing_words(captions if captions is not None else world_captions(config))
        if new_words:  # words the training captions use and the checkpoint read as <unk>
            model, prompts = add_prompt_words(model, prompts, new_words)
            report({"event": "words added", "words": new_words})
    else:
        vocabulary = captions if captions is not None else world_captions(config)
        model, prompts = initial_model(config, tokenizer.config, vocabulary)
    if (model.config.coarse_vocab, model.config.detail_vocab) != (tokenizer.coarse_vocab, tokenizer.detail_vocab):
        raise ValueError(f"{tokenizer_file}: its codebooks do not match the generator's")
    if config.restyle_pairs > 0 and not (model.config.reference_input and model.config.detail_reference_input):
        if resuming:  # the saved optimizer state has no place for the new inputs
            held = "pairs without a detail reference" if model.config.reference_input else "no restyle pairs"
            raise ValueError(f"{out} holds a run trained on {held}; start a new run from it: --init {final} --out NEW")
        model = add_reference_input(model)
        report({"event": "grown", "reference_input": True, "detail_reference_input": True})
    model.to(rank.device).train()
    objective = GeneratorObjective(model, config.object_weight)
    if rank.distributed:
        objective = torch.nn.parallel.DistributedDataParallel(objective)
    if config.compile:  # the wrapper shares the model's parameters: saving, averaging and the optimizer see no change
        objective = torch.compile(objective)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.95),
    )
    start_average = None  # a resumed run whose checkpoint holds its average goes on averaging from there
    if resuming and config.ema > 0 and read_header(final / GENERATOR_FILE).get("weights") == AVERAGE_MARK:
        start_average = {k: v.clone() for k, v in model.state_dict().items()}
    step, position = load_training_state(state_path, model, optimizer) if resuming else (0, 0)
    average = WeightAverage(model, config.ema, start_average) if config.ema > 0 else None
    saved_model = average.model if average is not None else model
    saved_header = {"weights": AVERAGE_MARK, "ema": str(config.ema)} if average is not None else {}
    saved_header[TOKEN_IDS_KEY] = token_id_fingerprint(tokenizer)  # what `imgen.api.check_pair` pairs it with
    started = {"event": "resume" if resuming else "start", "step": step, "samples": position}
    report({**started, "processes": rank.world_size, **({"changed": changes} if changes else {})})

    shard = rank.shard(config.batch_size)
    local = slice(shard.start, shard.stop)
    detail_all = detail_rows(config.batch_size, config.detail_batch)
    detail_local = detail_all[local].to(rank.device)
    n_detail = detail_all.sum().item() * model.config.detail_len
    null_ids = torch.tensor(prompts.encode(""), dtype=torch.long)
    sample_prompts = _sample_prompts(config, captions)
    budget = TimeBudget(config.max_minutes)
    last_save = last_sample = time.monotonic()
    window_start, window_samples = time.monotonic(), 0
    window = LogWindow(rank.device)
    guard = NonFiniteGuard()

    def save() -> None:
        if not rank.is_main:
            return
        staging = out / "checkpoint.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        shutil.copyfile(tokenizer_file, staging / TOKENIZER_FILE)
        header = {"train_config": _json(config), "step": str(step), **saved_header}
        save_generator(saved_model, prompts, staging / GENERATOR_FILE, header)
        replace_folder(staging, final)
        options = {"train_config": _json(config)}  # what a resume is checked against (`resume_changes`)
        save_training_state(state_path, model, optimizer, step=step, samples=position, extra=options)

    def sample() -> None:
        if rank.is_main and sample_prompts:
            path = out / "samples" / f"step_{step:07d}.png"
            write_sample_grid(tokenizer, saved_model, prompts, sample_prompts, path)

    with StopRequest() as stop:
        while step < config.max_steps and not any_rank(budget.expired() or stop.requested, rank):
            noise = step_generator(config.seed, step)
            masked_all = draw_coarse_mask(config.batch_size, model.config.coarse_len, noise)
            dropped_all = torch.rand(config.batch_size, generator=noise) < config.cfg_dropout
            if config.box_masks > 0:
                masked_all = add_box_masks(masked_all, config.box_masks, noise)
            pairs, reference, detail_reference, cells = None, None, None, model.config.coarse_len
            if config.restyle_pairs > 0:
                pairs = draw_restyle_pairs(config.batch_size, cells, config.restyle_pairs, len(STYLES) - 1, noise)

            images, batch_captions = source.batch(range(position + shard.start, position + shard.stop))
            if pairs is not None:
                batch_captions = restyle_captions(pairs, source, position, shard, batch_captions)
            with torch.no_grad():  # in fp32, as every user of the tokens encodes: bf16 flipped 11% of detail ids
                grids = tokenizer.encode(images.to(rank.device))
                if pairs is not None:  # only world data draws pairs (`check_can_start`)
                    reference, detail_reference = reference_inputs(
                        pairs, source, tokenizer, position, shard, model.config
                    )
            text = prompt_rows(prompts, batch_captions, dropped_all[local], null_ids, config.data == "world")
            lr = config.learning_rate(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast_context(rank.device):
                objective_sum, detail_sum, coarse_sum = objective(
                    text.to(rank.device),
                    grids.coarse.flatten(1),
                    masked_all[local].to(rank.device),
                    grids.detail.flatten(1),
                    detail_local,
                    None if reference is None else reference.to(rank.device),
                    None if detail_reference is None else detail_reference.to(rank.device),
                )
            n_coarse = masked_all.sum().item()
            loss = (objective_sum / n_coarse + detail_sum / n_detail) * rank.world_size  # DDP averages over ranks
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            if guard.allows(grad_norm):
                optimizer.step()
                if average is not None:
                    average.update()
                window.add(coarse_sum, detail_sum, grad_norm, n_coarse, n_detail)
            else:
                report({"event": "skipped", "step": step, "reason": "non-finite gradient", "skipped": guard.skipped})
            step += 1
            position += config.batch_size
            window_samples += config.batch_size
            if step % config.log_every == 0 and window.steps:  # a window of skipped steps has no losses
                now = time.monotonic()
                report(
                    {
                        "step": step,
                        "samples": position,
                        **window.take(rank),
                        "lr": lr,
                        "samples_per_s": round(window_samples / max(now - window_start, 1e-9), 2),
                        "minutes": round(budget.elapsed_minutes(), 2),
                    }
                )
                window_start, window_samples = now, 0
            if time.monotonic() - last_save > config.checkpoint_minutes * 60:
                save()
                last_save = time.monotonic()
            if config.sample_minutes > 0 and time.monotonic() - last_sample > config.sample_minutes * 60:
                sample()
                last_sample = time.monotonic()
        save()
        sample()
        report({"event": "stop" if stop.requested else "end", "step": step, "samples": position})
        if stop.requested:
            raise TrainingInterrupted(step, out)
    return final


class LogWindow:
    """Losses and gradient norms of the steps since the last metrics record, logged as their averages.

    Why averages: one step's loss varies by about 0.2, which hides the trends of a few hundredths that
    tell one recipe from another. The sums stay tensors on the training device, so a step never waits
    for an accelerator to hand back a number; only a record does.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._reset()

    def _reset(self) -> None:
        self.sums = torch.zeros(3, device=self.device)  # coarse loss, detail loss, gradient norm
        self.grad_max = torch.zeros((), device=self.device)
        self.n_coarse = self.n_detail = self.steps = 0

    def add(
        self, coarse_sum: torch.Tensor, detail_sum: torch.Tensor, grad_norm: torch.Tensor, n_coarse: int, n_detail: int
    ) -> None:
        grad_norm = grad_norm.detach().float()
        self.sums += torch.stack([coarse_sum.detach().float(), detail_sum.detach().float(), grad_norm])
        self.grad_max = torch.maximum(self.grad_max, grad_norm)
        self.n_coarse, self.n_detail, self.steps = self.n_coarse + n_coarse, self.n_detail + n_detail, self.steps + 1

    def take(self, rank: Rank) -> dict[str, float]:
        """The window's averages (losses summed over all processes) as metrics fields; the window starts anew."""
        losses = all_sum(self.sums[:2].cpu(), rank)  # each process holds its share of the global batch
        coarse, detail = losses[0].item() / self.n_coarse, losses[1].item() / self.n_detail
        fields = {
            "loss": round(coarse + detail, 6),
            "coarse_loss": round(coarse, 6),
            "detail_loss": round(detail, 6),
            "grad_norm": round(self.sums[2].item() / self.steps, 4),
            "grad_norm_max": round(self.grad_max.item(), 4),
        }
        self._reset()
        return fields


def prompt_rows(
    prompts: PromptEncoder, captions: list[str], dropped: torch.Tensor, null_ids: torch.Tensor, world: bool
) -> torch.Tensor:
    """The prompt ids of a batch (B, text_len): captions encoded, the `dropped` ones (CFG) made empty.

    A world caption longer than the prompt reads is made empty too: cut at `text_len`, it would no
    longer name the last objects, the style or the background that its picture shows, and teach the
    model that those appear unasked (51 of 4,000 world captions of seed 14, the crowded scenes). A user's
    folder keeps its cut captions, whose first words still describe the picture.
    """
    text = torch.tensor([prompts.encode(c) for c in captions], dtype=torch.long)
    empty = dropped.clone()
    if world:
        empty |= torch.tensor([bool(prompts.ignored_tail(c)) for c in captions], dtype=torch.bool)
    text[empty] = null_ids
    return text


def _sample_prompts(config: GeneratorTrainConfig, captions: list[str] | None) -> list[str]:
    """Fixed prompts for the progress grid: world prompts, or the first distinct captions of a folder."""
    if config.sample_prompts <= 0:
        return []
    if captions is None:
        return list(WORLD_SAMPLE_PROMPTS[: config.sample_prompts])
    return sorted(set(captions))[: config.sample_prompts]


def write_sample_grid(tokenizer, model: Generator, prompts: PromptEncoder, texts: list[str], path: Path) -> Path:
    """Generate one image per prompt (seed i) with the model as it is now and save them as a captioned grid."""
    from imgen.sample_sheet import contact_sheet
    from imgen.sampler import SamplerConfig

    was_training = model.training
    sampler_model = model if next(model.parameters()).device.type == "cpu" else copy.deepcopy(model).cpu()
    sampler_tokenizer = tokenizer if sampler_model is model else copy.deepcopy(tokenizer).cpu()
    pipe = Pipeline(sampler_tokenizer, sampler_model.eval(), prompts, "training", "", SamplerConfig())
    try:
        images = pipe.generate(texts, seed=0)
    finally:
        model.train(was_training)
    path.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(images, texts).save(path)
    return path


def _json(config: GeneratorTrainConfig) -> str:
    return json.dumps(asdict(config), sort_keys=True)
