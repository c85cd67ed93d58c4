"""Recipes are data, also in the axolotl: block: keys that load code, use the network with the user's credentials
or touch files outside the run directory need --allow-unsafe-axolotl-keys."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from iris_recipes.cli import main
from iris_recipes.errors import IrisError, RecipeError
from iris_recipes.recipe import load_recipe
from iris_recipes.recipe.unsafe import FLAG, UNSAFE_AXOLOTL_KEYS, advice, render
from iris_recipes.rundir import RunDir

REPO = Path(__file__).resolve().parents[2]
BASE = "name: tiny\nbase_model: org/model\nchat_template: chatml\ndataset: {name: arith-steps}\ntrain: {max_steps: 3}\n"


def example(key: str) -> tuple[dict, str]:
    """An axolotl: block that sets `key` (a family `x_*` as x_project, `a.b` inside a), and its dotted path."""
    name = key.replace("*", "project")
    if "." in name:
        outer, inner = name.split(".", 1)
        return {outer: {inner: ["value"]}}, name
    return {name: "value"}, name


@pytest.mark.parametrize("key", list(UNSAFE_AXOLOTL_KEYS))
def test_each_unsafe_key_is_refused_where_it_is_written(tmp_path, capsys, key):
    block, dotted = example(key)
    path = tmp_path / "r.yaml"
    path.write_text(BASE + yaml.safe_dump({"axolotl": block}, sort_keys=False))
    line = 8 if "." in key else 7
    col = 5 if "." in key else 3
    assert main(["validate", "-q", str(path)]) == 2
    out = capsys.readouterr()
    assert out.err.splitlines() == [f"{path}:{line}:{col}: axolotl.{dotted}: {advice(UNSAFE_AXOLOTL_KEYS[key])}"]
    assert main(["validate", "-q", str(path), FLAG]) == 0


def test_safe_axolotl_keys_pass_and_overrides_are_checked_too(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_text(BASE + "axolotl:\n  lora_dropout: 0.1\n  trl: {beta: 0.1}\n  neftune_noise_alpha: 5\n")
    assert main(["validate", "-q", str(path)]) == 0
    assert main(["validate", "-q", str(path), "axolotl.output_dir=/tmp/elsewhere"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"<override 1: axolotl.output_dir=/tmp/elsewhere>: axolotl.output_dir: "
        f"{advice(UNSAFE_AXOLOTL_KEYS['output_dir'])}"
    ]


def test_unsafe_keys_in_a_base_recipe_are_located_in_the_base(tmp_path):
    (tmp_path / "base.yaml").write_text("axolotl:\n  hub_model_id: me/model\n")
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\n" + BASE)
    with pytest.raises(RecipeError) as info:
        load_recipe(child)
    assert info.value.problems == [
        f"{tmp_path / 'base.yaml'}:2:3: axolotl.hub_model_id: {advice(UNSAFE_AXOLOTL_KEYS['hub_model_id'])}"
    ]
    assert load_recipe(child, allow_unsafe_axolotl_keys=True).get("axolotl.hub_model_id") == "me/model"


def test_the_config_builder_refuses_them_too():
    """The one place a recipe becomes an Axolotl config checks again, whatever loaded the recipe."""
    from iris_recipes.train.config import PLUGIN, build_config
    from iris_recipes.train.launch import LaunchSpec

    data = {**yaml.safe_load(BASE), "axolotl": {"plugins": ["my.Plugin"], "push_dataset_to_hub": "me/data"}}
    with pytest.raises(IrisError) as info:
        build_config(data, base_model="m", spec=LaunchSpec(device="cpu"), has_val=False, recipe_file="r.yaml")
    assert str(info.value).splitlines() == [
        f"r.yaml: axolotl.plugins: {advice(UNSAFE_AXOLOTL_KEYS['plugins'])}",
        f"r.yaml: axolotl.push_dataset_to_hub: {advice(UNSAFE_AXOLOTL_KEYS['push_dataset_to_hub'])}",
    ]
    cfg = build_config(
        data, base_model="m", spec=LaunchSpec(device="cpu"), has_val=False, allow_unsafe_axolotl_keys=True
    )
    assert cfg["plugins"] == [PLUGIN, "my.Plugin"], "the recipe's plugins come beside iris-recipes' own"


def test_a_run_started_with_the_flag_reads_its_recipe_again(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.file("recipe.yaml").write_text(BASE + "axolotl:\n  use_wandb: true\n")
    run.write({"recipe": "tiny", "status": "running"})
    with pytest.raises(RecipeError):
        run.recipe(check_data=False)
    run.update(allow_unsafe_axolotl_keys=True)
    assert run.recipe(check_data=False).allow_unsafe_axolotl_keys
    with pytest.raises(RecipeError):
        run.recipe(check_data=False, allow_unsafe_axolotl_keys=False)


def test_readme_lists_every_unsafe_key():
    assert render() in (REPO / "README.md").read_text(), "README is stale: run python scripts/gen_reference.py"


PLUGIN_MODULE = """
import os
open(os.environ["IRIS_TEST_MARKER"], "a").write("imported\\n")

from axolotl.integrations.base import BasePlugin


class Plugin(BasePlugin):
    pass
