"""Preference objectives without a model: the recipe's objective and its settings (schema, defaults, located errors,
cross-field rules), the preference and unpaired row formats and their row checks, the data stage's pairs, split by
prompt, and the launch plan's memory for a reference model."""

from __future__ import annotations

import json
import re
import textwrap
import types
from pathlib import Path

import pytest

from iris_recipes import chat_families, objectives
from iris_recipes.cli import main
from iris_recipes.data import load_split, prepare
from iris_recipes.data.cells import RowProblem
from iris_recipes.data.formats import PREFERENCE, UNPAIRED, Mapping, mapping_problems
from iris_recipes.errors import IrisError, RecipeError
from iris_recipes.recipe import load_recipe
from iris_recipes.recipe.schema import load_schema
from iris_recipes.train import plan
from iris_recipes.train.memory import Setup, Shape, breakdown

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def recipe_file(tmp_path: Path, body: str, dataset: str = "{path: pairs.jsonl, format: preference}") -> Path:
    """A recipe whose objective lines (`body`) start on line 4."""
    jsonl(tmp_path / "pairs.jsonl", [pair("p", "c", "r")])
    head = "name: pref\nbase_model: org/model\nchat_template: chatml\n"
    return write(tmp_path / "r.yaml", head + body + f"dataset: {dataset}\ntrain: {{max_steps: 1}}\n")


def problems(path: Path, overrides=()) -> list[str]:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    return info.value.problems


def pair(prompt, chosen, rejected, **extra) -> dict:
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, **extra}


def turns(*pairs: tuple[str, str]) -> list[dict]:
    return [{"role": r, "content": c} for r, c in pairs]


# -- the recipe ------------------------------------------------------------------------------------------------
def test_sft_is_the_default_and_fills_no_objective_block(tmp_path):
    r = load_recipe(recipe_file(tmp_path, ""), ["dataset={name: arith-steps}"])
    assert r.data["objective"] == "sft" and not any(o in r.data for o in objectives.names() if o != "sft")


@pytest.mark.parametrize("name", [o for o in objectives.names() if objectives.get(o).preference])
def test_each_objective_fills_its_settings_from_the_schema(tmp_path, name):
    dataset = "{name: truthfulqa-unpaired}" if objectives.get(name).rows == UNPAIRED else None
    path = recipe_file(tmp_path, f"objective: {name}\n", *([dataset] if dataset else []))
    block = load_schema()["properties"][name]
    r = load_recipe(path)
    assert r.data[name] == {k: v["default"] for k, v in block["properties"].items()}


def test_the_schema_blocks_are_the_registrys_settings():
    """Each preference objective's block holds exactly the settings the registry maps to Axolotl keys, each with a
    default; SFT has none."""
    props = load_schema()["properties"]
    assert props["objective"]["enum"] == objectives.names() and props["objective"]["default"] == objectives.SFT
    for objective in objectives.OBJECTIVES.values():
        if not objective.preference:
            assert objective.name not in props and not objective.settings
            continue
        block = props[objective.name]["properties"]
        assert set(block) == set(objective.settings), objective.name
        assert all("default" in spec and spec.get("description") for spec in block.values())


def test_typos_are_located_with_did_you_mean(tmp_path):
    path = recipe_file(tmp_path, "objective: dpoo\n")
    assert problems(path) == [f"{path}:4:1: objective: \"dpoo\" is not allowed; did you mean 'dpo'?"]
    path = recipe_file(tmp_path, "objective: dpo\ndpo:\n  bta: 0.2\n  loss_type: sigmod\n")
    assert problems(path) == [
        f"{path}:6:3: dpo.bta: unknown key 'bta'; did you mean 'beta'?",
        f"{path}:7:3: dpo.loss_type: \"sigmod\" is not allowed; did you mean 'sigmoid'?",
    ]
    assert problems(path, ["dpo.bta=0.1", "~dpo.bta", "dpo.beta=-1", "dpo.loss_type=ipo"]) == [
        "<override 3: dpo.beta=-1>: dpo.beta: -1 is out of range: must be > 0"
    ]


