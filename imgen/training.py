"""Model-agnostic training pieces shared by the tokenizer and generator trainers.

- `TimeBudget`: runs stop by themselves after `max_minutes` (training happens in
  the background on a shared CPU, so wall-clock time is the budget that matters).
- `MetricsLog`: one JSON object per line, appended and flushed at once, so a
  crash loses nothing and `tail -f` shows progress.
- `cosine_lr`: linear warm-up, then cosine decay to a floor.
- `save_training_state` / `load_training_state`: model weights and AdamW state
  in one safetensors file, written atomically, so an interrupted run resumes at
  the same step. Optimizer tensors are flattened into the file under
  `optim.<param index>.<name>`; scalars and param groups go into the JSON
  header. Nothing is serialised as Python objects: a state file is as safe
  to open as a checkpoint.
- `resume_changes`: a run folder decides whether a command resumes, so a
  rerun with other data, seed, sizes or starting weights is refused instead
  of silently continuing the old run; a longer schedule is allowed and
  reported.
- `StopRequest` / `TrainingInterrupted`: Ctrl-C or SIGTERM ends the current
  step, saves, and only then stops, so an interruption never loses work or
  leaves a half-updated model on disk; a second Ctrl-C stops at once.
- `NonFiniteGuard`: a step whose gradient is NaN or infinite is skipped
  instead of taken, and a run that keeps producing them stops without
  saving, so one overflow never turns the weights (and then the saved
  checkpoint) into NaN.
- `autocast_context`: bf16 autocast only where the hardware runs it natively
  (on a CPU without avx512_bf16/AMX, bf16 is emulated and several times slower
  than fp32, so fp32 is chosen there).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import signal
import time
from pathlib import Path
from typing import Any

import torch

from imgen.checkpoints import CheckpointError, load_checkpoint, load_strict, read_header, save_checkpoint

STATE_KIND = "imgen-train-state"
STATE_FORMAT_VERSION = "1"


class TimeBudget:
    """Wall-clock budget of a run; `expired()` turns true after `max_minutes` (0 or less: never)."""

    def __init__(self, max_minutes: float) -> None:
        self.max_minutes = max_minutes
        self.start = time.monotonic()

    def elapsed_minutes(self) -> float:
        return (time.monotonic() - self.start) / 60.0

    def remaining_minutes(self) -> float:
        return math.inf if self.max_minutes <= 0 else max(0.0, self.max_minutes - self.elapsed_minutes())

    def expired(self) -> bool:
        return self.max_minutes > 0 and self.elapsed_minutes() >= self.max_minutes


class TrainingInterrupted(RuntimeError):
    """Raised after an interrupted run saved its state; rerunning the same command resumes it."""

    def __init__(self, step: int, out_dir: Path) -> None:
        super().__init__(f"interrupted at step {step}; state saved in {out_dir}, run the same command to resume")
        self.step, self.out_dir = step, out_dir


class StopRequest(contextlib.AbstractContextManager):
    """While active, the first SIGINT / SIGTERM only sets `requested`; the loop saves and stops at a step boundary.

    A second signal restores the previous handlers' behaviour (KeyboardInterrupt
    at once), for a user who really wants out. Outside the main thread (where
    signal handlers cannot be set) it does nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopRequest:
        try:
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread
            self._previous.clear()
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


class TrainingDiverged(RuntimeError):
    """Raised when a run produced only non-finite gradients for a while; its last saved state is left as it was."""


class NonFiniteGuard:
    """Decides whether an optimizer step may be taken: only when the gradient norm is finite.

    Why: `clip_grad_norm_` turns a NaN gradient into NaN updates for every
    weight, and the next periodic save would write those over the last good
    checkpoint and training state, so a resume would restart from NaN. A
    skipped step loses one batch; `limit` skipped steps in a row mean the run
    has diverged, and it stops (raising `TrainingDiverged`) without saving.
    Under DDP every process holds the same all-reduced gradients, so all of
    them reach the same verdict without talking to each other.
    """

    def __init__(self, limit: int = 20) -> None:
        self.limit = limit
        self.in_a_row = 0
        self.skipped = 0

    def allows(self, grad_norm: torch.Tensor) -> bool:
        if bool(torch.isfinite(grad_norm)):
            self.in_a_row = 0
            return True
        self.in_a_row += 1
        self.skipped += 1
        if self.in_a_row >= self.limit:
            raise TrainingDiverged(
                f"{self.in_a_row} steps in a row had a non-finite gradient; stopped without saving "
                "(the last saved checkpoint is kept: resume with a lower --lr)"
            )
        return False


