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


def _pin_xdist_worker() -> None:
    """Under pytest-xdist (scripts/test.sh), give each worker its own share of the CPUs. Child processes inherit the
    affinity mask, and torch, llama.cpp and iris-recipes size their threads from it, so two workers never
    oversubscribe a core (llama.cpp's spinning threads slow down many times over when they do)."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not (worker and count and hasattr(os, "sched_setaffinity")):
        return
    cpus, index, count = sorted(os.sched_getaffinity(0)), int(worker.removeprefix("gw")), int(count)
    share = cpus[index * len(cpus) // count : (index + 1) * len(cpus) // count] or [cpus[index % len(cpus)]]
    os.sched_setaffinity(0, share)


_pin_xdist_worker()

# xdist scheduling (scripts/test.sh: --dist loadfile): a module runs whole on one worker, so its module fixtures are
# built once. The longest modules go first so the workers finish together; the recipe matrix asks for the demo run
# (tests/conftest_demo.py) only after its own recipes, while test_demo.py runs the demo on the other worker.
LONGEST_FIRST = [
    "test_recipe_matrix",
    "test_demo",
    "test_forgetting_real",
    "test_train_launch",
    "test_train",
    "test_track",
    "test_multinode",
    "test_sweep",
    "test_gpu_configs",
    "test_eval",
]


def _module(item) -> str:
    return item.nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
        items.sort(key=lambda item: rank.get(_module(item), len(rank)))  # stable: a module keeps its order


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