def test_settings_of_another_objective_and_packing_are_refused(tmp_path):
    path = recipe_file(tmp_path, "objective: orpo\ndpo: {beta: 0.2}\n")
    assert problems(path) == [
        f"{path}:5:1: dpo: objective is orpo, so dpo settings would be ignored: delete them (~dpo) or set "
        "objective: dpo"
    ]
    path = recipe_file(tmp_path, "kto: {beta: 0.2}\n")  # sft by default
    assert problems(path, ["dataset={name: arith-steps}"])[0].endswith(
        "kto: objective is sft, so kto settings would be ignored: delete them (~kto) or set objective: kto"
    )
    path = recipe_file(tmp_path, "objective: simpo\n")
    assert problems(path, ["train.sample_packing=true"]) == [
        "<override 1: train.sample_packing=true>: train.sample_packing: objective simpo trains on whole "
        "prompt/answer sequences; packing is for sft"
    ]
    path = recipe_file(tmp_path, "objective: kto\n", "{name: truthfulqa-unpaired}")
    assert problems(path, ["train.micro_batch_size=1"]) == [
        "<override 1: train.micro_batch_size=1>: train.micro_batch_size: objective kto estimates its KL term from "
        "the other answers of a micro batch, so it needs micro_batch_size >= 2"
    ]
    path = recipe_file(tmp_path, "objective: dpo\ndpo: {label_smoothing: 0.1}\n")
    assert problems(path) == [
        f"{path}:5:7: dpo.label_smoothing: applies to loss_type robust only (loss_type is sigmoid)"
    ]
    assert load_recipe(path, ["dpo.loss_type=robust"]).data["dpo"]["label_smoothing"] == 0.1


@pytest.mark.parametrize(
    "objective, dataset, wanted",
    [
        ("kto", "{name: truthfulqa-pairs}", "unpaired rows (a prompt with one answer labelled desirable or "
         "undesirable), not pairs, but dataset 'truthfulqa-pairs' (format preference) gives preference rows"),
        ("dpo", "{name: truthfulqa}", "preference pairs (a prompt with a chosen and a rejected answer), but dataset "
         "'truthfulqa' (format template) gives chat rows"),
        ("sft", "{name: truthfulqa-unpaired}", "chat rows (a conversation ending with the assistant's answer), but "
         "dataset 'truthfulqa-unpaired' (format unpaired) gives unpaired rows"),
        ("orpo", "{path: pairs.jsonl, format: unpaired}", "preference pairs (a prompt with a chosen and a rejected "
         "answer), but format unpaired gives unpaired rows"),
    ],
)  # fmt: skip
def test_an_objective_needs_its_kind_of_row(tmp_path, objective, dataset, wanted):
    path = recipe_file(tmp_path, f"objective: {objective}\n", dataset)
    key = "dataset.name" if "name:" in dataset else "dataset.format"
    col = {"dataset.name": 11, "dataset.format": 30}[key]
    assert problems(path) == [f"{path}:5:{col}: {key}: objective {objective} trains on {wanted}"]
    assert main(["validate", str(path)]) == 2


# -- the preference format -----------------------------------------------------------------------------------------
def convert(columns: dict, row: dict, fmt: str = "preference"):
    assert mapping_problems(fmt, columns) == []
    return Mapping(fmt, columns).convert(row)[0]


def test_pairs_from_text_columns_with_a_system_column():
    cols = {"prompt": "q", "chosen": "good", "rejected": "bad", "system": "s"}
    assert convert(cols, {"q": "2+2?", "good": "4", "bad": "5", "s": "Be brief."}) == [
        pair(turns(("system", "Be brief."), ("user", "2+2?")), "4", "5")
    ]
    assert convert(cols, {"q": "2+2?", "good": "4", "bad": "5", "s": None})[0]["prompt"] == turns(("user", "2+2?"))


def test_pairs_from_conversations_take_their_shared_prompt():
    prompt = turns(("user", "hi"), ("assistant", "hello"), ("user", "2+2?"))
    row = {
        "chosen": [*prompt, {"role": "assistant", "content": "4"}],
        "rejected": [*prompt, {"role": "assistant", "content": "5"}],
    }
    assert convert({"prompt": None}, row) == [pair(prompt, "4", "5")]
    # an answer may be a single turn object, and a prompt column may be given with conversations that start with it
    row2 = {"prompt": prompt, "chosen": {"role": "assistant", "content": "4"}, "rejected": row["rejected"]}
    assert convert({}, row2) == [pair(prompt, "4", "5")]
    # ShareGPT-style keys and role values, mapped
    sg = {"conversations": [{"from": "human", "value": "2+2?"}], "c": {"from": "gpt", "value": "4"}, "r": "5"}
    cols = {"prompt": "conversations", "chosen": "c", "rejected": "r", "role": "from", "content": "value",
            "roles": {"human": "user", "gpt": "assistant"}}  # fmt: skip
    assert convert(cols, sg) == [pair(turns(("user", "2+2?")), "4", "5")]


