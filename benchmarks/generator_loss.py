"""Held-out loss of one or more generator checkpoints, on the same scenes and masks.

    python -m benchmarks.generator_loss [--model default --model runs/generator/checkpoint] [--scenes 256]
        [--masks schedule|box|restyle] [--style-only-prompts]

The judge cannot yet separate two checkpoints that both pass almost nothing,
while the loss can: this scores each checkpoint's prompt-conditioned model on
held-out world scenes (the split the evaluation draws from, never trained on)
as the negative log-likelihood per token, averaged per scene and then over
the scenes (a scene with one masked coarse cell weighs as much as one with
64; the paired differences are what the figures are for), of

- the coarse grid: masked cells given the prompt and the other cells, with a
  mask ratio per scene drawn from the training schedule (fixed seed, so every
  checkpoint sees the same masks); with `--masks box`, one rectangle of 2-5
  cells a side per scene instead, the hole an edit makes
  (`imgen.generator_train.add_box_masks`); with `--masks restyle`, every
  cell, and a generator trained on restyle pairs (`GPTConfig.reference_input`)
  also sees the same scene drawn in another style (seeded per scene) whole,
  as `imgen restyle` shows it at strength 0; one without a reference input
  has the prompt alone (so between two such checkpoints the gap is what the
  reference is worth plus whatever else their training changed);
- the detail grid: every token given the prompt, the clean coarse grid and the
  tokens before it (teacher forcing, as in training); with `--masks restyle`
  a generator with a detail reference input (`GPTConfig.detail_reference_input`)
  also sees the reference's detail grid whole.

Besides each grid's loss over all its masked cells, `coarse_objects` is the
coarse loss over the masked cells that are not the scene's background (its
most common token): the cells that hold what a prompt or a reference asks
for, a small share of a world scene. `--style-only-prompts` captions every
scene by its style alone, as a restyle may be asked ("... at night"), so
with `--masks restyle` what is where must come from the reference.

The scenes are tokenized by each checkpoint's own image tokenizer, so
checkpoints with different tokenizers are compared on what they must predict.
Differences are paired per scene; the standard error is of those differences.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
import torch.nn.functional as F

from benchmarks.common import standard_error, write_result
from benchmarks.detail_window import detail_nll
from imgen.api import Pipeline, load
from imgen.generator_train import add_box_masks, draw_coarse_mask, object_cells
from imgen.world import vocab
from imgen.world.dataset import WorldExamples


@torch.inference_mode()
def scene_losses(
    pipe: Pipeline,
    images: torch.Tensor,
    captions: list[str],
    masked: torch.Tensor,
    references: torch.Tensor | None = None,
) -> list[tuple]:
    """(coarse NLL, detail NLL) per scene, in nats per token; `references` (uint8 images) reach only a generator
    with a reference input."""
    model = pipe.generator
    grids = pipe.tokenizer.encode(images)
    coarse, detail = grids.coarse.flatten(1), grids.detail.flatten(1)
    text = torch.tensor([pipe.prompts.encode(c) for c in captions], dtype=torch.long)
    reference, detail_reference = None, None
    if references is not None and model.config.reference_input:
        reference_grids = pipe.tokenizer.encode(references)
        reference = reference_grids.coarse.flatten(1)
        if model.config.detail_reference_input:
            detail_reference = reference_grids.detail.flatten(1)
    coarse_in = coarse.masked_fill(masked, model.config.mask_id)
    coarse_logits = model.coarse_logits(text, coarse_in, reference).float()
    coarse_ce = F.cross_entropy(coarse_logits.transpose(1, 2), coarse, reduction="none")  # (B, C)
    coarse_nll = (coarse_ce * masked).sum(-1) / masked.sum(-1)
    on_objects = masked & object_cells(coarse)
    counts = on_objects.sum(-1)
    object_means = ((coarse_ce * on_objects).sum(-1) / counts.clamp(min=1)).tolist()
    object_nll = [mean if count else None for mean, count in zip(object_means, counts.tolist(), strict=True)]
    detail_nlls = detail_nll(model, text, coarse, detail, detail_reference)
    return list(zip(coarse_nll.tolist(), detail_nlls, object_nll, strict=True))


def other_style(seed: int, index: int) -> int:
    """Which style other than held-out scene `index`'s own to draw it in (`WorldExamples.restyled`), seeded."""
    return random.Random(f"generator-loss-restyle/{seed}/{index}").randrange(len(vocab.STYLES) - 1)


