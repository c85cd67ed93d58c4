#!/usr/bin/env python3
"""Run every benchmarks/bench_*.py and write benchmarks/RESULTS.md.

Each script prints Markdown (its own heading, tables of medians and min/max, ratios measured side by side in the
same run) to stdout. Figures drift up to ~25% between runs on shared machines: compare ratios, not absolute times
across files.

    .venv/bin/python benchmarks/run_all.py [--only validate,export] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["validate", "builtin", "train", "export", "space", "api", "demo"]


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem = next(
        (
            int(line.split()[1]) // 1024 // 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    versions = []
    for pkg in ("torch", "axolotl", "transformers", "llama_cpp_python", "gradio"):
        try:
            versions.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            pass
    return (
        f"- CPU: {cpu}, {os.cpu_count()} cores, {mem} GiB memory, no GPU\n"
        f"- Python {platform.python_version()} on {platform.system()} {platform.release()}\n"
        f"- {', '.join(versions)}\n"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated subset of: " + ", ".join(ORDER))
    ap.add_argument("--quick", action="store_true", help="fewer repeats (passed to every script)")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = ap.parse_args()
    wanted = args.only.split(",") if args.only else ORDER
    sections = []
    for name in wanted:
        script = HERE / f"bench_{name}.py"
        if not script.exists():
            sections.append(f"## {name}\n\n(no benchmarks/bench_{name}.py)\n")
            continue
        print(f"==> {script.name}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(script), *(["--quick"] if args.quick else [])], stdout=subprocess.PIPE, text=True
        )
        took = time.perf_counter() - start
        body = proc.stdout.strip() or "(no output)"
        status = "" if proc.returncode == 0 else f"\n\n**failed with exit code {proc.returncode}**"
        sections.append(f"{body}{status}\n\n_{script.name}: {took:.0f} s_\n")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = (
        f"# Benchmark results\n\nMeasured {stamp} by `benchmarks/run_all.py`"
        f"{' --quick' if args.quick else ''} on:\n\n{machine()}\n" + "\n".join(sections)
    )
    tmp = Path(args.out + ".partial")
    tmp.write_text(text)
    tmp.replace(args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
