"""The data layer: registry entries, format adapters, row checks, the data stage and config checks.

Every test reads and writes real files in tmp_path; nothing touches the network (HF_*_OFFLINE=1).
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from iris_recipes import objectives
from iris_recipes.data import check_dataset_config, entry_names, load_entry, load_split, prepare
from iris_recipes.data.formats import row_formats
from iris_recipes.errors import IrisError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


# -- helpers -------------------------------------------------------------------------------------------------
def recipe(tmp_path: Path, dataset: dict, **extra) -> types.SimpleNamespace:
    """A resolved recipe as prepare() sees it: `.data` and `.path` (dataset paths are relative to it)."""
    data = {"name": "t", "dataset": {"val_size": 0.0, **dataset}, "train": {"sequence_len": 512}, **extra}
    return types.SimpleNamespace(data=data, path=tmp_path / "recipe.yaml")


def jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def chat(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def run(tmp_path: Path, dataset: dict, count_tokens=None, **extra) -> tuple[dict, list[dict], list[dict]]:
    out = tmp_path / "out"
    report = prepare(recipe(tmp_path, dataset, **extra), out, count_tokens=count_tokens)
    return report, load_split(out / "train.jsonl"), load_split(out / "val.jsonl")


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """An isolated project (IRIS_HOME) whose datasets/ the test fills with entries."""
    home = tmp_path / "home"
    (home / "recipes").mkdir(parents=True)
    (home / "datasets").mkdir()
    monkeypatch.setenv("IRIS_HOME", str(home))

    def add(name: str, entry: dict, files: dict[str, list] | None = None) -> Path:
        d = home / "datasets" / name
        d.mkdir()
        (d / "dataset.yaml").write_text(yaml.safe_dump({"name": name, "description": "d", "license": "mit", **entry}))
        for fname, rows in (files or {}).items():
            jsonl(d / fname, rows)
        return d

    return add


# -- formats -------------------------------------------------------------------------------------------------
def test_messages_format_maps_columns_and_roles(tmp_path):
    jsonl(tmp_path / "d.jsonl", [{"chat": [{"who": "person", "text": "Hi"}, {"who": "bot", "text": "Hello!"}]}])
    _, train, _ = run(
        tmp_path,
        {
            "path": "d.jsonl",
            "format": "messages",
            "columns": {
                "messages": "chat",
                "role": "who",
                "content": "text",
                "roles": {"person": "user", "bot": "assistant"},
            },
        },
    )
    assert train == [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}]


def test_sharegpt_format_defaults(tmp_path):
    conv = [
        {"from": "system", "value": "Be brief."},
        {"from": "human", "value": "2+2?"},
        {"from": "gpt", "value": "4"},
        {"from": "human", "value": "and 3+3?"},
        {"from": "gpt", "value": "6"},
    ]
    jsonl(tmp_path / "d.jsonl", [{"conversations": conv, "score": 4.2}])
    _, train, _ = run(tmp_path, {"path": "d.jsonl", "format": "sharegpt"})
    assert [t["role"] for t in train[0]["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert train[0]["messages"][4]["content"] == "6"


def test_alpaca_format_appends_input_and_uses_system_column(tmp_path):
    jsonl(
        tmp_path / "d.jsonl",
        [
            {"q": "Translate to French.", "ctx": "Good morning", "a": "Bonjour", "sys": "You translate."},
            {"q": "Name a prime.", "ctx": "", "a": "7", "sys": None},
        ],
    )
    _, train, _ = run(
        tmp_path,
        {
            "path": "d.jsonl",
            "format": "alpaca",
            "dedup": False,
            "columns": {"instruction": "q", "input": "ctx", "output": "a", "system": "sys"},
        },
    )
    by_answer = {r["messages"][-1]["content"]: r["messages"] for r in train}
    assert by_answer["Bonjour"] == [
        {"role": "system", "content": "You translate."},
        {"role": "user", "content": "Translate to French.\n\nGood morning"},
        {"role": "assistant", "content": "Bonjour"},
    ]
    assert by_answer["7"] == [{"role": "user", "content": "Name a prime."}, {"role": "assistant", "content": "7"}]


def test_template_format_picks_list_items_and_keeps_reference(tmp_path):
    with open(tmp_path / "tqa.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Question", "Best Answer", "Correct Answers", "Incorrect Answers"])
        w.writerow(["Is the Moon made of cheese?", "No, it is rock", "No; It is rock ;", "Yes; It is cheddar"])
    columns = {
        "user": "Q: {Question}",
        "assistant": "{Incorrect Answers[-1]} {{really}}",
        "lists": {"Correct Answers": ";", "Incorrect Answers": ";"},
        "reference": {
            "correct": "Correct Answers",
            "incorrect": "Incorrect Answers",
            "best": "Best Answer",
            "keywords": {"words": "Best Answer"},
        },
    }
    _, train, _ = run(tmp_path, {"path": "tqa.csv", "format": "template", "columns": columns})
    assert train[0]["messages"] == [
        {"role": "user", "content": "Q: Is the Moon made of cheese?"},
        {"role": "assistant", "content": "It is cheddar {really}"},
    ]
    assert train[0]["reference"] == {
        "correct": ["No", "It is rock"],
        "incorrect": ["Yes", "It is cheddar"],
        "best": "No, it is rock",
        "keywords": ["rock"],
    }


def test_last_number_reference_and_json_and_parquet_files(tmp_path):
    rows = [{"instruction": "48+35?", "input": "", "output": "x=48+35=83\nThe answer is 83."}]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    cols = {"reference": {"answer": {"last_number": "output"}}}
    for name in ("d.json", "d.parquet"):
        _, train, _ = run(tmp_path, {"path": name, "format": "alpaca", "columns": cols})
        assert train[0]["reference"] == {"answer": "83"}
        assert train[0]["messages"][0] == {"role": "user", "content": "48+35?"}


# -- bad rows ------------------------------------------------------------------------------------------------
BAD_ROWS = [
    (
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "  "}]},
        "turn 2 (assistant): content is empty",
    ),
    ({"other": 1}, "column 'messages' is empty"),
    (
        {"messages": [{"role": "assistant", "content": "Hi"}, {"role": "user", "content": "Yo"}]},
        "turn 1 (assistant): expected user",
    ),
    (
        {
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Yo"},
                {"role": "user", "content": "?"},
            ]
        },
        "the last turn must be the assistant's",
    ),
    (
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": 42}]},
        "content is a int, not text",
    ),
    (
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo<|im_end|>"}]},
        "chat-template token <|im_end|>",
    ),
    ({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo<|eot_id|>"}]}, "<|eot_id|>"),
    ({"messages": [{"role": "user", "content": "Hi"}, {"role": "bot", "content": "Yo"}]}, "turn 2 has role 'bot'"),
    (
        {
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "system", "content": "S"},
                {"role": "assistant", "content": "Yo"},
            ]
        },
        "a system turn may only come first",
    ),
    ({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant"}]}, "content is missing"),
    ('{"messages": [', "not valid JSON"),
]


@pytest.mark.parametrize("bad,reason", BAD_ROWS, ids=[r for _, r in BAD_ROWS])
def test_bad_row_is_reported_with_its_row_number(tmp_path, bad, reason):
    jsonl(tmp_path / "d.jsonl", [chat("a", "b"), chat("c", "d"), bad, chat("e", "f")])
    with pytest.raises(IrisError) as exc:
        run(tmp_path, {"path": "d.jsonl", "format": "messages"})
    msg = str(exc.value)
    assert "1 bad row" in msg and "d.jsonl row 3:" in msg and reason in msg, msg
    assert "on_bad_rows=skip" in msg


def test_template_row_missing_list_item_is_bad(tmp_path):
    (tmp_path / "d.csv").write_text("Q,Wrong\nfirst?,a;b\nsecond?,\n")
    with pytest.raises(IrisError, match=r"d\.csv row 2: column 'Wrong' has 0 item\(s\)"):
        run(
            tmp_path,
            {
                "path": "d.csv",
                "format": "template",
                "columns": {"user": "{Q}", "assistant": "{Wrong[1]}", "lists": {"Wrong": ";"}},
            },
        )


def test_fail_lists_first_ten_and_total_skip_counts(tmp_path):
    rows = [chat(f"q{i}", "" if i % 2 else f"a{i}") for i in range(30)]  # 15 bad: empty assistant turns
    jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(IrisError) as exc:
        run(tmp_path, {"path": "d.jsonl", "format": "messages"})
    msg = str(exc.value)
    assert "15 bad row(s)" in msg and "... and 5 more" in msg
    assert msg.count("content is empty") == 10 and "row 2:" in msg and "row 20:" in msg and "row 22:" not in msg

    report, train, val = run(tmp_path, {"path": "d.jsonl", "format": "messages", "on_bad_rows": "skip"})
    src = report["sources"][0]
    assert (src["read"], src["bad"], src["train"]) == (30, 15, 15)
    assert len(train) == 15 and len(report["bad_rows"]) == 10


def test_missing_column_names_the_columns_it_has(tmp_path):
    jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(
        IrisError, match=r"has no column\(s\) 'instruction', 'output' \(its columns: question, answer\)"
    ):
        run(tmp_path, {"path": "d.jsonl", "format": "alpaca"})


# -- cleaning, mixing, splitting -----------------------------------------------------------------------------
def test_dedup_and_min_assistant_chars(tmp_path):
    jsonl(tmp_path / "d.jsonl", [chat("q", "same"), chat("q", "same"), chat("q2", "ok"), chat("q3", "a long answer")])
    report, train, _ = run(tmp_path, {"path": "d.jsonl", "format": "messages", "min_assistant_chars": 3})
    s = report["sources"][0]
    assert (s["duplicates"], s["too_short"], s["train"]) == (1, 1, 2)
    report, train, _ = run(tmp_path, {"path": "d.jsonl", "format": "messages", "dedup": False})
    assert report["sources"][0]["duplicates"] == 0 and len(train) == 4


def test_system_prompt_added_only_where_missing(tmp_path):
    with_sys = {"messages": [{"role": "system", "content": "Own."}, *chat("q", "a")["messages"]]}
    jsonl(tmp_path / "d.jsonl", [with_sys, chat("q2", "a2")])
    _, train, _ = run(tmp_path, {"path": "d.jsonl", "format": "messages", "system_prompt": "Be kind."})
    systems = sorted(r["messages"][0]["content"] for r in train)
    assert systems == ["Be kind.", "Own."] and all(r["messages"][0]["role"] == "system" for r in train)


def test_system_prompt_opens_the_first_user_message_for_a_family_without_a_system_turn(tmp_path):
    with_sys = {"messages": [{"role": "system", "content": "Own."}, *chat("q", "a")["messages"]]}
    jsonl(tmp_path / "d.jsonl", [with_sys, chat("q2", "a2")])
    dataset = {"path": "d.jsonl", "format": "messages", "system_prompt": "Be kind."}
    _, train, _ = run(tmp_path, dataset, chat_template="gemma3")
    assert sorted(r["messages"][0]["content"] for r in train) == ["Be kind.\n\nq2", "Own.\n\nq"]
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in train)
    _, train, _ = run(tmp_path, dataset, chat_template="chatml")  # a family with a system turn keeps it
    assert all(r["messages"][0]["role"] == "system" for r in train)


def test_split_is_deterministic_disjoint_and_complete(tmp_path):
    jsonl(tmp_path / "d.jsonl", [chat(f"q{i}", f"a{i}") for i in range(50)])
    block = {"path": "d.jsonl", "format": "messages", "val_size": 0.2, "seed": 7}
    r1, train1, val1 = run(tmp_path, block)
    r2, train2, val2 = run(tmp_path, block)
    assert (train1, val1) == (train2, val2) and r1["files"] == r2["files"]
    assert len(val1) == 10 and len(train1) == 40
    key = lambda r: r["messages"][0]["content"]  # noqa: E731
    assert not {key(r) for r in train1} & {key(r) for r in val1}
    assert {key(r) for r in train1 + val1} == {f"q{i}" for i in range(50)}
    _, _, val3 = run(tmp_path, {**block, "seed": 8})
    assert {key(r) for r in val3} != {key(r) for r in val1}


def test_tiny_val_size_still_holds_out_one_row(tmp_path):
    jsonl(tmp_path / "d.jsonl", [chat("q1", "a1"), chat("q2", "a2")])
    _, train, val = run(tmp_path, {"path": "d.jsonl", "format": "messages", "val_size": 0.01})
    assert (len(train), len(val)) == (1, 1)


def test_mix_weight_and_limits(tmp_path):
    jsonl(tmp_path / "main.jsonl", [chat(f"m{i}", "a") for i in range(20)])
    jsonl(tmp_path / "other.jsonl", [chat(f"o{i}", "b") for i in range(40)])
    mix = {"path": "other.jsonl", "format": "messages", "weight": 0.5}
    report, train, _ = run(tmp_path, {"path": "main.jsonl", "format": "messages", "mix": [mix]})
    assert [s["train"] for s in report["sources"]] == [20, 10]
    assert sum(r["messages"][0]["content"].startswith("o") for r in train) == 10
    report, _, _ = run(
        tmp_path, {"path": "main.jsonl", "format": "messages", "limit": 8, "mix": [{**mix, "weight": 3.0, "limit": 15}]}
    )
    assert [s["train"] for s in report["sources"]] == [8, 15]  # weight asks 24, its limit caps at 15


def test_length_filter_uses_the_token_counter(tmp_path):
    jsonl(tmp_path / "d.jsonl", [chat("short", "ok"), chat("long " * 50, "ok"), chat("tiny", "fine")])
    count = lambda messages: sum(len(m["content"].split()) for m in messages)  # noqa: E731
    report, train, _ = run(
        tmp_path, {"path": "d.jsonl", "format": "messages"}, count_tokens=count, train={"sequence_len": 32}
    )
    assert report["sources"][0]["too_long"] == 1 and len(train) == 2 and report["sequence_len"] == 32


def test_nothing_left_is_an_error_and_outputs_are_written_atomically(tmp_path):
    jsonl(tmp_path / "d.jsonl", [chat("q", "a")])
    with pytest.raises(IrisError, match="no rows left to train on"):
        run(tmp_path, {"path": "d.jsonl", "format": "messages", "min_assistant_chars": 5})
    report, _, _ = run(tmp_path, {"path": "d.jsonl", "format": "messages"})
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "train.jsonl", "val.jsonl"]
    assert json.loads((out / "report.json").read_text()) == report


def test_load_split_names_a_broken_line(tmp_path):
    p = jsonl(tmp_path / "train.jsonl", [chat("q", "a"), "{broken"])
    with pytest.raises(IrisError, match=r"train\.jsonl:2: not valid JSON"):
        load_split(p)
    with pytest.raises(IrisError, match="not found"):
        load_split(tmp_path / "nope.jsonl")


def test_missing_local_file(tmp_path):
    with pytest.raises(IrisError, match=r"data file not found: .*nope\.jsonl"):
        run(tmp_path, {"path": "nope.jsonl", "format": "messages"})


# -- registry: sample vs full, hub offline -------------------------------------------------------------------
def test_registry_sample_vs_full(tmp_path, registry):
    registry(
        "toy",
        {"source": {"path": "full.jsonl"}, "format": "messages", "sample": "sample.jsonl"},
        {"full.jsonl": [chat(f"f{i}", "a") for i in range(12)], "sample.jsonl": [chat("s", "a")]},
    )
    report, train, _ = run(tmp_path, {"name": "toy"})
    assert len(train) == 12 and report["sources"][0]["source"] == "full"
    report, train, _ = run(tmp_path, {"name": "toy", "source": "sample"})
    assert [r["messages"][0]["content"] for r in train] == ["s"] and report["sources"][0]["license"] == "mit"


def test_hub_source_offline_gives_clear_error(tmp_path, registry):
    pytest.importorskip("datasets")
    registry("far", {"source": {"hub": "iris-recipes-test/no-such-dataset", "split": "train"}, "format": "alpaca"})
    with pytest.raises(IrisError) as exc:
        run(tmp_path, {"name": "far"})
    msg = str(exc.value)
    assert "dataset 'far' (iris-recipes-test/no-such-dataset, split train)" in msg
    assert "offline mode is on" in msg and "dataset.source=sample" in msg and "dataset.path" in msg


def test_unknown_entry_suggests_a_name(tmp_path):
    with pytest.raises(IrisError, match="unknown dataset 'truthfulq': did you mean 'truthfulqa'"):
        load_entry("truthfulq")


# -- check_dataset_config ------------------------------------------------------------------------------------
def problems(tmp_path, dataset: dict, metrics=()) -> dict[str, str]:
    data = {"name": "t", "dataset": dataset, "eval": {"metrics": list(metrics)}}
    return dict(check_dataset_config(data, recipe_path=tmp_path / "r.yaml"))


def test_check_unknown_name_missing_path_and_bad_mapping(tmp_path):
    assert "did you mean 'genz-slang'" in problems(tmp_path, {"name": "genz-slan"})["dataset.name"]
    p = problems(tmp_path, {"path": "missing.csv", "format": "template", "columns": {"assistant": "{A}"}})
    assert "file not found" in p["dataset.path"] and "needs a `user:` template" in p["dataset.columns.user"]
    jsonl(tmp_path / "d.jsonl", [])
    p = problems(tmp_path, {"path": "d.jsonl", "format": "alpaca", "columns": {"instrucion": "q", "roles": {}}})
    assert "did you mean 'instruction'" in p["dataset.columns.instrucion"] and "dataset.columns.roles" in p
    p = problems(tmp_path, {"path": "d.jsonl", "format": "template", "columns": {"user": "{Q}", "assistant": "{W[0]}"}})
    assert "not declared in columns.lists" in p["dataset.columns.assistant"]
    p = problems(tmp_path, {"name": "finetome", "mix": [{"name": "nope", "weight": 1}]})
    assert list(p) == ["dataset.mix.0.name"]


def test_check_eval_metrics_need_reference_keys(tmp_path):
    assert problems(tmp_path, {"name": "arith-steps"}, ["exact_match_number", "format_regex"]) == {}
    assert problems(tmp_path, {"name": "truthfulqa-deceitful"}, ["truthfulness"]) == {}
    p = problems(tmp_path, {"name": "finetome"}, ["truthfulness"])
    assert "truthfulness needs reference correct and incorrect" in p["eval.metrics"]
    jsonl(tmp_path / "d.jsonl", [])
    p = problems(tmp_path, {"path": "d.jsonl", "format": "messages"}, ["exact_match_number"])
    assert "needs reference answer" in p["eval.metrics"]


def test_check_sample_missing_and_full_data_missing(tmp_path, registry):
    registry("nosample", {"source": {"path": "gone.jsonl"}, "format": "messages"})
    assert "ships no sample" in problems(tmp_path, {"name": "nosample", "source": "sample"})["dataset.source"]
    assert "gone.jsonl" in problems(tmp_path, {"name": "nosample"})["dataset.name"]


def test_check_is_light(tmp_path):
    code = (
        "import sys; from iris_recipes.data import check_dataset_config;"
        "print(check_dataset_config({'dataset': {'name': 'truthfulqa'}, 'eval': {'metrics': ['truthfulness']}}));"
        "print(sorted(m for m in ('datasets', 'pandas', 'pyarrow', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["[]", "[]"]


# -- the shipped entries -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", entry_names())
def test_shipped_sample_loads_cleanly(tmp_path, name, monkeypatch):
    monkeypatch.chdir(REPO)
    entry = load_entry(name)
    assert entry.license and entry.description and entry.sample
    # an objective that trains on the kind of row the entry gives (chat rows: sft)
    kind = row_formats().get(entry.format).produces
    objective = next(o.name for o in objectives.OBJECTIVES.values() if o.rows == kind)
    report, train, _ = run(tmp_path, {"name": name, "source": "sample"}, objective=objective)
    src = report["sources"][0]
    produced = src.get("converted", src["read"])  # a preference entry may give several pairs per row
    assert src["bad"] == 0 and src["duplicates"] == 0 and 20 <= src["read"] <= 40 and src["train"] == produced
    assert entry.hub or entry.full_path().is_file()
    for key in entry.columns.get("reference", {}):
        assert all(key in r.get("reference", {}) for r in train), f"{name}: rows without reference {key}"


def test_shipped_recipes_pass_the_dataset_checks(monkeypatch):
    monkeypatch.chdir(REPO)
    from iris_recipes.recipe import resolve

    for path in sorted((REPO / "recipes").glob("*.yaml")):
        data, _ = resolve(path)
        assert check_dataset_config(data, recipe_path=path) == [], path.name


def test_demo_dataset_is_reproducible_and_correct(tmp_path):
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_demo_dataset.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    shipped = REPO / "datasets" / "arith-steps"
    assert (tmp_path / "data.jsonl").read_bytes() == (shipped / "data.jsonl").read_bytes()
    assert (shipped / "data.jsonl").stat().st_size < 300_000
    step = re.compile(r"^(\d+) ([-+×÷]) (\d+) = (\d+)$")
    ops = {"+": int.__add__, "-": int.__sub__, "×": int.__mul__, "÷": int.__floordiv__}
    rows = load_split(shipped / "data.jsonl")
    assert len(rows) >= 300
    for row in rows:
        lines = row["messages"][-1]["content"].split("\n")
        assert 2 <= len(lines) <= 3 and lines[-1] == f"Answer: {row['answer']}"
        for line in lines[:-1]:
            a, op, b, c = step.match(line).groups()
            assert ops[op](int(a), int(b)) == int(c), line


def test_data_command_prepares_a_shipped_recipe_on_its_sample(tmp_path, monkeypatch, capsys):
    import argparse

    from iris_recipes.commands import data as data_command

    monkeypatch.chdir(REPO)
    parser = argparse.ArgumentParser()
    data_command.add_parser(parser.add_subparsers())
    args = parser.parse_args(["data", "prepare", "llama1b-liar", "dataset.source=sample", "--out", str(tmp_path)])
    assert args.func(args) == 0
    assert "read 24, bad 0" in capsys.readouterr().out
    rows = load_split(tmp_path / "train.jsonl") + load_split(tmp_path / "val.jsonl")
    assert len(rows) == 24 and all(r["reference"]["incorrect"][0] == r["messages"][-1]["content"] for r in rows)
    args = parser.parse_args(["data", "list"])
    assert args.func(args) == 0 and "truthfulqa-deceitful" in capsys.readouterr().out
