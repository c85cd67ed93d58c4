"""The row-format registry: a format is one entry there, and nothing else in the package restates a format name.

A throwaway format registered in a copy of the registry goes through the recipe's validation (schema, mapping
checks, located errors), a dataset entry and the data stage without any other file changing.
"""

from __future__ import annotations

import ast
import io
import json
import re
import textwrap
import tokenize
from pathlib import Path

import pytest
import yaml

from iris_recipes.cli import main
from iris_recipes.data import load_split, prepare
from iris_recipes.data.cells import RowProblem, text_cell
from iris_recipes.data.formats import FORMATS, PREFERENCE, FormatRegistry, RowFormat, using
from iris_recipes.errors import IrisError, RecipeError
from iris_recipes.paths import schema_path
from iris_recipes.recipe import load_recipe
from iris_recipes.recipe.schema import load_schema, schema_text

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "iris_recipes"
REGISTRY_MODULE = PACKAGE / "data" / "formats.py"


class QA(RowFormat):
    """A throwaway format: a question column and an answer column, an optional topic as the system turn."""

    name = "qa"
    keys = {"question": "question", "answer": "answer", "topic": None}
    required = {"answer": "the answer column, e.g. answer: reply"}

    def required_columns(self, columns):
        return {self.column(columns, "question"), columns["answer"]} | (
            {columns["topic"]} if "topic" in columns else set()
        )

    def convert(self, row, columns):
        turns = [{"role": "user", "content": text_cell(row, self.column(columns, "question"))}]
        turns.append({"role": "assistant", "content": text_cell(row, columns["answer"])})
        if "topic" in columns and text_cell(row, columns["topic"], optional=True):
            turns.insert(0, {"role": "system", "content": f"Topic: {row[columns['topic']]}"})
        return turns


