"""Checkpoint files: safetensors only, the model config in the header, strict loading.

Why safetensors and nothing else: a checkpoint may come from a download or a
colleague, and formats that serialise Python objects run code when loaded. A
safetensors file holds raw tensors plus a string-to-string `__metadata__`
header, which is where the config (as JSON) goes, so every file rebuilds its
own model without side files.

Every failure to read a file (missing, truncated, corrupt header, not a
safetensors file at all, a header whose config does not parse, weights that do
not match the config) becomes a `CheckpointError` with one line that names the
file, so the CLI can print it and exit with code 3 instead of a traceback.

Writes are atomic and durable: a temporary file in the target folder, flushed
to disk, then `os.replace` (`durable_replace`), so neither an interrupted save
nor a power cut soon after one leaves a half-written checkpoint where a good
one was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from imgen.durable import durable_replace
from imgen.tokenizer.config import VQConfig
from imgen.tokenizer.model import VQTokenizer
from imgen.tokenizer.token_ids import TOKEN_IDS_KEY, pairing_problem, token_id_fingerprint

TOKENIZER_KIND = "imgen-vq"
TOKENIZER_FORMAT_VERSION = "1"
_CAST_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit its model; the message is one line."""


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def save_checkpoint(
    path: str | os.PathLike[str],
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, str],
    dtype: str | torch.dtype | None = None,
) -> Path:
    """Write `tensors` and string `metadata` to `path` atomically.

    `dtype` ("bf16"/"fp16" or a torch dtype) casts floating-point tensors, e.g. to
    halve the size of a bundled checkpoint; loaders cast back to fp32.
    """
    target = Path(path)
    cast = _CAST_DTYPES.get(dtype) if isinstance(dtype, str) else dtype
    if isinstance(dtype, str) and cast is None:
        raise ValueError(f"unknown checkpoint dtype {dtype!r}; use bf16 or fp16")
    bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise TypeError(f"checkpoint metadata values must be strings (JSON-encode structures): {bad}")
    prepared: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        t = tensor.detach().cpu()
        if cast is not None and t.is_floating_point():
            t = t.to(cast)
        # contiguous copies: safetensors refuses strided (channels_last) and memory-sharing tensors
        prepared[name] = t.contiguous().clone()
    folder = target.parent if str(target.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    os.close(handle)
    try:
        save_file(prepared, temp_name, metadata=dict(metadata))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp_name, 0o666 & ~umask)  # mkstemp makes 0600 files; checkpoints get the usual mode
        durable_replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return target


