"""Session fixtures for base models: the stand-ins of each chat-template family and the builtin SmolLM2, built
once per machine (under IRIS_CACHE_DIR), and a Hugging Face cache in which the shipped recipes' hub ids resolve to
the stand-ins.

Import the fixtures into a test module with `from tests.conftest_models import tiny_model_dir, smollm2_dir`
(or `from conftest_models import ...` when tests/ is on sys.path).
"""

from __future__ import annotations

from pathlib import Path

import pytest

FAMILIES = ("llama3", "phi3", "gemma3", "qwen25", "chatml")


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The chatml stand-in: a 2-layer, hidden-64 Llama with SmolLM2's tokenizer (read-only: copy to change)."""
    import standins

    return standins.cached("chatml")


@pytest.fixture(scope="session")
def standin_dirs() -> dict[str, Path]:
    """Every family's stand-in: {"llama3": dir, "phi3": dir, "gemma3": dir, "qwen25": dir, "chatml": dir}
    (read-only)."""
    import standins

    return {family: standins.cached(family) for family in FAMILIES}


@pytest.fixture(scope="session")
def hf_home(tmp_path_factory, standin_dirs) -> Path:
    """An HF_HOME whose hub cache holds every shipped recipe's hub id, played by its family's stand-in."""
    import standins

    home = tmp_path_factory.mktemp("hf-home")
    for family, model in standin_dirs.items():
        for repo_id in standins.FAMILIES[family].hub_ids:
            standins.seed_hf_cache(home, repo_id, model)
    return home


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """builtin:smollm2-135m-instruct materialized as a Hugging Face directory (~1 min the first time)."""
    from iris_recipes.models import resolve_base_model

    return resolve_base_model("builtin:smollm2-135m-instruct").path