def style_frame(seed: int, index: int) -> int:
    """Which sentence frame names held-out scene `index`'s style with `--style-only-prompts`, seeded."""
    return random.Random(f"generator-loss-style-frame/{seed}/{index}").randrange(1 << 16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", action="append", help="checkpoint name or folder; repeat to compare (default: bundled)"
    )
    parser.add_argument("--scenes", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--masks", choices=("schedule", "box", "restyle"), default="schedule", help="coarse masks to score"
    )
    parser.add_argument(
        "--style-only-prompts", action="store_true", help="caption each scene by its style alone, as a restyle may"
    )
    args = parser.parse_args()
    models = args.model or ["default"]
    start = time.perf_counter()
    source = WorldExamples(args.seed, 128, split="heldout")
    pipes = [load(name, precision="fp32") for name in models]  # a model's loss, not the machine's arithmetic
    masks = torch.Generator().manual_seed(args.seed)
    losses: list[list[tuple]] = [[] for _ in models]
    for first in range(0, args.scenes, args.batch_size):
        positions = range(first, min(first + args.batch_size, args.scenes))
        images, captions = source.batch(positions)
        if args.style_only_prompts:
            captions = [source.style_caption(index, style_frame(args.seed, index)) for index in positions]
        masked = draw_coarse_mask(len(captions), pipes[0].generator.config.coarse_len, masks)
        references = None
        if args.masks == "box":
            masked = add_box_masks(masked, 1.0, masks)
        if args.masks == "restyle":
            masked = torch.ones_like(masked)
            references = source.restyled(list(positions), [other_style(args.seed, index) for index in positions])
        for index, pipe in enumerate(pipes):
            losses[index] += scene_losses(pipe, images, captions, masked, references)
    result = {}
    for index, name in enumerate(models):
        entry: dict[str, float | str] = {"checkpoint_sha256": pipes[index].sha256}
        for part, column in (("coarse", 0), ("detail", 1), ("coarse_objects", 2)):
            mine = [scene[column] for scene in losses[index]]
            entry[f"{part}_nll"] = round(statistics.fmean(x for x in mine if x is not None), 4)
            if index > 0:
                pairs = zip(mine, losses[0], strict=True)
                gaps = [a - b[column] for a, b in pairs if a is not None and b[column] is not None]
                entry[f"{part}_minus_first"] = round(statistics.fmean(gaps), 4)
                entry[f"{part}_standard_error"] = round(standard_error(gaps), 4)
        result[name] = entry
    seconds = time.perf_counter() - start
    name = "generator_loss" if args.masks == "schedule" else f"generator_loss_{args.masks}"
    name += "_style_prompts" if args.style_only_prompts else ""
    path = write_result(
        name,
        {"scenes": args.scenes, "split": "heldout", "masks": args.masks}
        | {"style_only_prompts": args.style_only_prompts, "models": result}
        | {"seconds": round(seconds, 1)},
    )
    summary = "; ".join(
        f"{name}: coarse {r['coarse_nll']:.3f} (objects {r['coarse_objects_nll']:.3f}), detail {r['detail_nll']:.3f}"
        for name, r in result.items()
    )
    where = f"{args.scenes} scenes, {args.masks} masks"
    print(f"held-out NLL per token (mean of scene means), {where}: {summary} ({seconds:.0f} s) -> {path}")


if __name__ == "__main__":
    main()
