"""iris-recipes sweep: variants planned and validated before any work; a real two-learning-rate sweep."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest_eval import tiny_recipe
from iris_recipes.errors import IrisError
from iris_recipes.sweep import assign_dirs, commands, make_plan, split_values

REPO = Path(__file__).resolve().parents[2]


def test_split_values_keeps_lists_whole():
    assert split_values("1e-4,2e-4") == ["1e-4", "2e-4"]
    assert split_values("[q4_k_m,q8_0],[q8_0]") == ["[q4_k_m,q8_0]", "[q8_0]"]
    assert split_values("'a,b',c") == ["'a,b'", "c"]


def test_one_factor_at_a_time_from_the_recipe_values():
    # smollm2-demo has learning_rate 1e-3 and r 16: they are the reference variant
    plan = make_plan("smollm2-demo", ["train.learning_rate=1e-4,1e-3", "lora.r=8,16", "train.max_steps=5"])
    assert [v.changes for v in plan.variants] == [
        {"train.learning_rate": "1e-3", "lora.r": "16"},
        {"train.learning_rate": "1e-4", "lora.r": "16"},
        {"train.learning_rate": "1e-3", "lora.r": "8"},
    ]
    assert all("train.max_steps=5" in v.overrides for v in plan.variants)


def test_grid_runs_every_combination(monkeypatch, tmp_path):
    monkeypatch.setenv("IRIS_RUNS_DIR", str(tmp_path))
    plan = make_plan("smollm2-demo", ["train.learning_rate=1e-4,2e-4", "lora.r=8,16"], grid=True)
    assert len(plan.variants) == 4
    assign_dirs(plan, "S")
    cmds = commands(plan)
    assert cmds[0].startswith("iris-recipes run ") and "train.learning_rate=1e-4 lora.r=8 --output" in cmds[0]
    assert sum(c.startswith("iris-recipes eval ") for c in cmds) == 4 and cmds[-1].startswith("iris-recipes compare")
    assert len({v.run_dir for v in plan.variants}) == 4


def test_bad_sweeps_fail_before_any_work(tmp_path):
    with pytest.raises(IrisError, match="unknown key 'learnin_rate'; did you mean 'learning_rate'") as exc:
        make_plan("smollm2-demo", ["train.learnin_rate=1e-4,2e-4"])
    assert "variant 0" in str(exc.value) and "variant 1" in str(exc.value)
    with pytest.raises(IrisError, match=r"variant 1 \(lora.r=0\).*lora.r: 0 is out of range"):
        make_plan("smollm2-demo", ["lora.r=8,0"])
    with pytest.raises(IrisError, match="no axis to sweep"):
        make_plan("smollm2-demo", ["lora.r=8"])
    # through the CLI: exit 2, the message, nothing created in the runs directory
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "iris_recipes", "sweep", "smollm2-demo", "lora.rank=8,16"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "IRIS_HOME": str(REPO), "IRIS_RUNS_DIR": str(runs)},
    )
    assert proc.returncode == 2 and "unknown key 'rank'" in proc.stderr and "Traceback" not in proc.stderr
    assert not runs.exists()


@pytest.mark.slow
def test_sweep_of_two_learning_rates(tmp_path, tiny_model_dir, monkeypatch):
    """Two real runs (Axolotl training, merge, GGUF export), each evaluated, and a comparison table."""
    import json

    from iris_recipes.sweep import execute

    monkeypatch.setenv("IRIS_RUNS_DIR", str(tmp_path / "runs"))
    recipe = tiny_recipe(tmp_path / "tiny-sweep.yaml", tiny_model_dir, name="tiny-sweep")
    plan = make_plan(str(recipe), ["train.learning_rate=1e-4,5e-3"])
    assert len(plan.variants) == 2
    assign_dirs(plan, "T")
    result = execute(plan, "T", log=lambda m: None)
    assert [v["status"] for v in result["variants"]] == ["done", "done"], result
    losses = []
    for v in plan.variants:
        ev = json.loads((v.run_dir / "eval.json").read_text())
        losses.append(ev["tuned"]["val_loss"])
        assert json.loads((v.run_dir / "run.json").read_text())["status"] == "done"
    assert losses[0] != losses[1]  # different learning rates trained different models
    md = Path(result["comparison"]).read_text()
    assert "`train.learning_rate`" in md and "0.0001" in md and "0.005" in md and "| val_loss |" in md
