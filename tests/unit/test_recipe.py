"""Recipe core: schema errors with positions, extends, overrides, new, the CLI's fast paths."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from iris_recipes.cli import main
from iris_recipes.errors import RecipeError
from iris_recipes.recipe import load_recipe

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "recipes").glob("*.yaml"))

MINIMAL = """\
name: tiny
base_model: org/model
chat_template: chatml
dataset: {name: arith-steps}
train: {max_steps: 3}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def problems(path: Path, overrides=()) -> list[str]:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    return info.value.problems


# -- shipped recipes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_recipes_validate(path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=../iris_recipes/schema/recipe.schema.json")
    assert f"iris-recipes run recipes/{path.name}" in text, "header must give the command that runs it"
    assert "# Hardware:" in text


def test_expected_seed_recipes_exist():
    names = {p.stem for p in SHIPPED}
    assert {
        "llama1b-finetome",
        "llama3b-finetome",
        "llama1b-math",
        "phi35-doctor",
        "llama3b-genz",
        "llama1b-liar",
        "gemma3-1b-math",
        "qwen25-1.5b-truthful",
        "smollm2-demo",
    } <= names


def test_validate_cli_all_ok(capsys):
    assert main(["validate"]) == 0
    assert f"{len(SHIPPED)}/{len(SHIPPED)} valid" in capsys.readouterr().err


def test_licenses_come_from_the_model_bases():
    assert load_recipe(REPO / "recipes/llama1b-math.yaml").get("card.license") == "llama3.2"
    assert load_recipe(REPO / "recipes/phi35-doctor.yaml").get("card.license") == "mit"
    assert load_recipe(REPO / "recipes/smollm2-demo.yaml").get("card.license") == "apache-2.0"
    assert load_recipe(REPO / "recipes/gemma3-1b-math.yaml").get("card.license") == "gemma"
    assert load_recipe(REPO / "recipes/qwen25-1.5b-truthful.yaml").get("card.license") == "apache-2.0"


# -- schema errors -----------------------------------------------------------------------------------------------


def test_typo_gets_did_you_mean_and_exact_line(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL + "lora:\n  r: 8\n  alpah: 16\n")
    [line] = problems(path)
    assert line == f"{path}:8:3: lora.alpah: unknown key 'alpah'; did you mean 'alpha'?"


def test_wrong_type_bad_enum_missing_key_all_reported_at_once(tmp_path):
    path = write(
        tmp_path,
        "r.yaml",
        """\
        name: tiny
        chat_template: chatmll
        dataset: {name: arith-steps}
        train:
          max_steps: many
        """,
    )
    found = problems(path)
    assert f"{path}:1:1: (recipe): missing required key 'base_model'" in found
    assert f"{path}:2:1: chat_template: \"chatmll\" is not allowed; did you mean 'chatml'?" in found
    assert f'{path}:5:3: train.max_steps: expected integer, got string "many"' in found
    assert len(found) == 3


def test_unknown_top_level_key_and_nested_list_item(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL + "exprt: {}\nexport:\n  quantize: [q4_k_m, q9]\n")
    found = problems(path)
    assert any(":6:1: exprt: unknown key 'exprt'; did you mean 'export'?" in p for p in found)
    assert any(':8:22: export.quantize.1: "q9" is not allowed' in p for p in found)


def test_impossible_combinations(tmp_path):
    path = write(
        tmp_path,
        "r.yaml",
        MINIMAL.replace("train: {max_steps: 3}", "train: {warmup_ratio: 0.1, warmup_steps: 3}")
        + "method: full\nlora: {r: 8}\nspace: {quant: q5_k_m}\n",
    )
    found = "\n".join(problems(path))
    assert "train: give train.epochs or train.max_steps" in found
    assert "train.warmup_steps: give warmup_ratio or warmup_steps, not both" in found
    assert "lora: method is full" in found
    assert "space.quant: q5_k_m is not exported" in found


def test_validation_during_training_needs_a_split_and_early_stopping_needs_it(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL)
    assert "train.eval_steps: needs a validation split" in "\n".join(
        problems(path, ["dataset.val_size=0", "train.eval_steps=5"])
    )
    found = "\n".join(problems(path, ["train.eval_steps=0", "train.early_stopping_patience=2"]))
    assert "train.early_stopping_patience: needs train.eval_steps >= 1" in found
    # 0 (no validation during training) goes with or without a split
    assert load_recipe(path, ["train.eval_steps=0"]).data["train"]["eval_steps"] == 0
    assert load_recipe(path, ["train.eval_steps=0", "dataset.val_size=0"]).data["train"]["eval_steps"] == 0
    assert "train.eval_steps: -1 is out of range: must be >= 0" in "\n".join(problems(path, ["train.eval_steps=-1"]))


