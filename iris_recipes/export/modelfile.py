"""Ollama Modelfiles (also read by LM Studio's Ollama import): a variant's GGUF with its chat family's template and
stop tokens, its system prompt and its sampling defaults, so it answers there as it does in the Space.

The TEMPLATE comes from the chat-family registry. `render` executes the part of Go's text/template those templates
use (text, `{{ .Field }}`, `{{ if }}`/`{{ else if }}`/`{{ else }}`/`{{ end }}`, `{{ range }}`, `eq`, `{{-`/`-}}`,
variables: `{{ $x := ... }}`, `{{ $x = ... }}`, `{{ $x }}`)
with the values Ollama gives a template (`.System`: the system messages joined by a blank line; `.Messages`:
consecutive same-role messages merged), so the export can check that a Modelfile renders a conversation to exactly
the text the model's Hugging Face template renders.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from iris_recipes.chat_families import ChatFamily
from iris_recipes.errors import IrisError

# Conversations the check renders both ways: a system turn or none, one turn or several.
CHECK_CONVERSATIONS = [
    [{"role": "user", "content": "What is 7 + 5?"}],
    [
        {"role": "system", "content": "You are a careful tutor."},
        {"role": "user", "content": "What is 7 + 5?"},
        {"role": "assistant", "content": "7 + 5 = 12\nAnswer: 12"},
        {"role": "user", "content": "And 12 - 3?\n\nShow the steps."},
    ],
]


# -- Go text/template, the subset Ollama's templates use ------------------------------------------------------------
_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"|\$?\.[A-Za-z_][A-Za-z0-9_]*|\$[A-Za-z_][A-Za-z0-9_]*|:?=|\.|[A-Za-z_][A-Za-z0-9_]*'
)


class TemplateError(ValueError):
    pass


@dataclass
class _Node:
    kind: str  # text | expr | if | range | assign
    value: Any = None  # text, the expression's tokens, or (variable, ":=" or "=", expression tokens)
    branches: list[tuple[list[str] | None, list]] = field(default_factory=list)  # if: (condition or None, body)


def _parse(template: str) -> list[_Node]:
    pieces: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION.finditer(template):
        text = template[pos : m.start()]
        if m.group(1):
            text = text.rstrip(" \t\r\n")
        if pieces and pieces[-1][0] == "trim":
            text = text.lstrip(" \t\r\n")
            pieces.pop()
        pieces.append(("text", text))
        pieces.append(("action", m.group(2).strip()))
        if m.group(3):
            pieces.append(("trim", ""))
        pos = m.end()
    tail = template[pos:]
    if pieces and pieces[-1][0] == "trim":
        tail = tail.lstrip(" \t\r\n")
        pieces.pop()
    pieces.append(("text", tail))
    nodes, rest = _block(pieces, 0, top=True)
    return nodes


def _block(pieces: list[tuple[str, str]], i: int, top: bool = False) -> tuple[list[_Node], int]:
    """Nodes from pieces[i] up to an `else`/`end` (returned index points at it) or the end."""
    out: list[_Node] = []
    while i < len(pieces):
        kind, text = pieces[i]
        if kind == "text":
            if text:
                out.append(_Node("text", text))
            i += 1
            continue
        words = _TOKEN.findall(text)
        if not words:
            raise TemplateError(f"empty action {{{{{text}}}}}")
        head = words[0]
        if head in ("end", "else"):
            if top:
                raise TemplateError(f"unexpected {{{{{text}}}}}")
            return out, i
        if head == "if":
            node = _Node("if")
            cond: list[str] | None = words[1:]
            i += 1
            while True:
                body, i = _block(pieces, i)
                node.branches.append((cond, body))
                if i >= len(pieces):
                    raise TemplateError("{{ if }} without {{ end }}")
                words = _TOKEN.findall(pieces[i][1])
                i += 1
                if words[0] == "end":
                    break
                cond = words[2:] if words[1:2] == ["if"] else None  # else if / else
            out.append(node)
        elif head.startswith("$") and not head.startswith("$.") and words[1:2] in ([":="], ["="]):
            out.append(_Node("assign", (head, words[1], words[2:])))
            i += 1
        elif head == "range":
            body, i = _block(pieces, i + 1)
            if i >= len(pieces) or _TOKEN.findall(pieces[i][1])[0] != "end":
                raise TemplateError("{{ range }} without {{ end }}")
            out.append(_Node("range", words[1:], [(None, body)]))
            i += 1
        else:
            out.append(_Node("expr", words))
            i += 1
    return out, i


def _value(word: str, dot: Any, root: dict, scope: list[dict]) -> Any:
    if word.startswith('"'):
        return bytes(word[1:-1], "utf-8").decode("unicode_escape")
    if word == ".":
        return dot
    if word.startswith("$") and not word.startswith("$."):
        return _variable(scope, word)[word]
    base, name = (root, word[2:]) if word.startswith("$.") else (dot, word[1:])
    if not isinstance(base, dict) or name not in base:
        raise TemplateError(f"{word}: no such field")
    return base[name]


def _variable(scope: list[dict], name: str) -> dict:
    """The innermost scope that declares `name` (Go: a variable lives until the `end` of the block declaring it)."""
    for frame in reversed(scope):
        if name in frame:
            return frame
    raise TemplateError(f"undefined variable {name}")


def _eval(words: list[str], dot: Any, root: dict, scope: list[dict]) -> Any:
    if words and words[0] == "eq":
        if len(words) != 3:
            raise TemplateError(f"eq takes two arguments: {' '.join(words)}")
        return _value(words[1], dot, root, scope) == _value(words[2], dot, root, scope)
    if len(words) != 1:
        raise TemplateError(f"unsupported expression: {' '.join(words)}")
    return _value(words[0], dot, root, scope)


def _run(nodes: list[_Node], dot: Any, root: dict, out: list[str], scope: list[dict]) -> None:
    for node in nodes:
        if node.kind == "text":
            out.append(node.value)
        elif node.kind == "expr":
            value = _eval(node.value, dot, root, scope)
            out.append("" if value is None else str(value))
        elif node.kind == "assign":  # writes nothing
            name, op, words = node.value
            frame = scope[-1] if op == ":=" else _variable(scope, name)
            frame[name] = _eval(words, dot, root, scope)
        elif node.kind == "if":
            for cond, body in node.branches:
                if cond is None or _eval(cond, dot, root, scope):
                    _run(body, dot, root, out, [*scope, {}])
                    break
        elif node.kind == "range":
            for item in _eval(node.value, dot, root, scope) or []:
                _run(node.branches[0][1], item, root, out, [*scope, {}])


def render(template: str, messages: list[dict[str, str]]) -> str:
    """`template` executed as Ollama executes a chat template on `messages` (its collation included)."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    collated: list[dict[str, str]] = []
    for m in messages:
        if collated and collated[-1]["Role"] == m["role"]:
            collated[-1]["Content"] += "\n\n" + m["content"]
        else:
            collated.append({"Role": m["role"], "Content": m["content"]})
    root = {"System": system, "Messages": collated, "Prompt": "", "Response": ""}
    out: list[str] = []
    _run(_parse(template), root, root, out, [{}])
    return "".join(out)


