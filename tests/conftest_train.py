"""Helpers for the training tests: a tiny recipe on the tiny model and `iris-recipes run` as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def write_recipe(dir: Path, base_model: Path | str, *, name: str = "tiny-train", **changes) -> Path:
    """A recipe that trains the tiny model for a few steps on the shipped arith-steps sample."""
    recipe = {
        "name": name,
        "base_model": str(base_model),
        "chat_template": "chatml",
        "method": "lora",
        "dataset": {"name": "arith-steps", "source": "sample", "val_size": 0.1},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "train": {
            "max_steps": 6,
            "micro_batch_size": 2,
            "sequence_len": 256,
            "save_steps": 2,
            "learning_rate": 1.0e-3,
            "logging_steps": 1,
        },
        "card": {"license": "apache-2.0"},
    }
    for key, value in changes.items():
        node = recipe
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    path = dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def cli_env(runs: Path) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "IRIS_RUNS_DIR": str(runs),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "WANDB_MODE": "disabled",
            "AXOLOTL_DO_NOT_TRACK": "1",
            "DO_NOT_TRACK": "1",
        }
    )
    return env


def start_cli(args: list[str], env: dict, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "iris_recipes", *args],
        env=env,
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def run_cli(args: list[str], env: dict, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "iris_recipes", *args], env=env, cwd=cwd, text=True, capture_output=True, timeout=timeout
    )


def only_run(runs: Path, name: str) -> Path:
    found = sorted(p for p in (runs / name).iterdir() if (p / "run.json").is_file())
    assert len(found) == 1, found
    return found[0]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def metrics(run: Path) -> list[dict]:
    from iris_recipes.train.metrics import read_metrics

    return read_metrics(run / "metrics.jsonl")


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended (exit {proc.returncode}) before {what}:\n{proc.stdout.read()}")
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def processes_in(directory: Path) -> list[int]:
    """PIDs of processes whose working directory is `directory` (the training processes of a run)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if Path(os.readlink(proc / "cwd")).resolve() == directory.resolve():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids
