"""Bad input is reported where it is (FILE:LINE:COL, the override, the key) with exit 2, never a traceback: damaged
run records (run.json, eval.json), seeds numpy refuses, keys an override creates, non-string YAML keys, `extends`
that names no file, data paths of a base recipe, base models no stage could load, dataset registry entries."""

from __future__ import annotations

import json
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iris_recipes.cli import main
from iris_recipes.compare import load_entry, markdown
from iris_recipes.data.registry import load_entry as load_dataset_entry
from iris_recipes.errors import IrisError, RecipeError
from iris_recipes.recipe import load_recipe
from iris_recipes.rundir import RunDir

MINIMAL = """\
name: tiny
base_model: org/model
chat_template: chatml
dataset: {name: arith-steps}
train: {max_steps: 3}
"""
FUZZ = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text))
    return path


def problems(path: Path, overrides=()) -> list[str]:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    return info.value.problems


def json_values(keys: list[str]):
    """Any JSON value, its objects keyed mostly by the names a reader looks up."""
    huge = st.sampled_from([10**400, float("inf"), -float("inf")])
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5) | huge
    names = st.sampled_from(keys) | st.text(max_size=5)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=4))


# -- run.json and eval.json --------------------------------------------------------------------------------------
DAMAGED_RUN_JSON = [
    ("[]", "run.json holds a list, not an object of run facts"),
    (b"\xff\xfe", "run.json is not UTF-8 text (byte 0xff at offset 0)"),
    ('{"status": "done", "stages": "x"}', "run.json key 'stages' is a string, not an object"),
    ('{"stages": {"train": 3}}', "run.json key 'stages.train' is a number, not an object"),
    ("1" * 5000, "run.json holds a number of thousands of digits"),
]


@pytest.mark.parametrize("command", [["card"], ["eval"], ["run", "--resume"]])
@pytest.mark.parametrize(("content", "message"), DAMAGED_RUN_JSON)
def test_damaged_run_json_is_a_located_error(tmp_path, capsys, command, content, message):
    meta = write(tmp_path / "run" / "run.json", content)
    before = meta.read_bytes()
    assert main([*command, str(meta.parent)]) == 2
    err = capsys.readouterr().err
    assert f"{meta}: {message}; the run directory is damaged; start a new run or restore the file" in err
    assert "Traceback" not in err
    assert meta.read_bytes() == before and sorted(p.name for p in meta.parent.iterdir()) == ["run.json"]


RUN_KEYS = ["stages", "artifacts", "gguf", "train", "status", "versions", "launch_options", "resumed", "run_id"]


@FUZZ
@given(value=json_values(RUN_KEYS))
def test_any_json_as_run_json_reads_or_is_an_iris_error(value):
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(tmp)
        run.meta_path.write_text(json.dumps(value))
        try:
            meta = run.read()
            run.stage_done("train")
            [info.get("status") for info in (meta.get("stages") or {}).values()]  # the card's stage table
            [entry.get("file") for entry in (run.artifact("gguf") or {}).values()]
            run.set_stage("eval", status="done")
            run.set_artifact("merged", {"dir": "merged"})
            run.update(status="done", resumed=[*meta.get("resumed", []), "now"])
        except IrisError as exc:
            assert str(exc).startswith(f"{run.meta_path}: ")


