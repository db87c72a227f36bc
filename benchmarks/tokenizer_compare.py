"""Two tokenizers on the same held-out scenes, scene by scene: which one keeps more text, sharper.

    python -m benchmarks.tokenizer_compare --baseline default --candidate runs/vq/last.safetensors

`tokenizer_quality` scores one tokenizer; a difference of a few scenes between
two of its runs may be noise. Here both reconstruct the same scenes and the
figures are paired: the text scenes whose words read back with one tokenizer
and not the other (gained / lost, of those whose original reads), the
per-scene difference of PSNR over the text blocks' pixels and over whole
scenes (mean and standard error), and the encode + decode time of each,
measured alternately in one process so the ratio holds on a busy machine.
`default` names the bundled tokenizer.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.common import standard_error, write_result
from benchmarks.tokenizer_quality import reconstruct, text_reads, text_scenes
from imgen.api import BUNDLED, TOKENIZER_FILE
from imgen.checkpoints import load_tokenizer
from imgen.tokenizer.model import VQTokenizer
from imgen.weights import file_sha256
from imgen.world.examples import render_example
from imgen.world.text_regions import text_mask


def tokenizer_path(name: str) -> Path:
    return BUNDLED / TOKENIZER_FILE if name == "default" else Path(name)


def psnr_db(rebuilt: Image.Image, original: Image.Image, mask: np.ndarray | None = None) -> float:
    error = (np.asarray(rebuilt, dtype=np.float64) - np.asarray(original, dtype=np.float64)) / 255.0
    squared = np.square(error[mask] if mask is not None else error)
    return -10 * math.log10(max(float(squared.mean()), 1e-10))


def mean_and_error(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), standard_error(values)


def milliseconds(models: list[VQTokenizer], image: Image.Image, rounds: int = 10) -> list[float]:
    """Encode + decode time of one image per model, the models taking turns (one warm-up call each)."""
    totals = [0.0] * len(models)
    for model in models:
        reconstruct(model, image)
    for _ in range(rounds):
        for index, model in enumerate(models):
            start = time.perf_counter()
            reconstruct(model, image)
            totals[index] += time.perf_counter() - start
    return [total / rounds * 1000 for total in totals]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="default")
    parser.add_argument("--candidate", required=True)
    parser.add_argument("--scenes", type=int, default=300, help="whole held-out scenes for the PSNR difference")
    parser.add_argument("--text-scenes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    base = load_tokenizer(tokenizer_path(args.baseline)).eval()
    cand = load_tokenizer(tokenizer_path(args.candidate)).eval()
    if base.config.image_size != cand.config.image_size:
        raise SystemExit("the two tokenizers work at different image sizes")
    size = base.config.image_size

    reads = gained = lost = both = 0
    box_gain: list[float] = []
    for image, spec, scene in text_scenes(args.text_scenes, args.seed, size):
        mask = text_mask(scene, size)
        base_image, cand_image = reconstruct(base, image), reconstruct(cand, image)
        box_gain.append(psnr_db(cand_image, image, mask) - psnr_db(base_image, image, mask))
        if not text_reads(image, spec):
            continue
        reads += 1
        base_reads, cand_reads = bool(text_reads(base_image, spec)), bool(text_reads(cand_image, spec))
        gained += cand_reads and not base_reads
        lost += base_reads and not cand_reads
        both += base_reads and cand_reads

    scene_gain = []
    for index in range(args.scenes):
        image, _ = render_example(args.seed, index, "heldout", size=size)
        scene_gain.append(psnr_db(reconstruct(cand, image), image) - psnr_db(reconstruct(base, image), image))

    box_mean, box_error = mean_and_error(box_gain)
    scene_mean, scene_error = mean_and_error(scene_gain)
    base_ms, cand_ms = milliseconds([base, cand], render_example(args.seed, 0, "heldout", size=size)[0])
    result = {
        "baseline": args.baseline,
        "baseline_sha256": file_sha256(tokenizer_path(args.baseline))[:10],
        "candidate": args.candidate,
        "candidate_sha256": file_sha256(tokenizer_path(args.candidate))[:10],
        "text_original_reads": reads,
        "text_survives_baseline": both + lost,
        "text_survives_candidate": both + gained,
        "text_gained": gained,
        "text_lost": lost,
        "text_box_psnr_gain_db": round(box_mean, 3),
        "text_box_psnr_gain_se": round(box_error, 3),
        "scene_psnr_gain_db": round(scene_mean, 3),
        "scene_psnr_gain_se": round(scene_error, 3),
        "scenes": args.scenes,
        "encode_decode_ms_baseline": round(base_ms, 2),
        "encode_decode_ms_candidate": round(cand_ms, 2),
        "threads": torch.get_num_threads(),
    }
    path = write_result("tokenizer_compare", result)
    print(
        f"text read back: {both + gained} against {both + lost} of {reads} (gained {gained}, lost {lost}); "
        f"PSNR gain: text blocks {box_mean:+.2f} ± {box_error:.2f} dB, "
        f"scenes {scene_mean:+.2f} ± {scene_error:.2f} dB; "
        f"encode+decode {cand_ms:.1f} against {base_ms:.1f} ms -> {path}"
    )


if __name__ == "__main__":
    main()
