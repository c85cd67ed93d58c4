"""Row checks: what a normalized conversation must look like before it may reach training."""

from __future__ import annotations

from iris_recipes.chat_families import marker_pattern

# Every chat family's template tokens: inside content they would fake turn boundaries once the template is applied.
TEMPLATE_TOKEN = marker_pattern()


def text_problem(content) -> str | None:
    """Why `content` cannot be the text of a turn (missing, not text, empty, holding a template token), or None."""
    if content is None:
        return "content is missing"
    if not isinstance(content, str):
        return f"content is a {type(content).__name__}, not text"
    if not content.strip():
        return "content is empty"
    token = TEMPLATE_TOKEN.search(content)
    if token:
        return f"content contains the chat-template token {token.group(0)} (strip it from the data)"
    return None


def conversation_problem(messages: list[dict]) -> str | None:
    """Why `messages` is not a valid training conversation, or None.

    Valid: an optional system turn first, then user/assistant alternating, starting with user and ending with
    assistant; every content a non-empty string free of chat-template tokens.
    """
    return _turns_problem(messages, last="assistant")


def prompt_problem(messages: list[dict]) -> str | None:
    """Why `messages` is not a valid prompt of a preference row (the turns before the answers), or None: the same
    rules as a conversation, but it ends with the user's turn that the answers reply to."""
    return _turns_problem(messages, last="user")


def _turns_problem(messages: list[dict], last: str) -> str | None:
    if not messages:
        return "no turns"
    for i, turn in enumerate(messages, 1):
        problem = text_problem(turn.get("content"))
        if problem:
            return f"turn {i} ({turn.get('role')}): {problem}"
    roles = [t["role"] for t in messages]
    body = roles[1:] if roles[0] == "system" else roles
    if "system" in body:
        return f"turn {roles.index('system', 1) + 1} (system): a system turn may only come first"
    if not body:
        return "only a system turn; a conversation needs user and assistant turns"
    offset = len(roles) - len(body)
    for j, role in enumerate(body):
        expected = "user" if j % 2 == 0 else "assistant"
        if role != expected:
            return (
                f"turn {j + offset + 1} ({role}): expected {expected} "
                "(after an optional system turn, user and assistant turns alternate, starting with user)"
            )
    if body[-1] != last:
        whose = "the assistant's" if last == "assistant" else "the user's, which the answers reply to"
        return f"turn {len(roles)} ({body[-1]}): the last turn must be {whose}"
    return None