def eval_run(root: Path, name: str, content: str | bytes) -> Path:
    write(root / name / "run.json", '{"status": "done"}')
    write(root / name / "eval.json", content)
    return root / name


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "eval.json must hold an object (base, tuned, noise, ...)"),
        ('{"tuned": [1]}', "key 'tuned' must be an object, not [1]"),
        ('{"noise": 5}', "key 'noise' must be an object, not 5"),
        ('{"tuned": {"metrics": "x"}}', "key 'tuned.metrics' must be an object, not \"x\""),
        ('{"gguf": {"q8_0": 1}}', "key 'gguf.q8_0' must be an object, not 1"),
        (b"\xff{}", "not UTF-8 text (byte offset 0)"),
        ('{"noise": {"val_loss": ' + "1" * 5000 + "}}", "holds a number of thousands of digits"),
    ],
)
def test_damaged_eval_json_is_a_located_error(tmp_path, capsys, content, message):
    good = eval_run(tmp_path, "good", '{"tuned": {"val_loss": 1.0}}')
    bad = eval_run(tmp_path, "bad", content)
    out = tmp_path / "comparison.md"
    assert main(["compare", str(good), str(bad), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad / 'eval.json'}: {message}; re-run `iris-recipes eval {bad}`." in err
    assert "Traceback" not in err and not out.exists()


EVAL_KEYS = ["base", "tuned", "noise", "forgetting", "gguf", "metrics", "val_loss", "perplexity", "decode_tok_s"]


@FUZZ
@given(first=json_values(EVAL_KEYS), second=json_values(EVAL_KEYS))
def test_any_json_as_eval_json_compares_or_is_an_iris_error(first, second):
    with tempfile.TemporaryDirectory() as tmp:
        runs = [eval_run(Path(tmp), name, json.dumps(v)) for name, v in (("a", first), ("b", second))]
        try:
            markdown([load_entry(RunDir(r)) for r in runs])
        except IrisError as exc:
            assert "eval.json" in str(exc)


# -- seeds -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("dataset", "seed", "-1", "-1 is out of range: must be >= 0"),
        ("train", "seed", "-1", "-1 is out of range: must be >= 0"),
        ("train", "seed", "4294967296", "4294967296 is out of range: must be <= 4294967295"),
        ("eval", "seeds", "[0, -1]", "-1 is out of range: must be >= 0"),
    ],
)
def test_seeds_numpy_refuses_are_located_errors(tmp_path, section, key, value, message):
    text = MINIMAL.replace("dataset: {name: arith-steps}", "dataset:\n  name: arith-steps")
    text = text.replace("train: {max_steps: 3}", "train:\n  max_steps: 3")
    text += f"{section}:\n" if f"\n{section}:" not in "\n" + text else ""
    lines = text.splitlines()
    lines.insert(lines.index(f"{section}:") + 1, f"  {key}: {value}")
    path = write(tmp_path / "r.yaml", "\n".join(lines) + "\n")
    line = lines.index(f"  {key}: {value}") + 1
    dotted = f"{section}.{key}" + (".1" if key == "seeds" else "")
    col = 3 if key != "seeds" else len(f"  {key}: [0, ") + 1
    assert problems(path) == [f"{path}:{line}:{col}: {dotted}: {message}"]
    largest = [0, 4294967295] if key == "seeds" else 4294967295  # the largest seed numpy takes
    override = f"{section}.{key}={largest}".replace(" ", "")
    assert load_recipe(path, [override]).get(f"{section}.{key}") == largest


# -- overrides and YAML keys -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "key", "message"),
    [
        ("a.b.c.d.e.f=1", "a", "unknown key 'a'"),
        ("dataset.mix[0].weight=2", "dataset.mix[0]", "unknown key 'mix[0]'; did you mean 'mix'?"),
        ("train.x.y=3", "train.x", "unknown key 'x'"),
    ],
)
def test_keys_an_override_creates_are_located_at_the_override(tmp_path, override, key, message):
    path = write(tmp_path / "r.yaml", MINIMAL)
    (found,) = problems(path, [override])
    assert found.startswith(f"<override 1: {override}>: {key}: {message}")


@pytest.mark.parametrize(("key", "shown"), [("1", "1"), ("~", "None"), ("true", "True"), ("0x10", "16")])
def test_non_string_yaml_keys_are_located_where_written(tmp_path, key, shown):
    path = write(tmp_path / "r.yaml", MINIMAL + f"{key}: 2\n")
    (found,) = problems(path)
    assert found.startswith(f"{path}:6:1: {shown}: unknown key '{shown}'")


def test_keys_that_load_equal_are_duplicates(tmp_path):
    path = write(tmp_path / "r.yaml", MINIMAL + "train2:\n  1: a\n  0x1: b\n")
    assert problems(path) == [f"{path}:8:3: train2.1: duplicate key (first at line 7); keep one"]


# -- extends and paths -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("{dir}", "{dir} is a directory; give the path of a base recipe file"),
        ("/dev/zero", "/dev/zero is not a regular file; give the path of a base recipe file"),
        ("{dir}/missing.yaml", "{dir}/missing.yaml does not exist"),
        ("missing.yaml", "{dir}/missing.yaml does not exist; the path is relative to {dir}"),
    ],
)
def test_extends_that_names_no_file_says_what_it_names(tmp_path, target, message):
    path = write(tmp_path / "r.yaml", f"extends: {target.format(dir=tmp_path)}\n" + MINIMAL)
    assert problems(path) == [f"{path}:1:1: extends: {message.format(dir=tmp_path)}"]


ROWS = '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'


def test_a_base_recipes_data_path_is_relative_to_the_base(tmp_path, monkeypatch):
    write(tmp_path / "sub" / "data.jsonl", ROWS)
    write(tmp_path / "sub" / "model" / "config.json", "{}")
    base_text = MINIMAL.replace("{name: arith-steps}", "{path: data.jsonl, format: messages, mix: [MIX]}")
    base_text = base_text.replace("MIX", "{path: ./data.jsonl, format: messages, weight: 0.5}")
    write(tmp_path / "sub" / "base.yaml", base_text.replace("org/model", "model"))
    child = write(tmp_path / "child.yaml", "extends: sub/base.yaml\nname: child\n")
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe("child.yaml")
    assert recipe.get("dataset.path") == "sub/data.jsonl"
    assert recipe.get("dataset.mix")[0]["path"] == "sub/data.jsonl"
    assert recipe.get("base_model") == "sub/model"
    assert load_recipe(child).get("dataset.path") == "sub/data.jsonl"  # from any working directory
    (tmp_path / "sub" / "data.jsonl").unlink()
    (found, _) = problems(child)  # the main source and the mix source
    assert found.startswith(f"{tmp_path / 'sub' / 'base.yaml'}:4:")
    assert f"file not found: {tmp_path / 'sub' / 'data.jsonl'} (paths are relative to the recipe file)" in found


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("builtin:nope", "unknown builtin model 'builtin:nope'. Known builtin models: builtin:smollm2-135m-instruct."),
        ("not a valid id!!", "'not a valid id!!' is not a model directory ({dir}/not a valid id!! does not exist"),
        ("./models/x", "'./models/x' is not a model directory ({dir}/models/x does not exist"),
        ("{dir}", "{dir} is a directory but holds no config.json"),
    ],
)
def test_a_base_model_no_stage_could_load_is_a_located_error(tmp_path, value, message):
    path = write(tmp_path / "r.yaml", MINIMAL.replace("org/model", json.dumps(value.format(dir=tmp_path))))
    (found,) = problems(path)
    assert found.startswith(f"{path}:2:1: base_model: {message.format(dir=tmp_path)}")


