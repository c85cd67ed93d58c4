"""Eval's validation loss is measured on exactly what training trains: for every chat template the schema allows and
each stand-in, conversations of 1-4 exchanges with and without a system turn tokenize to the ids of the whole
rendered conversation, those ids are Axolotl's tokenization of the same row under the training config, and the
positions eval scores are Axolotl's labels: each assistant message and its end-of-turn token."""

from __future__ import annotations

import pytest
from test_masking import _spans  # maximal runs of trained positions

from iris_recipes import chat_families
from iris_recipes.evaluate.loss import training_examples
from iris_recipes.train import config as axconfig
from iris_recipes.train.launch import LaunchSpec

SYSTEM = {"role": "system", "content": "You solve arithmetic word problems."}
EXCHANGES = [
    ("Sam has 7 apples and buys 5 more. How many?", "7 + 5 = 12\nAnswer: 12"),
    ("And if he eats 3 of them?", "12 - 3 = 9\nAnswer: 9"),
    ("Then he halves the rest.\n\nHow many now?", "9 / 2 = 4.5\n\nAnswer: 4.5"),
    ("What was the first number?", "It was 7.\nAnswer: 7"),
]

# stand-in -> the chat templates it can train with (tokenizer_default: the template its tokenizer carries)
STANDIN_TEMPLATES = {
    "llama3": ["llama3", "tokenizer_default"],
    "phi3": ["phi_3", "phi_35", "tokenizer_default"],
    "gemma3": ["gemma3", "tokenizer_default"],
    "qwen25": ["qwen_25", "tokenizer_default"],
    "chatml": ["chatml", "tokenizer_default"],
}
CASES = [(s, t) for s, templates in STANDIN_TEMPLATES.items() for t in templates]


def test_every_schema_template_is_covered():
    covered = {t for templates in STANDIN_TEMPLATES.values() for t in templates}
    assert covered == set(chat_families.names())


def _conversations() -> list[list[dict]]:
    out = []
    for n in range(1, len(EXCHANGES) + 1):
        turns = [
            m for q, a in EXCHANGES[:n] for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})
        ]
        out += [turns, [SYSTEM, *turns]]
    return out


def _recipe(base: str, template: str) -> dict:
    from iris_recipes.recipe.schema import apply_defaults

    return apply_defaults(
        {
            "name": "loss",
            "base_model": base,
            "chat_template": template,
            "method": "lora",
            "dataset": {"name": "x", "val_size": 0.0},
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
            "train": {"max_steps": 1, "micro_batch_size": 1, "sequence_len": 1024},
        }
    )


@pytest.fixture(scope="module", params=CASES, ids=[f"{s}-{t}" for s, t in CASES])
def measured(request, standin_dirs):
    """(tokenizer, the training template's text, eval's examples, Axolotl's (ids, labels) per conversation)."""
    from axolotl.prompt_strategies.chat_template import load as load_strategy
    from axolotl.utils.chat_templates import get_chat_template_from_config
    from transformers import AutoTokenizer

    standin, template = request.param
    model = standin_dirs[standin]
    data = _recipe(str(model), template)
    tok = AutoTokenizer.from_pretrained(model)
    conversations = [chat_families.fold_system(template, c) for c in _conversations()]  # rows as the data stage writes
    examples = training_examples(tok, axconfig.tokenization_config(data, model), conversations)
    # Axolotl's tokenization, reached the way `iris-recipes run` reaches it: the generated, validated training config
    cfg = axconfig.build_config(data, base_model=str(model), spec=LaunchSpec(), has_val=False)
    checked = axconfig.validate(cfg, recipe_data=data, recipe_file="loss.yaml")
    strategy = load_strategy(tok, checked, checked["datasets"][0])
    trained = [strategy.tokenize_prompt({"messages": c}) for c in conversations]
    jinja = get_chat_template_from_config(cfg=checked, ds_cfg=checked["datasets"][0], tokenizer=tok)
    return tok, template, jinja, conversations, examples, trained


def test_eval_tokens_are_the_whole_rendered_conversation(measured):
    tok, _, jinja, conversations, examples, _ = measured
    assert examples.too_long == 0 and len(examples.pairs) == len(conversations)
    for conv, (ids, _) in zip(conversations, examples.pairs):
        text = tok.apply_chat_template(conv, chat_template=jinja, tokenize=False)
        assert ids == tok(text, add_special_tokens=False)["input_ids"], text


def test_eval_tokens_and_labels_are_axolotls(measured):
    _, _, _, _, examples, trained = measured
    for (ids, labels), out in zip(examples.pairs, trained):
        assert ids == list(out["input_ids"])
        assert labels == list(out["labels"])


def test_scored_positions_are_each_answer_and_its_end_of_turn(measured):
    tok, template, _, conversations, examples, _ = measured
    family = chat_families.get(template)
    for conv, (ids, labels) in zip(conversations, examples.pairs):
        trained = {i for s, e in _spans(labels) for i in range(s, e)}
        masked = tok.decode([t for i, t in enumerate(ids) if i not in trained])
        for m in conv:  # system and user text never reaches the loss; every answer does
            assert (m["content"] in masked) == (m["role"] != "assistant"), m
        if family is None:
            continue  # tokenizer_default: the tokenizer's template decides where a turn ends
        eot = family.end_of_turn[0]
        spans = _spans(labels)
        if eot != tok.eos_token and ids[-2:] == tok.convert_tokens_to_ids([eot, tok.eos_token]):
            # Phi-3's conversations end with the tokenizer's EOS (<|endoftext|>) after the last <|end|>, and Axolotl
            # trains it with the last turn; generation stops at <|end|> before it ever comes.
            assert labels[-1] == ids[-1]
            spans[-1] = (spans[-1][0], spans[-1][1] - 1)
        answers = [m["content"] for m in conv if m["role"] == "assistant"]
        assert len(spans) == len(answers), tok.decode(ids)
        for (start, end), content in zip(spans, answers):
            assert tok.convert_ids_to_tokens(ids[end - 1]) == eot, tok.decode(ids[start:end])
            assert tok.decode(ids[start : end - 1]).strip() == content
