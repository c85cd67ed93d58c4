"""The stand-ins: tiny models that take the real base models' code paths (tokenizer, specials, template, GGUF
conversion), and the Hugging Face cache that lets the recipes' hub ids resolve to them offline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import standins
from iris_recipes.errors import IrisError

REPO = Path(__file__).resolve().parents[2]

# family -> (architecture, specials that must be single tokens, end of turn, rendered user turn)
EXPECTED = {
    "llama3": (
        "LlamaForCausalLM",
        ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|end_of_text|>"],
        "<|eot_id|>",
        "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
    ),
    "phi3": (
        "Phi3ForCausalLM",
        ["<|user|>", "<|assistant|>", "<|system|>", "<|end|>", "<|endoftext|>"],
        "<|end|>",
        "<|user|>\nhi<|end|>\n",
    ),
    "gemma3": (
        "Gemma3ForCausalLM",
        ["<bos>", "<start_of_turn>", "<end_of_turn>", "<eos>"],
        "<end_of_turn>",
        "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
    ),
    "qwen25": (
        "Qwen2ForCausalLM",
        ["<|im_start|>", "<|im_end|>", "<|endoftext|>"],
        "<|im_end|>",
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nhi<|im_end|>\n",
    ),
    "chatml": ("LlamaForCausalLM", ["<|im_start|>", "<|im_end|>"], "<|im_end|>", "<|im_start|>user\nhi<|im_end|>\n"),
}
# stand-ins whose tokenizer llama.cpp reads from a SentencePiece tokenizer.model, with the real model's class
SENTENCEPIECE = {"phi3": "LlamaTokenizer", "gemma3": "GemmaTokenizer"}


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_standin_carries_its_family(family, standin_dirs):
    from transformers import AutoTokenizer

    model = standin_dirs[family]
    arch, specials, eot, user_turn = EXPECTED[family]
    config = json.loads((model / "config.json").read_text())
    assert config["architectures"] == [arch] and config["iris_random_weights"] is True
    tok = AutoTokenizer.from_pretrained(model)
    for special in specials:
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1, special
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert user_turn in text
    gen = json.loads((model / "generation_config.json").read_text())
    eos = gen["eos_token_id"] if isinstance(gen["eos_token_id"], list) else [gen["eos_token_id"]]
    assert tok.convert_tokens_to_ids(eot) in eos
    assert config["vocab_size"] >= len(tok)


def test_llama3_standin_is_shaped_like_llama_3_2(standin_dirs):
    config = json.loads((standin_dirs["llama3"] / "config.json").read_text())
    assert config["tie_word_embeddings"] is True
    rope = config.get("rope_scaling") or config.get("rope_parameters")
    assert rope["rope_type"] == "llama3" and rope["factor"] == 32.0
    assert isinstance(config["eos_token_id"], list) and len(config["eos_token_id"]) == 3


@pytest.mark.parametrize("family", sorted(SENTENCEPIECE))
def test_sentencepiece_standin_ships_it_and_agrees_with_it(family, standin_dirs):
    """tokenizer.json must split text exactly as the SentencePiece model llama.cpp's converter reads."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    model = standin_dirs[family]
    cfg = json.loads((model / "tokenizer_config.json").read_text())
    assert cfg["tokenizer_class"] == SENTENCEPIECE[family]  # the real model's: llama.cpp then reads tokenizer.model
    sp = spm.SentencePieceProcessor(model_file=str(model / "tokenizer.model"))
    tok = AutoTokenizer.from_pretrained(model)
    for text in [
        "What does a high white blood cell count mean?",
        "A train travels 60 km per hour for 3 hours.",
        "  two  spaces\nnew line",
        "Ünïcödé ✓ 日本語",
        "x=1;y=22;z=333",
        " leading space and trailing ",
    ]:
        assert tok(text, add_special_tokens=False)["input_ids"] == sp.encode(text), text


def test_gemma3_standin_is_shaped_like_gemma_3(standin_dirs):
    config = json.loads((standin_dirs["gemma3"] / "config.json").read_text())
    assert config["layer_types"].count("full_attention") >= 1 and config["layer_types"][5] == "full_attention"
    assert config["eos_token_id"] == [1, config["eos_token_id"][1]] and config["bos_token_id"] == 2
    assert config["query_pre_attn_scalar"] == config["head_dim"] and config["tie_word_embeddings"] is True


def test_qwen25_standin_has_qwen25s_vocabulary(standin_dirs):
    from transformers import AutoTokenizer

    model = standin_dirs["qwen25"]
    tok = AutoTokenizer.from_pretrained(model)
    assert len(tok) == 151665 and tok.bos_token is None and tok.eos_token == "<|im_end|>"
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|file_sep|>"]) == [
        151643,
        151644,
        151645,
        151664,
    ]
    assert "<think>" not in tok.get_vocab()  # Qwen3's, not Qwen2.5's
    config = json.loads((model / "config.json").read_text())
    assert config["vocab_size"] == 151936 and config["tie_word_embeddings"] is True


def test_standins_are_seeded_and_refuse_to_overwrite(tmp_path, tiny_model_dir):
    from safetensors.torch import load_file

    a = standins.build("chatml", tmp_path / "a", seed=0)
    b = standins.build("chatml", tmp_path / "b", seed=1)
    ta, tb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    ref = load_file(tiny_model_dir / "model.safetensors")
    assert all((ta[k] == ref[k]).all() for k in ref)  # same seed, same weights
    assert not (ta["model.layers.0.mlp.up_proj.weight"] == tb["model.layers.0.mlp.up_proj.weight"]).all()
    with pytest.raises(IrisError, match="not empty"):
        standins.build("chatml", a)
    with pytest.raises(IrisError, match="unknown stand-in family"):
        standins.build("gpt5", tmp_path / "c")
    assert not list(tmp_path.glob(".*partial"))