def test_a_base_model_directory_and_hub_ids_validate(tmp_path, monkeypatch):
    from iris_recipes.models import resolve_base_model

    model = write(tmp_path / "recipes" / "models" / "m" / "config.json", "{}").parent
    path = write(tmp_path / "recipes" / "r.yaml", MINIMAL)
    write(tmp_path / "models" / "m" / "README.md", "not a model: no config.json")  # the same path from the cwd
    monkeypatch.chdir(tmp_path)
    for value, kind, where in (
        ("models/m", "local", model),  # relative to the recipe's folder, not the working directory
        ("./models/m", "local", model),
        (str(model), "local", model),
        ("org/model", "hub", None),
        ("builtin:smollm2-135m-instruct", "builtin", None),
    ):
        recipe = load_recipe(path, [f"base_model={value}"])
        assert recipe.get("base_model") == value
        found = resolve_base_model(value, path.parent, fetch=False)  # what every stage then uses
        assert found.kind == kind and (where is None or found.path == where), (value, found)


# -- numbers of thousands of digits inside strings ---------------------------------------------------------------
@FUZZ
@given(digits=st.integers(10, 30_000), lead=st.integers(1, 9), negative=st.booleans())
def test_a_template_index_of_many_digits_is_a_located_error(tmp_path, digits, lead, negative):
    """`{Column[i]}` with an index of thousands of digits (past what Python reads as an integer) or merely past
    any list: exit 2 at the template, not a traceback, and the message does not repeat the number."""
    index = ("-" if negative else "") + str(lead) + "0" * (digits - 1)
    write(tmp_path / "d.jsonl", '{"Q": "a;b", "A": "x"}\n')
    text = MINIMAL.replace("{name: arith-steps}", "{path: d.jsonl, format: template, columns: COLS}")
    text = text.replace("COLS", '{user: "{Q[INDEX]}", assistant: "{A}", lists: {Q: ";"}}').replace("INDEX", index)
    path = write(tmp_path / "r.yaml", text)
    (found,) = problems(path)
    shown = index if len(index) <= 12 else index[:12] + "..."
    col = text.splitlines()[3].index("user:") + 1  # at the template's key
    assert found == (
        f"{path}:4:{col}: dataset.columns.user: {{Q[{shown}]}} picks an item by a number of {digits:,} digits; "
        "an index has at most 9"
    )
    assert main(["validate", "-q", str(path)]) == 2


@pytest.mark.parametrize("regex", ["a{%s}" % ("9" * 5000), "(a){1,%s}" % ("1" * 9000), "(?P=%s)" % ("9" * 5000)])
def test_a_format_regex_with_thousands_of_digits_is_refused_in_a_line(regex):
    """Where eval checks the regex again (a run's recipe is not validated twice): one short line, no traceback."""
    from iris_recipes.evaluate.metrics import check_metrics

    with pytest.raises(IrisError) as info:
        check_metrics({"metrics": ["format_regex"], "format_regex": regex}, [], "val.jsonl")
    assert str(info.value).startswith("eval.format_regex: not a ") and len(str(info.value)) < 300, str(info.value)


# -- dataset registry entries ------------------------------------------------------------------------------------
def test_dataset_entry_problems_carry_their_line(tmp_path, monkeypatch):
    monkeypatch.setenv("IRIS_HOME", str(tmp_path))
    entry = write(
        tmp_path / "datasets" / "bad" / "dataset.yaml",
        """\
        name: bad
        description: x
        license: mit
        source: {path: rows.jsonl}
        format: messages
        columns:
          mesages: m
        sampel: s.jsonl
        """,
    )
    with pytest.raises(IrisError) as info:
        load_dataset_entry("bad")
    lines = str(info.value).splitlines()
    assert lines[0] == f"{entry}: invalid dataset entry:"
    assert lines[1].startswith(f"  {entry}:7:3: columns.mesages: not a key of format messages")
    assert lines[2] == f"  {entry}:8:1: sampel: unknown key (did you mean 'sample'?)"
