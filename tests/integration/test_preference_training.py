"""Preference objectives through Axolotl: the generated config of every objective and method passes Axolotl 0.19's
own validator, and real training on CPU through `iris-recipes run` (DPO to a merged model; ORPO, SimPO and KTO a
step each) on the chatml stand-in with the shipped TruthfulQA sample."""

from __future__ import annotations

import pytest
import yaml

from iris_recipes import objectives
from iris_recipes.data.formats import PREFERENCE as PREFERENCE_ROWS
from iris_recipes.data.formats import UNPAIRED
from iris_recipes.recipe.schema import apply_defaults
from iris_recipes.train import config as axconfig
from iris_recipes.train.launch import LaunchSpec
from tests.conftest_train import cli_env, metrics, only_run, read_json, run_cli, write_recipe

PREFERENCE = [o.name for o in objectives.OBJECTIVES.values() if o.preference]
ENTRY = {PREFERENCE_ROWS: "truthfulqa-pairs", UNPAIRED: "truthfulqa-unpaired"}


def _recipe(objective: str, method: str) -> dict:
    data = {
        "name": "pref",
        "base_model": "org/model",
        "chat_template": "llama3",
        "objective": objective,
        "method": method,
        "dataset": {"name": ENTRY[objectives.get(objective).rows], "val_size": 0.1},
        "train": {"max_steps": 4, "micro_batch_size": 2, "sequence_len": 512},
    }
    return apply_defaults(data)


@pytest.mark.parametrize("method", ["lora", "full"])
@pytest.mark.parametrize("objective", PREFERENCE)
def test_every_objective_passes_axolotls_validator(tiny_model_dir, objective, method):
    data = _recipe(objective, method)
    data["chat_template"] = "chatml"
    cfg = axconfig.build_config(data, base_model=str(tiny_model_dir), spec=LaunchSpec(), has_val=True)
    checked = axconfig.validate(cfg, recipe_data=data, recipe_file="pref.yaml")
    o = objectives.get(objective)
    assert str(checked["rl"].value if hasattr(checked["rl"], "value") else checked["rl"]) == o.rl
    for key, ax_key in o.settings.items():
        expected = data[objective][key]
        assert cfg[ax_key] == ([expected] if ax_key in objectives.LIST_KEYS else expected)
    for entry in cfg["datasets"] + cfg["test_datasets"]:
        assert entry.keys() == {"path", "ds_type", "split"}, "conversational rows, read by TRL: no Axolotl type"
    assert cfg["skip_prepare_dataset"] is True and cfg["remove_unused_columns"] is False
    assert ("adapter" in cfg) is (method == "lora")


def test_sft_config_is_unchanged_by_the_objectives(tiny_model_dir):
    data = apply_defaults(
        {
            "name": "sft",
            "base_model": "org/model",
            "chat_template": "chatml",
            "dataset": {"name": "arith-steps"},
            "train": {"max_steps": 2},
        }
    )
    cfg = axconfig.build_config(data, base_model=str(tiny_model_dir), spec=LaunchSpec(), has_val=False)
    assert "rl" not in cfg and "skip_prepare_dataset" not in cfg
    assert cfg["datasets"][0]["type"] == "chat_template" and cfg["datasets"][0]["field_messages"] == "messages"


def test_a_wrong_objective_setting_names_the_recipe_key(tiny_model_dir):
    data = _recipe("dpo", "lora")
    data["dpo"]["loss_type"] = "nonsense"  # past the schema (as an edited run directory might be)
    cfg = axconfig.build_config(data, base_model=str(tiny_model_dir), spec=LaunchSpec(), has_val=False)
    assert axconfig.config_origins(data)["dpo_loss_type"] == "dpo.loss_type"
    assert axconfig.config_origins(data)["rl"] == "objective"
    assert cfg["dpo_loss_type"] == ["nonsense"]


@pytest.mark.slow
def test_dpo_trains_merges_and_records(tmp_path, tiny_model_dir):
    runs = tmp_path / "runs"
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        name="tiny-dpo",
        objective="dpo",
        dataset={"name": "truthfulqa-pairs", "source": "sample", "val_size": 0.2},
        **{"train.max_steps": 3, "train.save_steps": 3},
    )
    res = run_cli(["run", str(recipe), "--until", "merge"], cli_env(runs), tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    run = only_run(runs, "tiny-dpo")
    cfg = yaml.safe_load((run / "axolotl.yaml").read_text())
    assert cfg["rl"] == "dpo" and cfg["rl_beta"] == 0.1
    report = read_json(run / "data" / "report.json")
    assert report["kind"] == PREFERENCE_ROWS and report["train"] == 19 and report["val"] == 5
    steps = [r for r in metrics(run) if r.get("event") == "log" and "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert all("rewards/accuracies" in r and "rewards/margins" in r and r["tokens_total"] > 0 for r in steps)
    assert any("eval_rewards/accuracies" in r for r in metrics(run)), "validation pairs are scored during training"
    meta = read_json(run / "run.json")
    assert all(meta["stages"][s]["status"] == "done" for s in ("data", "train", "merge"))
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    assert (run / "merged" / "config.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("objective", [o for o in PREFERENCE if o != "dpo"])
def test_the_other_objectives_train_a_step_on_cpu(tmp_path, tiny_model_dir, objective):
    runs = tmp_path / "runs"
    entry = ENTRY[objectives.get(objective).rows]
    recipe = write_recipe(
        tmp_path,
        tiny_model_dir,
        name=f"tiny-{objective}",
        objective=objective,
        dataset={"name": entry, "source": "sample", "val_size": 0.0},
        **{"train.max_steps": 1, "train.save_steps": 1},
    )
    res = run_cli(["run", str(recipe), "--until", "train"], cli_env(runs), tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    run = only_run(runs, f"tiny-{objective}")
    assert yaml.safe_load((run / "axolotl.yaml").read_text())["rl"] == objectives.get(objective).rl
    (step,) = [r for r in metrics(run) if r.get("event") == "log" and "loss" in r]
    assert step["step"] == 1 and step["loss"] > 0
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
