"""Pinned checkpoints: `weights.lock`, the download cache, and checks that what is loaded is what was pinned.

Why a lock: a checkpoint folder holds two safetensors files, and the only way to
know that the files on a disk are the ones that were trained, published and
evaluated is to compare them with sizes and SHA-256 digests recorded when they
were made. `weights.lock` records them, one entry per named checkpoint, each
file with its Hub `repo_id`, the 40-hex commit `revision` it was published at,
`filename`, `size`, `sha256` and `license`. Entries come from three sources:

- "package": the files ship inside the imgen package (`imgen/weights/NAME/`,
  the bundled "default"); checking them detects a damaged install. Their
  entries are also written to `imgen/weights/package.lock`, which ships with
  the package, so an install without the repository's `weights.lock` (a
  wheel) still hashes the bundled files before using them.
- "hub": the files are downloaded from the Hub at the pinned revision into the
  cache (`IMGEN_HOME` or `~/.cache/imgen`), folder `checkpoints/NAME/`.
- "local": added from a folder (copied into the cache) and not pushed yet.

Downloads never trust the network or the Hub: each file is fetched with
`huggingface_hub.hf_hub_download` into a private staging folder, its size,
digest and safetensors header are checked, and only then is it moved into the
cache with one atomic rename. A bad file is deleted, never installed, so a
later run finds nothing to trust by mistake. Two processes pulling the same
file both download and check it and rename identical bytes into place.

This module imports neither torch nor the model code, so `imgen weights ...`
starts fast and `imgen.api` can import it without an import cycle; the file
names and header kinds below mirror `imgen.api` and `imgen.checkpoints`, and a
test checks that they agree.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from imgen import toml_subset
from imgen.durable import durable_replace

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE_WEIGHTS = PACKAGE_DIR / "weights"
DEFAULT = "default"
BUNDLED = PACKAGE_WEIGHTS / DEFAULT
TOKENIZER_FILE, GENERATOR_FILE = "tokenizer.safetensors", "generator.safetensors"
# The `kind` each file's safetensors header must carry (see imgen.checkpoints and imgen.api).
EXPECTED_KINDS = {TOKENIZER_FILE: "imgen-vq", GENERATOR_FILE: "imgen-generator"}
CHECKPOINT_FILES = (TOKENIZER_FILE, GENERATOR_FILE)

LOCK_NAME = "weights.lock"
PACKAGE_LOCK_NAME = "package.lock"  # in PACKAGE_WEIGHTS: the bundled checkpoints' entries, shipped with the package
LOCK_VERSION = 1
LOCK_ENV = "IMGEN_WEIGHTS_LOCK"
HOME_ENV = "IMGEN_HOME"
DEFAULT_LICENSE = "Apache-2.0"
SOURCES = ("package", "hub", "local")

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_REVISION = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_LFS_POINTER = b"version https://git-lfs"
_MAX_HEADER = 100_000_000  # the safetensors format caps its JSON header at 100 MB
_STALE_STAGING_SECONDS = 24 * 3600
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
_LOCK_HEADER = (
    '# imgen weights lock: pinned checkpoints (see README, "Checkpoints").\n'
    "# Written by `imgen weights add` and `imgen weights push`; comments added by hand are not kept.\n"
)


class WeightsError(RuntimeError):
    """A checkpoint problem with a one-line message that says what to do."""


class WeightsInputError(WeightsError):
    """Bad input: an unknown or invalid name, a folder that is not a checkpoint, an unreadable lock file."""


class UnknownCheckpointError(WeightsInputError):
    """A name that `weights.lock` does not list; the message lists the names it does."""


class WeightsUnavailableError(WeightsError):
    """The checkpoint is missing, cannot be downloaded (offline, unreachable), or failed its checks."""


class WeightsCorruptError(WeightsUnavailableError):
    """A file does not match the lock or is not a valid checkpoint file (truncated, LFS pointer, wrong kind)."""


@dataclass(frozen=True)
class LockedFile:
    """One pinned file: where it is published and what its bytes must be."""

    filename: str
    size: int
    sha256: str
    license: str
    repo_id: str | None = None
    revision: str | None = None

    @property
    def published(self) -> bool:
        return self.repo_id is not None and self.revision is not None


@dataclass(frozen=True)
class LockedCheckpoint:
    """One named checkpoint of the lock: its source and its files."""

    name: str
    source: str
    files: tuple[LockedFile, ...]

    def file(self, filename: str) -> LockedFile:
        for item in self.files:
            if item.filename == filename:
                return item
        raise KeyError(filename)

    @property
    def size(self) -> int:
        return sum(item.size for item in self.files)

    @property
    def licenses(self) -> str:
        return ", ".join(sorted({item.license for item in self.files}))


@dataclass(frozen=True)
class WeightsLock:
    """The parsed lock file; `exists` is False when no file was found (every name is then unknown)."""

    path: Path
    checkpoints: dict[str, LockedCheckpoint]
    exists: bool = True

    def get(self, name: str) -> LockedCheckpoint:
        """The entry for `name`, or `UnknownCheckpointError` listing the known names."""
        if name in self.checkpoints:
            return self.checkpoints[name]
        known = ", ".join(sorted(self.checkpoints)) or "none"
        where = f"{self.path}" if self.exists else f"{self.path} (no such file; set {LOCK_ENV} to the lock file)"
        raise UnknownCheckpointError(f"unknown checkpoint {name!r}: {where} lists {known} (see `imgen weights list`)")


@dataclass(frozen=True)
class CheckpointStatus:
    """What `list` and `verify` report for one checkpoint.

    `state` is one of: "ok", "not downloaded", "missing", "damaged", "unlocked"
    (present but not in the lock). `detail` says why and what to do.
    """

    name: str
    source: str
    folder: Path
    state: str
    detail: str = ""
    entry: LockedCheckpoint | None = None

    @property
    def failed(self) -> bool:
        return self.state in ("missing", "damaged")


# ---------------------------------------------------------------- locations


def default_lock_path() -> Path:
    """`$IMGEN_WEIGHTS_LOCK`, else `weights.lock` beside the package (a source checkout) or inside it, else the
    cache's (`IMGEN_HOME`): an installed package has no lock beside it, and one written into site-packages would
    outlive the install."""
    configured = os.environ.get(LOCK_ENV)
    if configured:
        return Path(configured).expanduser()
    for candidate in (PACKAGE_DIR.parent / LOCK_NAME, PACKAGE_DIR / LOCK_NAME):
        if candidate.is_file():
            return candidate
    return cache_root() / LOCK_NAME


def package_lock_path() -> Path:
    return PACKAGE_WEIGHTS / PACKAGE_LOCK_NAME


def packaged_entry(name: str = DEFAULT) -> LockedCheckpoint | None:
    """The entry of bundled checkpoint `name` in the package's own lock (`package.lock`), or None if it has none."""
    entry = read_lock(package_lock_path()).checkpoints.get(name)
    return entry if entry is not None and entry.source == "package" else None


