"""Edit part of an image, or restyle a whole one, in token space.

    from imgen import load
    from imgen.editing import edit, restyle
    pipe = load()
    result = edit(pipe, photo, mask, "a red circle and a blue square")   # result.image, result.whole_image
    styled = restyle(pipe, photo, "a red circle in pixel art style", strength=0.4)[0]

Both work the same way: encode the reference into the tokenizer's coarse and
detail grids, fix the tokens that should stay (the sampler forces them and
treats them as known context from its first step), sample the rest under the
prompt, decode. (A generator trained on restyle pairs is instead shown the
reference's grids and fixes nothing: `restyle`.) The model only draws
`pipe.image_size` squares, so `edit` works on a square crop around the mask
and pastes the result back into the original at the original's resolution,
and `restyle` letterboxes the reference.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from imgen.api import Pipeline, PreviewCallback
from imgen.io import load_image, upright
from imgen.masks import (
    CropBox,
    MaskLike,
    composite,
    crop_box,
    crop_square,
    feather_weights,
    flatten,
    grow_mask,
    letterbox,
    mostly_covered_tokens,
    resize_rgb,
    resolve_mask,
    touched_tokens,
    working_image,
)
from imgen.sampler import ProgressCallback, SamplerConfig, guide, sample_tokens

ImageLike = Image.Image | str | os.PathLike

WHOLE_IMAGE_WARNING = "the mask covers the whole image: nothing is kept, this is a new image from the prompt"

COARSE_SHARE = 0.5  # an edit redraws the coarse cells its mask covers at least this much (see `edit`)
DEFAULT_FEATHER = 6  # px; the border step falls as 1/(feather+1): 3 px left it above the image's own, 6 px below


@dataclass
class EditResult:
    """What `edit` made: one image per seed, and what the CLI may want to tell the user."""

    images: list[Image.Image]
    mask: np.ndarray  # (H, W) bool, True = regenerated: the mask as read, before `grow`
    box: CropBox  # the square of the original the model redrew
    whole_image: bool  # the mask covers every pixel: the result keeps nothing of the input

    @property
    def image(self) -> Image.Image:
        return self.images[0]

    @property
    def warning(self) -> str | None:
        return WHOLE_IMAGE_WARNING if self.whole_image else None


def _open(image: ImageLike) -> Image.Image:
    return image if isinstance(image, Image.Image) else load_image(image)


def _seeds(seed: int, seeds: list[int] | None) -> list[int]:
    seeds = [seed] if seeds is None else list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    return seeds


def _check_prompt(prompt: str) -> None:
    if not prompt.strip():
        raise ValueError("the prompt is empty")


def _encode(pipe: Pipeline, square: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (M, M, 3) -> coarse (1, C) and detail (1, D) token ids."""
    grids = pipe.tokenizer.encode(torch.from_numpy(np.array(square)).permute(2, 0, 1)[None])
    return grids.coarse.reshape(1, -1), grids.detail.reshape(1, -1)


def _progress(
    pipe: Pipeline, finish: Callable[[Image.Image], Image.Image], callback: PreviewCallback | None
) -> ProgressCallback | None:
    """Adapt the sampler's token callback to previews finished like the final images (`finish`)."""
    if callback is None:
        return None

    def progress(phase: str, step: int, total: int, coarse: torch.Tensor, detail: torch.Tensor) -> None:
        decoded = pipe.decode(coarse, None if phase == "coarse" else detail)
        callback(phase, step, total, [finish(image) for image in decoded])

    return progress


