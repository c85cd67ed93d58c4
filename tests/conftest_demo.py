"""The embedded demo run once per test session, the way the README's first quickstart command runs it
(`bash scripts/demo.sh` with a shorter schedule): test_demo.py checks it, and the recipe matrix uses it as its
smollm2-demo variant instead of training the same model a second time."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEMO = "smollm2-demo"

# The demo with a shorter schedule: 12 LoRA steps at the demo's learning rate learn the "Answer: N" format.
DEMO_OVERRIDES = [
    "train.max_steps=12",
    "train.save_steps=12",
    "eval.samples=8",
    "eval.seeds=[0,1]",
    "eval.max_new_tokens=48",
]


@pytest.fixture(scope="session")
def demo_session(tmp_path_factory) -> dict:
    """{"runs": runs root, "run": the run directory or None, "code": exit code, "stdout", "stderr"}.

    Run once per test session, also across pytest-xdist workers (their base temp folders share a parent): the
    first worker to ask runs the demo, the others wait for its record and read it."""
    from iris_recipes.fsutil import exclusive, write_text

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    record = shared / "demo-session.json"
    with exclusive(shared / "demo-session.lock"):
        if not record.is_file():
            write_text(record, json.dumps(_run_demo(shared / "demo-runs")))
    result = json.loads(record.read_text())
    return {**result, "runs": Path(result["runs"]), "run": result["run"] and Path(result["run"])}


def _run_demo(runs: Path) -> dict:
    runs.mkdir(parents=True)
    env = {**os.environ, "IRIS_RUNS_DIR": str(runs)}
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):  # demo.sh itself must make the run offline
        env.pop(key, None)
    proc = subprocess.run(
        ["bash", "scripts/demo.sh", *DEMO_OVERRIDES], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800
    )
    found = sorted((runs / DEMO).iterdir()) if (runs / DEMO).is_dir() else []
    return {
        "runs": str(runs),
        "run": str(found[0]) if len(found) == 1 else None,
        "code": proc.returncode,
        "stdout": proc.stdout,
        "stderr": proc.stderr,
    }
