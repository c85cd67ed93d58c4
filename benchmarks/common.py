"""Helpers shared by the benchmark scripts: repeated timing, Markdown tables, the CPU precision paths, and the stamp
`run_all.py` puts on every section of RESULTS.md."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from iris_recipes.hostinfo import cpu_count, cpu_description, cpu_has_bf16  # noqa: E402

# The switch iris_recipes.hostinfo.cpu_has_bf16 reads: 0 takes the fp32 CPU path (as on a CPU without native bf16),
# 1 the bf16 path; unset: detected. Benchmarks set it per path, and check in each run's config that it took.
CPU_BF16_ENV = "IRIS_CPU_BF16"
VERSIONS = ("torch", "axolotl", "transformers", "llama_cpp_python", "gradio")


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


# --- the CPU precision paths ---------------------------------------------------------------------------------------


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively, whatever IRIS_CPU_BF16 says."""
    try:
        return cpu_has_bf16(Path("/proc/cpuinfo").read_text())
    except OSError:
        return False


@dataclass(frozen=True)
class CpuPath:
    name: str  # "bf16" or "fp32": what `train.precision: auto` trains in on this path
    env: dict[str, str]  # added to a child's environment to take this path

    @property
    def bf16(self) -> bool:
        return self.name == "bf16"


BF16 = CpuPath("bf16", {CPU_BF16_ENV: "1"})
FP32 = CpuPath("fp32", {CPU_BF16_ENV: "0"})


def add_cpu_path_arg(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--cpu-path",
        choices=("both", "bf16", "fp32"),
        default="both",
        help=f"CPU precision path(s) to measure ({CPU_BF16_ENV}=1 or 0 for each run). both (default): bf16 and fp32 "
        "where the CPU computes bf16 natively, fp32 alone elsewhere (bf16 there is emulated, slower than fp32, and "
        "never chosen by `precision: auto`); bf16 forces it even when emulated",
    )


def cpu_paths(choice: str) -> tuple[list[CpuPath], str]:
    """The paths to measure for --cpu-path `choice`, and a sentence saying which and why, for the section's text."""
    native = native_bf16()
    if choice == "bf16":
        paths = [BF16]
    elif choice == "fp32":
        paths = [FP32]
    else:
        paths = [BF16, FP32] if native else [FP32]
    said = ", ".join(f"{p.name} ({CPU_BF16_ENV}={p.env[CPU_BF16_ENV]})" for p in paths)
    why = (
        "this CPU computes bf16 natively"
        if native
        else "this CPU has no native bf16: `precision: auto` trains in fp32 here, and the bf16 path needs a CPU that "
        "has it" + (" (measured anyway, emulated)" if BF16 in paths else " (not measured)")
    )
    return paths, f"CPU precision path{'s' if len(paths) > 1 else ''} measured: {said}; {why}."


def trained_bf16(run_dir: Path) -> bool:
    """Whether the run's generated Axolotl config trained in bf16."""
    import yaml

    return bool((yaml.safe_load((run_dir / "axolotl.yaml").read_text()) or {}).get("bf16"))


def check_cpu_path(run_dir: Path, path: CpuPath) -> None:
    """Stop the benchmark when a run did not take the path it was asked for (an iris_recipes that does not read
    IRIS_CPU_BF16 would silently measure the detected path twice)."""
    if trained_bf16(run_dir) != path.bf16:
        raise SystemExit(
            f"{run_dir}/axolotl.yaml: asked for the {path.name} path ({CPU_BF16_ENV}={path.env[CPU_BF16_ENV]}) but "
            f"the run trained in {'bf16' if not path.bf16 else 'fp32'}: this iris_recipes does not read "
            f"{CPU_BF16_ENV}"
        )


# --- the stamp on every section -----------------------------------------------------------------------------------


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def commit(ignore: Path | None = None) -> str:
    """`git rev-parse --short HEAD`, plus "+dirty" when the tree differs from it (tracked changes or untracked files;
    `ignore`, the results file being rewritten, does not count)."""
    head = _git("rev-parse", "--short", "HEAD")
    if head is None:
        return "unknown"  # not a git checkout
    spec = ["--", "."]
    if ignore is not None and ignore.resolve().is_relative_to(REPO):
        spec.append(f":(exclude){ignore.resolve().relative_to(REPO)}")
    status = _git("status", "--porcelain", *spec)
    return head + ("+dirty" if status else "")


# The stamp's first line, as Stamp.markdown writes it: section, command, script, seconds, commit, date.
STAMP_LINE = re.compile(
    r"^> Section `(?P<section>[^`]+)`: `(?P<command>[^`]+)` \(runs `(?P<script>[^`]+)`, (?P<seconds>\d+) s\) at "
    r"(?P<commit>\S+), (?P<date>\d{4}-\d\d-\d\d \d\d:\d\d) UTC\.$",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Stamp:
    """Where and how a section was measured: taken before its script starts, written when it ends."""

    section: str
    command: str  # reproduces the whole section
    script_command: str  # what it runs
    commit: str
    started: dt.datetime
    cpu: str
    native_bf16: bool
    threads: int
    environment: str  # settings that change what is measured: OMP_NUM_THREADS, IRIS_CPU_BF16
    load: float  # the 1-minute load average at the start: other work on a shared machine slows every figure
    software: str

    @classmethod
    def now(cls, section: str, command: str, script_command: str, results: Path | None = None) -> Stamp:
        versions = []
        for pkg in VERSIONS:
            try:
                versions.append(f"{pkg} {version(pkg)}")
            except PackageNotFoundError:
                pass
        env = [f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", CPU_BF16_ENV) if os.environ.get(k)]
        return cls(
            section=section,
            command=command,
            script_command=script_command,
            commit=commit(results),
            started=dt.datetime.now(dt.timezone.utc),
            cpu=cpu_description(),
            native_bf16=native_bf16(),
            threads=cpu_count(),
            environment=", ".join(env),
            load=os.getloadavg()[0],
            software=", ".join([f"Python {platform.python_version()}", *versions]),
        )

    def markdown(self, seconds: float) -> str:
        env = f" ({self.environment} set)" if self.environment else ""
        return (
            f"> Section `{self.section}`: `{self.command}` (runs `{self.script_command}`, {seconds:.0f} s) at "
            f"{self.commit}, {self.started:%Y-%m-%d %H:%M} UTC.\n"
            f"> CPU: {self.cpu}; native bf16: {'yes' if self.native_bf16 else 'no'}; {self.threads} threads{env}; "
            f"load average {self.load:.1f} at the start. {self.software}."
        )