@torch.no_grad()
def edit(
    pipe: Pipeline,
    image: ImageLike,
    mask: MaskLike | None,
    prompt: str,
    *,
    grow: int = 0,
    feather: int = DEFAULT_FEATHER,
    seamless: bool = True,
    context: float = 0.5,
    resize_mask: bool = False,
    seed: int = 0,
    seeds: list[int] | None = None,
    sampler: SamplerConfig | None = None,
    callback: PreviewCallback | None = None,
) -> EditResult:
    """Regenerate the masked part of `image` under `prompt`; every unmasked pixel stays byte-identical.

    The prompt describes the whole desired picture, not just the masked part:
    the model was trained on captions of complete scenes, and the kept tokens
    tell it where everything else already is ("a cat left of a tree" to put a
    cat into a picture of a tree). When a small mask sits on a large image the
    model sees only the crop around it, so describe what that crop should show.

    Mask conventions are those of `imgen.masks` (white or transparent =
    regenerate; no mask = the image's own transparency). A mask of another
    size is a `MaskError` unless `resize_mask`; an empty mask is a `MaskError`
    (nothing to edit); a mask covering everything is allowed and flagged in
    `EditResult.whole_image`.

    How: a square crop around the mask, grown by `grow` px, plus `context`
    (a fraction of the mask's size on each side) is brought to the model's
    size and encoded. Detail tokens whose pixel footprint the grown mask does
    not touch are fixed to the crop's own tokens, and so are coarse cells it
    covers by less than `COARSE_SHARE` (the most covered cells are freed
    when none is covered that much); the others are sampled. Why not every
    coarse cell the mask touches: the coarse phase decides where new objects
    go, and a cell freed for a sliver of mask lets the object reach up to a
    cell's width past the border, where compositing cuts it off (a visible
    seam: a colour step across the border of 1.68 against 0.78 between
    untouched neighbours, 0.43 with the half-covered rule, at about the same
    share of requested objects found; `python -m benchmarks.edit_quality`).
    The decoded crop is scaled back and composited into the original with
    the original (un-grown) mask, so exactness holds by construction,
    whatever the model does. `grow` frees a ring of tokens around the mask
    (detail tokens, and coarse cells it covers enough): the encoder's
    receptive field lets a removed object bleed into its neighbours' tokens,
    and freeing them lets the model redraw the surroundings of the new
    content (only the part inside the mask is shown).
    `feather` (px) ramps the blend from the original to the generated pixels
    over that depth inside the mask, to soften the seam; it never reaches out.
    `seamless` first shifts the generated pixels by a smooth field so they meet
    the kept ones along the border (gradient-domain blending, `imgen.seam`):
    the tokenizer's small colour errors would otherwise show as an edge.

    A photo's EXIF orientation is applied first, as image viewers do, so the
    mask is read in the orientation the user saw when drawing it; "byte
    identical" then means identical to the upright image.

    The result is RGBA when the input has transparency (regenerated pixels
    opaque), else RGB, at the input's size; `seed`, `seeds`, `sampler` and
    `callback` behave as in `Pipeline.generate`, one image per seed.
    """
    _check_prompt(prompt)
    if grow < 0 or feather < 0 or context < 0:
        raise ValueError("grow, feather and context must not be negative")
    seeds = _seeds(seed, seeds)
    work = working_image(upright(_open(image)))  # as viewers show it, and so as masks are drawn
    regenerate = resolve_mask(work, mask, resize_mask)
    grown = grow_mask(regenerate, grow)
    size = pipe.image_size
    box = crop_box(grown, size, context)
    crop = resize_rgb(crop_square(flatten(work), box), size)
    coarse_src, detail_src = _encode(pipe, crop)
    grown_crop = crop_square(grown, box, fill=False)
    g = pipe.generator.config
    coarse_free = torch.from_numpy(mostly_covered_tokens(grown_crop, g.coarse_grid, COARSE_SHARE).reshape(1, -1))
    detail_free = torch.from_numpy(touched_tokens(grown_crop, g.detail_grid).reshape(1, -1))
    batch = len(seeds)
    coarse_fixed = torch.where(coarse_free, -1, coarse_src).expand(batch, -1).contiguous()
    detail_fixed = torch.where(detail_free, -1, detail_src).expand(batch, -1).contiguous()
    weights = feather_weights(regenerate, feather)

    def finish(generated: Image.Image) -> Image.Image:
        return composite(work, resize_rgb(np.asarray(generated), box.size), box, regenerate, weights, seamless)

    text, null = pipe.text_ids([prompt] * batch)
    coarse, detail = sample_tokens(
        pipe.generator,
        text,
        null,
        sampler or pipe.sampler,
        seeds,
        coarse_fixed=coarse_fixed,
        detail_fixed=detail_fixed,
        callback=_progress(pipe, finish, callback),
    )
    images = [finish(generated) for generated in pipe.decode(coarse, detail)]
    return EditResult(images=images, mask=regenerate, box=box, whole_image=bool(regenerate.all()))


@torch.no_grad()
def reference_confidence(pipe: Pipeline, prompt: str, coarse: torch.Tensor, cfg: float) -> torch.Tensor:
    """How well the prompt and the rest of the layout explain each coarse cell of a reference: (C,) log-probs.

    The cells are split into the four phases of a 2x2 checkerboard; each phase
    is masked in turn and the generator (with the sampler's classifier-free
    guidance) predicts it from the prompt and the other three quarters of the
    reference. The log-probability of the reference's own token is the score:
    high where the reference already looks like what the prompt asks, low where
    it contradicts it (a red circle under "a blue circle"). One batched pass.
    """
    g = pipe.generator.config
    rows = torch.arange(g.coarse_grid).repeat_interleave(g.coarse_grid)
    cols = torch.arange(g.coarse_grid).repeat(g.coarse_grid)
    phase = (rows % 2) * 2 + cols % 2  # (C,)
    grids = coarse.reshape(1, -1).repeat(4, 1)
    hidden = phase[None, :] == torch.arange(4)[:, None]  # (4, C)
    grids[hidden] = g.mask_id
    text, null = pipe.text_ids([prompt] * 4)
    texts = torch.cat([text, null.expand_as(text)])
    logits = guide(pipe.generator.coarse_logits(texts, torch.cat([grids, grids])), cfg)  # (4, C, V)
    reference = coarse.reshape(1, -1, 1).expand(4, -1, 1)
    logp = logits.log_softmax(-1).gather(-1, reference)[..., 0]  # (4, C)
    return logp[phase, torch.arange(g.coarse_len)]  # each cell scored in the pass that hid it