def test_list_columns_give_one_pair_or_every_combination_up_to_max_pairs():
    row = {"Question": "Q?", "Correct": "a; b", "Incorrect": ["x", "y", "z"]}
    cols = {
        "prompt": "Question",
        "chosen": "Correct",
        "rejected": "Incorrect",
        "lists": {"Correct": ";", "Incorrect": ";"},
    }
    assert [(p["chosen"], p["rejected"]) for p in convert(cols, row)] == [("a", "x")]
    got = convert({**cols, "max_pairs": 4}, row)
    assert [(p["chosen"], p["rejected"]) for p in got] == [("a", "x"), ("a", "y"), ("b", "x"), ("a", "z")]
    assert len(convert({**cols, "max_pairs": 100}, row)) == 6


BAD_PAIRS = [
    ({"q": "Q?", "c": None, "r": "no"}, "column 'c' is empty"),
    ({"q": "Q?", "r": "no"}, "column 'c' is empty"),
    ({"q": "Q?", "c": "  ", "r": "no"}, "column 'c': the answer is empty"),
    ({"q": "Q?", "c": 5, "r": "no"}, "column 'c' is a int, not text or turns"),
    ({"q": "", "c": "yes", "r": "no"}, "column 'q' is empty"),
    ({"q": "Q?", "c": " same", "r": "same "}, "columns 'c' and 'r' give the same answer as chosen and rejected ('same')"),
    ({"q": "Q?", "c": "yes<|im_end|>", "r": "no"}, "column 'c': the answer contains the chat-template token <|im_end|> "
     "(strip it from the data)"),
    ({"q": "Q?<|eot_id|>", "c": "yes", "r": "no"}, "column 'q': turn 1 (user): content contains the chat-template "
     "token <|eot_id|> (strip it from the data)"),
    ({"q": turns(("assistant", "hi"), ("user", "Q?")), "c": "yes", "r": "no"}, "column 'q': turn 1 (assistant): "
     "expected user (after an optional system turn, user and assistant turns alternate, starting with user)"),
    ({"q": turns(("user", "Q?"), ("assistant", "A")), "c": "yes", "r": "no"}, "column 'q': turn 2 (assistant): the "
     "last turn must be the user's, which the answers reply to"),
    ({"q": turns(("user", "Q?"), ("system", "S")), "c": "y", "r": "n"}, "column 'q': turn 2 (system): a system turn "
     "may only come first"),
    ({"q": [{"role": "bot", "content": "Q?"}], "c": "y", "r": "n"}, "column 'q': turn 1 has role 'bot' (known: "
     "assistant, system, user; map others in columns.roles)"),
    ({"q": "Q?", "c": ["yes", "yeah"], "r": "no"}, "column 'c' holds a list of texts; declare it in columns.lists to "
     "use them as alternative answers"),
    ({"q": "Q?", "c": turns(("user", "Q?"), ("user", "again")), "r": "no"}, "column 'c': the last turn must be the "
     "assistant's answer"),
    ({"q": "Q?", "c": turns(("user", "Other?"), ("assistant", "yes")), "r": "no"}, "column 'c' holds a conversation "
     "that does not start with the prompt in column 'q' (turn 1 differs)"),
]  # fmt: skip


@pytest.mark.parametrize("row, message", BAD_PAIRS)
def test_a_bad_pair_is_a_row_problem_that_names_its_column(row, message):
    with pytest.raises(RowProblem) as info:
        convert({"prompt": "q", "chosen": "c", "rejected": "r"}, row)
    assert str(info.value) == message