class MetricsLog:
    """Append-only JSON-lines file of training metrics; each `write` is flushed before it returns."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps({"time": round(time.time(), 3), **record}, ensure_ascii=False, sort_keys=True)
        with open(self.path, "a", encoding="utf-8") as stream:  # reopened per line: survives crashes and rotation
            stream.write(line + "\n")
            stream.flush()

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with open(self.path, encoding="utf-8") as stream:
            return [json.loads(line) for line in stream if line.strip()]


def wsd_lr(step: int, total: int, warmup: int, decay: int, base: float, min_ratio: float = 0.1) -> float:
    """Warm-up, then `base` held, then a linear decay to `min_ratio * base` over the last `decay` steps of `total`.

    Why: a run trained in legs, each restarting a cosine from the peak, climbs back out of what the previous
    leg's decay reached; held at its peak, one run keeps every leg's progress, and its weight average (EMA)
    or a short decay at the end gives the annealed checkpoint. `decay` 0 holds the peak to the end.
    """
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    start = total - decay
    if decay <= 0 or step < start:
        return base
    return base * (1 - (1 - min_ratio) * min(1.0, (step - start) / decay))


def cosine_lr(step: int, total: int, warmup: int, base: float, min_ratio: float = 0.1) -> float:
    """Linear warm-up over `warmup` steps, then cosine from `base` down to `min_ratio * base` at `total`."""
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 dot-product instructions (avx512_bf16 or AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    checker = getattr(getattr(torch._C, "_cpu", None), "_is_avx512_bf16_supported", None)
    return bool(checker()) if checker else False


def bf16_supported(device: torch.device | str) -> bool:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_native_bf16()


def autocast_context(device: torch.device | str, enabled: bool | None = None) -> contextlib.AbstractContextManager:
    """bf16 autocast where it is fast on `device` (or as `enabled` forces), else a no-op context."""
    device = torch.device(device)
    use = bf16_supported(device) if enabled is None else enabled
    if not use:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a training state header")


def save_training_state(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    step: int,
    samples: int,
    extra: dict[str, str] | None = None,
) -> Path:
    """Model + optimizer + counters in one safetensors file (atomic; fp32; tensors and JSON only)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    optim = optimizer.state_dict()
    scalars: dict[str, Any] = {}
    for index, state in optim["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{name}"] = value
            else:
                scalars[f"{index}.{name}"] = value
    header = {"param_groups": optim["param_groups"], "scalars": scalars}
    metadata = {
        **(extra or {}),
        "kind": STATE_KIND,
        "format_version": STATE_FORMAT_VERSION,
        "step": str(int(step)),
        "samples": str(int(samples)),
        "optimizer": json.dumps(header, default=_json_default, sort_keys=True),
    }
    return save_checkpoint(path, tensors, metadata)


def read_training_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The header of a training-state file (e.g. to rebuild the model config before loading)."""
    return read_header(path)


# Options a resumed run may change freely: how long it runs, how it reports, where its folder now is, how it is run.
RESUME_FREE_OPTIONS = frozenset(
    {"max_minutes", "threads", "log_every", "sample_minutes", "sample_prompts", "checkpoint_minutes",
     "ckpt_every_minutes", "out_dir", "compile"}
)  # fmt: skip
# Options that reshape the learning-rate schedule from the resumed step on: allowed (to lengthen a run), reported.
RESUME_SCHEDULE_OPTIONS = frozenset({"max_steps", "lr", "warmup_steps", "schedule", "decay_steps", "ema"})


def resume_changes(saved_json: str | None, config: Any, where: str | os.PathLike[str]) -> dict[str, list]:
    """How the options of a resumed run differ from those its run folder was last saved with.

    Why: whether a command resumes depends only on its output folder, so
    without this check `--out runs/x` with other data, seed, model size,
    starting weights or masks would continue the old run with the old model
    and data stream and say nothing. Those differences are a `ValueError`
    naming each one; changes of the schedule (`RESUME_SCHEDULE_OPTIONS`) are
    returned as {option: [saved, now]} for the caller to report; the rest
    (`RESUME_FREE_OPTIONS`) are ignored. Options the saved run predates, and a
    state saved without its options, are not compared.
    """
    if not saved_json:
        return {}
    try:
        saved = json.loads(saved_json)
    except json.JSONDecodeError:
        raise CheckpointError(f"{where}: the saved run's options are not readable JSON") from None
    now = json.loads(json.dumps(dataclasses.asdict(config), sort_keys=True))
    differs = {
        name: [saved[name], value]
        for name, value in now.items()
        if name in saved and saved[name] != value and name not in RESUME_FREE_OPTIONS
    }
    refused = sorted(name for name in differs if name not in RESUME_SCHEDULE_OPTIONS)
    if refused:
        shown = ", ".join(f"{name} {differs[name][0]!r} -> {differs[name][1]!r}" for name in refused)
        raise ValueError(
            f"{where} holds a run started with other options ({shown}); "
            "give the same options to resume it, or another --out for a new run"
        )
    return differs


def load_training_state(
    path: str | os.PathLike[str], model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[int, int]:
    """Restore model and optimizer in place from `save_training_state`'s file; returns (step, samples)."""
    tensors, metadata = load_checkpoint(path)
    if metadata.get("kind") != STATE_KIND:
        raise CheckpointError(f"{path}: not an imgen training state (kind={metadata.get('kind')!r})")
    try:
        step, samples = int(metadata["step"]), int(metadata["samples"])
        header = json.loads(metadata["optimizer"])
        groups, scalars = header["param_groups"], header["scalars"]
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: training state header is incomplete ({error!r})") from None
    model_tensors = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    load_strict(model, model_tensors, path)

    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            index, name = key.removeprefix("optim.").split(".", 1)
            state.setdefault(int(index), {})[name] = value
    for key, value in scalars.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for group in groups:  # JSON turned tuples (betas) into lists
        for name, value in group.items():
            if name != "params" and isinstance(value, list):
                group[name] = tuple(value)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as error:
        raise CheckpointError(f"{path}: optimizer state does not match this model ({error})") from None
    return step, samples