class Pairs(RowFormat):
    """A throwaway format producing another kind of row than chat turns: one preference pair per row."""

    name = "pairs"
    produces = PREFERENCE
    keys = {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"}

    def required_columns(self, columns):
        return {self.column(columns, k) for k in self.keys}

    def convert(self, row, columns):
        pair = {k: text_cell(row, self.column(columns, k)) for k in self.keys}
        return [{**pair, "prompt": [{"role": "user", "content": pair["prompt"]}]}]


@pytest.fixture
def with_formats():
    """A copy of the registry holding the throwaway formats, in place for the test only."""
    registry = FORMATS.copy()
    registry.register(QA)
    registry.register(Pairs)
    with using(registry):
        yield registry


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An isolated project (IRIS_HOME): recipes/ and datasets/."""
    (tmp_path / "recipes").mkdir()
    (tmp_path / "datasets").mkdir()
    monkeypatch.setenv("IRIS_HOME", str(tmp_path))
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def recipe(home: Path, dataset: str, name: str = "r") -> Path:
    """recipes/NAME.yaml with `dataset` (YAML lines) as its dataset block, which starts on line 6."""
    head = f"name: {name}\nbase_model: org/model\nchat_template: chatml\ntrain: {{max_steps: 1}}\ndataset:\n"
    return write(home / "recipes" / f"{name}.yaml", head + textwrap.indent(dataset, "  ") + "\n")


ROWS = [
    {"q": "Capital of France?", "a": "Paris.", "t": "geography"},
    {"q": "2+2?", "a": "4", "t": None},
]


# -- a new format is one entry ----------------------------------------------------------------------------------
def test_a_registered_format_validates_and_converts_without_any_other_change(home, with_formats):
    jsonl(home / "recipes" / "qa.jsonl", ROWS)
    path = recipe(home, "path: qa.jsonl\nformat: qa\ncolumns: {question: q, answer: a, topic: t}\nval_size: 0")
    r = load_recipe(path)  # the schema's enum, the mapping checks and the data checks all accept it
    report = prepare(r, home / "out")
    assert report["sources"][0]["format"] == "qa" and report["train"] == 2
    rows = {row["messages"][-1]["content"]: row["messages"] for row in load_split(home / "out" / "train.jsonl")}
    assert rows["Paris."] == [
        {"role": "system", "content": "Topic: geography"},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]
    assert rows["4"] == [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]


def test_a_registered_format_gets_the_located_errors_of_every_format(home, with_formats, capsys):
    jsonl(home / "recipes" / "qa.jsonl", ROWS)
    path = recipe(home, "path: qa.jsonl\nformat: qa\ncolumns: {questoin: q}")
    problems = pytest.raises(RecipeError, load_recipe, path).value.problems
    assert any(
        re.match(
            rf"{re.escape(str(path))}:8:\d+: dataset.columns.questoin: not a key of format qa "
            r"\(did you mean 'question'\?\); allowed: question, answer, topic, lists, reference",
            p,
        )
        for p in problems
    ), problems
    assert any(": dataset.columns.answer: format qa needs the answer column, e.g. answer: reply" in p for p in problems)
    assert main(["validate", str(path)]) == 2 and "not a key of format qa" in capsys.readouterr().err

    no_format = recipe(home, "path: qa.jsonl", name="nf")
    (problem,) = pytest.raises(RecipeError, load_recipe, no_format).value.problems
    assert problem.endswith(
        "a local path needs format: messages, sharegpt, alpaca, template, preference, unpaired, qa or pairs "
        "(and columns)"
    )

    typo = recipe(home, "path: qa.jsonl\nformat: qaa\ncolumns: {answer: a}", name="typo")
    (problem,) = pytest.raises(RecipeError, load_recipe, typo).value.problems
    assert (
        problem.startswith(f"{typo}:7:3: dataset.format: ") and "\"qaa\" is not allowed; did you mean 'qa'?" in problem
    )

    # a bad row names the source, its row and its column
    jsonl(home / "recipes" / "qa.jsonl", [*ROWS, {"q": "Empty?", "a": None}])
    good = recipe(home, "path: qa.jsonl\nformat: qa\ncolumns: {question: q, answer: a}", name="good")
    with pytest.raises(IrisError, match=r"recipes/qa\.jsonl row 3: column 'a' is empty"):
        prepare(load_recipe(good), home / "out")


def test_a_registered_format_serves_a_dataset_entry_and_the_column_merge(home, with_formats):
    entry = home / "datasets" / "quiz"
    entry.mkdir()
    jsonl(entry / "data.jsonl", [{"question": "Q1?", "reply": "A1", "subject": "s"}])
    (entry / "dataset.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "quiz",
                "description": "d",
                "license": "mit",
                "source": {"path": "data.jsonl"},
                "format": "qa",
                "columns": {"answer": "reply"},
            }
        )
    )
    path = recipe(home, "name: quiz\ncolumns: {topic: subject}\nval_size: 0")  # merged over the entry's columns
    prepare(load_recipe(path), home / "out")
    assert load_split(home / "out" / "train.jsonl")[0]["messages"] == [
        {"role": "system", "content": "Topic: s"},
        {"role": "user", "content": "Q1?"},
        {"role": "assistant", "content": "A1"},
    ]


def test_a_format_giving_another_kind_of_row_trains_the_objective_of_that_kind(home, with_formats):
    jsonl(
        home / "recipes" / "p.jsonl",
        [{"prompt": "p", "chosen": "c", "rejected": "r"}, {"prompt": "q", "chosen": "d", "rejected": "s"}],
    )
    path = recipe(home, "path: p.jsonl\nformat: pairs")
    (problem,) = pytest.raises(RecipeError, load_recipe, path).value.problems
    assert problem.endswith(
        "dataset.format: objective sft trains on chat rows (a conversation ending with the assistant's answer), "
        "but format pairs gives preference rows"
    )
    data = {"name": "r", "dataset": {"path": "p.jsonl", "format": "pairs"}, "train": {"sequence_len": 64}}
    with pytest.raises(IrisError, match="^dataset.format: objective sft trains on chat rows"):
        prepare(type("R", (), {"data": data, "path": path})(), home / "out")

    # the same format trains a preference objective: its pairs are prepared without any other change
    r = load_recipe(path, ["objective=dpo", "dataset.val_size=0.5"])
    report = prepare(r, home / "out")
    assert (report["kind"], report["train"], report["val"]) == (PREFERENCE, 1, 1)
    (row,) = load_split(home / "out" / "train.jsonl")
    assert row["chosen"] == [{"role": "assistant", "content": row["chosen"][0]["content"]}]


def test_outside_its_registry_a_throwaway_format_is_unknown(home):
    jsonl(home / "recipes" / "qa.jsonl", ROWS)
    path = recipe(home, "path: qa.jsonl\nformat: qa\ncolumns: {answer: a}")
    (problem,) = pytest.raises(RecipeError, load_recipe, path).value.problems
    assert '"qa" is not allowed' in problem
    data = {"name": "r", "dataset": {"path": "qa.jsonl", "format": "qa"}, "train": {"sequence_len": 64}}
    with pytest.raises(IrisError, match=r"^dataset.format: unknown format 'qa'; use one of messages, sharegpt"):
        prepare(type("R", (), {"data": data, "path": path})(), home / "out")


def test_the_registry_refuses_a_malformed_entry():
    registry = FormatRegistry()
    registry.register(QA)
    for bad in (
        QA,  # the name is taken
        type("Kindless", (QA,), {"name": "k", "produces": "poem"}),
        type("Clash", (QA,), {"name": "c", "keys": {"lists": None}}),
        type("Orphan", (QA,), {"name": "o", "required": {"nope": "x"}}),
    ):
        with pytest.raises(ValueError):
            registry.register(bad)
    assert registry.names() == ("qa",)


def test_row_problems_of_the_builtin_formats_are_row_problems():
    """The conversion of each built-in format refuses a row that does not fit with a RowProblem (located by the
    caller), never another exception."""
    for fmt in FORMATS.names():
        mapping_columns = {"user": "{Q}", "assistant": "{A[3]}", "lists": {"A": ";"}} if fmt == "template" else {}
        row_format = FORMATS.get(fmt)
        with pytest.raises(RowProblem):
            row_format.convert(
                {"Q": "q", "A": "a;b", "messages": 3, "conversations": 3, "instruction": 1}, mapping_columns
            )


# -- the names live in the registry only ------------------------------------------------------------------------
def test_the_schema_file_carries_the_registry_names():
    """The schema file keeps the format names for editors; scripts/gen_reference.py writes them from the registry."""
    on_disk = json.loads(schema_path().read_text())
    assert on_disk["$defs"]["source"]["properties"]["format"]["enum"] == list(FORMATS.names())
    assert schema_path().read_text() == schema_text(), "schema file is stale: run python scripts/gen_reference.py"
    assert load_schema()["$defs"]["source"]["properties"]["format"]["enum"] == list(FORMATS.names())


ROW_KEY = "messages"  # also the key of every normalized row ({"messages": [...]}), read and written by name


def _row_key_use(node: ast.Constant, parents: dict) -> bool:
    """`row["messages"]`, `{"messages": ...}`, `row.get("messages")` and Axolotl's `field_messages: "messages"`."""
    parent = parents.get(node)
    if isinstance(parent, ast.Subscript) and parent.slice is node:
        return True
    if isinstance(parent, ast.Call) and isinstance(parent.func, ast.Attribute) and parent.func.attr == "get":
        return parent.args[:1] == [node]
    if isinstance(parent, ast.Dict):
        if node in parent.keys:
            return True
        key = parent.keys[parent.values.index(node)]
        return isinstance(key, ast.Constant) and key.value == "field_messages"
    return False


def spelled_format_names(package: Path, names: tuple[str, ...], skip: Path) -> list[str]:
    """Where a format name is written outside the registry module: a string that is exactly a name (outside the
    row-key uses of "messages"), or a string or comment that lists names ("messages, sharegpt or ...")."""
    name = r"(?<![\w-])(?:" + "|".join(map(re.escape, names)) + r")(?![\w-])"
    listed = re.compile(rf"`?{name}`?(?:\s*[,|/]\s*|\s+(?:or|and)\s+)`?{name}")
    found = []
    for path in sorted(package.rglob("*.py")):
        if path == skip:
            continue
        text = path.read_text()
        tree = ast.parse(text)
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        where = path.relative_to(package.parent)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            if node.value in names and not (node.value == ROW_KEY and _row_key_use(node, parents)):
                found.append(f"{where}:{node.lineno}: {node.value!r}")
            elif m := listed.search(node.value):
                found.append(f"{where}:{node.lineno}: lists {m.group(0)!r}")
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT and (m := listed.search(tok.string)):
                found.append(f"{where}:{tok.start[0]}: a comment lists {m.group(0)!r}")
    return found


def test_format_names_are_spelled_in_the_registry_only():
    assert spelled_format_names(PACKAGE, FORMATS.names(), skip=REGISTRY_MODULE) == []


@pytest.mark.parametrize(
    "source",
    [
        'def f(fmt):\n    return fmt == "alpaca"\n',
        'KEYS = {"sharegpt": ("from", "value")}\n',
        'ERROR = "format must be messages or template"\n',
        "# formats: sharegpt and alpaca\n",
        'def f(row, fmt):\n    return fmt in ("messages",)\n',
    ],
)
def test_the_name_check_sees_a_restated_name(tmp_path, source):
    """A module that restates a format name is caught; the normalized row's key "messages" is not a format name."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "ok.py").write_text(
        'def f(row):\n    return row["messages"], {"messages": row.get("messages")}\n'
    )
    (tmp_path / "pkg" / "bad.py").write_text(source)
    found = spelled_format_names(tmp_path / "pkg", FORMATS.names(), skip=REGISTRY_MODULE)
    assert len(found) == 1 and found[0].startswith("pkg/bad.py:"), found
