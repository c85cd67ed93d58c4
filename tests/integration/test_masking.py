"""Loss masking, token by token, through the real tokenizer and Axolotl's chat_template strategy with the
dataset settings `iris-recipes run` generates: only assistant turns are trained, each with its end-of-turn token,
and the template never leaks a special token into a message's content. For every chat-template family the recipes
use (llama3, phi_35, gemma3, qwen_25, chatml), with that family's stand-in tokenizer, on the rows the data stage
writes (for gemma3, which has no system turn, the system prompt opens the first user message)."""

from __future__ import annotations

import pytest

from iris_recipes import chat_families
from iris_recipes.train import config as axconfig
from iris_recipes.train.launch import LaunchSpec

CONVERSATION = [
    {"role": "system", "content": "You solve arithmetic word problems."},
    {"role": "user", "content": "Sam has 7 apples and buys 5 more. How many?"},
    {"role": "assistant", "content": "7 + 5 = 12\nAnswer: 12"},
    {"role": "user", "content": "And if he eats 3 of them?"},
    {"role": "assistant", "content": "12 - 3 = 9\nAnswer: 9"},
]


# family -> (recipe chat_template, end-of-turn token)
TEMPLATES = {
    "llama3": ("llama3", "<|eot_id|>"),
    "phi3": ("phi_35", "<|end|>"),
    "gemma3": ("gemma3", "<end_of_turn>"),
    "qwen25": ("qwen_25", "<|im_end|>"),
    "chatml": ("chatml", "<|im_end|>"),
}


def _recipe(base: str, template: str) -> dict:
    from iris_recipes.recipe.schema import apply_defaults

    return apply_defaults(
        {
            "name": "mask",
            "base_model": base,
            "chat_template": template,
            "method": "lora",
            "dataset": {"name": "x", "val_size": 0.0},
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
            "train": {"max_steps": 1, "micro_batch_size": 1, "sequence_len": 512},
        }
    )


def _spans(labels: list[int]) -> list[tuple[int, int]]:
    """Maximal [start, end) runs of trained (label != -100) positions."""
    spans, start = [], None
    for i, lab in enumerate([*labels, -100]):
        if lab != -100 and start is None:
            start = i
        elif lab == -100 and start is not None:
            spans.append((start, i))
            start = None
    return spans


@pytest.fixture(scope="module", params=sorted(TEMPLATES))
def tokenized(request, standin_dirs):
    from axolotl.prompt_strategies.chat_template import load as load_strategy
    from transformers import AutoTokenizer

    model = standin_dirs[request.param]
    template, eot = TEMPLATES[request.param]
    data = _recipe(str(model), template)
    cfg = axconfig.build_config(data, base_model=str(model), spec=LaunchSpec(), has_val=False)
    checked = axconfig.validate(cfg, recipe_data=data, recipe_file="mask.yaml")
    tok = AutoTokenizer.from_pretrained(model)
    strategy = load_strategy(tok, checked, checked["datasets"][0])
    conversation = chat_families.fold_system(template, CONVERSATION)  # the row as the data stage writes it
    out = strategy.tokenize_prompt({"messages": conversation})
    ids, labels = list(out["input_ids"]), list(out["labels"])
    if ids[-1] == tok.eos_token_id != tok.convert_tokens_to_ids(eot) and labels[-1] != -100:
        # phi_35 closes the whole conversation with EOS (<|endoftext|>) after the last <|end|>, and Axolotl trains
        # it as part of the last turn. Generation stops at <|end|> before it, so it never reaches a reply; the
        # checks below are about the turns.
        labels[-1] = -100
    return tok, ids, labels, eot, conversation


def test_labels_copy_inputs_where_trained(tokenized):
    _, ids, labels, _, _ = tokenized
    assert len(ids) == len(labels)
    assert all(lab in (-100, i) for i, lab in zip(ids, labels))


def test_only_assistant_turns_and_their_end_token_are_trained(tokenized):
    tok, ids, labels, eot_token, conversation = tokenized
    eot = tok.convert_tokens_to_ids(eot_token)
    spans = _spans(labels)
    assistants = [m["content"] for m in conversation if m["role"] == "assistant"]
    assert len(spans) == len(assistants)
    for (start, end), content in zip(spans, assistants):
        # the span is exactly the content followed by the end-of-turn token: nothing of the prompt, nothing after
        assert ids[end - 1] == eot, "the end-of-turn token must be trained, or the model never stops"
        assert tok.decode(ids[start : end - 1]) == content
        assert ids[start - 1] != eot  # the turn header before it is masked
    # every token outside those spans is masked, so system and user text never reaches the loss
    trained = {i for s, e in spans for i in range(s, e)}
    masked_text = tok.decode([t for i, t in enumerate(ids) if i not in trained])
    for m in conversation:
        if m["role"] != "assistant":
            assert m["content"] in masked_text
    for m in conversation:
        if m["role"] == "assistant":
            assert m["content"] not in masked_text


def test_no_template_token_inside_any_content(tokenized):
    tok, ids, labels, eot, conversation = tokenized
    special = set(tok.all_special_ids) | {tok.convert_tokens_to_ids(t) for t in tok.get_added_vocab()}
    text = tok.decode(ids)
    position = 0
    for m in conversation:
        # each content appears verbatim, in order, and is followed by the end-of-turn token
        found = text.index(m["content"], position)
        position = found + len(m["content"])
        assert text[position:].lstrip(" ").startswith(eot), (m, text[position : position + 20])
    for start, end in _spans(labels):
        assert not special & set(ids[start : end - 1]), "a special token inside trained content"
    # the trained spans decode to plain content: no literal template markup either
    for start, end in _spans(labels):
        assert not chat_families.marker_pattern(any_bar_token=True).search(tok.decode(ids[start : end - 1]))


def test_every_chat_template_has_its_end_of_turn_token():
    from iris_recipes.recipe.schema import load_schema  # the recipe format's template names

    names = load_schema()["properties"]["chat_template"]["enum"]
    for name in names:
        assert name == "tokenizer_default" or chat_families.end_of_turn(name), name
