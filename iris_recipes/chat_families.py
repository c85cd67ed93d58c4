"""Chat families: what makes one model family's conversations different, one entry per family.

A recipe's `chat_template` names a family (Axolotl's built-in template of that name renders its conversations). Every
place that depends on the family reads its entry here and spells none of its tokens itself: the recipe schema's enum,
the Axolotl config (`eot_tokens`), the data stage's marker checks, the merge (the stop ids of the generation config),
the export checks, the Space (through the variants manifest) and the stand-ins. `tokenizer_default` is not a family:
it trains with the template the base model's tokenizer carries, and what a family entry would say is read from that
tokenizer instead (`iris_recipes.export.gguf_checks.end_of_turn_token`).

Adding a family is one `register(...)` call here plus its stand-in and tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TOKENIZER_DEFAULT = "tokenizer_default"


@dataclass(frozen=True)
class ChatFamily:
    name: str  # the recipe's chat_template value (Axolotl's built-in template of that name)
    end_of_turn: tuple[str, ...]  # closes an assistant turn; trained (train_on_eos: turn), so the model stops there
    end_of_text: tuple[str, ...]  # the tokenizer's EOS and other tokens that end generation when they appear
    markers: tuple[str, ...]  # every token the template writes: never allowed inside a message's content
    system: bool  # the template renders a system turn; False: the system prompt opens the first user message
    bos: str | None  # the BOS token the template writes itself (a tokenizer must not add a second one)
    models: str  # the base models it is for (documentation and error messages)
    # Ollama's TEMPLATE for the family (Go text/template, as in Ollama's own template/ folder): renders a conversation
    # to what the family's Hugging Face template renders after its BOS (llama.cpp adds that); system turns through
    # .System, the other turns by ranging over .Messages. No `{{-` trimming: every newline is written out. None:
    # Ollama takes the template from the GGUF.
    ollama_template: str | None = None
    system_join: str = "\n\n"  # system False: between the system prompt and the first user message's text

    @property
    def stop(self) -> tuple[str, ...]:
        """Every token generation stops at: the end of a turn first, then the end of the text."""
        return tuple(dict.fromkeys(self.end_of_turn + self.end_of_text))

    def fold_system(self, messages: list[dict]) -> list[dict]:
        """`messages` as this family can render them: for a family without a system turn, a leading system message
        becomes the start of the first user message (as such a family's own template writes it, where it takes a
        system message at all); otherwise unchanged."""
        if self.system or not messages or messages[0].get("role") != "system":
            return messages
        first = next((i for i, m in enumerate(messages) if m.get("role") == "user"), None)
        if first is None:
            return messages
        user = messages[first]
        folded = {**user, "content": messages[0]["content"] + self.system_join + user["content"]}
        return [*messages[1:first], folded, *messages[first + 1 :]]


FAMILIES: dict[str, ChatFamily] = {}

_CHATML_OLLAMA = (
    "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "{{ range .Messages }}"
    '{{ if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n'
    '{{ else if eq .Role "assistant" }}<|im_start|>assistant\n{{ .Content }}<|im_end|>\n{{ end }}'
    "{{ end }}<|im_start|>assistant\n"
)


def register(family: ChatFamily) -> ChatFamily:
    if family.name in FAMILIES or family.name == TOKENIZER_DEFAULT:
        raise ValueError(f"chat family {family.name!r} is registered twice")
    missing = [t for t in family.stop if t not in family.markers]
    if missing:
        raise ValueError(f"chat family {family.name!r}: stop tokens {missing} are not among its markers")
    FAMILIES[family.name] = family
    return family


register(
    ChatFamily(
        name="llama3",
        end_of_turn=("<|eot_id|>",),
        end_of_text=("<|end_of_text|>", "<|eom_id|>"),
        markers=(
            "<|begin_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
            "<|eom_id|>",
            "<|end_of_text|>",
        ),
        system=True,
        bos="<|begin_of_text|>",
        models="Llama 3, 3.1, 3.2 Instruct",
        ollama_template=(
            "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
            "{{ range .Messages }}"
            '{{ if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>\n\n{{ .Content }}<|eot_id|>'
            '{{ else if eq .Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>\n\n'
            "{{ .Content }}<|eot_id|>{{ end }}"
            "{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
        ),
    )
)
register(
    ChatFamily(
        name="phi_3",
        end_of_turn=("<|end|>",),
        end_of_text=("<|endoftext|>",),
        markers=("<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|endoftext|>"),
        system=True,
        bos="<s>",
        models="Phi-3-mini/medium Instruct",
        ollama_template=(
            "{{ if .System }}<|system|>\n{{ .System }}<|end|>\n{{ end }}"
            "{{ range .Messages }}"
            '{{ if eq .Role "user" }}<|user|>\n{{ .Content }}<|end|>\n<|assistant|>\n'
            '{{ else if eq .Role "assistant" }}{{ .Content }}<|end|>\n{{ end }}'
            "{{ end }}"
        ),
    )
)
register(
    ChatFamily(
        name="phi_35",
        end_of_turn=("<|end|>",),
        end_of_text=("<|endoftext|>",),
        markers=("<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|endoftext|>"),
        system=True,
        bos=None,
        models="Phi-3.5-mini Instruct",
        ollama_template=(
            "{{ if .System }}<|system|>\n{{ .System }}<|end|>\n{{ end }}"
            "{{ range .Messages }}"
            '{{ if eq .Role "user" }}<|user|>\n{{ .Content }}<|end|>\n'
            '{{ else if eq .Role "assistant" }}<|assistant|>\n{{ .Content }}<|end|>\n{{ end }}'
            "{{ end }}<|assistant|>\n"
        ),
    )
)
register(
    ChatFamily(
        name="gemma3",
        end_of_turn=("<end_of_turn>",),
        end_of_text=("<eos>",),
        markers=("<bos>", "<start_of_turn>", "<end_of_turn>", "<eos>", "<start_of_image>"),
        system=False,
        bos="<bos>",
        models="Gemma 3 Instruct (text: gemma-3-1b-it; the larger ones through their text model)",
        # the system prompt opens the first user turn, as Gemma's own template writes it
        ollama_template=(
            "{{ $system := .System }}"
            "{{ range .Messages }}"
            '{{ if eq .Role "user" }}<start_of_turn>user\n'
            '{{ if $system }}{{ $system }}\n\n{{ $system = "" }}{{ end }}{{ .Content }}<end_of_turn>\n'
            '{{ else if eq .Role "assistant" }}<start_of_turn>model\n{{ .Content }}<end_of_turn>\n{{ end }}'
            "{{ end }}<start_of_turn>model\n"
        ),
    )
)
register(
    ChatFamily(
        name="chatml",
        end_of_turn=("<|im_end|>",),
        end_of_text=("<|endoftext|>",),
        markers=("<|im_start|>", "<|im_end|>", "<|im_sep|>", "<|endoftext|>"),
        system=True,
        bos=None,
        models="SmolLM2 and other ChatML models",
        ollama_template=_CHATML_OLLAMA,
    )
)
register(
    ChatFamily(
        name="qwen_25",
        end_of_turn=("<|im_end|>",),
        end_of_text=("<|endoftext|>",),
        markers=("<|im_start|>", "<|im_end|>", "<|endoftext|>"),
        system=True,
        bos=None,
        models="Qwen2.5 Instruct (ChatML; a conversation without a system message gets Qwen's default one)",
        # ChatML; the default system prompt goes into the Modelfile's SYSTEM (export.modelfile.default_system)
        ollama_template=_CHATML_OLLAMA,
    )
)


def names() -> list[str]:
    """The recipe's chat_template choices: every family, then tokenizer_default."""
    return [*FAMILIES, TOKENIZER_DEFAULT]


