"""Token counts under the base model's chat template, for the data stage's length filter."""

from __future__ import annotations

from iris_recipes.errors import IrisError


def token_counter(base_model: str):
    """Tokens of a conversation under the base model's own chat template (for the data stage's length filter)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(base_model)
    except (OSError, ValueError) as exc:
        raise IrisError(f"base_model: cannot load a tokenizer from {base_model}: {exc}") from None

    def count(messages: list[dict]) -> int:
        if tok.chat_template:
            ids = tok.apply_chat_template(messages, tokenize=True)
            if hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return len(ids)
        return sum(len(tok(m["content"], add_special_tokens=False)["input_ids"]) + 4 for m in messages)

    return count