def test_pairs_whose_conversations_have_different_prompts_are_refused():
    a = turns(("user", "Q?"), ("assistant", "yes"))
    b = turns(("user", "Other question?"), ("assistant", "no"))
    with pytest.raises(RowProblem, match=r"^columns 'chosen' and 'rejected' hold different prompts \(turn 1 differs\); "
                       "a pair must answer the same prompt$"):  # fmt: skip
        convert({"prompt": None}, {"chosen": a, "rejected": b})
    with pytest.raises(RowProblem, match="^no prompt: column 'chosen' holds only an answer; map columns.prompt"):
        convert({"prompt": None}, {"chosen": "yes", "rejected": "no"})


def test_mapping_problems_of_the_preference_formats():
    assert mapping_problems("preference", {"max_pairs": 0, "chosne": "c", "prompt": None}) == [
        ("columns.max_pairs", "must be a whole number >= 1"),
        ("columns.chosne", "not a key of format preference (did you mean 'chosen'?); allowed: prompt, system, role, "
         "content, roles, chosen, rejected, max_pairs, lists, reference"),
    ]  # fmt: skip
    assert mapping_problems("unpaired", {"desirable": "good", "label": "ok"}) == [
        ("columns", "give completion and label, or desirable/undesirable answer columns, not both")
    ]


# -- the unpaired format -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "label, desirable",
    [(True, True), (0, False), ("yes", True), ("Undesirable", False), (" FALSE ", False), (1.0, True)],
)
def test_unpaired_rows_from_completion_and_label(label, desirable):
    got = convert({}, {"prompt": "Q?", "completion": "A", "label": label}, "unpaired")
    assert got == [{"prompt": turns(("user", "Q?")), "completion": "A", "label": desirable}]


@pytest.mark.parametrize("label, shown", [(None, "empty"), ("maybe", "'maybe'"), (2, "'2'")])
def test_an_unpaired_row_needs_a_label(label, shown):
    with pytest.raises(RowProblem) as info:
        convert({}, {"prompt": "Q?", "completion": "A", "label": label}, "unpaired")
    assert str(info.value) == (
        f"column 'label' is {shown}, not a label (true/false, yes/no, 1/0, desirable/undesirable)"
    )


def test_unpaired_rows_from_desirable_and_undesirable_list_columns():
    cols = {"prompt": "Q", "desirable": "Good", "undesirable": "Bad", "lists": {"Good": ";", "Bad": ";"}}
    row = {"Q": "Q?", "Good": "a; b; c", "Bad": "x"}
    got = convert({**cols, "max_answers": 2}, row, "unpaired")
    assert [(r["completion"], r["label"]) for r in got] == [("a", True), ("b", True), ("x", False)]
    assert len(convert(cols, row, "unpaired")) == 2  # max_answers 1: the first of each


# -- the data stage ------------------------------------------------------------------------------------------------
def stage_recipe(tmp_path: Path, columns: dict | None = None, **dataset) -> types.SimpleNamespace:
    data = {
        "name": "t",
        "objective": "dpo",
        "dataset": {
            "path": "pairs.jsonl",
            "format": "preference",
            "columns": columns or {},
            "val_size": 0.0,
            **dataset,
        },
        "train": {"sequence_len": 512},
    }
    return types.SimpleNamespace(data=data, path=tmp_path / "recipe.yaml")


def test_pairs_are_deduplicated_and_split_by_prompt(tmp_path):
    rows = []
    for q in range(12):
        rows.append({"q": f"question {q}?", "good": f"a{q}; b{q}", "bad": f"x{q}; y{q}"})
    rows.append(rows[0])  # a duplicate row: its pairs are duplicates
    jsonl(tmp_path / "pairs.jsonl", rows)
    cols = {"prompt": "q", "chosen": "good", "rejected": "bad", "lists": {"good": ";", "bad": ";"}, "max_pairs": 3}
    report = prepare(stage_recipe(tmp_path, cols, val_size=0.25, system_prompt="Be brief."), tmp_path / "out")
    train, val = load_split(tmp_path / "out" / "train.jsonl"), load_split(tmp_path / "out" / "val.jsonl")
    src = report["sources"][0]
    assert (src["read"], src["converted"], src["duplicates"]) == (13, 39, 3)
    assert report["kind"] == PREFERENCE and len(train) + len(val) == 36 and len(val) == 9
    prompts = {part: {json.dumps(r["prompt"]) for r in rows} for part, rows in (("train", train), ("val", val))}
    assert not prompts["train"] & prompts["val"], "a prompt on both sides of the split"
    assert report["prompts"] == {"train": 9, "val": 3}
    assert all(r["prompt"][0] == {"role": "system", "content": "Be brief."} for r in train + val)
    assert all(r["chosen"][0]["role"] == "assistant" and len(r["chosen"]) == 1 for r in train)


