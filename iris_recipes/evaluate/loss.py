"""Validation loss and perplexity with transformers, scored like training: assistant tokens only.

Training (Axolotl `type: chat_template`, `roles_to_train: [assistant]`, `train_on_eos: turn`) computes the loss on
each assistant message's content and its end-of-turn token; the system/user turns and the role headers are
masked. Here each conversation is rendered with the tokenizer's chat template one message at a time, so every
token is known to belong to one message, and the same tokens are kept.
"""

from __future__ import annotations

import math
from pathlib import Path


def _render(tok, messages: list[dict], generation_prompt: bool = False) -> str:
    if not messages:
        return ""
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def masked_example(tok, messages: list[dict]) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one conversation; labels are -100 outside assistant content + end-of-turn."""
    ids: list[int] = []
    labels: list[int] = []
    eot = tok.eos_token or ""
    done = ""
    for i, msg in enumerate(messages):
        upto = _render(tok, messages[: i + 1])
        if not upto.startswith(done):  # a template that rewrites earlier turns: fall back to the whole diff
            done = ""
        piece = upto[len(done) :]
        if msg.get("role") == "assistant":
            header = _render(tok, messages[:i], generation_prompt=True)[len(done) :] if i else ""
            if not piece.startswith(header):
                header = ""
            body = piece[len(header) :]
            # trained: the content and the end-of-turn token; not the whitespace the template adds after it
            cut = body.find(eot) + len(eot) if eot and eot in body else len(body)
            for text, train in ((header, False), (body[:cut], True), (body[cut:], False)):
                part = tok(text, add_special_tokens=False)["input_ids"] if text else []
                ids += part
                labels += part if train else [-100] * len(part)
        else:
            part = tok(piece, add_special_tokens=False)["input_ids"]
            ids += part
            labels += [-100] * len(part)
        done = upto
    return ids, labels


def validation_loss(
    model_dir: str | Path, tok, conversations: list[list[dict]], *, max_len: int = 2048, threads: int | None = None
) -> dict:
    """Mean assistant-token cross-entropy over the conversations (token-weighted) and its perplexity."""
    import torch
    from transformers import AutoModelForCausalLM

    if threads:
        torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for messages in conversations:
            ids, labels = masked_example(tok, messages)
            ids, labels = ids[:max_len], labels[:max_len]
            if sum(1 for x in labels[1:] if x != -100) == 0:
                continue
            logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
            target = torch.tensor(labels[1:])
            loss = torch.nn.functional.cross_entropy(logits, target, ignore_index=-100, reduction="sum")
            total += float(loss)
            count += int((target != -100).sum())
    del model
    if not count:
        return {"val_loss": None, "perplexity": None, "tokens": 0}
    mean = total / count
    return {"val_loss": round(mean, 5), "perplexity": round(math.exp(min(mean, 50.0)), 4), "tokens": count}
