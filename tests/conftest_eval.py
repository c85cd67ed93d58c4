"""Fixtures for the eval/compare/sweep tests: small recipes and hand-assembled runs of the tiny model.

A hand-assembled run goes through the real stages that exist as functions (data `prepare`, GGUF `export_run`);
its merged/ model is a tiny random-weight Llama (a different seed from the base, so the two really differ).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from iris_recipes.paths import recipes_dir

EVAL_BLOCK = {
    "metrics": ["exact_match_number", "format_regex"],
    "format_regex": r"Answer: -?\d+\s*$",
    "samples": 3,
    "max_new_tokens": 12,
    "seeds": [0, 1],
    "prompts": ["Sam has 7 apples and buys 5 more. How many apples does Sam have?"],
}


def tiny_recipe(dest: Path, base_model: Path, name: str = "tiny-eval", **sections) -> Path:
    """A recipe file for the tiny model on the arith-steps demo data (a few training steps)."""
    data = yaml.safe_load((recipes_dir() / "smollm2-demo.yaml").read_text())
    data.update(name=name, base_model=str(base_model), eval=dict(EVAL_BLOCK))
    data["export"] = {"quantize": ["q8_0"]}
    data["train"].update(max_steps=2, eval_steps=1, save_steps=2, micro_batch_size=2, sequence_len=128)
    for key, value in sections.items():
        data[key] = value
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def assemble_run(run_dir: Path, recipe_file: Path, merged_src: Path, *, export: bool = True):
    """A run directory with recipe.yaml, data/ (real data stage), merged/ and (optionally) gguf/ (real export)."""
    from iris_recipes.data import prepare
    from iris_recipes.recipe import load_recipe
    from iris_recipes.rundir import RunDir, now_iso

    recipe = load_recipe(recipe_file)
    run = RunDir(run_dir)
    run_dir.mkdir(parents=True)
    (run_dir / "recipe.yaml").write_text(recipe.to_yaml())
    run.write(
        {
            "recipe": recipe.name,
            "run_id": run_dir.name,
            "recipe_hash": recipe.hash(),
            "created": now_iso(),
            "status": "running",
            "stages": {},
            "artifacts": {},
        }
    )
    prepare(recipe, run_dir / "data")
    shutil.copytree(merged_src, run_dir / "merged")
    if export:
        from iris_recipes.stages import export_run

        export_run(run, require_chat_stop=False)
    run.update(status="done")
    return run