def test_a_family_without_a_system_turn_gets_the_system_prompt_in_the_first_user_message(tmp_path):
    jsonl(tmp_path / "pairs.jsonl", [pair("2+2?", "4", "5")])
    recipe = stage_recipe(tmp_path, system_prompt="Be brief.")
    prepare(recipe, tmp_path / "plain")
    recipe.data["chat_template"] = next(n for n, f in chat_families.FAMILIES.items() if not f.system)
    prepare(recipe, tmp_path / "folded")
    (plain,), (folded,) = (
        load_split(tmp_path / "plain" / "train.jsonl"),
        load_split(tmp_path / "folded" / "train.jsonl"),
    )
    assert plain["prompt"] == turns(("system", "Be brief."), ("user", "2+2?"))
    assert folded["prompt"] == turns(("user", "Be brief.\n\n2+2?"))


def test_a_pair_with_a_short_answer_is_dropped(tmp_path):
    jsonl(tmp_path / "pairs.jsonl", [pair("q", "aaa", "b"), pair("r", "aaa", "bbb")])
    report = prepare(stage_recipe(tmp_path, min_assistant_chars=2), tmp_path / "out")
    assert (report["sources"][0]["too_short"], report["train"]) == (1, 1)


def test_the_length_filter_reads_the_longer_answer(tmp_path):
    jsonl(tmp_path / "pairs.jsonl", [pair("q", "aa", "bbb"), pair("r", "a" * 40, "bb"), pair("s", "cc", "d" * 30)])
    count = lambda msgs: sum(len(m["content"]) for m in msgs)  # noqa: E731
    recipe = stage_recipe(tmp_path)
    recipe.data["train"]["sequence_len"] = 20
    report = prepare(recipe, tmp_path / "out", count_tokens=count)
    assert report["sources"][0]["too_long"] == 2 and report["train"] == 1
    assert report["train_tokens"] == (1 + 2) + (1 + 3)  # prompt + chosen and prompt + rejected


