"""The chat-family registry is the one place that spells a family's tokens; everything else reads it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from iris_recipes import chat_families

REPO = Path(__file__).resolve().parents[2]
# The builtin SmolLM2's own tokenizer settings and template (model data, as scripts/standins.py holds the stand-ins').
MODEL_DATA = {"iris_recipes/models.py"}


def _spelled(text: str) -> set[str]:
    return {m for m in chat_families.all_markers() if m in text}


def test_no_family_token_is_spelled_outside_the_registry():
    found = {}
    for root in ("iris_recipes", "space"):
        for path in sorted((REPO / root).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel == "iris_recipes/chat_families.py" or rel in MODEL_DATA:
                continue
            if spelled := _spelled(path.read_text(encoding="utf-8")):
                found[rel] = sorted(spelled)
    assert not found, f"family tokens spelled outside iris_recipes/chat_families.py: {found}"


def test_the_scan_sees_a_restated_token(tmp_path):
    # the check above must be able to fail: the old Axolotl end-of-turn table would be found
    assert _spelled('EOT_TOKENS = {"llama3": ["<|eot_id|>"], "chatml": ["<|im_end|>"]}') == {"<|eot_id|>", "<|im_end|>"}


def test_schema_enum_is_the_registry():
    from iris_recipes.recipe.schema import load_schema, schema_text

    assert load_schema()["properties"]["chat_template"]["enum"] == chat_families.names()
    assert (REPO / "iris_recipes/schema/recipe.schema.json").read_text() == schema_text()


def test_every_family_stops_at_its_end_of_turn_first():
    for family in chat_families.FAMILIES.values():
        assert family.stop[0] == family.end_of_turn[0]
        assert set(family.stop) <= set(family.markers)
    assert chat_families.get("tokenizer_default") is None
    with pytest.raises(KeyError, match="unknown chat template 'gemma'"):
        chat_families.get("gemma")


def test_marker_pattern_finds_every_family_marker_and_only_those():
    pattern = chat_families.marker_pattern()
    for marker in chat_families.all_markers():
        assert pattern.search(f"a {marker} b").group(0) == marker
    assert pattern.search("a <|tool|> b") is None  # not a family's token
    assert chat_families.marker_pattern(any_bar_token=True).search("a <|tool|> b")
    assert chat_families.marker_pattern(["<start_of_turn>"]).search("x<start_of_turn>user")


def test_a_registered_family_is_used_by_the_schema_config_and_data_checks(monkeypatch):
    """A throwaway family in a temporary registry reaches the schema's enum, the Axolotl config's end of turn and
    the data stage's marker check, without any other file knowing it."""
    from iris_recipes.recipe import schema
    from iris_recipes.train.config import build_config
    from iris_recipes.train.launch import LaunchSpec

    monkeypatch.setattr(chat_families, "FAMILIES", dict(chat_families.FAMILIES))
    turn = chat_families.ChatFamily(
        name="turns",
        end_of_turn=("<end_of_turn>",),
        end_of_text=("<eos>",),
        markers=("<start_of_turn>", "<end_of_turn>", "<eos>", "<bos>"),
        system=False,
        bos="<bos>",
        models="a Gemma-style test family",
    )
    chat_families.register(turn)
    assert "turns" in schema.load_schema()["properties"]["chat_template"]["enum"]
    data = schema.apply_defaults(
        {
            "name": "t",
            "base_model": "/m",
            "chat_template": "turns",
            "dataset": {"name": "x"},
            "train": {"max_steps": 1},
        }
    )
    assert not schema.schema_problems(data)
    assert build_config(data, base_model="/m", spec=LaunchSpec(), has_val=False)["eot_tokens"] == ["<end_of_turn>"]
    assert re.search(chat_families.marker_pattern(), "hi <start_of_turn>model")
    with pytest.raises(ValueError, match="registered twice"):
        chat_families.register(turn)


def test_a_family_without_a_system_turn_folds_the_system_prompt_into_the_first_user_message():
    conv = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "2+2?"},
    ]
    gemma = chat_families.get("gemma3")
    assert gemma.system is False
    assert gemma.fold_system(conv) == [{"role": "user", "content": "Be brief.\n\nHi"}, *conv[2:]]
    assert gemma.fold_system(conv[1:]) == conv[1:]  # nothing to fold
    assert gemma.fold_system(conv[:1]) == conv[:1]  # no user message to carry it
    assert chat_families.fold_system("llama3", conv) == conv  # a family with a system turn keeps it
    assert chat_families.fold_system("tokenizer_default", conv) == conv  # the tokenizer's template decides
    assert conv[1]["content"] == "Hi"  # the input is not changed
