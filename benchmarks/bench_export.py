#!/usr/bin/env python
"""Export benchmark: the `export` stage versus llama.cpp's converter + quantizer run directly, and CPU decode speed
of each GGUF against the memory-bandwidth ceiling. Prints Markdown.

    python benchmarks/bench_export.py                       # builtin SmolLM2-135M, q8_0 + q4_k_m, 3 repeats
    python benchmarks/bench_export.py --model tiny --repeats 1

Both sides work on the same merged model in the same run, alternating, so machine load hits them alike. The stage
also runs its checks (tokens, top-1 agreement, chat, decode speed); its time is split into conversion/quantization
(comparable with the direct run) and checks. The bandwidth ceiling is memory read bandwidth (numpy sum over 256 MiB
with 1 and with all threads, measured here; the best of the two) divided by the bytes of weights read per generated
token (about the file size: every weight matrix, including the tied output embedding, is read once per token).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))  # standins
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def bandwidth_gbs(threads: int = 1, mib: int = 256, repeats: int = 5) -> float:
    """Memory read bandwidth with `threads` threads, each summing its own slice (numpy releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    a = np.ones(mib * 2**20 // 8, dtype=np.float64)
    parts = np.array_split(a, threads)
    a.sum()  # fault the pages in
    samples = []
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats):
            t = time.perf_counter()
            list(pool.map(np.sum, parts))
            samples.append(a.nbytes / (time.perf_counter() - t) / 1e9)
    return statistics.median(samples)


def direct_export(merged: Path, out: Path, quants: list[str], threads: int) -> dict[str, float]:
    """llama.cpp's converter and quantizer, called the plain way (what a person would run by hand)."""
    import llama_cpp

    from iris_recipes.export.converter import converter_env, find_converter
    from iris_recipes.export.hf_to_gguf import QUANT_TYPES

    script = find_converter()
    times = {}
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, str(script), str(merged), "--outtype", "f16", "--outfile", str(out / "f16.gguf")],
        env=converter_env(script),
        check=True,
        capture_output=True,
    )
    times["convert_f16"] = time.perf_counter() - t
    for q in quants:
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, QUANT_TYPES[q][0])
        params.nthread = threads
        t = time.perf_counter()
        rc = llama_cpp.llama_model_quantize(
            str(out / "f16.gguf").encode(), str(out / f"{q}.gguf").encode(), ctypes.byref(params)
        )
        assert rc == 0
        times[f"quantize_{q}"] = time.perf_counter() - t
    return times


