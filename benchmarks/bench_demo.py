#!/usr/bin/env python3
"""End-to-end demo time: `iris-recipes run recipes/smollm2-demo.yaml` from a warm install (builtin model and
converter already cached), per stage, with the behaviour change it produced."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BIN, REPO, table  # noqa: E402

STAGES = ("data", "train", "merge", "export", "eval", "card")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="one run instead of two")
    ap.add_argument("overrides", nargs="*", help="recipe overrides, e.g. train.max_steps=20")
    args = ap.parse_args()
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


if __name__ == "__main__":
    raise SystemExit(main())
