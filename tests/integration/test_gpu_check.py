"""scripts/gpu_check.sh: valid bash, refuses to run without a GPU unless asked for its dry mode, and in that mode
takes every GPU case through the real CLI (`run --dry-run --gpu-type a100-40`) and writes its report."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest_train import REPO

SCRIPT = REPO / "scripts" / "gpu_check.sh"


def test_gpu_check_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


def test_gpu_check_needs_a_gpu_or_dry_run(tmp_path):
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    (tmp_path / "nvidia-smi").write_text("#!/bin/sh\nexit 9\n")  # a driver without a GPU
    (tmp_path / "nvidia-smi").chmod(0o755)
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--out", str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "no CUDA GPU here" in proc.stderr and "--dry-run" in proc.stderr


@pytest.mark.slow
def test_gpu_check_dry_mode_writes_its_report(tmp_path):
    out = tmp_path / "gc"
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["mode"] == "dry-run (no GPU used)" and report["ok"] is True
    assert [c["case"] for c in report["cases"]] == ["lora-1gpu", "zero2", "zero3-offload", "fsdp"]
    for case in report["cases"]:
        assert case["exit"] == 0 and case["plan_peak_gib"] > 0
        assert (case["precision"], case["tf32"], case["attention"]) == ("bf16", True, "sdpa")
    assert "--deepspeed zero3-offload" in proc.stdout
    md = (out / "gpu_check.md").read_text()
    assert md.startswith("# GPU check (dry-run") and "| zero3-offload | 0 |" in md
