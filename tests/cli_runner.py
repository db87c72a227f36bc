"""Running the `imgen` command line from tests: one process per call, one thread, no colour.

Tests of the command line run it as a user does (`python -m imgen ...` in a
fresh process), so imports, exit codes and stderr are the real ones. Every
call has a timeout, so a hung command fails its test instead of hanging CI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
TIMEOUT_S = 600


def restore_ctrl_c() -> None:
    """`preexec_fn` for a child that a test interrupts: SIGINT back to its default before exec.

    Why: a suite started in the background of a non-interactive shell inherits
    SIGINT ignored, and Python then never raises KeyboardInterrupt, so a
    Ctrl-C test would fail for how the suite was launched, not for imgen.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`imgen ARGS` in `cwd`; the result whatever its exit code."""
    return subprocess.run(
        [sys.executable, "-m", "imgen", *args],
        cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip


def imgen(*args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`imgen ARGS` in `cwd`, asserting success unless `check` is False (then as `run`)."""
    result = run(*args, cwd=cwd, env=env)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def torchrun(processes: int, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`imgen ARGS` under torchrun with `processes` workers on a free port (`--standalone`)."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
    return subprocess.run(
        [*launcher, "-m", "imgen", *args], cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=TIMEOUT_S
    )
