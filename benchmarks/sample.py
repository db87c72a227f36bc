"""Sampling speed on this machine: GEMM peak, latency, throughput, utilisation, cold start, memory.

    python -m benchmarks.sample [--model default] [--batches 1,4,16,64] [--repeats 5] [--latency-rounds 5]
        [--windows 2,4,8] [--coarse-steps 16,32] [--precision auto]

Everything is measured in one run, so the ratios (two-phase vs raster, batch
throughput vs GEMM peak) compare like with like. Model FLOPs count the matrix
products and attention of every forward pass the sampler makes (guidance
doubles the batch) and the convolutions of the image decoder that turns tokens
into pixels (counted by torch's `FlopCounterMode`), divided by wall time: that
is the utilisation figure. A batch runs as one shard per core (`imgen.shards`),
as `Pipeline.generate` does.
Where the batch-16 time goes is timed phase by phase (prompt encoding, coarse
phase, detail phase, decoding to pixels) on one unsharded batch over all
threads, each phase with its own FLOPs, so the utilisation of each phase shows
which one holds the total back.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.common import write_result
from imgen.api import Pipeline, load
from imgen.precision import DTYPES
from imgen.sampler import (
    SamplerConfig,
    coarse_phase,
    detail_phase_of,
    detail_schedule,
    make_generators,
    parallel_detail_phase,
    prompt_cache,
)

PROMPT = "three red stars above a blue square"  # every timing uses it, so runs compare like with like


def gemm_peak(precision: str, size: int = 1536, repeats: int = 10, trials: int = 3) -> tuple[float, str]:
    """GFLOP/s of a large square matrix product in the dtype sampling uses ("fp32" or "bf16"): the best of `trials`.

    The best, not the mean: a shared machine only ever slows a trial down, and
    the reference should be what the cores can do.
    """
    dtype = DTYPES[precision]
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(trials):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 * repeats / best / 1e9, str(dtype).removeprefix("torch.")


def decode_flops(pipe: Pipeline) -> float:
    """FLOPs of decoding one image's tokens to pixels (the tokenizer's decoder), counted by FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    g = pipe.generator.config
    coarse = torch.zeros(1, g.coarse_len, dtype=torch.long)
    detail = torch.zeros(1, g.detail_len, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        pipe.decode(coarse, detail)
    return float(counter.get_total_flops())


def phase_flops(pipe: Pipeline, config: SamplerConfig) -> dict[str, float]:
    """FLOPs of one image, by phase: prompt encoding, coarse phase, detail phase (matmuls + attention, as the
    sampler runs them) and decoding to pixels.

    The transformer body runs on the guidance-doubled batch (in the detail
    phase only when it is guided); the heads run once per image (guidance mixes
    hidden states before them). The prompt is encoded
    once; coarse steps process the grid only, over the cached prompt; parallel
    detail steps attend up to the last slot written in that step.
    """
    g = pipe.generator.config
    d, layers = g.d_model, g.n_layers
    per_token = layers * (2 * 4 * d * d + 2 * 2 * int(g.mlp_ratio * d) * d)  # qkv+out, MLP
    T, C, D = g.text_len, g.coarse_len, g.detail_len
    # The prompt and coarse phase always run prompt and empty-prompt rows; the detail phase does only when guided.
    coarse_rows, detail_rows = 2, 1 if config.detail_cfg == 1.0 else 2
    passes = config.coarse_steps if config.mode == "two-phase" else C
    detail_tokens = (C + 1) + (D - 1)  # detail prefill, detail steps
    detail_pairs = (C + 1) * (T + C + 1)
    if detail_phase_of(pipe.generator, config) is parallel_detail_phase:
        for positions in detail_schedule(g.detail_grid, config.detail_window)[1:]:
            detail_pairs += len(positions) * (T + C + max(positions) + 1)
    else:
        detail_pairs += sum(T + C + 1 + j for j in range(1, D))
    attention = 4 * d * layers  # QK^T and AV: 2 * 2 * d per pair and layer
    return {
        "prompt": coarse_rows * (per_token * T + attention * T * T),
        "coarse": coarse_rows * passes * C * (per_token + attention * (T + C)) + 2 * d * passes * C * g.coarse_vocab,
        "detail": detail_rows * (per_token * detail_tokens + attention * detail_pairs) + 2 * d * D * g.detail_vocab,
        "decode": decode_flops(pipe),
    }


def phase_seconds(pipe: Pipeline, batch: int, config: SamplerConfig, repeats: int) -> dict[str, float]:
    """Best-of-`repeats` seconds of each phase of one `batch`-image call of a two-phase sampler.

    "prompt" includes allocating the KV cache, which the prompt's keys and values open.
    """
    model, prompts = pipe.generator, [PROMPT] * batch
    detail_phase = detail_phase_of(model, config)
    text, null = pipe.text_ids(prompts)
    best: dict[str, float] = {}
    for r in range(repeats + 1):  # the first round warms up
        generators = make_generators([r * batch + i for i in range(batch)])
        marks = [time.perf_counter()]
        cache = prompt_cache(model, text, null)
        marks.append(time.perf_counter())
        coarse = coarse_phase(model, text, null, config, generators, cache=cache)
        marks.append(time.perf_counter())
        detail = detail_phase(model, text, null, coarse, config, generators, cache=cache)
        marks.append(time.perf_counter())
        pipe.decode(coarse, detail)
        marks.append(time.perf_counter())
        if r > 0:
            for name, start, end in zip(("prompt", "coarse", "detail", "decode"), marks, marks[1:], strict=False):
                best[name] = min(best.get(name, float("inf")), end - start)
    return best


def timed_generate(pipe: Pipeline, batch: int, config: SamplerConfig, repeats: int, shards: int | None = None) -> float:
    """Best-of-`repeats` seconds for one call producing `batch` images (decoding to pixels included).

    `shards` as in `Pipeline.generate` (None: one shard per thread, as a plain call runs).
    """
    prompts = [PROMPT] * batch
    pipe.generate(prompts, sampler=config, seeds=list(range(batch)), shards=shards)  # warm, at this batch's shapes
    best = float("inf")
    for r in range(repeats):
        start = time.perf_counter()
        pipe.generate(prompts, sampler=config, seeds=[r * batch + i for i in range(batch)], shards=shards)
        best = min(best, time.perf_counter() - start)
    return best


def sharding_gain(pipe: Pipeline, batch: int, config: SamplerConfig, rounds: int) -> dict[str, float]:
    """Images/s of one `batch` call run whole (all threads on each operation) and as one shard per thread.

    Interleaved, best of `rounds` each, so the ratio is measured under the same conditions.
    """
    prompts = [PROMPT] * batch
    ways = {"whole": 1, "sharded": None}
    for shards in ways.values():
        pipe.generate(prompts, sampler=config, seeds=list(range(batch)), shards=shards)  # warm
    best = dict.fromkeys(ways, float("inf"))
    for r in range(rounds):
        for name, shards in ways.items():
            start = time.perf_counter()
            pipe.generate(prompts, sampler=config, seeds=[r * batch + i for i in range(batch)], shards=shards)
            best[name] = min(best[name], time.perf_counter() - start)
    return {
        "whole_images_per_s": round(batch / best["whole"], 2),
        "sharded_images_per_s": round(batch / best["sharded"], 2),
        "speedup": round(best["whole"] / best["sharded"], 2),
    }


def interleaved_latency(pipe: Pipeline, samplers: dict[str, SamplerConfig], rounds: int) -> dict[str, float]:
    """Best-of-`rounds` seconds for one image with each sampler, timed in turn within every round.

    Interleaving exposes every sampler to the same drift of a shared machine,
    and the best of several rounds for each one (the baseline included) keeps
    one slow round from deciding a ratio.
    """
    prompt = [PROMPT]
    for config in samplers.values():
        pipe.generate(prompt, sampler=config, seeds=[0])  # warm
    best = dict.fromkeys(samplers, float("inf"))
    for r in range(rounds):
        for name, config in samplers.items():
            start = time.perf_counter()
            pipe.generate(prompt, sampler=config, seeds=[r])
            best[name] = min(best[name], time.perf_counter() - start)
    return best


# Runs `python -m imgen ARGS` and reports the process's own peak resident memory at exit.
# (A child's getrusage figure would not do: Linux carries the parent's peak into it across fork and exec.)
_PEAK_REPORTING_MAIN = """
import atexit, runpy, sys
def report():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    sys.stderr.write("peak-kb " + line.split()[1] + "\\n")
    except OSError:
        pass
atexit.register(report)
sys.argv = ["imgen", *sys.argv[1:]]
runpy.run_module("imgen", run_name="__main__", alter_sys=True)
"""


def cold_start(args: list[str]) -> tuple[float, float | None]:
    """Wall seconds and peak resident MB (None where /proc is missing) of `imgen ARGS` in a fresh process."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_REPORTING_MAIN, *args], check=True, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    peaks = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("peak-kb ")]
    return seconds, int(peaks[-1]) / 1024 if peaks else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--precision", default="auto", help="auto, fp32 or bf16 (see imgen.precision)")
    parser.add_argument("--batches", default="1,4,16,64")
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="timed calls per batch size up to 16 (best counts; this machine only ever slows a call down); larger: 2",
    )
    parser.add_argument("--latency-rounds", type=int, default=5, help="interleaved rounds of one-image timings")
    parser.add_argument("--windows", default="2,4,8", help="detail windows to time besides the default sampler")
    parser.add_argument(
        "--coarse-steps", default="", help="coarse step counts to time besides the default sampler, e.g. 16,32"
    )
    args = parser.parse_args()

    pipe = load(args.model, precision=args.precision)
    peak, dtype = gemm_peak(pipe.precision)
    two_phase, raster = SamplerConfig(), SamplerConfig(mode="raster")

    torch.set_num_threads(1)  # what `imgen generate` uses for one image
    samplers = {"default": two_phase, "raster": raster}
    samplers |= {w: replace(two_phase, detail_window=int(w)) for w in args.windows.split(",") if w}
    steps = [int(n) for n in args.coarse_steps.split(",") if n]
    samplers |= {f"coarse-{n}": replace(two_phase, coarse_steps=n) for n in steps}
    best = interleaved_latency(pipe, samplers, args.latency_rounds)
    latency, latency_raster = best.pop("default"), best.pop("raster")
    by_coarse_steps = {str(n): round(best.pop(f"coarse-{n}"), 3) for n in steps}
    by_window = {window: round(seconds, 3) for window, seconds in best.items()}
    torch.set_num_threads(os.cpu_count() or 1)

    flops = phase_flops(pipe, two_phase)
    throughput = {}
    for batch in (int(b) for b in args.batches.split(",")):
        seconds = timed_generate(pipe, batch, two_phase, args.repeats if batch <= 16 else 2)
        gflops = sum(flops.values()) * batch / seconds / 1e9
        throughput[str(batch)] = {
            "images_per_s": round(batch / seconds, 2),
            "model_gflops": round(gflops, 2),
            "fraction_of_gemm_peak": round(gflops / peak, 3),
            "process_peak_mb_so_far": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }

    sharding = sharding_gain(pipe, 16, two_phase, args.repeats)

    # Where the batch-16 time goes: seconds and utilisation of each phase.
    phases = {
        name: {
            "seconds": round(seconds, 4),
            "fraction_of_gemm_peak": round(flops[name] * 16 / seconds / 1e9 / peak, 3),
        }
        for name, seconds in phase_seconds(pipe, 16, two_phase, args.repeats).items()
    }

    help_seconds, _ = cold_start(["--help"])
    with tempfile.TemporaryDirectory() as folder:
        out = str(Path(folder) / "x.png")
        model_args = ["--model", args.model] if args.model else []
        generate_seconds, generate_mb = cold_start(
            ["generate", "a red circle", "-o", out, "--no-preview", "--precision", args.precision, *model_args]
        )

    result = {
        "checkpoint_sha256": pipe.sha256,
        "gemm_peak_gflops": round(peak, 1),
        "gemm_dtype": dtype,
        "sampling_precision": pipe.precision,
        "latency_two_phase_s": round(latency, 3),
        "latency_raster_s": round(latency_raster, 3),
        "speedup_vs_raster": round(latency_raster / latency, 2),
        "default_detail_window": two_phase.detail_window,
        "latency_by_detail_window_s": by_window,
        "speedup_by_detail_window": {w: round(latency_raster / s, 2) for w, s in by_window.items()},
        "latency_by_coarse_steps_s": by_coarse_steps,
        "gflop_per_image": {name: round(value / 1e9, 3) for name, value in flops.items()},
        "throughput": throughput,
        "sharding_at_batch_16": sharding,
        "phases_at_batch_16": phases,
        "cold_help_s": round(help_seconds, 3),
        "cold_generate_s": round(generate_seconds, 3),
        "cold_generate_peak_mb": None if generate_mb is None else round(generate_mb, 1),
        "latency_rounds": args.latency_rounds,
        "threads": {"latency": 1, "throughput": torch.get_num_threads()},
    }
    path = write_result("sample", result)
    phase_summary = ", ".join(f"{name} {phase['seconds']:.3f} s" for name, phase in phases.items())
    print(
        f"two-phase {latency:.3f} s vs raster {latency_raster:.3f} s ({latency_raster / latency:.1f}x); "
        f"batch 16 {throughput.get('16', {}).get('images_per_s')} img/s "
        f"({phase_summary}; sharded {sharding['speedup']}x whole); "
        f"cold generate {generate_seconds:.2f} s; --help {help_seconds:.2f} s -> {path}"
    )


if __name__ == "__main__":
    main()
