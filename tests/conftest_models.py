"""Session fixtures for base models: the tiny random-weight Llama and the builtin SmolLM2, built once per machine.

Import the fixtures into a test module with `from tests.conftest_models import tiny_model_dir, smollm2_dir`
(or `from conftest_models import ...` when tests/ is on sys.path).
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """A 2-layer, hidden-64 Llama with SmolLM2's tokenizer, cached under IRIS_CACHE_DIR (read-only: copy to change)."""
    from iris_recipes.models import tiny_model

    return tiny_model()


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """builtin:smollm2-135m-instruct materialized as a Hugging Face directory (~1 min the first time)."""
    from iris_recipes.models import resolve_base_model

    return Path(resolve_base_model("builtin:smollm2-135m-instruct"))
