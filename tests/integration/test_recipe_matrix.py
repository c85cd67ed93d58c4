"""Every shipped recipe, run the way a user runs it: `iris-recipes run recipes/NAME.yaml` with only CPU-size
overrides, offline, its hub-id base model resolved from a Hugging Face cache in which its family's stand-in plays
the real model (smollm2-demo uses the builtin SmolLM2). Data -> train -> merge -> export -> eval -> card, then the
Space answers with the variant. A new recipe in recipes/ is covered automatically. smollm2-demo's run is the
session's demo run (tests/conftest_demo.py: `scripts/demo.sh`, 12 steps), which test_demo.py checks as well."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from conftest_demo import DEMO

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted(p.stem for p in (REPO / "recipes").glob("*.yaml"))

# What a CPU and a few minutes need; nothing about the model, template or data changes.
EVAL_OVERRIDES = ["eval.samples=2", "eval.seeds=[0]", "eval.max_new_tokens=8"]
GPU_RECIPE_OVERRIDES = [
    "dataset.source=sample",
    "train.max_steps=2",
    "train.sequence_len=256",
    "train.save_steps=2",
    "train.eval_steps=2",
    "train.micro_batch_size=2",
    "train.gradient_accumulation=1",
    "train.logging_steps=1",
]
# A recipe on a builtin model is a CPU recipe already; its export demands that the real model still stops on its
# own, which 12 steps keep (as in the demo run) and 2 steps of a high learning rate's warmup do not guarantee.
CPU_RECIPE_OVERRIDES = ["train.max_steps=12", "train.save_steps=12", "train.eval_steps=6"]


def overrides(name: str) -> list[str]:
    cpu_recipe = _recipe(name)["base_model"].startswith("builtin:")
    return [*(CPU_RECIPE_OVERRIDES if cpu_recipe else GPU_RECIPE_OVERRIDES), *EVAL_OVERRIDES]


# The Hub repository a builtin model is (the card's base_model, run.json's base_model_hub_id), written out here
# rather than asked of the code under test.
BUILTIN_UPSTREAM = {"builtin:smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}
FAMILY_OF_TEMPLATE = {
    "llama3": "llama3",
    "phi_35": "phi3",
    "phi_3": "phi3",
    "gemma3": "gemma3",
    "qwen_25": "qwen25",
    "chatml": "chatml",
}
END_OF_TURN = {
    "llama3": "<|eot_id|>",
    "phi3": "<|end|>",
    "gemma3": "<end_of_turn>",
    "qwen25": "<|im_end|>",
    "chatml": "<|im_end|>",
}
TEMPLATE_MARK = {
    "llama3": "<|start_header_id|>",
    "phi3": "<|assistant|>",
    "gemma3": "<start_of_turn>",
    "qwen25": "<|im_start|>",
    "chatml": "<|im_start|>",
}


def _recipe(name: str) -> dict:
    from iris_recipes.recipe import load_recipe

    return load_recipe(REPO / "recipes" / f"{name}.yaml", check_data=False).data


def _run_pinned(name: str, env: dict, cores: queue.Queue) -> tuple[int, str]:
    """`iris-recipes run` of one recipe, pinned to one free core (it then uses one thread everywhere)."""
    core = cores.get()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "iris_recipes", "run", f"recipes/{name}.yaml", *overrides(name)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
            preexec_fn=lambda: os.sched_setaffinity(0, {core}),
        )
        return proc.returncode, proc.stdout + proc.stderr
    finally:
        cores.put(core)


def _selected(session) -> list[str]:
    """The recipes this session's selected tests need: those of the selected end-to-end tests (`-k gemma` runs one),
    every recipe when the Space test is selected."""
    names: set[str] = set()
    for item in session.items:
        if item.module.__name__ != __name__:
            continue
        if item.originalname == "test_the_space_serves_every_recipe":
            return list(RECIPES)
        if item.originalname == "test_recipe_runs_end_to_end":
            names.add(item.callspec.params["name"])
    return [name for name in RECIPES if name in names]


@pytest.fixture(scope="module")
def matrix(hf_home, request, tmp_path_factory) -> dict:
    """Every selected recipe (_selected) run once: {name: (run directory, exit code, output)}, and "__runs__": the
    runs root. The others go side by side, one per core, into one runs root, so they take about (sum of run times)
    / cores; the demo is the session's demo run (asked for last: under pytest-xdist another worker runs it
    meanwhile), linked into that root."""
    env = dict(os.environ)
    runs = tmp_path_factory.mktemp("matrix-runs")
    env.update(
        HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", IRIS_HOME=str(REPO), IRIS_RUNS_DIR=str(runs)
    )
    env.pop("HF_HUB_CACHE", None)
    cores: queue.Queue = queue.Queue()
    for core in sorted(os.sched_getaffinity(0)):
        cores.put(core)
    selected = _selected(request.session)
    others = [name for name in selected if name != DEMO]
    with ThreadPoolExecutor(cores.qsize()) as pool:
        done = dict(zip(others, pool.map(lambda name: _run_pinned(name, env, cores), others)))
    if DEMO in selected:
        demo = request.getfixturevalue("demo_session")
        done[DEMO] = (demo["code"], demo["stdout"] + demo["stderr"])
        if (demo["runs"] / DEMO).is_dir():
            (runs / DEMO).symlink_to(demo["runs"] / DEMO, target_is_directory=True)
    out: dict = {"__runs__": runs}
    for name, (code, output) in done.items():
        found = [p for p in (runs / name).iterdir() if (p / "run.json").is_file()] if (runs / name).is_dir() else []
        out[name] = (found[0] if len(found) == 1 else None, code, output)
    return out


def _front_matter(readme: Path) -> dict:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def _force_end_of_turn(eot_id: int, after: int):
    """A llama.cpp logits processor that makes the end-of-turn token the only choice after `after` tokens."""
    import numpy as np

    calls = 0

    def processor(_ids, scores):
        nonlocal calls
        calls += 1
        if calls > after:
            scores = np.full_like(scores, -np.inf)
            scores[eot_id] = 0.0
        return scores

    return processor


@pytest.mark.slow
@pytest.mark.parametrize("name", RECIPES)
def test_recipe_runs_end_to_end(name, matrix):
    import llama_cpp
    from transformers import AutoTokenizer

    from iris_recipes.data import load_entry

    run, code, output = matrix[name]
    assert code == 0 and run is not None, f"{name} failed (exit {code}):\n{output[-6000:]}"
    recipe = _recipe(name)
    family = FAMILY_OF_TEMPLATE[recipe["chat_template"]]
    assert "Traceback" not in output, output[-4000:]

    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "done"
    assert {s: info["status"] for s, info in meta["stages"].items()} == {
        s: "done" for s in ("data", "train", "merge", "export", "eval", "card")
    }
    expected_hub = BUILTIN_UPSTREAM.get(recipe["base_model"], recipe["base_model"])  # a hub id names itself
    assert meta["base_model_hub_id"] == expected_hub

    # merged in the base model's dtype (the stand-ins and SmolLM2 are bf16), with a tokenizer llama.cpp can convert
    assert meta["stages"]["merge"]["dtype"] == "bfloat16"

    card = _front_matter(run / "README.md")
    assert card["base_model"] == expected_hub
    assert card["license"] == recipe["card"]["license"]
    names = [recipe["dataset"]["name"], *(m["name"] for m in recipe["dataset"].get("mix") or [] if "name" in m)]
    hubs = [h for h in (load_entry(n).hub for n in names) if h]
    assert set(hubs) <= set(card.get("datasets") or []), (hubs, card.get("datasets"))

    tok = AutoTokenizer.from_pretrained(run / "merged")
    eot = END_OF_TURN[family]
    eot_id = tok.convert_tokens_to_ids(eot)
    ggufs = meta["artifacts"]["gguf"]
    assert set(ggufs) == {"f16", *recipe["export"]["quantize"]}
    for quant, art in ggufs.items():
        llm = llama_cpp.Llama(str(run / art["file"]), vocab_only=True, verbose=False)
        assert TEMPLATE_MARK[family] in llm.metadata["tokenizer.chat_template"], quant
        assert llm._model.token_get_text(eot_id) == eot
        assert llama_cpp.llama_vocab_is_eog(llm._model.vocab, eot_id), f"{quant}: {eot} does not end generation"
        llm.close()
        checks = meta["stages"]["export"]["checks"][quant]
        assert checks["tokens"]["end_of_turn"] == eot and checks["tokens"]["passed"], checks["tokens"]
        # its Ollama Modelfile, whose template the export rendered against the model's
        modelfile = (run / art["modelfile"]).read_text()
        assert (
            modelfile.startswith(f"FROM ./{Path(art['file']).name}\nTEMPLATE ")
            and f'PARAMETER stop "{eot}"' in modelfile
        )

    # a LoRA run's adapter as GGUF, checked over the base model's F16 GGUF against the merged model
    if recipe.get("method", "lora") != "full":
        adapter = meta["artifacts"]["adapter_gguf"]
        assert (run / adapter["file"]).is_file() and adapter["top1_agreement"] >= 0.99, adapter
        assert Path(adapter["base_gguf"]).is_file()
        lora = llama_cpp.Llama(
            adapter["base_gguf"], lora_path=str(run / adapter["file"]), n_ctx=256, n_threads=2, verbose=False
        )
        assert lora.metadata.get("general.architecture")
        lora.close()

    # llama.cpp ends the reply at the family's end-of-turn token, and the token stays out of the text
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Hello there"}], tokenize=False, add_generation_prompt=True
    )
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    llm = llama_cpp.Llama(str(run / ggufs["f16"]["file"]), n_ctx=512, n_threads=2, verbose=False)
    out = llm.create_completion(ids, max_tokens=16, temperature=0.0, logits_processor=[_force_end_of_turn(eot_id, 3)])
    llm.close()
    assert out["choices"][0]["finish_reason"] == "stop" and out["usage"]["completion_tokens"] <= 4, out
    assert eot not in out["choices"][0]["text"]

    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["samples"] >= 1 and {"base", "tuned"} <= set(evaluation)
    assert evaluation["models"]["base"] == meta["base_model_path"]


@pytest.mark.slow
def test_the_space_serves_every_recipe(matrix, tmp_path):
    """The Space, built from the matrix's runs, answers through /chat with each variant."""
    from gradio_client import Client

    from conftest_space import served
    from iris_recipes.space_variants import load_variants, write_manifest

    variants, problems = load_variants(REPO / "recipes", matrix["__runs__"])
    assert problems == []
    assert {v.id: v.status for v in variants} == {name: "built" for name in RECIPES}
    manifest = write_manifest(tmp_path / "variants.json", variants)
    with served(manifest) as (url, _, _):
        client = Client(url, verbose=False)
        for v in variants:
            job = client.submit(v.id, "Hello, who are you?", [], "", 0.0, 0.9, 12, api_name="/chat")
            outputs = list(job)
            job.result()
            final = outputs[-1]
            assert final["done"] and final["stats"]["tokens"] >= 1, (v.id, final)
            assert not any(m in final["reply"] for m in END_OF_TURN.values()), (v.id, final["reply"])
