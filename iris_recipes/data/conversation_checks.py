"""Row checks: what a normalized conversation must look like before it may reach training."""

from __future__ import annotations

from iris_recipes.chat_families import marker_pattern

# Every chat family's template tokens: inside content they would fake turn boundaries once the template is applied.
TEMPLATE_TOKEN = marker_pattern()


def conversation_problem(messages: list[dict]) -> str | None:
    """Why `messages` is not a valid training conversation, or None.

    Valid: an optional system turn first, then user/assistant alternating, starting with user and ending with
    assistant; every content a non-empty string free of chat-template tokens.
    """
    if not messages:
        return "no turns"
    for i, turn in enumerate(messages, 1):
        role, content = turn.get("role"), turn.get("content")
        where = f"turn {i} ({role})"
        if content is None:
            return f"{where}: content is missing"
        if not isinstance(content, str):
            return f"{where}: content is a {type(content).__name__}, not text"
        if not content.strip():
            return f"{where}: content is empty"
        token = TEMPLATE_TOKEN.search(content)
        if token:
            return f"{where}: content contains the chat-template token {token.group(0)} (strip it from the data)"
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
    if body[-1] != "assistant":
        return f"turn {len(roles)} (user): the last turn must be the assistant's"
    return None


def shortest_assistant(messages: list[dict]) -> int:
    return min((len(t["content"].strip()) for t in messages if t["role"] == "assistant"), default=0)