def test_dataset_needs_name_or_path(tmp_path):
    path = write(
        tmp_path, "r.yaml", MINIMAL.replace("{name: arith-steps}", "{name: a, path: b.jsonl, format: messages}")
    )
    assert any("give either name" in p for p in problems(path))
    path = write(tmp_path, "r2.yaml", MINIMAL.replace("{name: arith-steps}", "{path: b.jsonl}"))
    assert any("a local path needs format" in p for p in problems(path))


def test_yaml_syntax_error_has_position(tmp_path):
    path = write(tmp_path, "r.yaml", "name: x\ndescription: ends with Answer: N\n")
    [line] = problems(path)
    assert line.startswith(f"{path}:2:") and "invalid YAML" in line


def test_duplicate_key_is_an_error(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL + "name: again\n")
    [line] = problems(path)
    assert line.startswith(f"{path}:6:1:") and "duplicate key (first at line 1)" in line


def test_defaults_are_filled_in(tmp_path):
    r = load_recipe(write(tmp_path, "r.yaml", MINIMAL), check_data=False)
    assert r.get("lora.r") == 16 and r.get("train.learning_rate") == 2e-4
    assert r.get("export.quantize") == ["q4_k_m", "q8_0"] and r.get("dataset.val_size") == 0.05
    assert "lora" not in r.raw and r.raw["train"] == {"max_steps": 3}


# -- extends -----------------------------------------------------------------------------------------------------


def test_extends_chain_deep_merges_and_replaces_lists(tmp_path):
    write(
        tmp_path,
        "base/a.yaml",
        "base_model: org/a\nchat_template: chatml\ntrain: {max_steps: 3, learning_rate: 0.001}\n"
        "export: {quantize: [q4_k_m, q8_0]}\n",
    )
    write(tmp_path, "base/b.yaml", "extends: a.yaml\ntrain: {micro_batch_size: 8}\n")
    child = write(
        tmp_path,
        "child.yaml",
        "extends: base/b.yaml\nname: child\ndataset: {name: arith-steps}\n"
        "export: {quantize: [q5_k_m]}\nspace: {quant: q5_k_m}\n",
    )
    r = load_recipe(child, check_data=False)
    assert (
        r.get("train.max_steps") == 3 and r.get("train.learning_rate") == 0.001 and r.get("train.micro_batch_size") == 8
    )
    assert r.get("export.quantize") == ["q5_k_m"]
    assert "extends" not in r.data


def test_error_in_a_base_points_at_the_base_file(tmp_path):
    base = write(tmp_path, "base.yaml", "base_model: org/a\nchat_template: chatml\ntrain:\n  max_step: 3\n")
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nname: c\ndataset: {name: arith-steps}\n")
    found = problems(child)
    assert f"{base}:4:3: train.max_step: unknown key 'max_step'; did you mean 'max_steps'?" in found


def test_extends_cycle_and_missing_base(tmp_path):
    write(tmp_path, "a.yaml", "extends: b.yaml\nname: a\n")
    write(tmp_path, "b.yaml", "extends: a.yaml\n")
    [line] = problems(tmp_path / "a.yaml")
    assert "cycle a.yaml -> b.yaml -> a.yaml" in line
    missing = write(tmp_path, "m.yaml", "name: m\nextends: nope.yaml\n")
    [line] = problems(missing)
    assert line.startswith(f"{missing}:2:1: extends:") and "nope.yaml does not exist" in line


# -- overrides ---------------------------------------------------------------------------------------------------


def test_overrides_are_yaml_typed_and_deletions_work(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL + "card: {license: mit, tags: [a]}\n")
    r = load_recipe(
        path,
        [
            "train.learning_rate=5e-5",
            "train.sample_packing=true",
            "export.quantize=[q8_0]",
            "~card.tags",
            "lora.target=[q_proj, v_proj]",
            "space.quant=q8_0",
        ],
        check_data=False,
    )
    assert r.get("train.learning_rate") == 5e-5 and r.get("train.sample_packing") is True
    assert r.get("export.quantize") == ["q8_0"] and r.get("lora.target") == ["q_proj", "v_proj"]
    assert r.get("card.tags") == [] and "tags" not in r.raw["card"]


def test_bad_overrides_are_clean_errors(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL)
    assert "cannot delete card.tags: card is not set" in problems(path, ["~card.tags"])[0]
    assert "an override is key.path=value" in problems(path, ["train.learning_rate"])[0]
    [line] = problems(path, ["train.learnig_rate=1e-4"])
    assert (
        line
        == "<override 1: train.learnig_rate=1e-4>: train.learnig_rate: unknown key 'learnig_rate'; did you mean 'learning_rate'?"
    )
    assert "name is not a mapping" in problems(path, ["name.x=1"])[0]


