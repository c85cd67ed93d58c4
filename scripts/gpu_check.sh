#!/usr/bin/env bash
# A smoke run of every GPU path on a CUDA machine, offline, with a report:
#   scripts/gpu_check.sh [--out DIR] [--steps N]     # on a CUDA machine (minutes)
#   scripts/gpu_check.sh --dry-run [--out DIR]       # anywhere (CI): each case's launch command, config and plan
# Cases, one process each, on the llama3 stand-in (a tiny random-weight Llama-3.2 with Llama 3's tokenizer specials
# and chat template, built offline: scripts/standins.py) at 4 layers, hidden 256: LoRA on 1 GPU (precision auto: bf16 where the GPU has it), --deepspeed zero2, --deepspeed zero3-offload,
# --fsdp; each trains N steps (sample packing, gradient checkpointing) and merges. GGUF export is CPU work proven in
# CI; it runs here too when llama-cpp-python is installed.
# Writes DIR/gpu_check.json and DIR/gpu_check.md: per case the exit status, seconds per step, peak GPU memory
# against the launch plan's estimate, and the last lines of the log for anything that broke. Exit 1 if a case broke.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=gpu-check
STEPS=20
DRY_RUN=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --out) OUT=$2; shift ;;
    --steps) STEPS=$2; shift ;;
    *) echo "usage: scripts/gpu_check.sh [--dry-run] [--out DIR] [--steps N]" >&2; exit 2 ;;
  esac
  shift
done

PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=disabled AXOLOTL_DO_NOT_TRACK=1 \
  DO_NOT_TRACK=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [ "$DRY_RUN" = 0 ] && ! { command -v nvidia-smi >/dev/null && [ "$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')" -gt 0 ]; }; then
  echo "error: no CUDA GPU here (nvidia-smi lists none); use --dry-run to check the cases without one" >&2
  exit 2
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# The model: the llama3 stand-in with 4 layers, hidden 256, GQA 8/2; built once.
MODEL="$OUT/llama3-standin"
[ -f "$MODEL/config.json" ] || "$PY" scripts/make_tiny_model.py --family llama3 "$MODEL" --layers 4 --hidden 256 \
  --heads 8 --kv-heads 2 --intermediate 704 >/dev/null || { echo "error: could not build the stand-in" >&2; exit 1; }

RECIPE="$OUT/gpu-check.yaml"
cat >"$RECIPE" <<EOF
name: gpu-check
description: GPU smoke run on the llama3 stand-in.
base_model: $MODEL
chat_template: llama3
method: lora
lora: {r: 8, alpha: 16, dropout: 0.05, target: all-linear}
dataset: {name: arith-steps, source: sample, val_size: 0.1}
train:
  max_steps: $STEPS
  micro_batch_size: 2
  gradient_accumulation: 1
  sequence_len: 512
  sample_packing: true
  gradient_checkpointing: true
  precision: auto
  optimizer: adamw_torch_fused
  learning_rate: 1.0e-3
  logging_steps: 1
  save_steps: $STEPS
card: {license: apache-2.0}
EOF

CASES=("lora-1gpu:" "zero2:--deepspeed zero2" "zero3-offload:--deepspeed zero3-offload" "fsdp:--fsdp")
UNTIL=merge
"$PY" -c 'import llama_cpp' 2>/dev/null && UNTIL=export
for case in "${CASES[@]}"; do
  name=${case%%:*}
  read -r -a flags <<<"${case#*:}"
  dir="$OUT/$name"
  rm -rf "$dir" "$dir.log" "$dir.plan"
  echo "==> $name: iris-recipes run --gpus 1 ${flags[*]}"
  start=$(date +%s)
  if [ "$DRY_RUN" = 1 ]; then
    "$PY" -m iris_recipes run "$RECIPE" --gpus 1 "${flags[@]}" --dry-run --gpu-type a100-40 >"$dir.plan" 2>"$dir.log"
  else
    "$PY" -m iris_recipes run "$RECIPE" --gpus 1 "${flags[@]}" --dry-run >"$dir.plan" 2>/dev/null
    "$PY" -m iris_recipes run "$RECIPE" --gpus 1 "${flags[@]}" --until "$UNTIL" --output "$dir" >"$dir.log" 2>&1
  fi
  echo "$name $? $(( $(date +%s) - start ))" >>"$OUT/status.txt.new"
