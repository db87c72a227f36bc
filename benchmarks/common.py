"""Helpers shared by the benchmarks: machine description, result files, standard errors."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, str | int]:
    """What the figures were measured on, so a reader can compare like with like."""
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count() or 0,
        "avx512_bf16": int("avx512_bf16" in flags),
        "python": platform.python_version(),
    }


def write_result(name: str, result: dict) -> Path:
    """Write `result` (plus machine and date) to benchmarks/results/NAME.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "date": time.strftime("%Y-%m-%d"), "machine": machine(), **result}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def standard_error(values: list[float]) -> float:
    """Standard error of the mean of `values` (at least two): the ± of a paired difference."""
    return statistics.stdev(values) / math.sqrt(len(values))