# -- new ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path, monkeypatch):
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")
    shutil.copytree(REPO / "datasets", tmp_path / "datasets")
    monkeypatch.setenv("IRIS_HOME", str(tmp_path))
    return tmp_path


def test_new_extends_and_refuses_to_overwrite(project, capsys):
    assert main(["new", "my-math", "--from", "llama1b-math"]) == 0
    made = project / "recipes/my-math.yaml"
    text = made.read_text()
    assert "extends: llama1b-math.yaml" in text and "name: my-math" in text
    r = load_recipe(made)
    assert r.get("dataset.name") == load_recipe(project / "recipes/llama1b-math.yaml").get("dataset.name")
    before = made.read_bytes()
    assert main(["new", "my-math", "--from", "llama1b-finetome"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert made.read_bytes() == before


def test_new_flat_copy_is_self_contained(project):
    assert main(["new", "flat-liar", "--from", "recipes/llama1b-liar.yaml", "--flat"]) == 0
    made = project / "recipes/flat-liar.yaml"
    assert "extends" not in yaml.safe_load(made.read_text())
    original = load_recipe(project / "recipes/llama1b-liar.yaml")
    assert {**load_recipe(made).data, "name": "llama1b-liar"} == original.data


@pytest.mark.parametrize("flat", [False, True], ids=["extends", "flat"])
@pytest.mark.parametrize("source", [p.stem for p in SHIPPED])
def test_new_from_every_shipped_recipe(project, capsys, source, flat):
    """Every shipped recipe copies to a valid recipe in both modes (descriptions with ': ' once broke the YAML)."""
    name = f"copy-of-{source}"
    assert main(["new", name, "--from", source, *(["--flat"] if flat else [])]) == 0, capsys.readouterr().err
    made = project / "recipes" / f"{name}.yaml"
    original = load_recipe(project / "recipes" / f"{source}.yaml")
    copy = load_recipe(made)
    assert copy.name == name
    same = {k: v for k, v in copy.data.items() if k not in ("name", "description")}
    assert same == {k: v for k, v in original.data.items() if k not in ("name", "description")}
    if original.get("description"):
        assert copy.get("description").startswith(original.get("description"))
    assert yaml.safe_load(made.read_text())["name"] == name
    assert ("extends" in yaml.safe_load(made.read_text())) != flat
    capsys.readouterr()
    assert main(["validate", "-q"]) == 0 and main(["list"]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in (project / "recipes").iterdir() if p.name.startswith(".")) == []


def test_new_from_a_recipe_elsewhere_keeps_its_data_path(project):
    """A relative data path is relative to the file that wrote it: a copy that extends a recipe in another folder
    finds the same file, and --flat rebases the path."""
    other = project / "elsewhere"
    other.mkdir()
    (other / "rows.jsonl").write_text(
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
    )
    (other / "mine.yaml").write_text(MINIMAL.replace("{name: arith-steps}", "{path: rows.jsonl, format: messages}"))
    assert main(["new", "mine", "--from", str(other / "mine.yaml")]) == 0
    assert load_recipe(project / "recipes" / "mine.yaml").get("dataset.path") == "../elsewhere/rows.jsonl"
    assert main(["new", "flat", "--from", str(other / "mine.yaml"), "--flat"]) == 0
    assert load_recipe(project / "recipes" / "flat.yaml").get("dataset.path") == "../elsewhere/rows.jsonl"


def test_new_rejects_bad_name(project, capsys):
    assert main(["new", "Bad Name", "--from", "llama1b-math"]) == 2
    assert "not a valid recipe name" in capsys.readouterr().err


# -- CLI fast paths ----------------------------------------------------------------------------------------------


def test_help_and_validate_never_import_heavy_libraries():
    probe = textwrap.dedent("""
        import sys, contextlib, io
        from iris_recipes.cli import main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try: main(["--help"])
            except SystemExit: pass
            for cmd in (["validate"], ["show", "llama1b-math"], ["list"]):
                assert main(cmd) == 0, cmd
        heavy = [m for m in ("torch", "axolotl", "transformers", "gradio", "llama_cpp", "datasets", "pandas")
                 if m in sys.modules]
        print(",".join(heavy))
    """)
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_command_has_help_with_an_example():
    from iris_recipes.cli import build_parser

    parser = build_parser()
    subactions = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, sub in subactions.choices.items():
        assert "Example:" in sub.format_help() and "iris-recipes" in sub.format_help(), name


def test_schema_command_prints_the_schema(capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["$schema"].endswith("2020-12/schema")


def test_readme_reference_matches_schema():
    """The README's recipe reference is generated from the schema (scripts/gen_reference.py rewrites it)."""
    from iris_recipes.recipe.reference import render

    readme = (REPO / "README.md").read_text()
    assert render() in readme, "README recipe reference is stale: run python scripts/gen_reference.py"
