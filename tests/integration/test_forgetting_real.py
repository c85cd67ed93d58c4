"""The forgetting check on the real SmolLM2-135M-Instruct: a deliberately over-trained demo fine-tune (learning rate
5e-3 on the arithmetic data alone) is flagged as degraded, and the untrained base, evaluated as if it were its own
fine-tune, is kept. Random-weight test models never end a turn, so only a real model can show this."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

# Over-training on the demo's arithmetic alone (without its general-chat rehearsal rows): a high learning rate held
# for the whole run.
OVERTRAIN = [
    "dataset.mix=[]",
    "train.learning_rate=5e-3",
    "train.max_steps=30",
    "train.scheduler=constant",
    "train.warmup_steps=0",
    "train.eval_steps=30",
    "train.save_steps=30",
]
# A lighter evaluation: the check itself runs as configured by default (all general prompts, default limit).
EVAL = [
    "export.quantize=[]",
    "space.quant=f16",
    "eval.samples=4",
    "eval.seeds=[0]",
    "eval.prompts=[]",
    "eval.max_new_tokens=32",
]


def _env(runs: Path) -> dict:
    return {**os.environ, "IRIS_RUNS_DIR": str(runs), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def test_overtrained_demo_is_flagged_as_degraded(tmp_path):
    """Trained by `iris-recipes run --until merge`, then exported without the export's own stop gate (an
    over-trained model sometimes fails it: "Answer: 4" said until the token limit, measured), so the forgetting
    check always gets to judge it."""
    from iris_recipes.evaluate import plan
    from iris_recipes.rundir import RunDir
    from iris_recipes.stages import evaluate_run as evaluate
    from iris_recipes.stages import export_run

    out = tmp_path / "over"
    cmd = [sys.executable, "-m", "iris_recipes", "run", "recipes/smollm2-demo.yaml", *OVERTRAIN, *EVAL]
    proc = subprocess.run(
        [*cmd, "--output", str(out), "--until", "merge"],
        cwd=REPO,
        env=_env(tmp_path / "runs"),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    export_run(RunDir(out), require_chat_stop=False, log=lambda m: None)
    general = evaluate(plan(out), log=lambda m: None)["forgetting"]
    # the base answers in sentences and ends its turn: 14 of the 24 shipped prompts within 160 tokens (measured)
    assert general["base"]["stopped"] >= general["prompts"] // 2
    # measured, run to run: either every reply ends its turn with a few tokens of the task's format, unrelated to
    # the question (collapse: median 14 vs 120 tokens, agreement 0.0), or replies repeat "Answer: N" (loops)
    assert not general["kept"], general["verdict"]
    assert general["verdict"].startswith("degraded: ")
    assert "collapsed" in general["verdict"] or "loop" in general["verdict"], general["verdict"]
    assert "**Forgetting check: degraded: " in (out / "README.md").read_text()


def test_untrained_base_is_kept(tmp_path):
    """The base model put through eval as its own fine-tune: the same weights cannot have forgotten anything."""
    from iris_recipes.evaluate import plan
    from iris_recipes.models import resolve_base_model
    from iris_recipes.recipe import load_recipe
    from iris_recipes.stages import evaluate_run as evaluate

    try:
        from tests.conftest_eval import assemble_run
    except ImportError:
        from conftest_eval import assemble_run

    recipe = load_recipe(REPO / "recipes" / "smollm2-demo.yaml", EVAL)
    src = tmp_path / "recipe.yaml"
    src.write_text(recipe.to_yaml())
    base = resolve_base_model("builtin:smollm2-135m-instruct").path
    run = assemble_run(tmp_path / "runs" / "smollm2-demo" / "base", src, base)
    general = evaluate(plan(run.path), log=lambda m: None)["forgetting"]
    assert general["kept"] and general["verdict"] == "general behaviour kept"
    assert general["tuned"]["stopped"] == general["base"]["stopped"] >= general["prompts"] // 2
    assert general["tuned"]["agreement"] >= 0.9