def stat(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["smollm2", "tiny"], default="smollm2")
    ap.add_argument("--quantize", default="q8_0,q4_k_m")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--quick", action="store_true", help="one repeat, 64 decode tokens (for run_all.py --quick)")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.decode_tokens = 1, 64
    quants = [q for q in args.quantize.split(",") if q]

    import standins
    from iris_recipes.export import gguf_checks, speed
    from iris_recipes.export.converter import fetch_converter
    from iris_recipes.fsutil import write_text
    from iris_recipes.hostinfo import cpu_count
    from iris_recipes.models import resolve_base_model
    from iris_recipes.rundir import RunDir
    from iris_recipes.stages import export_run

    fetch_converter()
    model = (
        resolve_base_model("builtin:smollm2-135m-instruct").path
        if args.model == "smollm2"
        else standins.cached("chatml")
    )
    threads = cpu_count()
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    os.environ["IRIS_RUNS_DIR"] = str(work / "runs")
    wrapper, wrapper_build, direct = [], [], []
    try:
        run = RunDir(work / "runs" / "bench" / "r1")
        run.path.mkdir(parents=True)
        run.file("merged").symlink_to(model, target_is_directory=True)
        write_text(
            run.file("recipe.yaml"),
            f"name: bench\nbase_model: {model}\nchat_template: chatml\n"
            f"dataset: {{name: arith-steps}}\ntrain: {{max_steps: 1}}\n"
            f"export: {{quantize: [{', '.join(quants)}]}}\n",
        )
        run.update(recipe="bench", run_id="r1", status="done", stages={}, artifacts={})
        for i in range(args.repeats):
            t = time.perf_counter()
            entries = export_run(run, threads=threads)
            wrapper.append(time.perf_counter() - t)
            timings = run.stage_info("export")["timings"]
            wrapper_build.append(sum(v for k, v in timings.items() if k != "checks"))
            out = work / f"direct{i}"
            out.mkdir()
            direct.append(sum(direct_export(model, out, quants, threads).values()))
            shutil.rmtree(out)

        cpu = (
            next(
                (
                    ln.split(":", 1)[1].strip()
                    for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")
                ),
                platform.processor(),
            )
            if Path("/proc/cpuinfo").exists()
            else "?"
        )
        print(f"## Export: {args.model} ({model.name}), quantize {', '.join(quants)}\n")
        print(
            f"Machine: {cpu}, {threads} threads, Python {platform.python_version()}; load average "
            f"{os.getloadavg()[0]:.1f}. {args.repeats} alternating repeats, median (min–max) seconds.\n"
        )
        print("| what | seconds |\n|---|---|")
        print(f"| direct: convert_hf_to_gguf.py + llama_model_quantize | {stat(direct)} |")
        print(f"| `export` stage: conversion + quantization part | {stat(wrapper_build)} |")
        print(f"| `export` stage: total, with all checks | {stat(wrapper)} |")
        print(
            f"\nRatio (median): conversion+quantization in the stage / direct = "
            f"{statistics.median(wrapper_build) / statistics.median(direct):.2f}; whole stage / direct = "
            f"{statistics.median(wrapper) / statistics.median(direct):.2f} (the difference is the checks).\n",
            flush=True,
        )

        bws = {n: bandwidth_gbs(n) for n in sorted({1, threads})}
        bw = max(bws.values())
        tok = gguf_checks.load_tokenizer(run.file("merged"))
        prompt, banned = speed.bench_prompt_ids(tok), sorted(set(tok.all_special_ids))
        rows = []
        for quant, e in entries.items():
            path = run.file(e["file"])
            cells = []
            for n in sorted({1, threads}):  # on a busy machine one thread can beat two spinning ones
                speeds = [
                    speed.benchmark(path, prompt, banned, new_tokens=args.decode_tokens, repeats=1, threads=n)[
                        "decode_tok_s"
                    ]
                    for _ in range(3)
                ]
                cells.append(speeds)
            best = max(statistics.median(c) for c in cells)
            rows.append(
                (
                    quant,
                    e["bytes"],
                    cells,
                    best,
                    bw * 1e9 / e["bytes"],
                    (e["top1_agreement"], e["top1_agreement_exact"], e["kl_divergence"]),
                )
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        "Memory read bandwidth (numpy sum over 256 MiB): "
        + ", ".join(f"{v:.1f} GB/s with {n} thread{'s' if n > 1 else ''}" for n, v in bws.items())
        + f"; the ceiling uses the best, {bw:.1f} GB/s. Models this small partly fit in the CPU caches, so a "
        "decode speed a little above the ceiling is possible.\n"
    )
    heads = " | ".join(f"decode tok/s, {n} thread{'s' if n > 1 else ''}" for n in sorted({1, threads}))
    print(
        f"| GGUF | size | {heads} | ceiling tok/s | best / ceiling | top-1 vs HF (gate) | top-1 exact | KL divergence |"
    )
    print("|---|---|" + "---|" * len({1, threads}) + "---|---|---|---|---|")
    for quant, size, cells, best, ceiling, (top1, exact, kl) in rows:
        speed = " | ".join(f"{statistics.median(c):.1f} ({min(c):.1f}–{max(c):.1f})" for c in cells)
        print(
            f"| {quant} | {size / 2**20:.1f} MiB | {speed} | {ceiling:.0f} | {best / ceiling:.0%} | {top1:.3f} | "
            f"{exact:.3f} | {kl:.2e} |"
        )
    print(
        "\nTop-1 vs HF (gate): the file's top token is the merged model's, or one it scores within "
        f"{gguf_checks.NEAR_TIE_NATS:g} nat of it (a near-tie); exact: the same top token; KL: mean KL(merged || file)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
