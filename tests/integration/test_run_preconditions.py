"""A run whose preconditions fail (base model not in the cache, dataset not available) stops before training with
exit 2 and the fix, and leaves no run directory behind for `--resume` or `list` to pick up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "iris_recipes", "run", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _env(tmp_path: Path, home: Path) -> dict:
    env = dict(os.environ)
    env.update(
        HF_HOME=str(home),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        IRIS_HOME=str(REPO),
        IRIS_RUNS_DIR=str(tmp_path / "runs"),
    )
    env.pop("HF_HUB_CACHE", None)
    return env


def test_base_model_not_in_the_cache(tmp_path):
    env = _env(tmp_path, tmp_path / "empty-hf-home")
    proc = _run(["recipes/llama1b-math.yaml", "dataset.source=sample"], env)
    assert proc.returncode == 2, proc.stderr
    assert "huggingface-cli download unsloth/Llama-3.2-1B-Instruct" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*"))


def test_base_model_not_in_the_cache_with_output(tmp_path):
    env = _env(tmp_path, tmp_path / "empty-hf-home")
    out = tmp_path / "mine"
    proc = _run(["recipes/llama1b-math.yaml", "dataset.source=sample", "--output", str(out)], env)
    assert proc.returncode == 2 and not out.exists(), proc.stderr
    out.mkdir()  # a directory the user made stays, empty
    proc = _run(["recipes/llama1b-math.yaml", "dataset.source=sample", "--output", str(out)], env)
    assert proc.returncode == 2 and out.is_dir() and not any(out.iterdir())


def test_dataset_not_available_offline(tmp_path, hf_home):
    env = _env(tmp_path, hf_home)
    proc = _run(["recipes/llama1b-finetome.yaml"], env)  # the full FineTome from the Hub: not cached here
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "mlabonne/FineTome-100k" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*")), list(
        (tmp_path / "runs").rglob("*")
    )
    listed = subprocess.run(
        [sys.executable, "-m", "iris_recipes", "run", "--resume", "llama1b-finetome"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 2 and "no unfinished run" in listed.stderr
