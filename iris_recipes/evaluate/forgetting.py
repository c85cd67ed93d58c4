"""The forgetting check: does the fine-tune still behave like a chat model outside its own task?

Base and fine-tuned model answer the same general prompts (the set shipped in `general_prompts.txt`, plus the
recipe's `eval.general_prompts`) greedily, with the same token limit (`eval.forgetting.max_new_tokens`). Per model:

    stop_rate      share of replies that end on their own (the end-of-turn token) within the limit
    loops          replies that degenerate into repetition: rep-4 >= eval.forgetting.loop_threshold, where
                   rep-4 is the share of a reply's token 4-grams that repeat an earlier 4-gram of the same reply
                   (seq-rep-4, Welleck et al. 2019, "Neural text degeneration with unlikelihood training").
                   Prose scores near 0; `1.1.1: 1.1.1: ...`, `100000001000...` or one sentence said over and
                   over score near 1. Replies shorter than 8 tokens are never counted as loops.
    median_tokens  median reply length in tokens
    agreement      (fine-tuned) mean word F1 (content words) between its reply and the base reply, over the
                   prompts where the base stopped without looping. A reply in another style about the same thing
                   still overlaps (0.15-0.25 for the demo's fine-tunes), so only near-zero overlap is judged.

Verdict: general behaviour is kept when the fine-tune's stop rate is at most `max_stop_drop` below the base's, it
loops on at most `max_extra_loops` more prompts than the base, its median reply is at least `min_length_ratio` of
the base's and its agreement is at least `min_agreement`; otherwise it is degraded. The last two catch the collapse
that ends every turn politely: an over-trained model answering everything with its task's few tokens.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from iris_recipes.errors import IrisError

PROMPTS_FILE = Path(__file__).resolve().parent / "general_prompts.txt"
NGRAM = 4
MIN_LOOP_TOKENS = 2 * NGRAM
MIN_AGREEMENT_PROMPTS = 5  # fewer compared prompts than this: agreement is reported, not judged
THRESHOLDS = ("loop_threshold", "max_stop_drop", "max_extra_loops", "min_length_ratio", "min_agreement")
RULE = (
    f"a reply loops when rep-{NGRAM} (the share of its token {NGRAM}-grams repeating an earlier one) is at "
    "least loop_threshold"
)


@dataclass
class Reply:
    text: str
    tokens: list[int]
    stopped: bool  # ended with the end-of-turn token before the limit


def shipped_prompts() -> list[str]:
    lines = PROMPTS_FILE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def prompts_for(settings: dict) -> list[str]:
    """The shipped general prompts followed by the recipe's own (duplicates once)."""
    extra = list(settings.get("general_prompts") or [])
    return list(dict.fromkeys(shipped_prompts() + extra))


def rep_n(tokens: list[int], n: int = NGRAM) -> float:
    """Share of the n-grams of `tokens` that repeat an earlier n-gram (0 when there are none)."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def loops(reply: Reply, threshold: float) -> bool:
    return len(reply.tokens) >= MIN_LOOP_TOKENS and rep_n(reply.tokens) >= threshold


def summarize(replies: list[Reply], threshold: float) -> dict:
    n = len(replies)
    looping = sum(loops(r, threshold) for r in replies)
    return {
        "replies": n,
        "stop_rate": round(sum(r.stopped for r in replies) / n, 4) if n else None,
        "stopped": sum(r.stopped for r in replies),
        "loops": looping,
        "loop_rate": round(looping / n, 4) if n else None,
        "median_tokens": statistics.median(len(r.tokens) for r in replies) if n else None,
    }


def agreement(base: list[Reply], tuned: list[Reply], threshold: float) -> tuple[float | None, int]:
    """Mean content-word F1 of tuned vs base replies where the base stopped without looping; (mean, prompts)."""
    from iris_recipes.evaluate.metrics import word_f1

    scores = [word_f1(t.text, b.text) for b, t in zip(base, tuned) if b.stopped and not loops(b, threshold)]
    return (round(sum(scores) / len(scores), 4) if scores else None), len(scores)


def verdict(base: dict, tuned: dict, settings: dict, compared: int = 0) -> tuple[bool, str]:
    """(kept, plain sentence) from the two summaries, the number of prompts agreement was measured on and the
    recipe's thresholds."""
    n = tuned["replies"]
    problems = []
    extra = tuned["loops"] - base["loops"]
    if extra > settings["max_extra_loops"]:
        problems.append(f"{tuned['loops']} of {n} replies loop (base {base['loops']})")
    if tuned["stop_rate"] < base["stop_rate"] - settings["max_stop_drop"] - 1e-9:
        problems.append(f"stops on its own in {tuned['stopped']} of {n} (base {base['stopped']})")
    if base["median_tokens"] and tuned["median_tokens"] < settings["min_length_ratio"] * base["median_tokens"]:
        problems.append(
            f"replies collapsed to a median of {tuned['median_tokens']:g} tokens (base {base['median_tokens']:g})"
        )
    if compared >= MIN_AGREEMENT_PROMPTS and tuned["agreement"] < settings["min_agreement"]:
        problems.append(f"replies share almost nothing with the base's (agreement {tuned['agreement']:.2f})")
    if problems:
        return False, "degraded: " + "; ".join(problems)
    return True, "general behaviour kept"


def check(base: list[Reply], tuned: list[Reply], prompts: list[str], settings: dict) -> dict:
    """The eval.json `forgetting` block: per-model summaries, agreement, verdict and every reply."""
    if not (len(base) == len(tuned) == len(prompts)):
        raise IrisError("forgetting check: base and fine-tuned replies do not match the prompts")
    threshold = settings["loop_threshold"]
    b, t = summarize(base, threshold), summarize(tuned, threshold)
    t["agreement"], compared = agreement(base, tuned, threshold)
    kept, text = verdict(b, t, settings, compared)
    return {
        "prompts": len(prompts),
        "max_new_tokens": settings["max_new_tokens"],
        "rule": RULE,
        "thresholds": {k: settings[k] for k in THRESHOLDS},
        "base": b,
        "tuned": t,
        "agreement_prompts": compared,
        "kept": kept,
        "verdict": text,
        "replies": [
            {
                "prompt": p,
                "base": rb.text,
                "tuned": rt.text,
                "base_stopped": rb.stopped,
                "tuned_stopped": rt.stopped,
                "base_loops": loops(rb, threshold),
                "tuned_loops": loops(rt, threshold),
                "base_rep4": round(rep_n(rb.tokens), 3),
                "tuned_rep4": round(rep_n(rt.tokens), 3),
            }
            for p, rb, rt in zip(prompts, base, tuned)
        ],
    }