def bundled_entry(lock: WeightsLock, name: str = DEFAULT) -> LockedCheckpoint | None:
    """What the bundled checkpoint is checked against: the package's own entry, else its entry in `lock`, else None.

    The package's entry wins: it ships with the files it describes, while a
    user's lock may hold an entry written for an older install.
    """
    return packaged_entry(name) or lock.checkpoints.get(name)


def _write_packaged(entry: LockedCheckpoint) -> None:
    """Record a bundled checkpoint's entry in the package's own lock too."""
    shipped = read_lock(package_lock_path())
    write_lock(replace(shipped, checkpoints={**shipped.checkpoints, entry.name: entry}))


def cache_root() -> Path:
    """Where downloads live: `$IMGEN_HOME`, else `~/.cache/imgen`."""
    configured = os.environ.get(HOME_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "imgen"


def checkpoint_folder(entry: LockedCheckpoint) -> Path:
    """The folder an entry's files live in: inside the package, or in the cache."""
    if entry.source == "package":
        return PACKAGE_WEIGHTS / entry.name
    return cache_root() / "checkpoints" / entry.name


# ---------------------------------------------------------------- the lock file


def read_lock(path: str | os.PathLike[str] | None = None) -> WeightsLock:
    """Parse the lock; a missing file is an empty lock (`exists=False`), a malformed one a `WeightsInputError`."""
    lock_path = Path(path) if path is not None else default_lock_path()
    try:
        text = lock_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return WeightsLock(lock_path, {}, exists=False)
    except (OSError, UnicodeDecodeError) as error:
        raise WeightsInputError(f"{lock_path}: cannot read the lock file ({_one_line(error)})") from None
    return WeightsLock(lock_path, _checkpoints_from_data(_toml_loads(text, lock_path), lock_path))


def write_lock(lock: WeightsLock) -> Path:
    """Write the lock atomically (temporary file, then rename), so a reader never sees half a file."""
    text = dump_lock(lock.checkpoints.values())
    lock.path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{lock.path.name}.", suffix=".tmp", dir=lock.path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        _make_readable(Path(temp_name), lock.path)
        durable_replace(temp_name, lock.path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return lock.path


def dump_lock(checkpoints: Iterable[LockedCheckpoint]) -> str:
    """The TOML text of a lock: "default" first, then by name; one `[[checkpoints.NAME.files]]` table per file."""
    ordered = sorted(checkpoints, key=lambda entry: (entry.name != DEFAULT, entry.name))
    lines = [_LOCK_HEADER.rstrip("\n"), f"version = {LOCK_VERSION}"]
    for entry in ordered:
        lines += ["", f"[checkpoints.{entry.name}]", f"source = {toml_subset.basic_string(entry.source)}"]
        for item in entry.files:
            lines += [
                "",
                f"[[checkpoints.{entry.name}.files]]",
                f"filename = {toml_subset.basic_string(item.filename)}",
            ]
            if item.repo_id is not None:
                lines.append(f"repo_id = {toml_subset.basic_string(item.repo_id)}")
            if item.revision is not None:
                lines.append(f"revision = {toml_subset.basic_string(item.revision)}")
            lines += [f"size = {item.size}", f"sha256 = {toml_subset.basic_string(item.sha256)}"]
            lines.append(f"license = {toml_subset.basic_string(item.license)}")
    return "\n".join(lines) + "\n"


def _toml_loads(text: str, path: Path) -> dict[str, Any]:
    """Parse the lock's TOML; a syntax error is bad input (exit 2), like any other malformed lock."""
    try:
        return toml_subset.loads(text, str(path))
    except toml_subset.TomlError as error:
        raise WeightsInputError(str(error)) from None


def _checkpoints_from_data(data: dict[str, Any], path: Path) -> dict[str, LockedCheckpoint]:
    """Validate the parsed TOML strictly: a lock that guards downloads must not half-work on a typo."""
    unknown = set(data) - {"version", "checkpoints"}
    if unknown:
        raise WeightsInputError(f"{path}: unknown top-level keys {sorted(unknown)}")
    version = data.get("version", LOCK_VERSION)
    if version != LOCK_VERSION:
        raise WeightsInputError(f"{path}: lock format version {version!r} is not supported (expected {LOCK_VERSION})")
    tables = data.get("checkpoints", {})
    if not isinstance(tables, dict):
        raise WeightsInputError(f"{path}: `checkpoints` must be a table")
    result: dict[str, LockedCheckpoint] = {}
    for name, table in tables.items():
        where = f"{path}: checkpoint {name!r}"
        if not _NAME.fullmatch(name):
            raise WeightsInputError(f"{where}: invalid name (lowercase letters, digits, - and _)")
        if not isinstance(table, dict) or set(table) - {"source", "files"}:
            raise WeightsInputError(f"{where}: expected only `source` and `files`")
        source = table.get("source")
        if source not in SOURCES:
            raise WeightsInputError(f"{where}: source must be one of {', '.join(SOURCES)}, not {source!r}")
        raw_files = table.get("files")
        if not isinstance(raw_files, list) or not raw_files:
            raise WeightsInputError(f"{where}: no files")
        files = tuple(_locked_file(item, f"{where}, file {index + 1}") for index, item in enumerate(raw_files))
        names = [item.filename for item in files]
        if len(set(names)) != len(names):
            raise WeightsInputError(f"{where}: a file is listed twice")
        missing = [filename for filename in CHECKPOINT_FILES if filename not in names]
        if missing:
            raise WeightsInputError(f"{where}: lacks {', '.join(missing)}")
        if source == "hub" and not all(item.published for item in files):
            raise WeightsInputError(f"{where}: source 'hub' needs repo_id and revision for every file")
        result[name] = LockedCheckpoint(name=name, source=source, files=files)
    return result


def _locked_file(item: Any, where: str) -> LockedFile:
    fields = {"filename", "repo_id", "revision", "size", "sha256", "license"}
    if not isinstance(item, dict) or set(item) - fields:
        raise WeightsInputError(f"{where}: expected only the keys {', '.join(sorted(fields))}")
    filename, size, sha256 = item.get("filename"), item.get("size"), item.get("sha256")
    license_text, repo_id, revision = item.get("license"), item.get("repo_id"), item.get("revision")
    if not isinstance(filename, str) or not _plain_filename(filename):
        raise WeightsInputError(f"{where}: filename must be a plain file name, not {filename!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise WeightsInputError(f"{where}: size must be a byte count, not {size!r}")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise WeightsInputError(f"{where}: sha256 must be 64 lowercase hex digits")
    if not isinstance(license_text, str) or not license_text.strip():
        raise WeightsInputError(f"{where}: license is required")
    if (repo_id is None) != (revision is None):
        raise WeightsInputError(f"{where}: give both repo_id and revision, or neither")
    if repo_id is not None and (not isinstance(repo_id, str) or not _REPO_ID.fullmatch(repo_id)):
        raise WeightsInputError(f"{where}: repo_id must look like owner/name, not {repo_id!r}")
    if revision is not None and (not isinstance(revision, str) or not _REVISION.fullmatch(revision)):
        raise WeightsInputError(f"{where}: revision must be a 40-hex commit id, not {revision!r}")
    return LockedFile(filename, size, sha256, license_text, repo_id, revision)


def _plain_filename(name: str) -> bool:
    return bool(name) and not name.startswith(".") and "/" not in name and "\\" not in name


# ---------------------------------------------------------------- checking files


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def header_problem(path: Path, expected_kind: str | None) -> str | None:
    """Why `path` is not a complete safetensors file of `expected_kind`, or None.

    Reads only the header, so it is cheap on any file size, and it names the
    usual accidents: a Git LFS pointer in place of the weights, a truncated
    transfer, another file format, or the tokenizer and generator swapped.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as stream:
            start = stream.read(len(_LFS_POINTER))
            if start.startswith(_LFS_POINTER):
                return f"is a Git LFS pointer ({size} bytes), not the weights"
            stream.seek(0)
            prefix = stream.read(8)
            if len(prefix) < 8:
                return f"is not a safetensors file ({size} bytes)"
            header_length = int.from_bytes(prefix, "little")
            if header_length > min(size - 8, _MAX_HEADER):
                return f"is not a safetensors file, or is truncated ({size} bytes, header claims {header_length})"
            raw = stream.read(header_length)
    except OSError as error:
        return f"cannot be read ({_one_line(error)})"
    try:
        header = json.loads(raw)
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        metadata = header.pop("__metadata__", None) or {}
        end = max((int(spec["data_offsets"][1]) for spec in header.values()), default=0)
    except (ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError):
        return "is not a safetensors file (its header does not parse)"
    needed = 8 + header_length + end
    if size < needed:
        return f"is truncated ({size} of {needed} bytes)"
    if size > needed:
        return f"has {size - needed} unexpected bytes after its tensors"
    kind = metadata.get("kind") if isinstance(metadata, dict) else None
    if expected_kind is not None and kind != expected_kind:
        if kind is None:
            return f"has no model kind in its header: not an imgen checkpoint (expected {expected_kind!r})"
        return f"holds a {kind!r} checkpoint where a {expected_kind!r} one belongs (files swapped or renamed?)"
    return None


def file_problem(path: Path, locked: LockedFile, full: bool = True) -> str | None:
    """Why `path` does not match its lock entry (size, digest, header), or None; `full=False` skips the digest."""
    if not path.is_file():
        return "is missing"
    size = path.stat().st_size
    if size != locked.size:
        problem = header_problem(path, EXPECTED_KINDS.get(locked.filename))
        if problem and ("LFS" in problem or "truncated" in problem):
            return f"{problem}; the lock expects {locked.size} bytes"
        return f"has {size} bytes, the lock expects {locked.size}"
    if not full:
        return None
    digest = file_sha256(path)
    if digest != locked.sha256:
        return f"has sha256 {digest[:12]}..., the lock expects {locked.sha256[:12]}..."
    return header_problem(path, EXPECTED_KINDS.get(locked.filename))


def checkpoint_problems(entry: LockedCheckpoint, folder: Path | None = None, full: bool = True) -> list[str]:
    """One line per file of `entry` that is missing or does not match, e.g. 'generator.safetensors is missing'."""
    folder = folder if folder is not None else checkpoint_folder(entry)
    problems = []
    for item in entry.files:
        problem = file_problem(folder / item.filename, item, full=full)
        if problem:
            problems.append(f"{item.filename} {problem}")
    return problems


def pairing_problem_of(folder: Path) -> str | None:
    """Why the folder's tokenizer cannot serve its generator's token ids (`imgen.tokenizer.token_ids`), or None."""
    from imgen.checkpoints import CheckpointError, load_tokenizer, read_header
    from imgen.tokenizer.token_ids import TOKEN_IDS_KEY, pairing_problem

    tokenizer_file, generator_file = CHECKPOINT_FILES
    try:
        recorded = read_header(folder / generator_file).get(TOKEN_IDS_KEY)
        return pairing_problem(load_tokenizer(folder / tokenizer_file), recorded) if recorded else None
    except CheckpointError as error:
        return str(error)


def folder_problems(folder: Path) -> list[str]:
    """Problems of an unlocked checkpoint folder: both files present and each a complete file of the right kind."""
    problems = []
    for filename in CHECKPOINT_FILES:
        path = folder / filename
        problem = "is missing" if not path.is_file() else header_problem(path, EXPECTED_KINDS[filename])
        if problem:
            problems.append(f"{filename} {problem}")
    return problems


# ---------------------------------------------------------------- list and verify


def list_checkpoints(lock_path: str | os.PathLike[str] | None = None, full: bool = False) -> list[CheckpointStatus]:
    """The state of every locked checkpoint, plus the bundled default even before it is locked.

    `full=False` checks presence and sizes only (fast, for `list`); `full=True`
    also hashes every file (for `verify`).
    """
    lock = read_lock(lock_path)
    statuses = [_status(entry, full) for name, entry in lock.checkpoints.items() if name != DEFAULT]
    bundled = bundled_entry(lock)
    statuses.insert(0, _status(bundled, full) if bundled else _unlocked_default_status())
    return sorted(statuses, key=lambda status: (status.name != DEFAULT, status.name))


def verify(name: str | None = None, lock_path: str | os.PathLike[str] | None = None) -> list[CheckpointStatus]:
    """Hash and check one checkpoint (`name`) or all; read-only: a bad file is reported, not deleted."""
    if name is None:
        return list_checkpoints(lock_path, full=True)
    lock = read_lock(lock_path)
    if name == DEFAULT:
        entry = bundled_entry(lock)
        return [_status(entry, full=True) if entry else _unlocked_default_status()]
    return [_status(lock.get(name), full=True)]


def _status(entry: LockedCheckpoint, full: bool) -> CheckpointStatus:
    folder = checkpoint_folder(entry)
    problems = checkpoint_problems(entry, folder, full=full)
    absent = [p for p in problems if p.endswith(" is missing")]
    if not problems:
        return CheckpointStatus(entry.name, entry.source, folder, "ok", entry=entry)
    if entry.source == "package":
        state = "missing" if len(absent) == len(entry.files) else "damaged"
        detail = f"{'; '.join(problems)}; the install is damaged: reinstall imgen, or restore the files"
        return CheckpointStatus(entry.name, entry.source, folder, state, detail, entry)
    if len(absent) == len(entry.files):
        if entry.source == "local":
            detail = f"added elsewhere and never pushed: run `imgen weights push {entry.name} --repo-id ID` there"
            return CheckpointStatus(entry.name, entry.source, folder, "missing", detail, entry)
        detail = f"run `imgen weights pull {entry.name}`"
        return CheckpointStatus(entry.name, entry.source, folder, "not downloaded", detail, entry)
    fix = (
        f"pin the folder again with `imgen weights add FOLDER --name {entry.name} --replace`"
        if entry.source == "local"
        else f"run `imgen weights pull {entry.name}` to replace it"
    )
    return CheckpointStatus(entry.name, entry.source, folder, "damaged", f"{'; '.join(problems)}; {fix}", entry)


def _unlocked_default_status() -> CheckpointStatus:
    problems = folder_problems(BUNDLED)
    command = f"`imgen weights add {_shown(BUNDLED)} --name {DEFAULT} --bundled`"
    if len(problems) == len(CHECKPOINT_FILES) and not BUNDLED.is_dir():
        detail = (
            f"the bundled checkpoint is not in this install ({_shown(BUNDLED)}); when it is, lock it with {command}"
        )
        return CheckpointStatus(DEFAULT, "package", BUNDLED, "missing", detail)
    if problems:
        return CheckpointStatus(DEFAULT, "package", BUNDLED, "missing", "; ".join(problems))
    detail = f"not in the lock, so a damaged install goes unnoticed: lock it with {command}"
    return CheckpointStatus(DEFAULT, "package", BUNDLED, "unlocked", detail)


def _shown(folder: Path) -> str:
    """A folder as a command line would name it: relative to the working directory when inside it."""
    try:
        return str(folder.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(folder)


# ---------------------------------------------------------------- downloading


def offline() -> bool:
    """True when the Hub must not be contacted (`HF_HUB_OFFLINE=1`), read now rather than at import."""
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(variable, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return True
    from huggingface_hub import constants

    # huggingface_hub reads the variable once, at import, and then refuses every request itself.
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def hub_endpoint() -> str | None:
    """`$HF_ENDPOINT` read now (huggingface_hub reads it once, at import), or None for the library's default."""
    endpoint = os.environ.get("HF_ENDPOINT", "").strip()
    return endpoint.rstrip("/") or None


def pull(name: str, lock_path: str | os.PathLike[str] | None = None) -> Path:
    """Make the cached copy of `name` match the lock, downloading what is missing or wrong; return its folder.

    A cached file that does not match the lock (stale after a lock update, or
    tampered with) is deleted just before its replacement is downloaded, never
    when it cannot be replaced (a file never pushed, or offline): it may be the
    only copy of a checkpoint added from a folder since deleted. Each download is checked
    before it is moved into place; a file that fails is deleted and nothing is installed.
    """
    lock = read_lock(lock_path)
    entry = lock.get(name)
    folder = checkpoint_folder(entry)
    if entry.source == "package":
        problems = checkpoint_problems(entry, folder)
        if problems:
            raise WeightsCorruptError(_bundled_message(entry, problems))
        return folder
    needed = [item for item in entry.files if file_problem(folder / item.filename, item) is not None]
    if not needed:
        return folder
    stale = [item.filename for item in needed if (folder / item.filename).exists()]
    unpublished = [item.filename for item in needed if not item.published]
    if unpublished:
        raise WeightsUnavailableError(
            f"{name}: {', '.join(unpublished)} is missing from the cache ({folder}) or did not match the lock, and "
            f"was never pushed: pin the folder again (`imgen weights add FOLDER --name {name} --replace`), or "
            f"run `imgen weights push {name} --repo-id ID` where it was added"
        )
    if offline():
        state = f"has {', '.join(stale)} not matching the lock" if stale else "is not in the cache"
        raise WeightsUnavailableError(
            f"{name} {state} ({folder}) and HF_HUB_OFFLINE=1 forbids downloading it: "
            f"run `HF_HUB_OFFLINE=0 imgen weights pull {name}` with network access"
        )
    unreachable = hub_unreachable()
    if unreachable:
        raise WeightsUnavailableError(
            f"{name}: cannot download {', '.join(item.filename for item in needed)}: {unreachable}; nothing was "
            "installed: check the network, or set HF_HUB_OFFLINE=1 to use only what is cached"
        )
    for item in needed:
        (folder / item.filename).unlink(missing_ok=True)
        _download(entry, item, folder)
    return folder


def hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the Hub's host cannot be reached at all (name lookup or TCP connect), or None.

    Why: without a network, `hf_hub_download` retries with back-off for about
    25 s and logs each retry before it fails; one connect with a short timeout
    says the same at once. Behind a proxy the direct connect proves nothing, so
    it is skipped and the download reports what goes wrong.
    """
    if any(os.environ.get(variable) for variable in _PROXY_VARIABLES):
        return None
    from huggingface_hub import constants

    url = urlsplit(hub_endpoint() or constants.ENDPOINT)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as error:
        return f"the Hub ({host}:{port}) is not reachable ({getattr(error, 'strerror', None) or error})"


def _download(entry: LockedCheckpoint, item: LockedFile, folder: Path) -> None:
    """Fetch one file into a private staging folder, check it, and rename it into `folder`, or raise."""
    from huggingface_hub import hf_hub_download

    staging_root = cache_root() / "tmp"
    staging_root.mkdir(parents=True, exist_ok=True)
    _sweep_staging(staging_root)
    staging = Path(tempfile.mkdtemp(prefix=f"{entry.name}-", dir=staging_root))
    where = f"{item.repo_id}@{(item.revision or '')[:12]}"
    try:
        try:
            downloaded = Path(
                hf_hub_download(
                    repo_id=str(item.repo_id),
                    filename=item.filename,
                    revision=item.revision,
                    local_dir=staging / "files",
                    cache_dir=staging / "hub-cache",  # never reuse a copy this module did not check
                    endpoint=hub_endpoint(),
                )
            )
        except Exception as error:  # the network boundary: any failure means "not available", said in one line
            raise WeightsUnavailableError(
                f"{entry.name}: cannot download {item.filename} from {where}: {_download_error(error)}; "
                f"nothing was installed: run `imgen weights pull {entry.name}` to retry"
            ) from None
        problem = file_problem(downloaded, item)
        if problem:
            raise WeightsCorruptError(
                f"{entry.name}: the download of {item.filename} from {where} {problem}; it was deleted and "
                f"nothing was installed: run `imgen weights pull {entry.name}` to retry (if it fails again, "
                "the published file is not the one weights.lock pins)"
            )
        folder.mkdir(parents=True, exist_ok=True)
        os.replace(downloaded, folder / item.filename)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _download_error(error: Exception) -> str:
    """A one-line reason for a failed `hf_hub_download`."""
    from huggingface_hub.utils import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(error, (OfflineModeIsEnabled, LocalEntryNotFoundError)):
        return f"the Hub ({hub_endpoint() or 'default endpoint'}) is not reachable or offline mode is on"
    if isinstance(error, RepositoryNotFoundError):
        return "the repository does not exist or is private (set HF_TOKEN)"
    if isinstance(error, RevisionNotFoundError):
        return "the pinned revision does not exist in the repository"
    if isinstance(error, EntryNotFoundError):
        return "the file is not in the repository at the pinned revision"
    if isinstance(error, HfHubHTTPError):
        return f"HTTP error ({_one_line(error)})"
    return f"{type(error).__name__}: {_one_line(error)}"


def _sweep_staging(root: Path) -> None:
    """Remove staging folders left by killed downloads; recent ones may belong to a running pull."""
    cutoff = time.time() - _STALE_STAGING_SECONDS
    for child in root.iterdir():
        try:
            if child.is_dir() and child.stat().st_mtime < cutoff:
                shutil.rmtree(child, ignore_errors=True)
        except OSError:
            continue


# ---------------------------------------------------------------- resolving a --model argument


def resolve_model(
    name_or_path: str | os.PathLike[str] | None = None,
    download: bool = True,
    lock_path: str | os.PathLike[str] | None = None,
) -> Path:
    """The checkpoint folder to load for `--model`, checked against the lock.

    - None or "default": the bundled folder, hashed against its lock entry (a
      flipped byte raises `WeightsCorruptError`); before it is locked, only
      its presence and headers are checked.
    - a name in the lock: its cached folder, pulled first if missing or wrong
      and `download` is true.
    - a path (folder, or a file in it): that folder; if it is where a locked
      checkpoint lives, it is hashed against that entry.

    A string that is both a lock name and a folder means the lock entry; write
    `./name` for the folder.
    """
    lock = read_lock(lock_path)
    if name_or_path is None or (isinstance(name_or_path, str) and name_or_path == DEFAULT):
        entry = bundled_entry(lock)
        return _resolve_entry(entry, download, lock) if entry else _checked_folder(BUNDLED, bundled=True)
    if isinstance(name_or_path, str) and name_or_path in lock.checkpoints:
        return _resolve_entry(lock.checkpoints[name_or_path], download, lock)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        _refuse_missing(name_or_path, path, lock)
    folder = path.parent if path.is_file() else path
    bundled = [entry for entry in [bundled_entry(lock)] if entry is not None]
    for entry in [*bundled, *(entry for name, entry in lock.checkpoints.items() if name != DEFAULT)]:
        if _same_folder(folder, checkpoint_folder(entry)):
            return _resolve_entry(entry, False, lock)
    return _checked_folder(folder)


def check_model_named(name_or_path: str | None, lock_path: str | os.PathLike[str] | None = None) -> None:
    """Raise what `resolve_model` would for a `--model` that names nothing: no lock name, no such path.

    Why: a command can refuse a mistyped `--model` before it imports torch
    (seconds) without hashing any checkpoint twice; everything else (a
    corrupt or missing file of a named checkpoint) is left to `resolve_model`.
    """
    if name_or_path is None or name_or_path == DEFAULT:
        return
    lock = read_lock(lock_path)
    path = Path(name_or_path).expanduser()
    if name_or_path not in lock.checkpoints and not path.exists():
        _refuse_missing(name_or_path, path, lock)


def _refuse_missing(name_or_path: str | os.PathLike[str], path: Path, lock: WeightsLock) -> None:
    """Neither a lock entry nor a file: list the known names when it looks like a name, else name the path."""
    if isinstance(name_or_path, str) and _NAME.fullmatch(name_or_path):
        lock.get(name_or_path)  # raises UnknownCheckpointError listing the known names
    raise WeightsUnavailableError(f"no checkpoint at {path}: give a checkpoint folder or a name from weights.lock")


def _resolve_entry(entry: LockedCheckpoint, download: bool, lock: WeightsLock) -> Path:
    folder = checkpoint_folder(entry)
    problems = checkpoint_problems(entry, folder)
    if not problems:
        return folder
    if entry.source == "package":
        raise WeightsCorruptError(_bundled_message(entry, problems))
    if download:
        return pull(entry.name, lock.path)
    absent = all(p.endswith(" is missing") for p in problems)
    state = "is not downloaded" if absent else f"does not match weights.lock ({'; '.join(problems)})"
    if entry.source == "local":  # nothing to pull from: only the folder it was added from can restore it
        fix = f"pin the folder again with `imgen weights add FOLDER --name {entry.name} --replace`"
        raise WeightsUnavailableError(f"{entry.name} {state.replace('downloaded', 'in the cache')}: {fix}")
    raise WeightsUnavailableError(f"{entry.name} {state}: run `imgen weights pull {entry.name}`")


def _checked_folder(folder: Path, bundled: bool = False) -> Path:
    problems = folder_problems(folder)
    if not problems:
        return folder
    if bundled:
        raise WeightsUnavailableError(
            f"the bundled checkpoint is not usable ({'; '.join(problems)} in {folder}): reinstall imgen"
        )
    raise WeightsUnavailableError(f"{folder} is not a usable checkpoint folder: {'; '.join(problems)}")


def _bundled_message(entry: LockedCheckpoint, problems: list[str]) -> str:
    folder = checkpoint_folder(entry)
    return (
        f"the bundled checkpoint {entry.name!r} in {folder} does not match weights.lock: {'; '.join(problems)}; "
        "the install is damaged: reinstall imgen (pip install --force-reinstall imgen) or restore the files"
    )


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


# ---------------------------------------------------------------- adding and publishing


def add(
    path: str | os.PathLike[str],
    name: str,
    bundled: bool = False,
    license: str = DEFAULT_LICENSE,
    repo_id: str | None = None,
    revision: str | None = None,
    replace_existing: bool = False,
    lock_path: str | os.PathLike[str] | None = None,
) -> LockedCheckpoint:
    """Pin the checkpoint folder `path` as `name` and write the lock; return the new entry.

    With `bundled`, `path` must be the package folder `imgen/weights/NAME`: the
    files stay there and the entry's source is "package". Otherwise the files
    are copied into the cache (hashing the copy, so the lock describes exactly
    the bytes that `resolve_model(name)` will load) with source "local", or
    "hub" when `repo_id` and `revision` say where they are already published.
    """
    folder = Path(path).expanduser()
    if not _NAME.fullmatch(name):
        raise WeightsInputError(f"invalid checkpoint name {name!r}: use lowercase letters, digits, - and _ (<= 64)")
    if not license.strip():
        raise WeightsInputError("the license must not be empty")
    if (repo_id is None) != (revision is None):
        raise WeightsInputError("give both --repo-id and --revision, or neither")
    if repo_id is not None and not _REPO_ID.fullmatch(repo_id):
        raise WeightsInputError(f"invalid repo id {repo_id!r}: expected owner/name")
    if revision is not None and not _REVISION.fullmatch(revision):
        raise WeightsInputError(f"invalid revision {revision!r}: expected a 40-hex commit id")
    if not folder.is_dir():
        raise WeightsInputError(
            f"{folder}: not a folder (a checkpoint is a folder with {' and '.join(CHECKPOINT_FILES)})"
        )
    problems = folder_problems(folder)
    if problems:
        raise WeightsInputError(f"{folder} is not a checkpoint: {'; '.join(problems)}")
    mismatch = pairing_problem_of(folder)
    if mismatch:  # pinned (and later published), such a pair would fail every `imgen generate`
        raise WeightsInputError(f"{folder}: {mismatch}")
    if bundled and not _same_folder(folder, PACKAGE_WEIGHTS / name):
        raise WeightsInputError(f"--bundled needs the package folder {PACKAGE_WEIGHTS / name}, not {folder}")
    if name == DEFAULT and not bundled:
        raise WeightsInputError(f"{DEFAULT!r} is the bundled checkpoint: add it with --bundled from {BUNDLED}")
    lock = read_lock(lock_path)
    if name in lock.checkpoints and not replace_existing:
        raise WeightsInputError(f"{name!r} is already in {lock.path}: pass --replace to pin the new files")

    def pin(files: tuple[LockedFile, ...], source: str) -> LockedCheckpoint:
        entry = LockedCheckpoint(name=name, source=source, files=files)
        write_lock(replace(lock, checkpoints={**lock.checkpoints, name: entry}))
        return entry

    if bundled:
        entry = pin(tuple(_describe(folder / f, license, repo_id, revision) for f in CHECKPOINT_FILES), "package")
        _write_packaged(entry)
        return entry
    source = "hub" if repo_id is not None else "local"
    target = cache_root() / "checkpoints" / name
    return _copy_checkpoint_in(folder, target, license, repo_id, revision, lambda files: pin(files, source))


def lock_bundled(
    name: str = DEFAULT, license: str = DEFAULT_LICENSE, lock_path: str | os.PathLike[str] | None = None
) -> LockedCheckpoint:
    """Pin the package's bundled checkpoint (after training it), replacing its old entry."""
    return add(PACKAGE_WEIGHTS / name, name, bundled=True, license=license, replace_existing=True, lock_path=lock_path)


def _describe(path: Path, license: str, repo_id: str | None, revision: str | None) -> LockedFile:
    return LockedFile(path.name, path.stat().st_size, file_sha256(path), license, repo_id, revision)


def _copy_checkpoint_in(
    folder: Path,
    target: Path,
    license: str,
    repo_id: str | None,
    revision: str | None,
    pin: Callable[[tuple[LockedFile, ...]], LockedCheckpoint],
) -> LockedCheckpoint:
    """Copy every file of checkpoint `folder` into `target` and `pin` them in the lock, all or nothing.

    The files are copied (and hashed) into a staging folder first and renamed
    into `target` only once all of them are there; the files they replace are
    kept aside until `pin` has written the lock, and put back if it fails. So
    a failed `add --replace` never leaves a new tokenizer beside an old
    generator, nor new files under a lock entry that pins the old ones.
    """
    staging_root = cache_root() / "tmp"
    staging_root.mkdir(parents=True, exist_ok=True)
    _sweep_staging(staging_root)
    staging = Path(tempfile.mkdtemp(prefix=f"add-{target.name}-", dir=staging_root))
    aside = staging / "replaced"
    moved: list[str] = []
    try:
        files = tuple(_copy_in(folder / filename, staging, license, repo_id, revision) for filename in CHECKPOINT_FILES)
        target.mkdir(parents=True, exist_ok=True)
        aside.mkdir()
        try:
            for filename in CHECKPOINT_FILES:
                if (target / filename).exists():
                    os.replace(target / filename, aside / filename)
                moved.append(filename)
                os.replace(staging / filename, target / filename)
            return pin(files)
        except BaseException:
            for filename in moved:  # the old files back, as the lock still pins them
                if (aside / filename).exists():
                    os.replace(aside / filename, target / filename)
                else:
                    (target / filename).unlink(missing_ok=True)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _copy_in(source: Path, target: Path, license: str, repo_id: str | None, revision: str | None) -> LockedFile:
    """Copy `source` into `target` atomically, hashing the bytes as they are written."""
    target.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{source.name}.", suffix=".tmp", dir=target)
    digest, size = hashlib.sha256(), 0
    try:
        with open(source, "rb") as reader, os.fdopen(handle, "wb") as writer:
            for chunk in iter(lambda: reader.read(1 << 20), b""):
                digest.update(chunk)
                writer.write(chunk)
                size += len(chunk)
        problem = header_problem(Path(temp_name), EXPECTED_KINDS.get(source.name))
        if problem:
            raise WeightsInputError(f"{source} changed while it was copied: the copy {problem}")
        _make_readable(Path(temp_name), target / source.name)
        os.replace(temp_name, target / source.name)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return LockedFile(source.name, size, digest.hexdigest(), license, repo_id, revision)


def push(
    name: str,
    repo_id: str,
    private: bool = False,
    lock_path: str | os.PathLike[str] | None = None,
    api: Any = None,
) -> LockedCheckpoint:
    """Upload `name`'s files to the Hub repo `repo_id` in one commit and pin that commit in the lock.

    The files are checked against the lock first, so what is published is what
    was pinned. `api` defaults to `huggingface_hub.HfApi` (token from HF_TOKEN
    or `hf auth login`); tests pass a stand-in.
    """
    if not _REPO_ID.fullmatch(repo_id):
        raise WeightsInputError(f"invalid repo id {repo_id!r}: expected owner/name")
    lock = read_lock(lock_path)
    entry = lock.get(name)
    folder = checkpoint_folder(entry)
    problems = checkpoint_problems(entry, folder)
    if problems:
        raise WeightsCorruptError(f"{name}: will not publish files that do not match the lock: {'; '.join(problems)}")
    if offline():
        raise WeightsUnavailableError(
            f"HF_HUB_OFFLINE=1 forbids uploading: run `HF_HUB_OFFLINE=0 imgen weights push {name} --repo-id {repo_id}`"
        )
    from huggingface_hub import CommitOperationAdd, HfApi

    hub = api if api is not None else HfApi(endpoint=hub_endpoint())
    operations = [
        CommitOperationAdd(path_in_repo=item.filename, path_or_fileobj=str(folder / item.filename))
        for item in entry.files
    ]
    try:
        hub.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        commit = hub.create_commit(
            repo_id, operations=operations, commit_message=f"imgen checkpoint {name}", repo_type="model"
        )
    except Exception as error:  # the network boundary, as in _download
        raise WeightsUnavailableError(f"cannot push {name} to {repo_id}: {_push_error(error)}") from None
    revision = str(getattr(commit, "oid", "") or "")
    if not _REVISION.fullmatch(revision):
        raise WeightsUnavailableError(f"pushed {name} to {repo_id}, but the Hub returned no commit id ({revision!r})")
    files = tuple(replace(item, repo_id=repo_id, revision=revision) for item in entry.files)
    updated = LockedCheckpoint(name=name, source="package" if entry.source == "package" else "hub", files=files)
    write_lock(replace(lock, checkpoints={**lock.checkpoints, name: updated}))
    if updated.source == "package":  # the package's own lock says the same (`packaged_entry`)
        _write_packaged(updated)
    return updated


def _push_error(error: Exception) -> str:
    from huggingface_hub.utils import HfHubHTTPError

    response = getattr(error, "response", None)
    if isinstance(error, HfHubHTTPError) and getattr(response, "status_code", None) in (401, 403):
        return "not allowed: log in with `hf auth login` or set HF_TOKEN to a token with write access"
    return f"{type(error).__name__}: {_one_line(error)}"


def _make_readable(temp: Path, target: Path) -> None:
    """Give a temporary file (created owner-only by `mkstemp`) the mode of the file it replaces, else rw-r--r--."""
    try:
        mode = target.stat().st_mode & 0o777
    except OSError:
        mode = 0o644
    os.chmod(temp, mode)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