def test_seeded_hub_id_resolves_offline_to_the_standin(tmp_path, monkeypatch, standin_dirs):
    import huggingface_hub.constants as hc

    from iris_recipes.models import resolve_base_model

    snapshot = standins.seed_hf_cache(tmp_path / "hf", "unsloth/Llama-3.2-1B-Instruct", standin_dirs["llama3"])
    assert standins.seed_hf_cache(tmp_path / "hf", "unsloth/Llama-3.2-1B-Instruct", standin_dirs["llama3"]) == snapshot
    repo = tmp_path / "hf" / "hub" / "models--unsloth--Llama-3.2-1B-Instruct"
    assert (repo / "refs" / "main").read_text() == snapshot.name
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    found = resolve_base_model("unsloth/Llama-3.2-1B-Instruct")
    assert (found.kind, found.path, found.hub_id) == ("hub", snapshot, "unsloth/Llama-3.2-1B-Instruct")


def test_make_tiny_model_script(tmp_path):
    script = REPO / "scripts" / "make_tiny_model.py"
    out = subprocess.run(
        [
            sys.executable,
            str(script),
            "--family",
            "phi3",
            str(tmp_path / "t"),
            "--layers",
            "1",
            "--hidden",
            "32",
            "--heads",
            "2",
            "--kv-heads",
            "1",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    assert config["num_hidden_layers"] == 1 and config["hidden_size"] == 32
    assert (tmp_path / "t" / "tokenizer.model").is_file()
    again = subprocess.run(
        [sys.executable, str(script), "--family", "phi3", str(tmp_path / "t")], capture_output=True, text=True
    )
    assert again.returncode == 2 and "not empty" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_standin_converts_to_gguf_like_the_real_model(family, standin_dirs, tmp_path):
    """llama.cpp's converter takes the family's path (SentencePiece for phi3); the GGUF keeps the template, the
    specials as the same single ids, and tokenizes chat prompts exactly as transformers does."""
    import llama_cpp
    from transformers import AutoTokenizer

    from iris_recipes.export.hf_to_gguf import convert_f16

    model = standin_dirs[family]
    name = standins.FAMILIES[family].hub_ids[0].rsplit("/", 1)[-1]  # as the export names a model
    gguf = convert_f16(model, tmp_path / "m.gguf", log=tmp_path / "convert.log", model_name=name)
    tok = AutoTokenizer.from_pretrained(model)
    llm = llama_cpp.Llama(str(gguf), vocab_only=True, verbose=False)
    assert llm.metadata["tokenizer.chat_template"] == tok.chat_template
    tokenizer_model = llm.metadata["tokenizer.ggml.model"]
    assert tokenizer_model == ("llama" if family in SENTENCEPIECE else "gpt2")
    if family == "qwen25":  # recognized by the hash of its output, as the real Qwen2.5's
        assert llm.metadata["tokenizer.ggml.pre"] == "qwen2"
    _, specials, eot, _ = EXPECTED[family]
    for special in specials:
        tid = tok.convert_tokens_to_ids(special)
        assert llm._model.token_get_text(tid) == special
    assert llama_cpp.llama_vocab_is_eog(llm._model.vocab, tok.convert_tokens_to_ids(eot))
    conv = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 7 + 5?"},
        {"role": "assistant", "content": "12"},
        {"role": "user", "content": "And times two?"},
    ]
    text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
    assert llm.tokenize(text.encode(), add_bos=False, special=True) == tok(text, add_special_tokens=False)["input_ids"]
    llm.close()


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(SENTENCEPIECE))
def test_merged_sentencepiece_model_keeps_its_control_pieces(family, standin_dirs, tmp_path):
    """The merge saves the tokenizer again (transformers 5 leaves `added_tokens_decoder` out of tokenizer_config.json),
    yet llama.cpp still reads the template's pieces as control tokens: prompts tokenize as in transformers."""
    import llama_cpp
    from transformers import AutoTokenizer

    from iris_recipes.export.hf_to_gguf import convert_f16
    from iris_recipes.lora_merge import merge

    model = standin_dirs[family]
    _, specials, eot, _ = EXPECTED[family]
    merged = tmp_path / "merged"
    merge(base_model=str(model), weights_dir=model, out=merged, method="full", eot_tokens=[eot])
    name = standins.FAMILIES[family].hub_ids[0].rsplit("/", 1)[-1]  # as the export names a model
    gguf = convert_f16(merged, tmp_path / "m.gguf", log=tmp_path / "convert.log", model_name=name)
    tok = AutoTokenizer.from_pretrained(merged)
    llm = llama_cpp.Llama(str(gguf), vocab_only=True, verbose=False)
    for special in specials:
        assert llm._model.token_get_attr(tok.convert_tokens_to_ids(special)) & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
    conv = [{"role": "user", "content": "What is 7 + 5?"}, {"role": "assistant", "content": "12"}]
    text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
    assert llm.tokenize(text.encode(), add_bos=False, special=True) == tok(text, add_special_tokens=False)["input_ids"]
    llm.close()