# -- the Modelfile ---------------------------------------------------------------------------------------------------
def _quoted(value: str, what: str) -> str:
    """A Modelfile triple-quoted value; Ollama's parser has no escape for a `\"\"\"` inside one."""
    if '"""' in value:
        raise IrisError(f'{what} contains """, which an Ollama Modelfile cannot hold; remove it from the recipe.')
    return f'"""{value}"""'


def modelfile_text(
    gguf_name: str, family: ChatFamily | None, *, stop: list[str], system: str, sampling: dict[str, Any]
) -> str:
    """The Modelfile of one GGUF (`FROM ./<gguf_name>`, beside it). `family` None (tokenizer_default): no TEMPLATE,
    Ollama reads the GGUF's own; `stop` then comes from the export's checks of the tokenizer."""
    lines = [f"FROM ./{gguf_name}"]
    if family is not None and family.ollama_template:
        lines.append(f"TEMPLATE {_quoted(family.ollama_template, 'the chat template')}")
    lines += [f'PARAMETER stop "{s}"' for s in stop]
    names = {"temperature": "temperature", "top_p": "top_p", "max_new_tokens": "num_predict"}
    lines += [f"PARAMETER {names[k]} {sampling[k]}" for k in names if sampling.get(k) is not None]
    if system:
        lines.append(f"SYSTEM {_quoted(system, 'space.system_prompt')}")
    return "\n".join(lines) + "\n"


def _after_bos(family: ChatFamily, text: str) -> str:
    return text[len(family.bos) :] if family.bos and text.startswith(family.bos) else text


def default_system(family: ChatFamily | None, hf_render: Callable[[list[dict]], str]) -> str:
    """The system prompt the model's own template adds to a conversation that has none ('' when it adds none), read
    off its rendering: what the Modelfile's SYSTEM must say for Ollama to render the same prompt."""
    if family is None or not family.ollama_template:
        return ""
    conv = [{"role": "user", "content": "Hi"}]
    plain = _after_bos(family, hf_render(conv))
    if plain == render(family.ollama_template, conv):
        return ""
    hole = "\x00"
    before, after = render(family.ollama_template, [{"role": "system", "content": hole}, *conv]).split(hole)
    if plain.startswith(before) and plain.endswith(after) and len(plain) > len(before) + len(after):
        return plain[len(before) : len(plain) - len(after)]
    return ""


def template_problems(family: ChatFamily | None, hf_render: Callable[[list[dict]], str], system: str = "") -> list[str]:
    """Where the family's Ollama TEMPLATE renders the check conversations differently from `hf_render` (the model's
    Hugging Face template with a generation prompt); the family's BOS, which llama.cpp adds, is not compared. With a
    Modelfile `system` prompt, a conversation without a system message gets it first, as Ollama (and the Space) give
    it. A family without a system turn gets its system prompt in the first user message, as training had it."""
    if family is None or not family.ollama_template:
        return []
    problems = []
    for conv in CHECK_CONVERSATIONS:
        if system and conv[0]["role"] != "system":
            conv = [{"role": "system", "content": system}, *conv]
        expected = _after_bos(family, hf_render(family.fold_system(conv)))
        got = render(family.ollama_template, conv)
        if got != expected:
            at = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
            problems.append(
                f"the Modelfile's template renders a {len(conv)}-message conversation differently from the model's "
                f"chat template at character {at}: {got[at : at + 40]!r} instead of {expected[at : at + 40]!r}"
            )
    return problems