done
mv "$OUT/status.txt.new" "$OUT/status.txt"

"$PY" - "$OUT" "$DRY_RUN" <<'PYEOF'
"""gpu_check.json and gpu_check.md from each case's exit status, run.json, plan and log."""
import json
import platform
import re
import subprocess
import sys
from pathlib import Path

out, dry = Path(sys.argv[1]), sys.argv[2] == "1"
smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                     capture_output=True, text=True) if not dry else None
report = {"mode": "dry-run (no GPU used)" if dry else "gpu", "python": platform.python_version(),
          "gpu": smi.stdout.strip() if smi and smi.returncode == 0 else None, "cases": []}
try:
    import torch
    report["torch"] = torch.__version__
except ImportError:
    pass
for line in (out / "status.txt").read_text().splitlines():
    name, rc, seconds = line.split()
    case = {"case": name, "exit": int(rc), "seconds": int(seconds)}
    plan = (out / f"{name}.plan").read_text() if (out / f"{name}.plan").is_file() else ""
    peak = re.search(r"#     peak\s+([\d.]+)\s+([\d.]+)", plan)
    if peak:
        case["plan_peak_gib"] = float(peak.group(1))  # the recipe checkpoints
    kernels = re.search(r"^# GPU: .*\): ([^,]+), TF32 (\w+), attention (\S+)", plan, re.M)
    if kernels:  # what the config asks for; a real run's run.json below says what ran
        case.update(precision=kernels.group(1), tf32=kernels.group(2) == "on", attention=kernels.group(3))
    meta_file = out / name / "run.json"
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        train = meta.get("stages", {}).get("train", {})
        m = train.get("metrics", {})
        case.update(steps=m.get("steps"), seconds_per_step=m.get("seconds_per_step"),
                    gpu_max_allocated_gib=m.get("gpu_max_allocated_gib"),
                    stages={k: v.get("status") for k, v in meta.get("stages", {}).items()})
        case.update({k: train[k] for k in ("precision", "attention", "tf32") if k in train})
    if case["exit"] != 0:
        log = (out / f"{name}.log").read_text(errors="replace").splitlines()
        case["error"] = "\n".join(log[-25:])
    report["cases"].append(case)
report["ok"] = all(c["exit"] == 0 for c in report["cases"])
(out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")

rows = ["| case | exit | steps | s/step | peak GPU GiB (measured) | plan's estimate GiB | precision | attention |",
        "|---|---|---|---|---|---|---|---|"]
for c in report["cases"]:
    rows.append(f"| {c['case']} | {c['exit']} | {c.get('steps', '')} | {c.get('seconds_per_step', '')} | "
                f"{c.get('gpu_max_allocated_gib', '')} | {c.get('plan_peak_gib', '')} | {c.get('precision', '')} | "
                f"{c.get('attention', '')} |")
broke = [f"### {c['case']}\n\n```\n{c['error']}\n```\n" for c in report["cases"] if c.get("error")]
md = (f"# GPU check ({report['mode']})\n\nGPU: {report['gpu']}; Python {report['python']}; "
      f"torch {report.get('torch')}\n\n" + "\n".join(rows) + "\n\n" + ("## What broke\n\n" + "\n".join(broke)
                                                                      if broke else "Nothing broke.\n"))
(out / "gpu_check.md").write_text(md)
print(md)
sys.exit(0 if report["ok"] else 1)
PYEOF