"""


# Axolotl keys whose names look risky but that stay inside the run and load nothing.
REVIEWED_SAFE = {
    "dpo_generate_during_eval": "a switch ('during' is not a URI)",
    "gradio_server_name": "only for `axolotl inference --gradio`, never during training",
    "gradio_server_port": "only for `axolotl inference --gradio`, never during training",
    "lr_scheduler_kwargs": "arguments of the scheduler",
    "bnb_config_kwargs": "arguments of the 4-bit quantization config",
    "model_quantization_config_kwargs": "arguments of the quantization config",
    "gradient_checkpointing_kwargs": "arguments of gradient checkpointing",
    "flex_attn_compile_kwargs": "arguments of torch.compile for flex attention",
    "ring_attn_func": "one of Axolotl's ring-attention functions (an enum)",
    "chat_template_kwargs": "variables of the chat template",
    "axolotl_config_path": "set by Axolotl's own CLI to the config it was given",
}
NOT_AXOLOTL_FIELDS = {
    "push_to_hub": "a TrainingArguments name some users expect to work",
    "iris_metrics_file": "iris-recipes' own plugin key",
}


def test_the_list_follows_axolotls_schema():
    """Every listed key is a key of Axolotl 0.19's schema, and every schema key whose name says path, hub, URL,
    host, plugin, module, function, class or kwargs is either listed or reviewed here as safe."""
    schema = pytest.importorskip("axolotl.utils.schemas.config")

    def names(model) -> set[str]:
        out = set()
        for name, field in model.model_fields.items():
            out |= {name, *([field.alias] if field.alias else [])}
        return out

    top = names(schema.AxolotlInputConfig)
    nested = {key: names(schema.AxolotlInputConfig.model_fields[key].annotation.__args__[0]) for key in ("trl", "vllm")}
    from iris_recipes.recipe.unsafe import _reason

    for key in UNSAFE_AXOLOTL_KEYS:
        if key in NOT_AXOLOTL_FIELDS:
            continue
        if key.endswith("*"):
            assert any(n.startswith(key[:-1]) for n in top), key
        elif "." in key:
            outer, inner = key.split(".")
            assert inner in nested[outer], key
        else:
            assert key in top, f"{key} is not an Axolotl 0.19 key"
    risky = re.compile(
        r"path|_dir$|hub|url|uri|remote|plugin|module$|func|_cls$|host|server|push|api_key|kwargs|"
        r"token$|kernels$"
    )
    unreviewed = sorted(n for n in top if risky.search(n) and not _reason(n) and n not in REVIEWED_SAFE)
    assert not unreviewed, f"review these Axolotl keys for recipe/unsafe.py: {unreviewed}"


def test_dry_run_and_validate_never_import_a_recipes_plugin(tmp_path):
    """Without the flag neither `validate`, `show`, `data prepare` nor `run --dry-run` imports the plugin a recipe
    names, and nothing is written."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "evil_plugin.py").write_text(PLUGIN_MODULE)
    marker, runs = tmp_path / "imported", tmp_path / "runs"
    recipe = tmp_path / "r.yaml"
    demo = yaml.safe_load((REPO / "recipes" / "smollm2-demo.yaml").read_text())
    demo["axolotl"] = {"plugins": ["evil_plugin.Plugin"]}
    recipe.write_text(yaml.safe_dump(demo, sort_keys=False))
    line = recipe.read_text().splitlines().index("axolotl:") + 2
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(pkg)]),
        "IRIS_TEST_MARKER": str(marker),
        "IRIS_RUNS_DIR": str(runs),
    }
    expected = f"{recipe}:{line}:3: axolotl.plugins: {advice(UNSAFE_AXOLOTL_KEYS['plugins'])}"

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "iris_recipes", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )

    for args in (
        ["validate", "-q", str(recipe)],
        ["run", str(recipe), "--dry-run"],
        ["data", "prepare", str(recipe), "--out", str(tmp_path / "out")],
        ["show", str(recipe)],
    ):
        res = cli(*args)
        shown = expected if args[0] == "validate" else f"error: {expected}"  # one problem: the CLI's error line
        assert res.returncode == 2 and res.stderr.splitlines() == [shown], (args, res.stderr)
        assert not marker.exists(), f"{args} imported the plugin"
    assert not runs.exists() and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_with_the_flag_the_dry_run_imports_the_plugin(tmp_path):
    """The other side of the test above: the dry run's Axolotl validation imports a recipe's plugin when allowed,
    so a missing marker there means "not imported", not "never looked"."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "evil_plugin.py").write_text(PLUGIN_MODULE)
    marker = tmp_path / "imported"
    demo = yaml.safe_load((REPO / "recipes" / "smollm2-demo.yaml").read_text())
    demo["axolotl"] = {"plugins": ["evil_plugin.Plugin"]}
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(demo, sort_keys=False))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(pkg)]),
        "IRIS_TEST_MARKER": str(marker),
        "IRIS_RUNS_DIR": str(tmp_path / "runs"),
    }
    res = subprocess.run(
        [sys.executable, "-m", "iris_recipes", "run", str(recipe), "--dry-run", FLAG],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert marker.exists(), res.stderr
    assert "evil_plugin.Plugin" in res.stdout and res.returncode == 0, res.stderr
    assert not (tmp_path / "runs").exists(), "a dry run creates no run directory"
