"""Test-wide environment: offline, telemetry off, caches and runs outside the repo's own runs/."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))  # `import standins`: the stand-in model builders

# Shared fixtures (models, the llama.cpp converter, the Space); their helper functions are imported by name.
pytest_plugins = ["conftest_models", "conftest_export", "conftest_space", "conftest_demo", "cli_sandbox"]

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "WANDB_MODE": "disabled",
    "AXOLOTL_DO_NOT_TRACK": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
os.environ.update(OFFLINE_ENV)
# Built models and llama.cpp's converter are made once and reused across test sessions (gitignored).
os.environ.setdefault("IRIS_CACHE_DIR", str(REPO / ".cache" / "test"))
os.environ.setdefault("IRIS_HOME", str(REPO))


@pytest.fixture(autouse=True)
def _runs_in_tmp(tmp_path_factory, monkeypatch):
    """No test writes into the repo's runs/: each test gets its own runs directory unless it sets one."""
    if "IRIS_RUNS_DIR" not in os.environ or os.environ["IRIS_RUNS_DIR"].startswith(str(REPO / "runs")):
        monkeypatch.setenv("IRIS_RUNS_DIR", str(tmp_path_factory.mktemp("runs")))
    yield


@pytest.fixture
def artifacts_dir() -> Path:
    """Where tests leave things for a person to look at (screenshots, logs); uploaded by CI, gitignored."""
    path = REPO / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
