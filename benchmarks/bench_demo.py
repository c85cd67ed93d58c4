#!/usr/bin/env python3
"""End-to-end demo time: `iris-recipes run recipes/smollm2-demo.yaml` from a warm install (builtin model and
converter already cached), per stage, on each CPU precision path, with the behaviour change it produced.

    benchmarks/bench_demo.py [--quick] [--cpu-path both|bf16|fp32] [overrides...]
    benchmarks/bench_demo.py --baseline-tree DIR   # side by side in one run: an earlier checkout (`git worktree add
                                                   # DIR COMMIT`) with its own demo recipe, this tree with an empty
                                                   # base-evaluation cache, and this tree again (the cache filled)

Each path (IRIS_CPU_BF16=1 and 0: bf16 and fp32 where the CPU computes bf16 natively, fp32 alone elsewhere) runs the
demo twice: a first run as a new user's, whose eval computes the base model's answers, and a second run that reads
them back from the cache (`--quick`: the first run only). The cache is the user's (builtin model, converter, base
GGUF) without its base answers. Each run's generated config is checked to have trained in the path's precision.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, CpuPath, add_cpu_path_arg, check_cpu_path, cpu_paths, table  # noqa: E402

sys.path.insert(0, str(REPO))
from iris_recipes.stages import NAMES as STAGES  # noqa: E402

GOAL_S = 240  # the README's promise for the run: ~4 minutes on 2 cores


@contextlib.contextmanager
def cache_without_base_answers() -> Iterator[tuple[Path, dict[str, str]]]:
    """A cache with everything the user's holds (builtin model, converter, base GGUFs) but no base answers, and the
    environment that points runs at it."""
    from iris_recipes.paths import cache_dir

    with tempfile.TemporaryDirectory() as cache:
        for entry in cache_dir().iterdir():
            if entry.name != "eval-base-answers":
                (Path(cache) / entry.name).symlink_to(entry)
        yield Path(cache), {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "IRIS_CACHE_DIR": cache}


def run_demo(tree: Path, env: dict[str, str], overrides: list[str], path: CpuPath | None) -> tuple[float, dict, dict]:
    """One demo run with `tree`'s own code and recipe: (wall seconds, run.json, eval.json). `path`: the precision
    the run must have trained in (None for a baseline tree, whose code may predate the switch)."""
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
        wall = time.perf_counter() - start
        if path is not None:
            check_cpu_path(out, path)
        ev = json.loads((out / "eval.json").read_text()) if (out / "eval.json").exists() else {}
        return wall, json.loads((out / "run.json").read_text()), ev


def stage_table(runs: dict[str, tuple[float, dict, dict]]) -> None:
    rows = [[s, *(f"{r[1]['stages'].get(s, {}).get('seconds', 0):.0f} s" for r in runs.values())] for s in STAGES]
    rows.append(["**total wall**", *(f"**{r[0]:.0f} s**" for r in runs.values())])
    print(table(["stage", *runs], rows))
    print("\nEval stage, seconds per part:\n")
    for name, r in runs.items():
        timings = (r[1]["stages"].get("eval") or {}).get("timings") or {}
        print(f"- {name}: " + (", ".join(f"{k} {v:.0f}" for k, v in timings.items()) or "not recorded"))


def behaviour_table(evals: dict[str, dict]) -> None:
    """Base against each path's fine-tune, from eval.json (the base is the same model on every path)."""
    evals = {k: v for k, v in evals.items() if v}
    if not evals:
        return
    base = next(iter(evals.values()))["base"]
    tuned = {k: v["tuned"] for k, v in evals.items()}
    rows = [["validation loss", f"{base['val_loss']:.3f}", *(f"{t['val_loss']:.3f}" for t in tuned.values())]]
    for metric in next(iter(tuned.values()))["metrics"]:
        rows.append(
            [metric, f"{base['metrics'].get(metric, 0):.2f}", *(f"{t['metrics'][metric]:.2f}" for t in tuned.values())]
        )
    general = {k: v.get("forgetting") for k, v in evals.items()}
    if all(general.values()):
        first = next(iter(general.values()))
        n, gb = first["prompts"], first["base"]
        rows += [
            ["general prompts: stop on their own", f"{gb['stopped']} of {n}"]
            + [f"{g['tuned']['stopped']} of {n}" for g in general.values()],
            ["general prompts: replies that loop", f"{gb['loops']} of {n}"]
            + [f"{g['tuned']['loops']} of {n}" for g in general.values()],
            ["forgetting check", "", *(g["verdict"] for g in general.values())],
        ]
    print(table(["measure", "base", *(f"fine-tuned, {k}" for k in evals)], rows))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the first run of each path only")
    ap.add_argument("--baseline-tree", type=Path, help="an earlier checkout to run side by side with this one")
    add_cpu_path_arg(ap)
    ap.add_argument("overrides", nargs="*", help="recipe overrides, e.g. train.max_steps=20")
    args = ap.parse_args()
    if args.baseline_tree:
        return side_by_side(args.baseline_tree.resolve(), args.overrides)
    paths, paths_said = cpu_paths(args.cpu_path)
    runs: dict[str, tuple[float, dict, dict]] = {}
    with cache_without_base_answers() as (cache, env):
        for path in paths:
            shutil.rmtree(cache / "eval-base-answers", ignore_errors=True)  # each path's first run computes them
            runs[f"{path.name}, first run"] = run_demo(REPO, {**env, **path.env}, args.overrides, path)
            if not args.quick:
                runs[f"{path.name}, second run (base answers cached)"] = run_demo(
                    REPO, {**env, **path.env}, args.overrides, path
                )
    print("## End-to-end demo (`iris-recipes run recipes/smollm2-demo.yaml`, warm install)\n")
    print(
        paths_said + " A first run computes the base model's answers, as a new user's does; a second run reads them "
        "from the cache. One run each, one after another.\n"
    )
    stage_table(runs)
    print("\nBehaviour change measured by the eval stage (each path's last run):\n")
    behaviour_table({path.name: [r for k, r in runs.items() if k.startswith(path.name)][-1][2] for path in paths})
    print()
    for path in paths:
        wall = runs[f"{path.name}, first run"][0]
        print(
            f"- {path.name} path, first run: {wall:.0f} s ({wall / 60:.1f} min); goal at most {GOAL_S // 60} min: "
            f"{'met' if wall <= GOAL_S else 'NOT met'}."
        )
    return 0


def side_by_side(baseline: Path, overrides: list[str]) -> int:
    with cache_without_base_answers() as (cache, env):
        runs = {f"baseline ({baseline.name})": run_demo(baseline, env, overrides, None)}
        # the baseline may have cached the base's answers under the same key: this tree's first run starts without
        shutil.rmtree(cache / "eval-base-answers", ignore_errors=True)
        runs["this tree, first run"] = run_demo(REPO, env, overrides, None)
        runs["this tree, second run (base answers cached)"] = run_demo(REPO, env, overrides, None)
    print("## End-to-end demo side by side (`iris-recipes run recipes/smollm2-demo.yaml`, warm install, one run)\n")
    stage_table(runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
