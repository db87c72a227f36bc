"""`imgen weights ...`: a thin Typer layer over `imgen.weights`.

Each command calls one library function and turns its errors into one line on
stderr: `imgen: error: ...`, exit code 2 for bad input (unknown name, invalid
folder or lock file) and 3 for a checkpoint that is missing, damaged or cannot
be downloaded. Results go to stdout (a folder path, a table), progress and
notes to stderr. The library is imported inside the commands so that
`imgen --help` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from imgen.cli_errors import EXIT_BAD_INPUT, EXIT_MODEL_UNAVAILABLE, fail

T = TypeVar("T")

weights_app = typer.Typer(
    help="Pinned checkpoints: list, download, check and publish the checkpoints weights.lock names.\n\n"
    "Downloads go to $IMGEN_HOME (default ~/.cache/imgen) and are checked against the lock's sizes and "
    "SHA-256 digests before use.\n\n"
    "Examples:\n\n  imgen weights list\n\n  imgen weights pull small\n\n  imgen weights verify\n\n"
    "  imgen generate 'a red circle' --model $(imgen weights path small)\n\n"
    "  imgen weights add runs/gen/checkpoint --name small --license Apache-2.0\n\n"
    "  imgen weights push small --repo-id my-org/imgen-small",
    no_args_is_help=True,
    rich_markup_mode=None,
)

LockOption = Annotated[
    Path | None,
    typer.Option("--lock", help="Lock file to use (default: $IMGEN_WEIGHTS_LOCK, else the project's weights.lock)."),
]


def _run(action: Callable[[], T]) -> T:
    """Call the library, mapping its errors to exit codes: 2 for bad input, 3 for an unavailable checkpoint."""
    from imgen.weights import WeightsError, WeightsInputError

    try:
        return action()
    except WeightsInputError as error:
        fail(str(error), EXIT_BAD_INPUT)
    except WeightsError as error:
        fail(str(error), EXIT_MODEL_UNAVAILABLE)
    except OSError as error:  # e.g. a read-only cache or a full disk
        fail(f"{error.filename or 'file system'}: {error.strerror or error}", EXIT_MODEL_UNAVAILABLE)


def _megabytes(size: int | None) -> str:
    return "-" if size is None else f"{size / 1e6:.1f} MB"


@weights_app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per checkpoint on stdout.")] = False,
    lock: LockOption = None,
) -> None:
    """List the checkpoints of weights.lock and whether each is here (sizes only; `verify` hashes).

    Example:

      imgen weights list
    """
    from imgen.weights import list_checkpoints

    statuses = _run(lambda: list_checkpoints(lock))
    rows = []
    for status in statuses:
        entry = status.entry
        origin = "-"
        if entry is not None and entry.files[0].published:
            origin = f"{entry.files[0].repo_id}@{(entry.files[0].revision or '')[:12]}"
        rows.append(
            {
                "name": status.name,
                "source": status.source,
                "state": status.state,
                "size": entry.size if entry else None,
                "license": entry.licenses if entry else "-",
                "hub": origin,
                "folder": str(status.folder),
                "detail": status.detail,
            }
        )
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    columns = ("name", "source", "state", "size", "license", "hub")
    table = [[c.upper() for c in columns]] + [
        [_megabytes(row["size"]) if c == "size" else str(row[c]) for c in columns] for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    for row in rows:
        if row["detail"]:
            typer.echo(f"imgen: {row['name']}: {row['detail']}", err=True)


@weights_app.command("pull")
def pull_command(
    name: Annotated[str, typer.Argument(help="Checkpoint name from weights.lock.")],
    lock: LockOption = None,
) -> None:
    """Download a checkpoint at its pinned revision, check it, and print its folder.

    Files already in the cache and matching the lock are kept; others are
    replaced. With HF_HUB_OFFLINE=1 only the cache is used.

    Example:

      imgen weights pull small
    """
    from imgen.weights import pull

    typer.echo(str(_run(lambda: pull(name, lock))))


@weights_app.command("verify")
def verify_command(
    name: Annotated[str | None, typer.Argument(help="Checkpoint to check (default: all of weights.lock).")] = None,
    lock: LockOption = None,
) -> None:
    """Hash checkpoints and compare them with weights.lock; exit 3 if any is missing or damaged.

    A checkpoint that was never downloaded is only an error when NAME is given.

    Examples:

      imgen weights verify

      imgen weights verify default
    """
    from imgen.weights import verify

    statuses = _run(lambda: verify(name, lock))
    bad = []
    for status in statuses:
        line = f"{status.name}\t{status.state}\t{status.folder}"
        typer.echo(line)
        if status.failed or (name is not None and status.state == "not downloaded"):
            bad.append(f"{status.name} is {status.state}: {status.detail}")
        elif status.detail:
            typer.echo(f"imgen: {status.name}: {status.detail}", err=True)
    if bad:
        fail("; ".join(bad), EXIT_MODEL_UNAVAILABLE)


@weights_app.command("path")
def path_command(
    name: Annotated[str, typer.Argument(help="Checkpoint name from weights.lock, or 'default'.")],
    lock: LockOption = None,
) -> None:
    """Print the folder of a checkpoint after checking it (never downloads; see `pull`).

    Example:

      imgen generate 'a red circle' --model $(imgen weights path small)
    """
    from imgen.weights import read_lock, resolve_model

    def locate() -> Path:
        if name != "default":
            read_lock(lock).get(name)  # a name, never a folder: unknown names list the known ones
        return resolve_model(name, download=False, lock_path=lock)

    typer.echo(str(_run(locate)))


@weights_app.command("add")
def add_command(
    path: Annotated[Path, typer.Argument(help="Checkpoint folder (tokenizer.safetensors and generator.safetensors).")],
    name: Annotated[str, typer.Option("--name", help="Name to pin it under (lowercase letters, digits, - and _).")],
    bundled: Annotated[
        bool, typer.Option("--bundled", help="PATH is the package's imgen/weights/NAME: lock it in place.")
    ] = False,
    license_name: Annotated[str, typer.Option("--license", help="License of the weights.")] = "Apache-2.0",
    repo_id: Annotated[str | None, typer.Option(help="Hub repo the files are already published in.")] = None,
    revision: Annotated[str | None, typer.Option(help="40-hex commit of that repo (with --repo-id).")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace an entry of the same name.")] = False,
    lock: LockOption = None,
) -> None:
    """Pin a checkpoint folder in weights.lock (copying it into the cache unless --bundled).

    After `add`, `--model NAME` loads the pinned copy; `push` publishes it so
    others can `pull` it.

    Examples:

      imgen weights add runs/gen/checkpoint --name small

      imgen weights add imgen/weights/default --name default --bundled --replace
    """
    from imgen.weights import add

    entry = _run(
        lambda: add(
            path,
            name,
            bundled=bundled,
            license=license_name,
            repo_id=repo_id,
            revision=revision,
            replace_existing=replace,
            lock_path=lock,
        )
    )
    for item in entry.files:
        typer.echo(f"{entry.name}\t{item.filename}\t{item.size}\t{item.sha256}")


@weights_app.command("push")
def push_command(
    name: Annotated[str, typer.Argument(help="Checkpoint name from weights.lock.")],
    repo_id: Annotated[str, typer.Option("--repo-id", help="Hub model repo (owner/name), created if missing.")],
    private: Annotated[bool, typer.Option(help="Create the repo as private.")] = False,
    lock: LockOption = None,
) -> None:
    """Upload a checkpoint to the Hub in one commit and pin that commit in weights.lock.

    Needs a token with write access (HF_TOKEN or `hf auth login`).

    Example:

      imgen weights push small --repo-id my-org/imgen-small
    """
    from imgen.weights import push

    entry = _run(lambda: push(name, repo_id, private=private, lock_path=lock))
    typer.echo(f"{entry.name}\t{entry.files[0].repo_id}\t{entry.files[0].revision}")
