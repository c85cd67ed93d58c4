"""The numbers of `iris-recipes eval` come from real generations: SmolLM2 fine-tuned on arith-steps (answers end
with `Answer: N`) follows that format far more often than its base, and fits the held-out answers better."""

from __future__ import annotations

import pytest

# A shortened demo: enough LoRA steps at the demo's learning rate to learn the answer format.
OVERRIDES = ("train.max_steps=12", "train.eval_steps=12", "train.save_steps=12", "export.quantize=[q8_0]",
             "eval.samples=8", "eval.seeds=[0,1]", "eval.max_new_tokens=48")


@pytest.mark.slow
def test_finetuned_smollm2_follows_the_trained_format(tmp_path, monkeypatch):
    from iris_recipes.evaluate import evaluate, plan
    from iris_recipes.pipeline import RunOptions, run_recipe

    monkeypatch.setenv("IRIS_RUNS_DIR", str(tmp_path / "runs"))
    run = run_recipe("smollm2-demo", RunOptions(overrides=OVERRIDES, output=str(tmp_path / "runs" / "demo")))
    res = evaluate(plan(run.path), log=lambda m: None)
    base, tuned = res["base"], res["tuned"]
    assert tuned["metrics"]["format_regex"] > base["metrics"]["format_regex"]
    assert tuned["metrics"]["format_regex"] >= 0.5
    assert tuned["val_loss"] < base["val_loss"]
    assert any("Answer:" in g["tuned"] for g in res["generations"])
