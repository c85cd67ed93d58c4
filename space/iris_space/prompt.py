"""What enters a prompt: template markers neutralized, history bounded, the oldest turns trimmed to fit."""

from __future__ import annotations

import functools
import re
from typing import Any

from . import settings
from .manifest import UserError

# Any `<|name|>`: the shape the chat families' special tokens have (reserved ones included). A variant's own family's
# markers come from the manifest (`chat.markers`, from iris_recipes' chat-family registry); this Space restates none.
_BAR_TOKEN = r"<\|[^|<>\s]{1,40}\|>"


@functools.lru_cache(maxsize=64)
def marker_re(markers: tuple[str, ...] = ()) -> re.Pattern:
    """A pattern for the given template markers (longest first) and any `<|name|>`."""
    literal = sorted(set(markers), key=lambda m: (-len(m), m))
    return re.compile("|".join([*(re.escape(m) for m in literal if m), _BAR_TOKEN]))


def markers_of(variant: dict[str, Any]) -> tuple[str, ...]:
    """The template markers of a variant's chat family, as its manifest entry lists them."""
    chat = variant.get("chat") if isinstance(variant, dict) else None
    markers = chat.get("markers") if isinstance(chat, dict) else None
    return tuple(m for m in markers if isinstance(m, str)) if isinstance(markers, list) else ()


def neutralize(text: str, pattern: re.Pattern | None = None) -> str:
    """`text` without template markers. Repeated until none is left: removing a marker from the middle of another
    (`<|a<|b|>|>`) must not leave the outer one behind."""
    pattern = pattern or marker_re()
    while True:
        out = pattern.sub("", text)
        if out == text:
            return out
        text = out


def fold_system(variant: dict[str, Any], messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """`messages` as the variant's chat family takes them: where it has no system turn (manifest `chat.system`
    false), the system prompt opens the first user message, joined by `chat.system_join`, as in its training data.
    Applied when a prompt is rendered (Model.prompt_tokens), so trimming a long conversation keeps the system
    prompt."""
    chat = variant.get("chat") if isinstance(variant, dict) else None
    join = chat.get("system_join") if isinstance(chat, dict) and chat.get("system") is False else None
    if not isinstance(join, str) or not messages or messages[0]["role"] != "system":
        return messages
    first = next((i for i, m in enumerate(messages) if m["role"] == "user"), None)
    if first is None:
        return messages
    joined = messages[0]["content"] + join + messages[first]["content"]
    return [*messages[1:first], {"role": "user", "content": joined}, *messages[first + 1 :]]


def check_message(message: Any) -> str:
    if not isinstance(message, str) or not message.strip():
        raise UserError("Type a message first: an empty message gets no reply.")
    if len(message) > settings.MAX_CHARS:
        raise UserError(
            f"Your message has {len(message):,} characters; this Space accepts at most "
            f"{settings.MAX_CHARS:,}. Shorten it or split it into several messages."
        )
    return message


def build_messages(
    variant: dict[str, Any],
    mode: str | None,
    history: Any,
    message: Any,
    system: str | None = None,
    where: str = "history",
    offset: int = 0,
) -> list[dict[str, str]]:
    """System prompt (+ mode instruction), the earlier turns and the new message, all neutralized; bad input raises
    UserError before any model work. `system` replaces the variant's own system prompt; an error about an earlier
    turn names it `where[offset + i]`."""
    message = check_message(message)
    modes = variant.get("modes") or {}
    if mode and mode not in modes:
        raise UserError(f"Unknown mode {str(mode)[:80]!r} for {variant['id']}. Modes: {', '.join(modes) or 'none'}.")
    if not isinstance(history, (list, tuple)):
        raise UserError(f"{where} must be a list of {{'role': 'user'|'assistant', 'content': str}} messages.", where)
    if len(history) > 2 * settings.MAX_TURNS:
        raise UserError(
            f"The conversation has {len(history):,} earlier messages; this Space takes at most "
            f"{2 * settings.MAX_TURNS:,} ({settings.MAX_TURNS} turns). Start a new conversation "
            "(Clear) or send only the recent turns.",
            where,
        )
    turns, chars = [], 0
    pattern = marker_re(markers_of(variant))
    for i, m in enumerate(history):
        if not (isinstance(m, dict) and m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str)):
            raise UserError(f"{where}[{offset + i}] must be {{'role': 'user'|'assistant', 'content': str}}.", where)
        chars += len(m["content"])
        if chars > settings.MAX_HISTORY_CHARS:
            raise UserError(
                f"The conversation's earlier messages exceed {settings.MAX_HISTORY_CHARS:,} characters "
                f"(at {where}[{offset + i}]). Start a new conversation (Clear) or send only the recent turns.",
                where,
            )
        turns.append({"role": m["role"], "content": neutralize(m["content"], pattern)})
    if system is not None and len(system) > settings.MAX_CHARS:
        raise UserError(
            f"The system prompt has {len(system):,} characters; this Space accepts at most {settings.MAX_CHARS:,}.",
            where,
        )
    own = (variant.get("system_prompt") or "") if system is None else system
    system = "\n\n".join(neutralize(p, pattern) for p in (own, modes.get(mode or "", "")) if p)
    text = neutralize(message, pattern)
    if not text.strip():
        raise UserError("Your message holds only chat-template markers; write some text.")
    return ([{"role": "system", "content": system}] if system else []) + turns + [{"role": "user", "content": text}]


def fit_context(model, messages: list[dict[str, str]], max_new_tokens: int) -> tuple[list[dict], int, list[int]]:
    """Drop the oldest turns until prompt + reply fit the context; the system prompt and new message stay.

    One pass: each message is tokenized once, the turns to drop are found from the running sum of their sizes, and
    the prompt is rendered again only to check (at most a few times when the estimate of the template's own tokens
    was short). Returns (messages, turns dropped, prompt token ids).
    """
    budget = model.n_ctx - max_new_tokens
    tokens = model.prompt_tokens(messages)
    if len(tokens) <= budget:
        return messages, 0, tokens
    system = messages[:1] if messages[0]["role"] == "system" else []
    turns, last = messages[len(system) : -1], messages[-1]
    # turn boundaries: a turn is a user message and the reply to it
    starts = [i for i, m in enumerate(turns) if m["role"] == "user" or i == 0]
    sizes = [model.count(m["content"]) + model.overhead for m in turns]
    excess, dropped, cut = len(tokens) - budget, 0, 0
    for _ in range(4):
        removed = 0
        while cut < len(turns) and removed < excess:
            nxt = next((s for s in starts if s > cut), len(turns))
            removed += sum(sizes[cut:nxt])
            cut, dropped = nxt, dropped + 1
        kept = system + turns[cut:] + [last]
        tokens = model.prompt_tokens(kept)
        excess = len(tokens) - budget
        if excess <= 0 or cut >= len(turns):
            break
    if len(tokens) > budget:
        raise UserError(
            f"Your message is {len(tokens):,} tokens with the system prompt; with {max_new_tokens} new "
            f"tokens that exceeds this model's {model.n_ctx:,}-token context. Shorten it."
        )
    return kept, dropped, tokens