def read_header(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata header of a safetensors file without reading its tensors, or raise `CheckpointError`."""
    source = Path(path)
    if not source.is_file():
        raise CheckpointError(f"{source}: no such checkpoint file")
    try:
        with safe_open(str(source), framework="pt", device="cpu") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{source}: not a readable safetensors checkpoint ({one_line(error)})") from None


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read all tensors and the metadata header of a safetensors file, or raise `CheckpointError`."""
    source = Path(path)
    if not source.exists():
        raise CheckpointError(f"{source}: no such checkpoint file")
    if not source.is_file():
        raise CheckpointError(f"{source}: not a file")
    try:
        with safe_open(str(source), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError, RuntimeError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{source}: not a readable safetensors checkpoint ({one_line(error)})") from None
    return tensors, metadata


def save_tokenizer(
    model: VQTokenizer,
    path: str | os.PathLike[str],
    extra_metadata: dict[str, str] | None = None,
    dtype: str | torch.dtype | None = None,
) -> Path:
    """Write a `VQTokenizer` with kind, format version and config JSON in the header."""
    metadata = {
        **(extra_metadata or {}),
        "kind": TOKENIZER_KIND,
        "format_version": TOKENIZER_FORMAT_VERSION,
        "config": model.config.to_json(),
    }
    return save_checkpoint(path, model.state_dict(), metadata, dtype=dtype)


def load_tokenizer(path: str | os.PathLike[str]) -> VQTokenizer:
    """Rebuild a `VQTokenizer` from its file (strict: every weight present, no extras), in eval mode."""
    tensors, metadata = load_checkpoint(path)
    kind = metadata.get("kind")
    if kind != TOKENIZER_KIND:
        raise CheckpointError(f"{path}: not an imgen tokenizer checkpoint (kind={kind!r})")
    version = metadata.get("format_version")
    if version != TOKENIZER_FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: tokenizer format version {version!r} is not supported (expected {TOKENIZER_FORMAT_VERSION})"
        )
    try:
        config = VQConfig.from_json(metadata.get("config", ""))
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: the config in the header is invalid ({one_line(error)})") from None
    with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten; the caller's RNG is left alone
        model = VQTokenizer(config)
    load_strict(model, tensors, path)
    return model.eval()


def load_strict(model: torch.nn.Module, tensors: dict[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    """`load_state_dict(strict=True)` after casting 16-bit weights back, with a one-line error naming the mismatch."""
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape)
    problems = [
        f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
        if keys
    ]
    if problems:
        raise CheckpointError(f"{path}: weights do not match the config ({'; '.join(problems)})")
    state = {k: v.to(expected[k].dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not match the config ({one_line(error)})") from None


CHECKPOINT_FILES = ("tokenizer.safetensors", "generator.safetensors")  # a checkpoint folder: what `imgen.api` loads


def _exported_fingerprint(folder: Path, recorded: str, dtype: str) -> str:
    """What an exported generator records of its tokenizer: checked first, then taken at the new precision."""
    tokenizer = load_tokenizer(folder / CHECKPOINT_FILES[0])
    problem = pairing_problem(tokenizer, recorded)
    if problem:  # an export must not make a mismatched pair look matched
        raise CheckpointError(f"{folder}: {problem}; the export would pin a mismatched pair")
    return token_id_fingerprint(tokenizer, "bf16" if _CAST_DTYPES.get(dtype) is torch.bfloat16 else "fp16")


def export_checkpoint_folder(
    source: str | os.PathLike[str], target: str | os.PathLike[str], dtype: str = "fp16", overwrite: bool = False
) -> Path:
    """Copy a checkpoint folder with every file's floating-point tensors cast to 16 bits (half the size).

    The header (config, prompt tokenizer, provenance) is kept as it is, so the
    exported files rebuild their models alone; loaders cast back to fp32.
    Files already in `target` are replaced only with `overwrite` (else
    `FileExistsError`), and only once every file has been written beside
    them: a failure while writing never leaves a new tokenizer next to an
    old generator (only a crash between the final two renames could).
    """
    src, dst = Path(source), Path(target)
    missing = [name for name in CHECKPOINT_FILES if not (src / name).is_file()]
    if missing:  # e.g. a run folder, whose training state is no checkpoint
        inside = src / "checkpoint"
        hint = f"; the run's checkpoint is {inside}" if (inside / CHECKPOINT_FILES[0]).is_file() else ""
        raise CheckpointError(f"{src}: not a checkpoint folder (no {', '.join(missing)}){hint}")
    files = [src / name for name in CHECKPOINT_FILES]
    taken = [dst / f.name for f in files if (dst / f.name).exists()]
    if taken and not overwrite:
        raise FileExistsError(f"{taken[0]} exists; pass --overwrite to replace the checkpoint in {dst}")
    dst.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export.", dir=dst))
    try:
        for file in files:
            tensors, metadata = load_checkpoint(file)
            if TOKEN_IDS_KEY in metadata:  # the generator's record of its tokenizer, at the precision now stored
                metadata[TOKEN_IDS_KEY] = _exported_fingerprint(src, metadata[TOKEN_IDS_KEY], dtype)
            save_checkpoint(staging / file.name, tensors, {**metadata, "exported_dtype": dtype}, dtype=dtype)
        for file in files:  # each rename atomic and flushed; two files cannot be swapped as one
            durable_replace(staging / file.name, dst / file.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dst
