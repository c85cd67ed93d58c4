#!/usr/bin/env python
"""SmolLM2-135M LoRA training steps on CPU with glibc's malloc as it comes and with the settings CPU training
launches get (`iris_recipes.train.launch.CPU_MALLOC_ENV`: freed memory kept), on each CPU precision path, side by
side in one run.

    python benchmarks/bench_cpu_step.py            # 16 steps per process, 2 processes of each, alternating
    python benchmarks/bench_cpu_step.py --quick    # 8 steps, 1 process of each
    python benchmarks/bench_cpu_step.py --cpu-path fp32

Each process loads the model, wraps it in PEFT LoRA (r16, every linear layer) and runs forward, backward and an
AdamW step on random batches of 4 rows whose lengths (80-200 tokens, seeded) change from step to step, as padded
chat batches do. The fp32 path trains in fp32; the bf16 path loads the weights in bf16 (PEFT keeps the adapter in
fp32) and runs the forward under bf16 autocast, as Axolotl does with `bf16: true` on CPU. Both paths where the CPU
computes bf16 natively, fp32 alone elsewhere (`--cpu-path`). Reported per variant: wall time of the steps, system
time and minor page faults (getrusage), and the median of the last half of the steps (the shapes seen by then).
Same threads for all (OMP_NUM_THREADS).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_cpu_path_arg, cpu_paths, table  # noqa: E402

from iris_recipes.hostinfo import cpu_count  # noqa: E402
from iris_recipes.train.launch import CPU_MALLOC_ENV  # noqa: E402


def child(steps: int, bf16: bool) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from iris_recipes.models import resolve_base_model

    torch.manual_seed(0)
    path = resolve_base_model("builtin:smollm2-135m-instruct").path
    dtype = torch.bfloat16 if bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="sdpa")
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    rng = random.Random(1)
    lengths = [rng.randint(80, 200) for _ in range(steps)]
    before = resource.getrusage(resource.RUSAGE_SELF)
    start, times = time.perf_counter(), []
    for n in lengths:
        t = time.perf_counter()
        ids = torch.randint(0, model.config.vocab_size, (4, n))
        labels = ids.clone()
        labels[:, : n * 3 // 4] = -100  # the prompt part carries no loss, as in chat training
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "steps_s": time.perf_counter() - start,
        "sys_s": after.ru_stime - before.ru_stime,
        "faults": after.ru_minflt - before.ru_minflt,
        "late_step_s": statistics.median(times[len(times) // 2 :]),
        "peak_rss_gib": after.ru_maxrss / 2**20,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    add_cpu_path_arg(ap)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.bf16)))
        return 0
    steps, rounds = (8, 1) if args.quick else (16, 2)
    paths, paths_said = cpu_paths(args.cpu_path)
    threads = str(cpu_count())
    plain = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    variants = {}  # (path, malloc) -> environment
    for path in paths:
        variants[(path.name, "as it comes")] = {**plain, "OMP_NUM_THREADS": threads}
        variants[(path.name, "freed memory kept")] = {**plain, "OMP_NUM_THREADS": threads, **CPU_MALLOC_ENV}
    results: dict[tuple[str, str], list[dict]] = {v: [] for v in variants}
    for r in range(rounds):
        for v in list(variants)[:: 1 if r % 2 == 0 else -1]:  # alternate which goes first
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(steps), *(["--bf16"] if v[0] == "bf16" else [])],
                env=variants[v],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            results[v].append(json.loads(out.strip().splitlines()[-1]))

    def med(v: tuple[str, str], key: str) -> float:
        return statistics.median(r[key] for r in results[v])

    print(
        "## CPU training steps: freed memory returned or kept, fp32 and bf16 "
        f"(SmolLM2-135M LoRA r16, batch 4, {threads} threads)\n"
    )
    print(paths_said + "\n")
    rows = [
        [
            precision,
            "glibc malloc as it comes" if malloc == "as it comes" else "freed memory kept (CPU_MALLOC_ENV)",
            f"{med(v, 'steps_s'):.1f} s",
            f"{med(v, 'sys_s'):.1f} s",
            f"{med(v, 'faults') / 1e6:.2f} M",
            f"{med(v, 'late_step_s'):.2f} s",
            f"{med(v, 'peak_rss_gib'):.1f} GiB",
        ]
        for v in variants
        for precision, malloc in [v]
    ]
    header = [
        "precision",
        f"{steps} steps, rows of 80-200 tokens",
        "wall",
        "system time",
        "minor faults",
        "later steps",
        "peak RSS",
    ]
    print(table(header, rows))
    ratios = [
        f"{p.name} {med((p.name, 'freed memory kept'), 'steps_s') / med((p.name, 'as it comes'), 'steps_s'):.2f}x"
        for p in paths
    ]
    print(f"\nWall time, freed memory kept / as it comes: {', '.join(ratios)} (median of {rounds} process(es) each).")
    if len(paths) == 2:
        kept = {p.name: med((p.name, "freed memory kept"), "steps_s") for p in paths}
        late = {p.name: med((p.name, "freed memory kept"), "late_step_s") for p in paths}
        print(
            f"bf16 / fp32, freed memory kept (what CPU training launches get): wall {kept['bf16'] / kept['fp32']:.2f}x "
            f"({kept['fp32'] / kept['bf16']:.2f}x faster), later steps {late['bf16'] / late['fp32']:.2f}x "
            f"({late['fp32'] / late['bf16']:.2f}x faster)."
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
