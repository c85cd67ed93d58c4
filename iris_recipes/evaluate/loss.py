"""Validation loss and perplexity with transformers, on exactly the tokens and labels training uses.

Training tokenizes a conversation with Axolotl's `chat_template` strategy under the dataset settings
`iris_recipes.train.config` generates (the recipe's template, `roles_to_train: [assistant]`, `train_on_eos: turn`).
Eval does not re-derive that: `training_examples` runs the same strategy with the same settings on the held-out
conversations, so the input ids are the whole rendered conversation and the trained positions are Axolotl's labels.
Rows longer than the training sequence length are left out, as training leaves them out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

# Version of the way the validation loss is measured (eval.json `loss_method`): losses measured by different versions
# are different measurements and are not compared. 1: each message rendered and tokenized on its own, masked by the
# tokenizer's EOS (eval.json files without the key). 2: Axolotl's own tokenization and labels of the row.
LOSS_METHOD = 2


@dataclass
class Examples:
    """Tokenized held-out conversations: (input ids, labels) each, labels -100 where training computes no loss."""

    pairs: list[tuple[list[int], list[int]]]
    too_long: int  # conversations left out: longer than the training sequence length
    sequence_len: int


def training_examples(tok, axolotl_cfg: dict, conversations: list[list[dict]]) -> Examples:
    """The held-out conversations tokenized and labelled as training tokenizes and labels its rows.

    `axolotl_cfg`: the run's Axolotl config as validated (`iris_recipes.train.config.validate`); its first dataset
    entry holds the chat-template settings of the training rows.
    """
    from axolotl.prompt_strategies.chat_template import load as load_strategy

    strategy = load_strategy(tok, axolotl_cfg, axolotl_cfg["datasets"][0])
    field = axolotl_cfg["datasets"][0]["field_messages"]
    limit = int(axolotl_cfg.get("sequence_len") or 2048)
    pairs, too_long = [], 0
    for messages in conversations:
        out = strategy.tokenize_prompt({field: messages})
        ids, labels = list(out["input_ids"]), list(out["labels"])
        if len(ids) > limit:
            too_long += 1
            continue
        pairs.append((ids, labels))
    return Examples(pairs, too_long, limit)


def validation_loss(model_dir: str | Path, examples: Examples, *, threads: int | None = None) -> dict:
    """Mean trained-token cross-entropy over the examples (token-weighted) and its perplexity."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars: nothing a user can act on
    if threads:
        torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for ids, labels in examples.pairs:
            if sum(1 for x in labels[1:] if x != -100) == 0:
                continue
            logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
            target = torch.tensor(labels[1:])
            loss = torch.nn.functional.cross_entropy(logits, target, ignore_index=-100, reduction="sum")
            total += float(loss)
            count += int((target != -100).sum())
    del model
    out = {"tokens": count, "too_long": examples.too_long}
    if not count:
        return {"val_loss": None, "perplexity": None, **out}
    mean = total / count
    return {"val_loss": round(mean, 5), "perplexity": round(math.exp(min(mean, 50.0)), 4), **out}
