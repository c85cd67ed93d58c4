#!/usr/bin/env python3
"""Studies of the demo recipe, each one or more `iris-recipes sweep` runs on each CPU precision path, formatted.

    python benchmarks/bench_sweeps.py STUDY [--cpu-path both|bf16|fp32] [--keep]
    python benchmarks/bench_sweeps.py --list

Seed studies (demo-seeds, demo-variants) train each variant once per seed and judge it by how many seeds keep
general behaviour (the forgetting check), with the task metrics per run. Comparisons (sweep-lr-mix, sweep-steps)
print the Markdown comparison `iris-recipes sweep` writes. Every sweep runs as a user types it, in a runs directory
of its own (removed afterwards unless --keep: each variant's run holds a merged model and its GGUFs) and the
user's cache (base answers cached after the first). Each path (IRIS_CPU_BF16=1 and 0: bf16 and fp32 where the CPU
computes bf16 natively, fp32 alone elsewhere) runs the whole study, and each variant's generated config is checked
to have trained in the path's precision. The commands are printed with the results.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, CpuPath, add_cpu_path_arg, check_cpu_path, cpu_paths, table  # noqa: E402

RECIPE = "smollm2-demo"
ATTENTION_ONLY = "lora.target=[q_proj, k_proj, v_proj, o_proj]"


@dataclass(frozen=True)
class Study:
    title: str
    kind: str  # "seeds": a row per run, kept counts per variant; "comparison": the sweep's own comparison
    sweeps: tuple[tuple[str, tuple[str, ...]], ...]  # (variant label, `iris-recipes sweep RECIPE` arguments)
    about: str = ""


STUDIES = {
    "demo-seeds": Study(
        "The shipped demo recipe over five seeds",
        "seeds",
        (("shipped recipe", ("train.seed=42,7,1,2,3",)),),
        "With the adapter's initialisation seeded, each `train.seed` is one reproducible run, so the recipe is "
        "judged by how many seeds keep general behaviour rather than by one run.",
    ),
    "demo-variants": Study(
        "Variants of the demo recipe over three seeds each",
        "seeds",
        (
            ("shipped: all-linear LoRA r16, lr 1e-3, 40 steps", ("train.seed=1,2,3",)),
            ("30 steps", ("train.seed=1,2,3", "train.max_steps=30")),
            ("learning rate 5e-4", ("train.seed=1,2,3", "train.learning_rate=5e-4")),
            ("LoRA on attention only (q, k, v, o)", ("train.seed=1,2,3", ATTENTION_ONLY)),
        ),
        "The shipped recipe otherwise; each variant judged by how many of its seeds keep general behaviour.",
    ),
    "sweep-lr-mix": Study(
        "The demo recipe: learning rate x general-chat rehearsal (full grid)",
        "comparison",
        (("", ("train.learning_rate=1e-3,4e-4", "dataset.mix=[],[{name: general-chat, weight: 0.2}]", "--grid")),),
    ),
    "sweep-steps": Study(
        "The demo recipe: 60 against 40 steps",
        "comparison",
        (("", ("train.max_steps=60,40",)),),
    ),
}


def sweep_command(args: tuple[str, ...]) -> list[str]:
    return ["iris-recipes", "sweep", RECIPE, *args]


def run_sweep(args: tuple[str, ...], path: CpuPath, runs: Path) -> tuple[dict, str | None]:
    """One `iris-recipes sweep` in `runs`: (its record, with each variant's eval.json added, the comparison text)."""
    env = {**os.environ, **path.env, "IRIS_RUNS_DIR": str(runs), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "iris_recipes", *sweep_command(args)[1:]]
    print(f"==> {shlex.join(sweep_command(args))} ({path.name} path)", file=sys.stderr, flush=True)
    # the sweep's progress goes to the terminal; stdout carries only this script's Markdown
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=sys.stderr)
    records = sorted((runs / RECIPE).glob("sweep-*.json"))
    if not records:
        raise SystemExit(f"{shlex.join(sweep_command(args))} wrote no sweep record (exit {proc.returncode})")
    record = json.loads(records[-1].read_text())
    for v in record["variants"]:
        run_dir = Path(v["run_dir"])
        if v["status"] == "done":
            check_cpu_path(run_dir, path)
            v["eval"] = json.loads((run_dir / "eval.json").read_text())
    md = Path(record["comparison"]).read_text() if record.get("comparison") else None
    return record, md


def seed_of(variant: dict) -> str:
    return variant["changes"].get("train.seed", "42 (recipe)")


def seed_rows(label: str, record: dict, base: dict) -> tuple[list[list[str]], list[dict]]:
    """A table row per variant run; the evals of those that finished."""
    rows, evals = [], []
    for v in record["variants"]:
        ev = v.get("eval")
        if ev is None:
            rows.append([label, seed_of(v), "", "", "", f"failed: {v.get('error') or v['status']}"])
            continue
        evals.append(ev)
        f = ev["forgetting"]
        metrics = " ".join(f"{k} {x:.2f}" for k, x in ev["tuned"]["metrics"].items())
        rows.append([label, seed_of(v), str(f["tuned"]["stopped"]), str(f["tuned"]["loops"]), metrics, f["verdict"]])
        base.setdefault("forgetting", f)
        base.setdefault("metrics", ev["base"]["metrics"])
    kept = sum(ev["forgetting"]["kept"] for ev in evals)
    rows.append([f"**{label}: kept**", "", "", "", "", f"**{kept} of {len(record['variants'])}**"])
    return rows, evals


