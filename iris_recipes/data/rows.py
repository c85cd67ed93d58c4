"""The rows the data stage writes, one kind per objective (formats.ROW_KINDS), and what the stage needs to know about
each: its conversations (token counts), its answers (the quality filter), its duplicate key and the prompt that keeps
a pair's rows on one side of the train/validation split.

  chat        {"messages": [turns]}
  preference  {"prompt": [turns], "chosen": [assistant turn], "rejected": [assistant turn]}
  unpaired    {"prompt": [turns], "completion": [assistant turn], "label": true|false}

The preference shapes are TRL's conversational ones: the trainer renders them with the recipe's chat template (which
Axolotl installs on the tokenizer), so the prompt is rendered once and the answers follow it token for token.
Every row may also carry "reference" (eval's scoring data) and, from a dataset.mix source, the source's name.
"""

from __future__ import annotations

import json

from iris_recipes.data.formats import CHAT, PREFERENCE, UNPAIRED

# the keys of the preference kinds' rows (a chat row is {"messages": [...]}), and which of them hold answers
ANSWER_KEYS = {PREFERENCE: ("chosen", "rejected"), UNPAIRED: ("completion",)}
ROW_KEYS = {
    PREFERENCE: ("prompt", "chosen", "rejected"),
    UNPAIRED: ("prompt", "completion", "label"),
}


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def build(kind: str, converted) -> list[dict]:
    """The rows one converted source row gives (a format's `convert` result: turns, or a list of pairs/answers)."""
    if kind == CHAT:
        return [{"messages": converted}]
    return [
        {key: (_assistant(value) if key in ANSWER_KEYS[kind] else value) for key, value in item.items()}
        for item in converted
    ]


def with_system(kind: str, row: dict, system_prompt: str) -> dict:
    """The row with `system_prompt` as its first turn, unless it has a system turn already."""
    turns = row["messages"] if kind == CHAT else row["prompt"]
    if turns[0]["role"] == "system":
        return row
    turns = [{"role": "system", "content": system_prompt}, *turns]
    return {**row, "messages": turns} if kind == CHAT else {**row, "prompt": turns}


def fold_system(kind: str, row: dict, family) -> dict:
    """The row as the chat family renders it (chat_families.ChatFamily.fold_system: a family without a system turn
    takes the system prompt into the first user message)."""
    if kind == CHAT:
        return {**row, "messages": family.fold_system(row["messages"])}
    return {**row, "prompt": family.fold_system(row["prompt"])}


def conversations(kind: str, row: dict) -> list[list[dict]]:
    """The sequences the trainer runs for this row (a pair: prompt + chosen and prompt + rejected)."""
    if kind == CHAT:
        return [row["messages"]]
    return [row["prompt"] + row[key] for key in ANSWER_KEYS[kind]]


def shortest_answer(kind: str, row: dict) -> int:
    """Characters of the shortest answer the row trains (a chat row: its assistant turns)."""
    turns = row["messages"] if kind == CHAT else [t for key in ANSWER_KEYS[kind] for t in row[key]]
    return min((len(t["content"].strip()) for t in turns if t["role"] == "assistant"), default=0)


def duplicate_key(kind: str, row: dict) -> str:
    """Rows with the same key are duplicates (the reference and the mix source do not count)."""
    parts = [row["messages"]] if kind == CHAT else [row[key] for key in ROW_KEYS[kind]]
    return json.dumps(parts, ensure_ascii=False, sort_keys=True)


def prompt_key(kind: str, row: dict) -> str:
    """Rows with the same key share a prompt and stay together on one side of the split (chat: the row itself)."""
    return json.dumps(row["prompt"] if kind != CHAT else row["messages"], ensure_ascii=False, sort_keys=True)


def row_problem(kind: str, row) -> str | None:
    """Why a row read back from train.jsonl/val.jsonl is not a row of `kind`, or None."""
    if not isinstance(row, dict):
        return "not an object"
    if kind == CHAT:
        return None if isinstance(row.get("messages"), list) else 'no "messages" list'
    for key in ROW_KEYS[kind]:
        wanted = bool if key == "label" else list
        if not isinstance(row.get(key), wanted):
            return f'no "{key}" {"true/false" if wanted is bool else "list"}'
    return None


def kind_of(row: dict) -> str:
    """The kind of a row written by the data stage."""
    if row.get("messages") is not None:
        return CHAT
    return UNPAIRED if "completion" in row else PREFERENCE
