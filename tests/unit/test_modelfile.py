"""Ollama Modelfiles: the Go-template subset renders as Ollama does, and the file holds what Ollama needs."""

from __future__ import annotations

import pytest

from iris_recipes import chat_families
from iris_recipes.errors import IrisError
from iris_recipes.export.modelfile import TemplateError, modelfile_text, render, template_problems

CONV = [
    {"role": "system", "content": "Be brief."},
    {"role": "system", "content": "Use numbers."},
    {"role": "user", "content": "a"},
    {"role": "user", "content": "b"},
    {"role": "assistant", "content": "c"},
]


def test_render_follows_ollama_semantics():
    # all system messages joined by a blank line into .System; consecutive same-role messages merged
    assert render("{{ .System }}|{{ range .Messages }}<{{ .Role }}:{{ .Content }}>{{ end }}", CONV) == (
        "Be brief.\n\nUse numbers.|<system:Be brief.\n\nUse numbers.><user:a\n\nb><assistant:c>"
    )
    tmpl = (
        '{{ range .Messages }}{{ if eq .Role "user" }}U{{ else if eq .Role "assistant" }}A{{ else }}S{{ end }}{{ end }}'
    )
    assert render(tmpl, CONV) == "SUA"
    # {{- and -}} trim every white space on their side, newlines included
    assert render("x \n {{- if .System }} y {{ end -}} \n\n z", CONV) == "x y z"
    assert render("{{ if .Prompt }}P{{ else }}no prompt{{ end }}", CONV) == "no prompt"  # "" is false


def test_render_keeps_go_variables_and_their_scope():
    # declared at the top, reassigned inside a range: the next iteration sees the new value (Go >= 1.11)
    tmpl = '{{ $s := .System }}{{ range .Messages }}{{ if eq .Role "user" }}[{{ $s }}]{{ $s = "" }}{{ end }}{{ end }}'
    assert render(tmpl, [*CONV, {"role": "user", "content": "d"}]) == "[Be brief.\n\nUse numbers.][]"
    # a variable declared in a block ends with it
    with pytest.raises(TemplateError, match=r"undefined variable \$x"):
        render("{{ if .System }}{{ $x := .System }}{{ end }}{{ $x }}", CONV)


def test_gemma3_template_puts_the_system_prompt_in_the_first_user_turn():
    family = chat_families.get("gemma3")
    conv = [CONV[0], *CONV[2:], {"role": "user", "content": "d"}]
    assert render(family.ollama_template, conv) == (
        "<start_of_turn>user\nBe brief.\n\na\n\nb<end_of_turn>\n<start_of_turn>model\nc<end_of_turn>\n"
        "<start_of_turn>user\nd<end_of_turn>\n<start_of_turn>model\n"
    )


@pytest.mark.parametrize(
    "template, message",
    [
        ("{{ if .System }}x", "without {{ end }}"),
        ("{{ $x = .System }}", "undefined variable"),
        ("{{ range .Messages }}x", "without {{ end }}"),
        ("x{{ end }}", "unexpected"),
        ("{{ .Nope }}", "no such field"),
        ("{{ printf .System }}", "unsupported expression"),
    ],
)
def test_render_refuses_what_it_does_not_implement(template, message):
    with pytest.raises(TemplateError, match=message):
        render(template, CONV)


def test_template_problems_locate_the_difference():
    family = chat_families.get("chatml")
    assert template_problems(family, lambda conv: render(family.ollama_template, conv)) == []
    bad = template_problems(family, lambda conv: render(family.ollama_template, conv).replace("\n", " ", 1))
    assert bad and "differently from the model's chat template at character" in bad[0]
    assert template_problems(None, lambda conv: "anything") == []  # tokenizer_default: the GGUF's own template


def test_modelfile_holds_template_stops_system_and_sampling():
    family = chat_families.get("llama3")
    text = modelfile_text(
        "demo-q4_k_m.gguf",
        family,
        stop=list(family.stop),
        system="You are a tutor.",
        sampling={"temperature": 0.2, "top_p": 0.9, "max_new_tokens": 256},
    )
    lines = text.splitlines()
    assert lines[0] == "FROM ./demo-q4_k_m.gguf"
    assert f'TEMPLATE """{family.ollama_template.splitlines()[0]}' in text
    assert [ln for ln in lines if ln.startswith("PARAMETER stop")] == [f'PARAMETER stop "{s}"' for s in family.stop]
    assert "PARAMETER temperature 0.2" in lines and "PARAMETER num_predict 256" in lines
    assert lines[-1] == 'SYSTEM """You are a tutor."""'
    no_template = modelfile_text("x.gguf", None, stop=["<eot>"], system="", sampling={})
    assert "TEMPLATE" not in no_template and "SYSTEM" not in no_template
    with pytest.raises(IrisError, match="space.system_prompt contains"):
        modelfile_text("x.gguf", family, stop=[], system='say """hi"""', sampling={})