def test_bad_pairs_are_located_and_nothing_is_written(tmp_path, capsys):
    rows = [pair("q1", "a", "b"), pair("q2", "", "b"), pair("q3", "same", "same"), "{broken", pair("q5", "a", None)]
    jsonl(tmp_path / "pairs.jsonl", rows)
    with pytest.raises(IrisError) as info:
        prepare(stage_recipe(tmp_path), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert str(info.value).splitlines()[:5] == [
        "dataset: 4 bad row(s):",
        f"  {tmp_path / 'pairs.jsonl'} row 2: column 'chosen': the answer is empty",
        f"  {tmp_path / 'pairs.jsonl'} row 3: columns 'chosen' and 'rejected' give the same answer as chosen and "
        "rejected ('same')",
        f"  {tmp_path / 'pairs.jsonl'} row 4: not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        f"  {tmp_path / 'pairs.jsonl'} row 5: column 'rejected' is empty",
    ]
    # the CLI: exit 2, the same lines, no output folder
    write(tmp_path / "r.yaml", "name: r\nbase_model: org/model\nchat_template: chatml\nobjective: dpo\n"
          "dataset: {path: pairs.jsonl, format: preference}\ntrain: {max_steps: 1}\n")  # fmt: skip
    assert main(["data", "prepare", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "cli")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'pairs.jsonl'} row 3: columns 'chosen' and 'rejected' give the same answer" in err
    assert not (tmp_path / "cli").exists()
    # skip: the good pair is kept and the others counted
    report = prepare(stage_recipe(tmp_path, on_bad_rows="skip"), tmp_path / "out")
    assert (report["train"], report["sources"][0]["bad"]) == (1, 4)


def test_load_split_reads_every_kind_and_names_a_broken_row(tmp_path):
    good = {"prompt": turns(("user", "q")), "chosen": turns(("assistant", "a")), "rejected": turns(("assistant", "b"))}
    path = jsonl(tmp_path / "train.jsonl", [good, {**good, "chosen": "a"}])
    with pytest.raises(IrisError, match=re.escape(f'{path}:2: not a preference row (no "chosen" list); re-run')):
        load_split(path)
    unpaired = {"prompt": good["prompt"], "completion": good["chosen"], "label": "yes"}
    path = jsonl(tmp_path / "val.jsonl", [unpaired])
    with pytest.raises(IrisError, match=re.escape(f'{path}:1: not a unpaired row (no "label" true/false)')):
        load_split(path)


# -- the launch plan -----------------------------------------------------------------------------------------------
SMOL = Shape.from_config(plan.KNOWN_SHAPES["HuggingFaceTB/SmolLM2-135M-Instruct"])


def test_a_reference_model_costs_a_second_copy_only_in_full_fine_tuning():
    full = Setup(method="full", micro_batch=1, sequence_len=512)
    sft, dpo = breakdown(SMOL, full), breakdown(SMOL, Setup(**{**full.__dict__, "reference_copy": True}))
    assert dpo["reference"] == sft["weights"] and dpo["total"] == pytest.approx(sft["total"] + sft["weights"])
    assert breakdown(SMOL, Setup(micro_batch=1, sequence_len=512))["reference"] == 0


def test_pairs_double_the_sequences_of_a_micro_batch():
    one = breakdown(SMOL, Setup(micro_batch=2, sequence_len=512, gradient_checkpointing=False))
    two = breakdown(SMOL, Setup(micro_batch=1, sequence_len=512, gradient_checkpointing=False, sequences_per_row=2))
    assert two["activations"] == one["activations"] and two["logits"] == one["logits"]


@pytest.mark.parametrize(
    "objective, method, line",
    [
        ("dpo", "lora", "reference model: the base with the adapter switched off (no second copy of the weights)"),
        ("dpo", "full", "reference model: a second, frozen copy of the weights (the reference), counted below"),
        ("orpo", "full", "reference model: none"),
        ("simpo", "full", "reference model: a second, frozen copy of the weights (loaded by Axolotl 0.19 though the "
         "objective does not use it), counted below"),
        ("kto", "lora", "reference model: the base with the adapter switched off"),
    ],
)  # fmt: skip
def test_the_launch_plan_says_the_objective_and_its_reference(objective, method, line):
    from iris_recipes.recipe.schema import apply_defaults
    from iris_recipes.train import gpus

    data = apply_defaults({"name": "p", "objective": objective, "method": method, "dataset": {"limit": 1000},
                           "train": {"max_steps": 100, "micro_batch_size": 2, "sequence_len": 1024}})  # fmt: skip
    cfg = {"micro_batch_size": 2, "sequence_len": 1024, "bf16": True}
    text = plan.render(recipe_data=data, cfg=cfg, base_model="unsloth/Llama-3.2-1B-Instruct", device="gpu",
                       sharding="none", world_size=1, gpu=gpus.GPU_TYPES["a100-40"], data_report=None)  # fmt: skip
    assert (
        f"# launch plan: {'LoRA r16' if method == 'lora' else 'full'}, {objectives.describe(data)}, micro batch 2 "
        in text
    )
    assert f"#   {line}" in text
    pairs = objectives.get(objective).sequences_per_row == 2
    assert ("micro batch 2 pairs x 1024 tokens" in text) is pairs
    assert ("#     reference model " in text) is (method == "full" and objective != "orpo")


def test_progress_shows_no_token_rate_for_a_trainer_that_counts_no_tokens():
    """TRL's ORPO and CPO log no token count: the progress line leaves tokens/s out rather than show 0."""
    from iris_recipes.train.progress import ProgressState

    state = ProgressState()
    for step in (1, 2, 3):
        state.feed({"event": "log", "step": step, "max_steps": 3, "loss": 0.5, "time": 100.0 + step})
    assert state.tokens_per_second is None and "tok/s" not in state.summary() and state.eta_seconds == 0.0
    state = ProgressState()
    for step in (1, 2):  # TRL's DPO counts them as num_tokens, which the plugin records as tokens_total
        state.feed(
            {"event": "log", "step": step, "max_steps": 3, "loss": 0.5, "time": 100.0 + step, "tokens_total": 80 * step}
        )
    assert state.tokens_per_second == 80.0
