#!/usr/bin/env python
"""`iris-recipes run` against raw `axolotl train` on the same generated config, side by side.

    python benchmarks/bench_train.py                      # SmolLM2-135M LoRA, 20 steps, 3 runs of each
    python benchmarks/bench_train.py --model tiny --steps 10 --runs 2 --cpu-path fp32

Each round runs `iris-recipes run RECIPE --until train` (data stage, Axolotl's validator, launch, progress,
metrics) and `axolotl train axolotl.yaml` in a fresh copy of the first run's data and config (same environment and
threads; Axolotl tokenizes from scratch in both), alternating which goes first. Reported per run: wall time, startup
(process start -> first training step begins), training tokens/s (all tokens in the batches) and trained tokens/s
(assistant tokens, the ones with a loss), seconds per step. Both sides write metrics.jsonl through the same plugin, so the
throughput figures are measured identically. The whole comparison runs on each CPU precision path (IRIS_CPU_BF16=1
and 0: bf16 and fp32 where the CPU computes bf16 natively, fp32 alone elsewhere; `--cpu-path`), and each path's
generated config is checked to say what was asked. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))  # standins
sys.path.insert(0, str(REPO / "benchmarks"))
from common import CpuPath, add_cpu_path_arg, check_cpu_path, cpu_paths  # noqa: E402

from iris_recipes.train import launch  # noqa: E402
from iris_recipes.train.metrics import read_metrics, summarize  # noqa: E402


def _base_model(kind: str) -> str:
    import standins
    from iris_recipes.models import resolve_base_model

    if kind == "tiny":
        return str(standins.cached("chatml"))
    return str(resolve_base_model("builtin:smollm2-135m-instruct").path)


def write_recipe(dir: Path, base: str, steps: int) -> Path:
    recipe = {
        "name": "bench-train",
        "base_model": base,
        "chat_template": "chatml",
        "method": "lora",
        "dataset": {"name": "arith-steps", "val_size": 0.0},
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
        "train": {
            "max_steps": steps,
            "micro_batch_size": 4,
            "sequence_len": 256,
            "learning_rate": 5.0e-4,
            "save_steps": steps,
            "logging_steps": 1,
        },
        "card": {"license": "apache-2.0"},
    }
    path = dir / "bench-train.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def _figures(kind: str, wall: float, started: float, metrics_file: Path, rc: int) -> dict:
    records = read_metrics(metrics_file)
    begin = next((r for r in records if r.get("event") == "train_begin"), None)
    s = summarize(records)
    return {
        "tool": kind,
        "rc": rc,
        "wall": wall,
        "startup": (begin["time"] - started) if begin else None,
        "tok_s": s.get("tokens_per_second"),
        "trained_tok_s": s.get("trained_tokens_per_second"),
        "s_step": s.get("seconds_per_step"),
        "steps": s.get("steps"),
    }


def iris_once(recipe: Path, runs: Path, env: dict) -> tuple[dict, Path]:
    before = set((runs / "bench-train").glob("*")) if (runs / "bench-train").is_dir() else set()
    started = time.time()
    t0 = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "iris_recipes", "run", str(recipe), "--until", "train", "--device", "cpu"],
        env={**env, "IRIS_RUNS_DIR": str(runs)},
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - t0
    (run,) = set((runs / "bench-train").glob("*")) - before
    if res.returncode:
        print(res.stdout[-3000:], res.stderr[-3000:], file=sys.stderr)
    return _figures("iris-recipes run", wall, started, run / "metrics.jsonl", res.returncode), run


def raw_once(src_run: Path, work: Path, env: dict) -> dict:
    work.mkdir(parents=True)
    shutil.copytree(src_run / "data", work / "data")
    for name in ("axolotl.yaml", "deepspeed.json"):
        if (src_run / name).is_file():
            shutil.copy2(src_run / name, work / name)
    axolotl = Path(sys.executable).parent / "axolotl"
    started = time.time()
    t0 = time.monotonic()
    res = subprocess.run([str(axolotl), "train", "axolotl.yaml"], env=env, cwd=work, capture_output=True, text=True)
    wall = time.monotonic() - t0
    (work / "train.log").write_text(res.stdout + res.stderr)
    if res.returncode:
        print(res.stdout[-3000:], res.stderr[-3000:], file=sys.stderr)
    return _figures("axolotl train", wall, started, work / "metrics.jsonl", res.returncode)


def _fmt(v, digits=1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def compare_tools(recipe: Path, tmp: Path, env: dict, runs: int, path: CpuPath) -> list[dict]:
    """Alternating rounds of both tools on one CPU precision path; the rows of the table."""
    rows = []
    # raw axolotl needs the data and config of an iris-recipes run: one prepared run serves every raw round
    iris, run = iris_once(recipe, tmp / "runs", env)
    if iris["rc"] == 0:
        check_cpu_path(run, path)
    rows.append(dict(iris, round=1))
    for i in range(runs):
        if i > 0 and i % 2 == 0:  # alternate which tool goes first, so drift in machine load hits both alike
            rows.append(dict(iris_once(recipe, tmp / "runs", env)[0], round=i + 1))
        rows.append(dict(raw_once(run, tmp / f"raw-{i}", env), round=i + 1))
        if i % 2 == 1:
            rows.append(dict(iris_once(recipe, tmp / "runs", env)[0], round=i + 1))
    return rows


def medians(rows: list[dict]) -> dict[str, dict[str, float]]:
    med = {}
    for tool in ("iris-recipes run", "axolotl train"):
        sel = [r for r in rows if r["tool"] == tool and r["rc"] == 0]
        med[tool] = {
            k: statistics.median([r[k] for r in sel if r[k] is not None] or [float("nan")])
            for k in ("wall", "startup", "tok_s", "s_step")
        }
    return med


def print_path(path: CpuPath, rows: list[dict], med: dict[str, dict[str, float]]) -> None:
    print(f"### {path.name} path\n")
    print("| round | tool | exit | wall s | startup s | train tok/s | trained tok/s | s/step |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['round']} | {r['tool']} | {r['rc']} | {_fmt(r['wall'])} | {_fmt(r['startup'])} | "
            f"{_fmt(r['tok_s'])} | {_fmt(r['trained_tok_s'])} | {_fmt(r['s_step'], 2)} |"
        )
    a, b = med["iris-recipes run"], med["axolotl train"]
    print("\n| median | wall s | startup s | train tok/s | s/step |\n|---|---|---|---|---|")
    for tool, m in med.items():
        print(f"| {tool} | {_fmt(m['wall'])} | {_fmt(m['startup'])} | {_fmt(m['tok_s'])} | {_fmt(m['s_step'], 2)} |")
    print(
        f"\nWrapper overhead on the {path.name} path: wall {100 * (a['wall'] - b['wall']) / b['wall']:+.1f}% "
        f"({a['wall'] - b['wall']:+.1f} s, of which startup {a['startup'] - b['startup']:+.1f} s); "
        f"training throughput {100 * (a['tok_s'] - b['tok_s']) / b['tok_s']:+.1f}%.\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("smollm2", "tiny"), default="smollm2")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the run directories (printed)")
    ap.add_argument("--quick", action="store_true", help="2 runs of each (for run_all.py --quick)")
    add_cpu_path_arg(ap)
    args = ap.parse_args(argv)
    if args.quick:
        args.runs = min(args.runs, 2)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    paths, paths_said = cpu_paths(args.cpu_path)
    base = _base_model(args.model)
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    spec = launch.make_spec(device="cpu")
    env = launch.launch_env(spec, offline=True)
    # `axolotl train` runs `accelerate` from PATH: the one beside this Python, as iris-recipes does
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    recipe = write_recipe(tmp, base, args.steps)
    results = {}
    try:
        for path in paths:
            rows = compare_tools(recipe, tmp / path.name, {**env, **path.env}, args.runs, path)
            results[path.name] = (rows, medians(rows))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept: {tmp}", file=sys.stderr)

    print(
        f"## Training: `iris-recipes run` vs raw `axolotl train` ({args.model}, LoRA r16, {args.steps} steps, "
        f"micro batch 4, {spec.cpu_threads} threads, {launch.cpu_count()} cores)\n"
    )
    print(paths_said + "\n")
    for path in paths:
        print_path(path, *results[path.name])
    if len(paths) == 2:
        bf, fp = (results[name][1]["iris-recipes run"] for name in ("bf16", "fp32"))
        print(
            f"bf16 / fp32 (`iris-recipes run`, medians): training tok/s {bf['tok_s'] / fp['tok_s']:.2f}x, "
            f"s/step {bf['s_step'] / fp['s_step']:.2f}x, wall {bf['wall'] / fp['wall']:.2f}x."
        )
    print(json.dumps({name: r[1] for name, r in results.items()}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
