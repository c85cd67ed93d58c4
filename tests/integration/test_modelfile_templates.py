"""Each chat family's Ollama TEMPLATE renders a conversation (system or not, one or several turns, generation
prompt) to exactly the text its Hugging Face template renders after BOS: Axolotl's built-in template of the family,
which training writes into the fine-tuned model's tokenizer, applied by each family's stand-in tokenizer."""

from __future__ import annotations

import pytest

from iris_recipes import chat_families
from iris_recipes.export.modelfile import CHECK_CONVERSATIONS, default_system, render, template_problems

STANDIN = {
    "llama3": "llama3",
    "phi_3": "phi3",
    "phi_35": "phi3",
    "gemma3": "gemma3",
    "qwen_25": "qwen25",
    "chatml": "chatml",
}
MORE = [
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "2+2?"},
    ],
    [{"role": "system", "content": "Answer in one line."}, {"role": "user", "content": "Name a prime.\nJust one."}],
]


def test_every_family_has_a_standin_here():
    assert set(STANDIN) == set(chat_families.FAMILIES)


@pytest.mark.parametrize("name", sorted(STANDIN))
def test_modelfile_template_renders_what_the_hf_template_renders(name, standin_dirs):
    from axolotl.utils.chat_templates import get_chat_template
    from transformers import AutoTokenizer

    family = chat_families.get(name)
    tok = AutoTokenizer.from_pretrained(standin_dirs[STANDIN[name]])
    tok.chat_template = get_chat_template(name)  # what training saves with the fine-tuned model

    def hf(conv):
        return tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)

    # a template that adds a system prompt of its own (Qwen2.5's) gets it from the Modelfile's SYSTEM
    system = default_system(family, hf)
    assert bool(system) == (name == "qwen_25"), system
    assert template_problems(family, hf, system) == []
    for conv in [*CHECK_CONVERSATIONS, *MORE]:
        if system and conv[0]["role"] != "system":
            conv = [{"role": "system", "content": system}, *conv]
        expected = hf(family.fold_system(conv))
        expected = expected[len(family.bos) :] if family.bos and expected.startswith(family.bos) else expected
        assert render(family.ollama_template, conv) == expected
    # and the check can fail: another family's template is refused
    other = next(f for f in chat_families.FAMILIES.values() if f.ollama_template != family.ollama_template)
    wrong = chat_families.ChatFamily(**{**family.__dict__, "ollama_template": other.ollama_template})
    assert template_problems(wrong, hf, system)
