"""Tokenizer quality on held-out world scenes: PSNR, codebook usage, whether text survives, speed.

    python -m benchmarks.tokenizer_quality [--tokenizer PATH] [--scenes 1000] [--text-scenes 200]

PSNR (full and coarse-only) and codebook usage come from `evaluate_tokenizer`.
Text survival: for held-out scenes that contain text, the judge's OCR reads the
original and the reconstruction; the figure is the share of scenes whose text
reads back exactly after reconstruction among those whose original reads back.
`text_box_psnr` is the PSNR over the pixels of those scenes' text blocks alone
(`imgen.world.text_regions`, all text scenes pooled): a figure that moves with
every letter's sharpness, where the read-back count moves a scene at a time.
`text_survival_by` splits the read-back count by style, script and length
(characters in the scene), as [survived, originals that read], to show
where letters are lost.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.common import write_result
from imgen.api import BUNDLED, TOKENIZER_FILE
from imgen.checkpoints import load_tokenizer
from imgen.eval.judge import judge
from imgen.tokenizer.model import VQTokenizer
from imgen.tokenizer.train import evaluate_tokenizer
from imgen.world.examples import example_rng, render_example
from imgen.world.layout import layout
from imgen.world.render import render
from imgen.world.sampling import random_spec
from imgen.world.scene import Scene
from imgen.world.spec import SceneSpec, SpecError
from imgen.world.text_regions import text_mask
from imgen.world.vocab import script_of


def reconstruct(model: VQTokenizer, image: Image.Image) -> Image.Image:
    pixels = torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1)[None]
    with torch.no_grad():
        grids = model.encode(pixels)
        out = model.decode(grids.coarse, grids.detail)[0]
    return Image.fromarray((out.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())


def text_scenes(count: int, seed: int, size: int) -> list[tuple[Image.Image, SceneSpec, Scene]]:
    """Held-out scenes with text only (objects removed), so the check is about letters alone."""
    scenes: list[tuple[Image.Image, SceneSpec, Scene]] = []
    index = 0
    while len(scenes) < count:
        rng = example_rng(seed, "heldout", index)
        index += 1
        spec = random_spec(rng, "heldout")
        if not spec.texts:
            continue
        text_only = SceneSpec(texts=spec.texts, background=spec.background, style=spec.style)
        try:
            scene = layout(text_only, random.Random(index))
        except SpecError:
            continue
        scenes.append((render(scene, size), text_only, scene))
    return scenes


def text_reads(image: Image.Image, spec: SceneSpec) -> bool | None:
    checks = [c for c in judge(image, spec).checks if c.name.startswith("text ")]
    if any(c.passed is None for c in checks):
        return None
    return all(c.passed for c in checks)


def text_groups(spec: SceneSpec) -> dict[str, str]:
    """The groups a text scene's read-back is tallied under: its style, its script(s), its length."""
    scripts = sorted({script_of(block.text) for block in spec.texts})
    characters = sum(len(block.text.replace(" ", "")) for block in spec.texts)
    length = "1-3" if characters <= 3 else "4-6" if characters <= 6 else "7+"
    return {"style": spec.style, "script": "+".join(scripts), "characters": length}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", type=Path, default=BUNDLED / TOKENIZER_FILE)
    parser.add_argument("--scenes", type=int, default=1000)
    parser.add_argument("--text-scenes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model = load_tokenizer(args.tokenizer).eval()
    quality = evaluate_tokenizer(model, n_scenes=args.scenes, split="heldout", seed=args.seed)

    original_reads = survived = unmeasured = 0
    box_error = box_pixels = 0.0
    by: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    size = model.config.image_size
    for image, spec, scene in text_scenes(args.text_scenes, args.seed, size):
        rebuilt = reconstruct(model, image)
        mask = text_mask(scene, size)
        error = (np.asarray(rebuilt, dtype=np.float64) - np.asarray(image, dtype=np.float64)) / 255.0
        box_error += float(np.square(error[mask]).sum())
        box_pixels += float(mask.sum()) * 3
        before = text_reads(image, spec)
        if before is None:
            unmeasured += 1
            continue
        if before:
            original_reads += 1
            reads = bool(text_reads(rebuilt, spec))
            survived += reads
            for kind, group in text_groups(spec).items():
                by[kind][group][0] += reads
                by[kind][group][1] += 1
    text_box_psnr = -10 * math.log10(max(box_error / box_pixels, 1e-10))

    image, _ = render_example(args.seed, 0, "heldout", size=size)
    reconstruct(model, image)
    start = time.perf_counter()
    for _ in range(20):
        reconstruct(model, image)
    milliseconds = (time.perf_counter() - start) / 20 * 1000

    result = {
        "tokenizer": args.tokenizer.name,
        "parameters": model.num_parameters(),
        **{k: round(v, 4) for k, v in quality.items()},
        "text_scenes": args.text_scenes,
        "text_original_reads": original_reads,
        "text_survives": survived,
        "text_survival_rate": round(survived / original_reads, 4) if original_reads else None,
        "text_unmeasured": unmeasured,
        "text_box_psnr": round(text_box_psnr, 3),
        "text_survival_by": {kind: dict(sorted(groups.items())) for kind, groups in sorted(by.items())},
        "encode_decode_ms_batch1": round(milliseconds, 2),
        "threads": torch.get_num_threads(),
    }
    path = write_result("tokenizer_quality", result)
    print(
        f"PSNR {quality['psnr_full']:.2f} dB (coarse {quality['psnr_coarse']:.2f}); "
        f"text survives {survived}/{original_reads} (text boxes {text_box_psnr:.2f} dB); "
        f"encode+decode {milliseconds:.1f} ms -> {path}"
    )
    for kind, groups in sorted(by.items()):
        counts = ", ".join(f"{group} {kept}/{total}" for group, (kept, total) in sorted(groups.items()))
        print(f"  text by {kind}: {counts}")


if __name__ == "__main__":
    main()
