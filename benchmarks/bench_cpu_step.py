#!/usr/bin/env python
"""SmolLM2-135M LoRA training steps on CPU with glibc's malloc as it comes and with the settings CPU training
launches get (`iris_recipes.train.launch.CPU_MALLOC_ENV`: freed memory kept), side by side in one run.

    python benchmarks/bench_cpu_step.py            # 16 steps per process, 2 processes of each, alternating
    python benchmarks/bench_cpu_step.py --quick    # 8 steps, 1 process of each

Each process loads the model, wraps it in PEFT LoRA (r16, every linear layer) and runs forward, backward and an
AdamW step on random batches of 4 rows whose lengths (80-200 tokens, seeded) change from step to step, as padded
chat batches do. Reported per variant: wall time of the steps, system time and minor page faults (getrusage), and
the median of the last half of the steps (the shapes seen by then). Same threads for both (OMP_NUM_THREADS).
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import table  # noqa: E402

from iris_recipes.hostinfo import cpu_count  # noqa: E402
from iris_recipes.train.launch import CPU_MALLOC_ENV  # noqa: E402


def child(steps: int) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from iris_recipes.models import resolve_base_model

    torch.manual_seed(0)
    path = resolve_base_model("builtin:smollm2-135m-instruct").path
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa")
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
        model(input_ids=ids, labels=labels).loss.backward()
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
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return 0
    steps, rounds = (8, 1) if args.quick else (16, 2)
    threads = str(cpu_count())
    plain = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    variants = {
        "glibc malloc as it comes": {**plain, "OMP_NUM_THREADS": threads},
        "freed memory kept (CPU_MALLOC_ENV)": {**plain, "OMP_NUM_THREADS": threads, **CPU_MALLOC_ENV},
    }
    results: dict[str, list[dict]] = {name: [] for name in variants}
    for r in range(rounds):
        for name in list(variants)[:: 1 if r % 2 == 0 else -1]:  # alternate which goes first
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(steps)],
                env=variants[name],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            results[name].append(json.loads(out.strip().splitlines()[-1]))
    print(f"## CPU training steps: freed memory returned vs kept (SmolLM2-135M LoRA r16, batch 4, {threads} threads)\n")
    rows = []
    for name, runs in results.items():

        def med(key: str, runs=runs) -> float:
            return statistics.median(r[key] for r in runs)

        rows.append(
            [
                name,
                f"{med('steps_s'):.1f} s",
                f"{med('sys_s'):.1f} s",
                f"{med('faults') / 1e6:.2f} M",
                f"{med('late_step_s'):.2f} s",
                f"{med('peak_rss_gib'):.1f} GiB",
            ]
        )
    print(
        table(
            [f"{steps} steps, rows of 80-200 tokens", "wall", "system time", "minor faults", "later steps", "peak RSS"],
            rows,
        )
    )
    ratio = statistics.median(r["steps_s"] for r in results[list(variants)[1]]) / statistics.median(
        r["steps_s"] for r in results[list(variants)[0]]
    )
    print(f"\nRatio kept / as it comes: {ratio:.2f}x (median of {rounds} process(es) each)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
