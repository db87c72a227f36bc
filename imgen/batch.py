"""Batches of images from shell scripts: prompt files, job plans, resume and sharding.

A run is planned up front as a list of `Job`s (prompt, seed, sampler settings,
output path), so that the same command always means the same files. Each image
is written atomically as soon as it is done; re-running a command skips every
job whose file already exists with matching metadata, which is what makes an
interrupted run resumable. Under `torchrun` each rank takes every WORLD_SIZE-th
job, so every image is made exactly once and the set of files is the same as
in a one-process run (an image never depends on its batch or its rank).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from imgen.outputs import image_metadata, output_path, parameters_text
from imgen.recipe import read_metadata
from imgen.sampler_config import SamplerConfig, check_seed
from imgen.shards import shard_bounds

if TYPE_CHECKING:
    from imgen.api import Pipeline, PreviewCallback
    from imgen.recipe import Recipe


IMAGES_PER_THREAD = 4  # automatic batch size: images per call for each torch thread, one shard per thread


def auto_batch_size(jobs: int, threads: int) -> int:
    """Images per call when the caller leaves it to imgen: `IMAGES_PER_THREAD` per torch thread, at most `jobs`."""
    return max(1, min(jobs, IMAGES_PER_THREAD * threads))


def sampling_threads(requested: int, batch_size: int, jobs: int) -> int | None:
    """Torch threads for a run: `requested`, or (for 0) one when images go one at a time, else torch's default (None).

    One image at a time is a chain of tiny matrix products: a second thread
    only adds synchronisation, and stalls badly when other processes share the
    cores. A larger batch is split over the threads, one shard each (`imgen.shards`).
    """
    if requested:
        return requested
    return 1 if batch_size == 1 or jobs == 1 else None


class PromptFileError(ValueError):
    """A prompt file line that cannot be used; the message names the line."""


@dataclass(frozen=True)
class PromptLine:
    """One line of a prompt file: a prompt and optional per-line settings."""

    prompt: str
    seed: int | None = None
    n: int = 1
    cfg: float | None = None
    name: str | None = None


@dataclass(frozen=True)
class Job:
    """One image to make: everything that decides its pixels, and where it goes."""

    index: int
    prompt: str
    seed: int
    sampler: SamplerConfig
    path: Path


@dataclass(frozen=True)
class JobResult:
    job: Job
    status: str  # "written", "skipped" (already there, same metadata) or "failed"
    seconds: float = 0.0
    error: str | None = None


def read_prompt_lines(text: str, source: str = "prompts") -> list[PromptLine]:
    """Plain lines (one prompt each, `#` comments, blanks ignored) or JSON lines with `prompt`, `seed`, `n`, `cfg`,
    `name`."""
    lines = []
    text = text.removeprefix("\ufeff")  # the byte-order mark some editors start UTF-8 files with
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("{"):
            lines.append(PromptLine(prompt=line))
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise PromptFileError(f"{source}:{number}: not valid JSON ({error.msg})") from None
        unknown = set(record) - {"prompt", "seed", "n", "cfg", "name"}
        if unknown:
            raise PromptFileError(f"{source}:{number}: unknown field(s) {', '.join(sorted(unknown))}")
        prompt = record.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise PromptFileError(f"{source}:{number}: 'prompt' must be a non-empty string")
        n = record.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 1000:
            raise PromptFileError(f"{source}:{number}: 'n' must be an integer from 1 to 1000")
        seed = record.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise PromptFileError(f"{source}:{number}: 'seed' must be an integer")
        cfg = record.get("cfg")
        if cfg is not None and (not isinstance(cfg, (int, float)) or isinstance(cfg, bool)):
            raise PromptFileError(f"{source}:{number}: 'cfg' must be a number")
        name = record.get("name")
        if name is not None and (not isinstance(name, str) or "/" in name or not name.strip()):
            raise PromptFileError(f"{source}:{number}: 'name' must be a file name without '/'")
        lines.append(PromptLine(prompt=prompt, seed=seed, n=n, cfg=None if cfg is None else float(cfg), name=name))
    if not lines:
        raise PromptFileError(f"{source}: no prompts in the file")
    return lines


def read_prompt_file(path: str, stdin: TextIO | None = None) -> list[PromptLine]:
    """`path` is a file, or `-` for standard input."""
    if path == "-":
        return read_prompt_lines((stdin or sys.stdin).read(), "stdin")
    source = Path(path)
    if not source.is_file():
        raise PromptFileError(f"{source}: no such prompt file")
    try:
        return read_prompt_lines(source.read_text(encoding="utf-8"), str(source))
    except UnicodeDecodeError:
        raise PromptFileError(f"{source}: not UTF-8 text") from None


def plan_jobs(
    lines: Iterable[PromptLine],
    base_seed: int,
    sampler: SamplerConfig,
    pattern: str | None = None,
    out_dir: Path | None = None,
    count: int = 1,
) -> list[Job]:
    """Expand prompt lines into jobs. Image i of the run gets seed `base_seed + i` unless its line sets a seed
    (then the line's images get `seed, seed + 1, ...`)."""
    jobs: list[Job] = []
    lines = list(lines)
    total = sum(line.n * count for line in lines)
    for line in lines:
        for j in range(line.n * count):
            index = len(jobs)
            seed = base_seed + index if line.seed is None else line.seed + j
            try:
                check_seed(seed)
            except ValueError as error:
                raise PromptFileError(f"image {index} ({line.prompt!r}): {error}") from None
            settings = sampler if line.cfg is None else replace(sampler, cfg=line.cfg)
            if line.name is not None:
                stem = line.name if line.n * count == 1 else f"{Path(line.name).stem}-{j}"
                path = Path(stem if stem.endswith(".png") else f"{stem}.png")
            else:
                path = output_path(pattern, line.prompt, seed, index, total)
            if out_dir is not None and not path.is_absolute():
                path = out_dir / path
            jobs.append(Job(index=index, prompt=line.prompt, seed=seed, sampler=settings, path=path))
    seen: dict[Path, int] = {}
    for job in jobs:
        if job.path in seen:
            raise PromptFileError(
                f"images {seen[job.path]} and {job.index} would both be written to {job.path}; "
                "use -o with {index} or {seed}"
            )
        seen[job.path] = job.index
    return jobs


def shard(jobs: list[Job], rank: int, world_size: int) -> list[Job]:
    """The jobs of one rank: every `world_size`-th, starting at `rank`."""
    return jobs[rank::world_size]


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) from the environment torchrun sets; (0, 1) when run alone."""
    try:
        return int(os.environ.get("RANK", "0")), max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 0, 1


def expected_metadata(
    job: Job, size: int, model: str, sha256: str, precision: str = "fp32", tokenizer_sha256: str | None = None
) -> dict:
    return image_metadata(job.prompt, job.sampler, job.seed, size, model, sha256, precision, tokenizer_sha256)


def already_done(
    job: Job, size: int, model: str, sha256: str, precision: str = "fp32", tokenizer_sha256: str | None = None
) -> bool | None:
    """True when the file exists with the same metadata; False when it exists and differs; None when absent.

    An empty file counts as absent: it is what a power cut can leave of an
    image being written, and it holds nothing to keep. The checkpoint is
    compared by its digest, not by how it was named (`runs/x`, `./runs/x`, an
    absolute path or a lock name all load the same file). An image written
    before images recorded their tokenizer's digest is judged by the
    generator's digest alone.
    """
    if not job.path.exists() or (job.path.is_file() and job.path.stat().st_size == 0):
        return None
    found = read_metadata(job.path)
    if found is None:
        return False
    expected = expected_metadata(job, size, model, sha256, precision, tokenizer_sha256)
    if "tokenizer_sha256" not in found:
        expected.pop("tokenizer_sha256", None)
    return {**found, "model": None} == {**expected, "model": None}


def prepare_folders(jobs: Iterable[Job]) -> None:
    """Create the output folders up front, so a bad path fails before any image is computed."""
    from imgen.io import OutputFolderError, ensure_folder

    for folder in sorted({job.path.parent for job in jobs if str(job.path.parent)}):
        try:
            ensure_folder(folder)
        except OutputFolderError as error:
            raise PromptFileError(str(error)) from None


def remove_stale_temporaries(jobs: Iterable[Job]) -> int:
    """Delete temporary files an earlier, killed run left beside its outputs. Returns how many."""
    removed = 0
    for job in jobs:
        folder = job.path.parent if str(job.path.parent) else Path(".")
        if not folder.is_dir():
            continue
        for stale in folder.glob(f".{job.path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
            removed += 1
    return removed


def batches_of(jobs: list[Job], batch_size: int) -> list[list[Job]]:
    """Consecutive groups of at most `batch_size` jobs that share sampler settings (one call each).

    A run of jobs with the same settings is cut into groups of near-equal size
    (9 jobs at 8: 5 and 4, not 8 and 1), so no call is left with one image
    while the cores that could share it idle.
    """
    runs: list[list[Job]] = []
    for job in jobs:
        if runs and runs[-1][0].sampler == job.sampler:
            runs[-1].append(job)
        else:
            runs.append([job])
    groups: list[list[Job]] = []
    for run in runs:
        parts = -(-len(run) // batch_size)
        groups.extend(run[start:end] for start, end in shard_bounds(len(run), parts))
    return groups


def job_record(
    result: JobResult, size: int, model: str, sha256: str, precision: str = "fp32", tokenizer_sha256: str | None = None
) -> dict:
    """The JSON line printed for one job."""
    job = result.job
    record = {"path": str(job.path), "status": result.status}
    record.update(expected_metadata(job, size, model, sha256, precision, tokenizer_sha256))
    record["seconds"] = round(result.seconds, 3)
    if result.error:
        record["error"] = result.error
    return record


def png_text(job: Job, size: int, model: str, sha256: str) -> dict[str, str]:
    return {"parameters": parameters_text(job.prompt, job.sampler, job.seed, size, model, sha256)}


ResultCallback = Callable[[JobResult], None]


def run_jobs(
    pipe: Pipeline,
    jobs: list[Job],
    batch_size: int = 1,
    overwrite: bool = False,
    on_result: ResultCallback | None = None,
    preview: PreviewCallback | None = None,
) -> list[JobResult]:
    """Make every job's image, batch by batch, writing each file atomically as soon as its batch is done.

    Jobs whose file is already there with the same metadata are skipped (resume);
    a file there with other metadata is a failure unless `overwrite`. A failure to
    write one image does not stop the others.
    """
    from imgen.io import save_png

    size = pipe.image_size
    remove_stale_temporaries(jobs)
    results: list[JobResult] = []

    def report(result: JobResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    todo = []
    for job in jobs:
        done = already_done(job, size, pipe.name, pipe.sha256, pipe.precision, pipe.tokenizer_sha256)
        if done:
            report(JobResult(job, "skipped"))
        elif done is False and not overwrite:
            report(JobResult(job, "failed", error=f"{job.path} exists with other settings; pass --overwrite"))
        else:
            todo.append(job)
    for group in batches_of(todo, batch_size):
        start = time.perf_counter()
        images = pipe.generate(
            [job.prompt for job in group],
            sampler=group[0].sampler,
            seeds=[job.seed for job in group],
            callback=preview if len(group) == 1 else None,
        )
        seconds = (time.perf_counter() - start) / len(group)
        for job, image in zip(group, images, strict=True):
            try:
                job.path.parent.mkdir(parents=True, exist_ok=True)
                save_png(
                    image,
                    job.path,
                    overwrite=True,
                    text=png_text(job, size, pipe.name, pipe.sha256),
                    metadata=expected_metadata(
                        job, size, pipe.name, pipe.sha256, pipe.precision, pipe.tokenizer_sha256
                    ),
                )
            except OSError as error:
                report(JobResult(job, "failed", seconds, f"cannot write {job.path}: {error.strerror or error}"))
                continue
            report(JobResult(job, "written", seconds))
    return results


def generate_batch(
    request: Recipe,
    lines: list[PromptLine],
    output: str | None = None,
    out_dir: Path | None = None,
    count: int = 1,
    batch_size: int = 0,
    threads: int = 0,
    overwrite: bool = False,
    on_result: ResultCallback | None = None,
    on_loaded: Callable[[Pipeline, list[Job]], None] | None = None,
    preview: PreviewCallback | None = None,
) -> list[JobResult]:
    """`imgen generate` as a function: plan the files, make their folders, load the checkpoint, make the images.

    `request` gives the checkpoint, precision, first seed and sampler
    (`imgen.recipe.request_from`); `lines` the prompts (`read_prompt_file`, or
    one `PromptLine`); `output` a file name pattern or folder and `out_dir` a
    folder (`plan_jobs`). Under torchrun this process makes its share. Files
    already written with the same settings are skipped, so calling it again
    after an interruption finishes the batch. `batch_size` 0 is automatic.
    `on_loaded(pipe, jobs)` runs once the checkpoint is loaded, before any
    image (for warnings about the prompts); `preview` follows a single image.
    Bad plans raise `PromptFileError` before anything is made or
    loaded; checkpoint problems raise `imgen.api.ModelUnavailableError` or
    `imgen.checkpoints.CheckpointError`.
    """
    from imgen.api import load
    from imgen.precision import resolve_precision

    try:
        precision = resolve_precision(request.precision or "auto")
        jobs = plan_jobs(lines, request.seed, request.sampler, output, out_dir, count)
    except (KeyError, IndexError, ValueError) as error:  # a bad plan, said before anything is made or loaded
        raise PromptFileError(str(error)) from None
    prepare_folders(jobs)
    jobs = shard(jobs, *distributed_rank())
    pipe = load(request.model, threads=sampling_threads(threads, batch_size, len(jobs)), precision=precision)
    if on_loaded is not None:
        on_loaded(pipe, jobs)
    if batch_size == 0:
        import torch

        batch_size = auto_batch_size(len(jobs), torch.get_num_threads())
    return run_jobs(pipe, jobs, batch_size, overwrite, on_result, preview if len(jobs) == 1 else None)
