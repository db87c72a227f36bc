"""How every `imgen` command reports problems: one line on stderr and a documented exit code.

Shared by the main command line and its sub-apps (`imgen weights`), which
cannot import each other without a cycle.
"""

from __future__ import annotations

from typing import NoReturn

import typer

EXIT_PARTIAL = 1
EXIT_BAD_INPUT = 2
EXIT_MODEL_UNAVAILABLE = 3
EXIT_INTERNAL = 70  # EX_SOFTWARE: a defect in imgen, never to be read as 1 (some images written)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C
DEBUG_ENV = "IMGEN_DEBUG"  # set to 1 for the traceback of an internal error


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print one line to stderr and exit with `code`."""
    typer.echo(f"imgen: error: {message}", err=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    typer.echo(f"imgen: warning: {message}", err=True)