@torch.no_grad()
def restyle(
    pipe: Pipeline,
    image: ImageLike,
    prompt: str,
    strength: float = 0.5,
    *,
    keep_size: bool = False,
    seed: int = 0,
    seeds: list[int] | None = None,
    sampler: SamplerConfig | None = None,
    callback: PreviewCallback | None = None,
) -> list[Image.Image]:
    """Redraw `image` as `prompt` says (a world style, other colours) while keeping its layout.

    Any image works: photos of any size and aspect, palette, grayscale,
    16-bit, with or without transparency (composited over white; EXIF rotation
    applied). It is letterboxed into the model's square, so nothing is cut off
    or stretched; the result has the input's aspect ratio, its longer side at
    the model's size, or the input's exact size with `keep_size`.

    `strength` (0..1) is the fraction of coarse cells re-sampled. The coarse
    grid holds the layout and the colours, the detail grid the texture and the
    look. So: the reference is encoded, each coarse cell is scored by how well
    the prompt plus the rest of the reference explain it
    (`reference_confidence`), the best-explained (1 - strength) of the cells
    are fixed and the others re-sampled, and then the whole detail grid is
    sampled fresh under the prompt, which is where the style lives. At 0 the
    layout and colours are kept exactly and only the rendering changes; cells
    that contradict the prompt (the colour being changed) go first as strength
    rises; at 1 nothing is fixed and the result is a plain generation. Fixing
    the best-explained cells, rather than random ones, means a given strength
    spends its freedom where the prompt asks for change.

    A generator trained on restyle pairs (`GPTConfig.reference_input`) is
    instead shown the reference's coarse grid as such (`Generator.embed_coarse`)
    and draws every coarse cell itself: it learnt from the same scenes in two
    styles what to keep and what the prompt changes. There `strength` is the
    fraction of the reference's cells hidden from it (a random choice per
    seed, as in training): at 0 it sees them all. One that also has a detail
    reference input (`GPTConfig.detail_reference_input`) sees the reference's
    detail tokens under the cells it is shown, so it can keep which object
    each blob is, not only where the blobs are.

    `seed`, `seeds`, `sampler` and `callback` behave as in `Pipeline.generate`,
    one image per seed.
    """
    _check_prompt(prompt)
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be between 0 and 1, got {strength}")
    seeds = _seeds(seed, seeds)
    source = upright(_open(image))
    original_size = source.size
    square, (left, top, width, height) = letterbox(flatten(source, background=(255, 255, 255)), pipe.image_size)
    coarse_src, detail_src = _encode(pipe, square)
    config = sampler or pipe.sampler
    cells = coarse_src.shape[1]
    keep = cells - round(strength * cells)
    coarse_fixed, reference, detail_reference = None, None, None
    g = pipe.generator.config
    if g.reference_input:
        reference = shown_reference(coarse_src, seeds, cells - keep, g.mask_id)
        if g.detail_reference_input:  # the same cells hidden: the detail positions they cover have none
            hidden = (reference == g.mask_id)[:, pipe.generator.cover]
            detail_reference = detail_src.expand(len(seeds), -1).masked_fill(hidden, g.bos_id)
    else:
        coarse_fixed = torch.full((len(seeds), cells), -1, dtype=torch.long)
        if keep > 0:
            score = reference_confidence(pipe, prompt, coarse_src, config.cfg)
            kept = torch.argsort(-score, stable=True)[:keep]
            coarse_fixed[:, kept] = coarse_src[0, kept]

    def finish(generated: Image.Image) -> Image.Image:
        out = generated.crop((left, top, left + width, top + height))
        return out.resize(original_size, Image.Resampling.LANCZOS) if keep_size else out

    text, null = pipe.text_ids([prompt] * len(seeds))
    coarse, detail = sample_tokens(
        pipe.generator,
        text,
        null,
        config,
        seeds,
        coarse_fixed=coarse_fixed,
        callback=_progress(pipe, finish, callback),
        coarse_reference=reference,
        detail_reference=detail_reference,
    )
    return [finish(generated) for generated in pipe.decode(coarse, detail)]


def shown_reference(coarse: torch.Tensor, seeds: list[int], hidden: int, mask_id: int) -> torch.Tensor:
    """(len(seeds), C) copies of a reference grid (1, C), each with `hidden` random cells [MASK], chosen by its seed."""
    shown = coarse.expand(len(seeds), -1).clone()
    for row, seed in enumerate(seeds):
        cells = torch.randperm(shown.shape[1], generator=torch.Generator().manual_seed(seed))[:hidden]
        shown[row, cells] = mask_id
    return shown
