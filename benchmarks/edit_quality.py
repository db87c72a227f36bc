"""Do edits and restyles do what the prompt says? Judged from pixels, on world scenes of test seeds.

    python -m benchmarks.edit_quality [--model default] [--scenes 100] [--check] [--feather PX] [--no-seamless]
        [--coarse-steps N] [--strength S] [--restyle-only] [--style-only-prompts] [--cfg C]

Edits: each scene has two objects in different regions of the 3x3 grid. The
mask covers the first object's box (grown by 4 px); the prompt asks for a
different object (another kind and colour) in that place and repeats the
second object, as `imgen edit` asks (the prompt describes the whole picture).
The judge (`imgen.eval.judge`) then reads the edited picture against the
target scene:

- requested: the new object is there, once, in its region;
- intact: the second object is still found where it was, and no pixel outside
  the mask changed (byte for byte);
- seam: mean colour step across the mask border vs. between neighbouring
  untouched pixels (`imgen.masks.seam_step`);
- generated: the same target prompt generated from scratch with the same seed,
  judged the same way: what the generator achieves on these prompts without
  an image to keep, the baseline an edit's "requested" compares with.

Restyles: each scene has one to three objects drawn flat; the prompt asks for
the same scene in another style (describing the scene, or with
`--style-only-prompts` naming the style alone: "the scene at night"). The judge counts the reference's objects it
finds again in their regions, and whether the asked style explains the
objects best (its style check). The reference itself, returned unchanged, is
scored too (`restyle_identity_*`): the figures of doing nothing.

`--feather` and `--no-seamless` set the compositing (defaults: those of
`imgen edit`); any other setting writes its own result file, so the plain paste
(`--feather 0 --no-seamless`) can be compared with the default; so does a
restyle `--strength` other than 0.5, and `--restyle-only` (restyles alone,
for a strength sweep).

`--check` runs the same scoring on ground-truth renders of the targets instead
of the model's outputs, pasted with the same compositing (feather, seamless)
as an edit: every figure must then be at or next to its best (1.0; the
feather can blend a little of the old object into the new one's edge), which
shows that the scoring and the compositing, not the model, set the ceiling.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import asdict, replace

import numpy as np
from PIL import Image

from benchmarks.common import write_result
from imgen.api import load
from imgen.editing import COARSE_SHARE, DEFAULT_FEATHER, edit, restyle
from imgen.eval.judge import judge
from imgen.masks import CropBox, composite, feather_weights, grow_mask, seam_step
from imgen.world import vocab
from imgen.world.captions import STYLE_FRAMES, caption
from imgen.world.layout import layout
from imgen.world.render import render
from imgen.world.spec import ObjectGroup, SceneSpec

SIZE = 128
EDIT_FIGURES = (
    "edit_requested_found",
    "generate_requested_found",
    "edit_unmasked_intact",
    "edit_pixels_changed_outside_mask",
    "seam_border_step",
    "seam_interior_step",
)
KINDS = vocab.SHAPES + tuple(vocab.STICKERS)


def _object(rng: random.Random, region: str, avoid: tuple[ObjectGroup, ...] = ()) -> ObjectGroup:
    """A random shape (coloured) or sticker in `region`, of another kind than every group in `avoid`.

    The colour must differ too where both have one. (Requiring a different
    colour of a sticker, which has none, made every replacement of a sticker
    a shape: 83% of the requested objects were shapes, the easier kind.)
    """
    while True:
        kind = rng.choice(KINDS)
        color = rng.choice([c for c in vocab.COLORS if c not in ("white",)]) if kind in vocab.SHAPES else None
        if all(kind != other.kind and (color is None or color != other.color) for other in avoid):
            return ObjectGroup(kind=kind, count=1, color=color, region=region)


def _draw(spec: SceneSpec, seed: int) -> tuple[Image.Image, list]:
    scene = layout(spec, random.Random(f"edit-quality/{seed}"))
    return render(scene, SIZE), list(scene.items)


def _describe(group: ObjectGroup) -> str:
    return f"{group.color} {group.kind}" if group.color else group.kind


def _passed(verdict, name: str) -> bool:
    wanted = [c for c in verdict.checks if c.name in (f"count of {name}", f"place of {name}")]
    return bool(wanted) and all(c.passed is True for c in wanted)


def edit_case(index: int, seed: int):
    """(source image, mask, target spec, prompt, new group, kept group) of edit scene `index`."""
    rng = random.Random(f"edit-quality/{seed}/{index}")
    first, second = rng.sample(vocab.REGIONS, 2)
    old, kept = _object(rng, first), _object(rng, second)
    source_spec = SceneSpec(groups=(old, kept))
    image, items = _draw(source_spec, index)
    left, top, right, bottom = (round(v * SIZE) for v in items[0].box)
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[max(0, top) : min(SIZE, bottom), max(0, left) : min(SIZE, right)] = True
    mask = grow_mask(mask, 4)
    new = _object(rng, first, avoid=(old, kept))  # not the kept object's kind either: the judge counts by name
    target = SceneSpec(groups=(new, kept))
    return image, mask, target, caption(target, rng), new, kept


def restyle_case(index: int, seed: int, style_only: bool = False):
    """(reference image, target spec, prompt) of restyle scene `index`; with `style_only` the prompt names the
    style alone ("the scene at night"), as a restyle is often asked for."""
    rng = random.Random(f"restyle-quality/{seed}/{index}")
    regions = rng.sample(vocab.REGIONS, rng.randint(1, 3))
    groups = tuple(_object(rng, region) for region in regions)
    image, _ = _draw(SceneSpec(groups=groups), index)
    style = rng.choice(vocab.STYLES[1:])
    target = SceneSpec(groups=groups, style=style)
    prompt = caption(target, rng)
    if style_only:
        prompt = rng.choice(STYLE_FRAMES[style]).format("the scene")
    return image, target, prompt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--precision", default="auto", help="auto, fp32 or bf16 (see imgen.precision)")
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--strength", type=float, default=0.5, help="restyle strength")
    parser.add_argument("--check", action="store_true", help="score ground-truth renders instead of the model")
    parser.add_argument("--feather", type=int, default=DEFAULT_FEATHER, help="edit's blend depth inside the mask, px")
    parser.add_argument("--no-seamless", dest="seamless", action="store_false", help="paste without border matching")
    parser.add_argument("--coarse-steps", type=int, default=None, help="coarse steps of edits and restyles")
    parser.add_argument("--restyle-only", action="store_true", help="skip the edits (e.g. for a --strength sweep)")
    parser.add_argument("--style-only-prompts", action="store_true", help="restyle prompts name the style alone")
    parser.add_argument("--cfg", type=float, default=None, help="guidance scale of edits and restyles")
    args = parser.parse_args()
    pipe = None if args.check else load(args.model, precision=args.precision)
    sampler = None
    if pipe is not None:
        sampler = replace(pipe.sampler, coarse_steps=args.coarse_steps or pipe.sampler.coarse_steps)
        sampler = replace(sampler, cfg=pipe.sampler.cfg if args.cfg is None else args.cfg)
    start = time.perf_counter()

    requested, intact, changed_outside, border, interior, generated = [], [], 0, [], [], []
    edit_scenes = 0 if args.restyle_only else args.scenes
    for index in range(edit_scenes):
        image, mask, target, prompt, new, kept = edit_case(index, args.seed)
        if pipe is None:
            truth, _ = _draw(target, index)
            weights = feather_weights(mask, args.feather)
            result = composite(image, np.asarray(truth), CropBox(0, 0, SIZE), mask, weights, args.seamless)
        else:
            drawn = pipe.generate([prompt], seed=index, sampler=sampler)[0]
            generated.append(_passed(judge(drawn, target), _describe(new)))
            mask_image = Image.fromarray(mask.astype(np.uint8) * 255)
            edited = edit(
                pipe,
                image,
                mask_image,
                prompt,
                feather=args.feather,
                seamless=args.seamless,
                seed=index,
                sampler=sampler,
            )
            result = edited.image
        before, after = np.asarray(image.convert("RGB")), np.asarray(result.convert("RGB"))
        outside_changed = int((before != after).any(-1)[~mask].sum())
        changed_outside += outside_changed
        verdict = judge(result, target)
        requested.append(_passed(verdict, _describe(new)))
        intact.append(_passed(verdict, _describe(kept)) and outside_changed == 0)
        step, base = seam_step(image, result, mask)
        border.append(step)
        interior.append(base)

    kept_objects, found_objects, styled, identity_found, identity_styled = 0, 0, [], 0, 0
    for index in range(args.scenes):
        image, target, prompt = restyle_case(index, args.seed, args.style_only_prompts)
        unchanged = judge(image, target)
        identity_found += sum(_passed(unchanged, _describe(g)) for g in target.groups)
        identity_styled += any(c.name == f"style {target.style}" and c.passed is True for c in unchanged.checks)
        if pipe is None:
            output, _ = _draw(target, index)
        else:
            output = restyle(pipe, image, prompt, strength=args.strength, seed=index, sampler=sampler)[0]
        verdict = judge(output, target)
        kept_objects += len(target.groups)
        found_objects += sum(_passed(verdict, _describe(g)) for g in target.groups)
        styled.append(any(c.name == f"style {target.style}" and c.passed is True for c in verdict.checks))

    edits = dict.fromkeys(EDIT_FIGURES)
    if not args.restyle_only:
        edits = {
            "edit_requested_found": round(sum(requested) / args.scenes, 3),
            "generate_requested_found": round(sum(generated) / args.scenes, 3) if generated else None,
            "edit_unmasked_intact": round(sum(intact) / args.scenes, 3),
            "edit_pixels_changed_outside_mask": changed_outside,
            "seam_border_step": round(statistics.fmean(border), 2),
            "seam_interior_step": round(statistics.fmean(interior), 2),
        }
    result = {
        "checkpoint": "ground truth (--check)" if pipe is None else f"{pipe.name} ({pipe.sha256[:10]})",
        "precision": None if pipe is None else pipe.precision,
        "scenes": args.scenes,
        "seed": args.seed,
        **edits,
        "restyle_objects_kept": round(found_objects / kept_objects, 3),
        "restyle_style_recognised": round(sum(styled) / args.scenes, 3),
        "restyle_identity_objects_kept": round(identity_found / kept_objects, 3),
        "restyle_identity_style_recognised": round(identity_styled / args.scenes, 3),
        "restyle_strength": args.strength,
        "restyle_style_only_prompts": args.style_only_prompts,
        "feather": args.feather,
        "seamless": args.seamless,
        "coarse_steps": None if sampler is None else sampler.coarse_steps,
        "sampler": None if sampler is None else asdict(sampler),
        "coarse_share": COARSE_SHARE,  # edits free the coarse cells their mask covers at least this much
        "seconds": round(time.perf_counter() - start, 1),
    }
    name = "edit_quality_check" if args.check else "edit_quality"
    if (args.feather, args.seamless) != (DEFAULT_FEATHER, True):
        name += f"_feather{args.feather}_{'seamless' if args.seamless else 'plain'}"
    if sampler is not None and args.coarse_steps is not None:
        name += f"_coarse{sampler.coarse_steps}"
    if args.restyle_only or args.strength != 0.5:
        name += f"{'_restyle' if args.restyle_only else ''}_strength{args.strength:g}"
    if args.style_only_prompts:
        name += "_style_prompts"
    if args.cfg is not None:
        name += f"_cfg{args.cfg:g}"
    path = write_result(name, result)
    if args.restyle_only:
        print(
            f"restyle at strength {args.strength:g}: objects kept {result['restyle_objects_kept']:.2f}, "
            f"style {result['restyle_style_recognised']:.2f} -> {path}"
        )
        return
    baseline = "" if not generated else f" (generated from scratch: {result['generate_requested_found']:.2f})"
    print(
        f"edits: requested {result['edit_requested_found']:.2f}{baseline}, intact "
        f"{result['edit_unmasked_intact']:.2f}, seam {result['seam_border_step']} vs {result['seam_interior_step']}; "
        f"restyle: objects kept {result['restyle_objects_kept']:.2f}, style {result['restyle_style_recognised']:.2f} "
        f"(reference unchanged: {result['restyle_identity_objects_kept']:.2f}, "
        f"{result['restyle_identity_style_recognised']:.2f}) -> {path}"
    )


if __name__ == "__main__":
    main()