def get(name: str) -> ChatFamily | None:
    """The family a recipe's chat_template names; None for tokenizer_default (the tokenizer's own template)."""
    if name == TOKENIZER_DEFAULT:
        return None
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown chat template {name!r}; known: {', '.join(names())}") from None


def end_of_turn(name: str) -> list[str]:
    """The end-of-turn tokens of a recipe's chat_template ([] for tokenizer_default: the tokenizer decides)."""
    family = get(name)
    return list(family.end_of_turn) if family else []


def fold_system(chat_template: str, messages: list[dict]) -> list[dict]:
    """`messages` as the recipe's chat family renders them (ChatFamily.fold_system; tokenizer_default: unchanged)."""
    family = get(chat_template)
    return family.fold_system(messages) if family else messages


def all_markers() -> tuple[str, ...]:
    """Every family's template tokens, longest first (so a regex alternation takes the longest match)."""
    found = {m for f in FAMILIES.values() for m in f.markers}
    return tuple(sorted(found, key=lambda m: (-len(m), m)))


def marker_pattern(markers: tuple[str, ...] | list[str] = (), *, any_bar_token: bool = False) -> re.Pattern:
    """A regex that finds template markers inside text: the given ones (a tokenizer's own specials, say) and every
    family's; with `any_bar_token`, also any `<|name|>` (the shape these families give all their special tokens,
    reserved ones too)."""
    literal = sorted({*markers, *all_markers()}, key=lambda m: (-len(m), m))
    generic = [r"<\|[^|<>\s]{1,40}\|>"] if any_bar_token else []
    return re.compile("|".join([*(re.escape(m) for m in literal), *generic]))
