"""Small helpers shared by the benchmark scripts: repeated timing and Markdown tables."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def time_cmd(cmd: list[str], repeats: int, **kwargs) -> list[float]:
    """Wall seconds of `cmd`, run `repeats` times; a failing command aborts the benchmark."""
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
        out.append(time.perf_counter() - start)
    return out


def summary(values: list[float], unit: str = "s", digits: int = 3) -> str:
    return (
        f"{statistics.median(values):.{digits}f} {unit} (min {min(values):.{digits}f}, "
        f"max {max(values):.{digits}f}, n={len(values)})"
    )


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