def mean(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f}" if values else "-"


def print_seeds(study: Study, results: dict[str, list[tuple[str, dict]]]) -> None:
    """results: path name -> [(variant label, sweep record)]."""
    for path_name, sweeps in results.items():
        base: dict = {}
        rows, by_label = [], {}
        for label, record in sweeps:
            r, evals = seed_rows(label, record, base)
            rows += r
            by_label[label] = (evals, len(record["variants"]))
        print(f"### {path_name} path\n")
        if base:
            f = base["forgetting"]
            print(
                f"The base model: stops on its own in {f['base']['stopped']} of {f['prompts']} general prompts, "
                f"{f['base']['loops']} replies loop; "
                + ", ".join(f"{k} {x:.2f}" for k, x in base["metrics"].items())
                + ".\n"
            )
        f = base.get("forgetting")
        stops, loops = (
            (
                f"stops on its own (base {f['base']['stopped']} of {f['prompts']})",
                f"replies that loop (base {f['base']['loops']})",
            )
            if f
            else ("stops on its own", "replies that loop")
        )
        print(table(["variant", "train.seed", stops, loops, "task metrics", "verdict"], rows))
        summary = []
        looping = collections.Counter()
        all_evals = []
        for label, (evals, n) in by_label.items():
            all_evals += evals
            metric_names = list(evals[0]["tuned"]["metrics"]) if evals else []
            summary.append(
                [
                    label,
                    f"{sum(e['forgetting']['kept'] for e in evals)} of {n}",
                    mean([e["forgetting"]["tuned"]["loops"] for e in evals]),
                    mean([e["forgetting"]["tuned"]["stopped"] for e in evals]),
                    ", ".join(f"{m} {mean([e['tuned']['metrics'][m] for e in evals])}" for m in metric_names),
                ]
            )
            for e in evals:
                looping.update(r["prompt"] for r in e["forgetting"]["replies"] if r["tuned_loops"])
        print()
        print(table(["variant", "kept", "mean loops", "mean stops", "mean task metrics"], summary))
        if all_evals:
            loops = [e["forgetting"]["tuned"]["loops"] for e in all_evals]
            stops = [e["forgetting"]["tuned"]["stopped"] for e in all_evals]
            print(
                f"\nAcross the {len(all_evals)} runs: replies that loop {min(loops)}-{max(loops)}, stops on its own "
                f"{min(stops)}-{max(stops)}. The prompts that loop most often (runs): "
                + "; ".join(f'"{p}" ({n})' for p, n in looping.most_common(5))
                + ".\n"
            )


def print_comparisons(results: dict[str, list[tuple[str, dict, str | None]]]) -> None:
    for path_name, sweeps in results.items():
        print(f"### {path_name} path\n")
        for _, record, md in sweeps:
            failed = [v for v in record["variants"] if v["status"] != "done"]
            for v in failed:
                print(f"- variant v{v['index']} ({v['changes']}) failed: {v.get('error') or v['status']}\n")
            if md:
                lines = md.strip("\n").splitlines()
                print("\n".join(lines[1:] if lines and lines[0].startswith("# ") else lines).strip("\n") + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", nargs="?", choices=sorted(STUDIES))
    ap.add_argument("--list", action="store_true", help="the studies and their sweep commands")
    ap.add_argument("--keep", action="store_true", help="keep the runs directory of each sweep (printed)")
    ap.add_argument("--quick", action="store_true", help="accepted for run_all.py; a study has no shorter form")
    add_cpu_path_arg(ap)
    args = ap.parse_args()
    if args.list or not args.study:
        for name, study in STUDIES.items():
            print(f"{name}: {study.title}")
            for _, sweep_args in study.sweeps:
                print(f"    {shlex.join(sweep_command(sweep_args))}")
        return 0 if args.list else 2
    study = STUDIES[args.study]
    paths, paths_said = cpu_paths(args.cpu_path)
    results: dict[str, list] = {}
    for path in paths:
        results[path.name] = []
        for label, sweep_args in study.sweeps:
            runs = Path(tempfile.mkdtemp(prefix=f"bench-sweeps-{args.study}-"))
            try:
                record, md = run_sweep(sweep_args, path, runs)
            finally:
                if args.keep:
                    print(f"kept: {runs}", file=sys.stderr)
                else:
                    shutil.rmtree(runs, ignore_errors=True)
            results[path.name].append((label, record, md))
    print(f"## {study.title}\n")
    if study.about:
        print(study.about + "\n")
    print("    " + "\n    ".join(f"{shlex.join(sweep_command(a))}" for _, a in study.sweeps) + "\n")
    print(paths_said + " Each path runs every command above with its IRIS_CPU_BF16.\n")
    if study.kind == "seeds":
        print_seeds(study, {p: [(label, rec) for label, rec, _ in sweeps] for p, sweeps in results.items()})
    else:
        print_comparisons(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
