#!/usr/bin/env python3
"""End-to-end demo time: `iris-recipes run recipes/smollm2-demo.yaml` from a warm install (builtin model and
converter already cached), per stage, with the behaviour change it produced.

    benchmarks/bench_demo.py [--quick] [overrides...]
    benchmarks/bench_demo.py --baseline-tree DIR   # side by side in one run: an earlier checkout (`git worktree add
                                                   # DIR COMMIT`) with its own demo recipe, this tree with an empty
                                                   # base-evaluation cache, and this tree again (the cache filled)
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BIN, REPO, table  # noqa: E402

sys.path.insert(0, str(REPO))
from iris_recipes.stages import NAMES as STAGES  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="one run instead of two")
    ap.add_argument("--baseline-tree", type=Path, help="an earlier checkout to run side by side with this one")
    ap.add_argument("overrides", nargs="*", help="recipe overrides, e.g. train.max_steps=20")
    args = ap.parse_args()
    if args.baseline_tree:
        return side_by_side(args.baseline_tree.resolve(), args.overrides)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    results = []
    for _ in range(1 if args.quick else 2):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            start = time.perf_counter()
            subprocess.run(
                [str(BIN / "iris-recipes"), "run", "recipes/smollm2-demo.yaml", "--output", str(out), *args.overrides],
                cwd=REPO,
                env={**env, "IRIS_RUNS_DIR": tmp},
                check=True,
                stdout=subprocess.DEVNULL,
            )
            wall = time.perf_counter() - start
            meta = json.loads((out / "run.json").read_text())
            ev = json.loads((out / "eval.json").read_text()) if (out / "eval.json").exists() else {}
            results.append((wall, meta, ev))
    walls = [r[0] for r in results]
    print("## End-to-end demo (`iris-recipes run recipes/smollm2-demo.yaml`, warm install)\n")
    rows = [
        [stage, f"{statistics.median(r[1]['stages'].get(stage, {}).get('seconds', 0) for r in results):.0f} s"]
        for stage in STAGES
    ]
    rows.append(
        [
            "**total wall**",
            f"**{statistics.median(walls):.0f} s** (min {min(walls):.0f}, max {max(walls):.0f}, n={len(walls)})",
        ]
    )
    print(table(["stage", "median"], rows))
    ev = results[-1][2]
    if ev:
        b, t = ev["base"], ev["tuned"]
        print("\nBehaviour change measured by the eval stage (last run):\n")
        rows = [["validation loss", f"{b['val_loss']:.3f}", f"{t['val_loss']:.3f}"]]
        rows += [[k, f"{b['metrics'].get(k, 0):.2f}", f"{v:.2f}"] for k, v in t["metrics"].items()]
        general = ev.get("forgetting")
        if general:
            gb, gt, n = general["base"], general["tuned"], general["prompts"]
            rows += [
                ["general prompts: stop on their own", f"{gb['stopped']} of {n}", f"{gt['stopped']} of {n}"],
                ["general prompts: replies that loop", f"{gb['loops']} of {n}", f"{gt['loops']} of {n}"],
                ["forgetting check", "", general["verdict"]],
            ]
        print(table(["measure", "base", "fine-tuned"], rows))
        timings = (results[-1][1]["stages"].get("eval") or {}).get("timings") or {}
        if timings:
            print("\nEval stage, seconds per part (last run): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    goal = statistics.median(walls)
    print(f"\nGoal: at most 4 minutes: {'met' if goal <= 240 else 'NOT met'} ({goal / 60:.1f} min).")
    return 0


def run_demo(tree: Path, env: dict[str, str], overrides: list[str]) -> tuple[float, dict]:
    """One demo run with `tree`'s own code and recipe: (wall seconds, run.json)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "iris_recipes",
                "run",
                "recipes/smollm2-demo.yaml",
                "--output",
                str(out),
                *overrides,
            ],
            cwd=tree,
            env={**env, "IRIS_RUNS_DIR": tmp, "PYTHONPATH": str(tree)},  # the tree's own package, children too
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - start, json.loads((out / "run.json").read_text())


def side_by_side(baseline: Path, overrides: list[str]) -> int:
    from iris_recipes.paths import cache_dir

    # A cache with everything the user's holds (builtin model, converter, base GGUFs) but no base answers.
    with tempfile.TemporaryDirectory() as cache:
        for entry in cache_dir().iterdir():
            if entry.name != "eval-base-answers":
                (Path(cache) / entry.name).symlink_to(entry)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "IRIS_CACHE_DIR": cache}
        runs = {f"baseline ({baseline.name})": run_demo(baseline, env, overrides)}
        # the baseline may have cached the base's answers under the same key: this tree's first run starts without
        shutil.rmtree(Path(cache) / "eval-base-answers", ignore_errors=True)
        runs["this tree, first run"] = run_demo(REPO, env, overrides)
        runs["this tree, second run (base answers cached)"] = run_demo(REPO, env, overrides)
    print("## End-to-end demo side by side (`iris-recipes run recipes/smollm2-demo.yaml`, warm install, one run)\n")
    rows = [[s, *(f"{r[1]['stages'].get(s, {}).get('seconds', 0):.0f} s" for r in runs.values())] for s in STAGES]
    rows.append(["**total wall**", *(f"**{r[0]:.0f} s**" for r in runs.values())])
    print(table(["stage", *runs], rows))
    print("\nEval stage, seconds per part:\n")
    for name, r in runs.items():
        timings = (r[1]["stages"].get("eval") or {}).get("timings") or {}
        print(f"- {name}: " + (", ".join(f"{k} {v:.0f}" for k, v in timings.items()) or "not recorded"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
