"""The Space: the variant registry, `iris-recipes space`, and the Gradio app serving real GGUFs with llama.cpp."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest_space import (  # noqa: F401 (fixtures)
    REPO, free_port, load_app, served, smol_gguf, space_manifest, space_project, space_server, wait_for_port,
    write_done_run, write_recipe,
)

MARKERS = ("<|im_end|>", "<|im_start|>", "<|eot_id|>", "<|end|>", "</s>")


def client(url):
    from gradio_client import Client

    return Client(url, verbose=False)


def chat(c, variant, message, history=(), mode="", temperature=0.0, top_p=0.9, max_new_tokens=32):
    """All streamed updates of one /chat call."""
    job = c.submit(variant, message, list(history), mode, temperature, top_p, max_new_tokens, api_name="/chat")
    for _ in job:
        pass
    job.result()  # raises the app's error, if any
    return job.outputs()


def assert_well_formed(outputs):
    final = outputs[-1]
    assert final["done"] is True and all(not o["done"] for o in outputs[:-1])
    assert final["reply"].strip(), final
    assert not any(m in final["reply"] for m in MARKERS), final["reply"]
    stats = final["stats"]
    assert stats["tokens"] >= 1 and stats["ttft_s"] >= 0 and stats["finish_reason"] in ("stop", "length")
    # streamed: the reply grows chunk by chunk
    texts = [o["reply"] for o in outputs]
    assert all(b.startswith(a) for a, b in zip(texts, texts[1:]))
    return final


# -- registry ------------------------------------------------------------------------------------------------------
def test_registry_statuses(space_project):
    from iris_recipes.registry import load_variants

    variants, problems = load_variants(space_project["root"] / "recipes", space_project["runs"])
    assert problems == []
    by_id = {v.id: v for v in variants}
    assert [v.id for v in variants] == sorted(by_id)
    tutor = by_id["smol-tutor"]
    assert tutor.status == "built" and tutor.quant == "q4_k_m"
    assert Path(tutor.gguf["path"]).is_file() and tutor.gguf["filename"] == "smol-tutor-q4_k_m.gguf"
    assert tutor.label == "Smol tutor" and tutor.modes["short"] == "Answer in one sentence."
    assert tutor.temperature == 0.0 and tutor.max_new_tokens == 48 and tutor.top_p == 0.9  # schema default
    # preferred q8_0 was not exported: the run's q4_k_m is served
    assert by_id["smol-pirate"].status == "built" and by_id["smol-pirate"].quant == "q4_k_m"
    hub = by_id["hub-model"]
    assert hub.status == "published"
    assert hub.gguf == {"repo_id": "iris-test/hub-model-gguf", "filename": "hub-model-q4_k_m.gguf"}
    todo = by_id["todo-model"]
    assert todo.status == "not_built" and todo.gguf == {}
    assert todo.build_command.startswith("iris-recipes run ") and todo.build_command.endswith("todo-model.yaml")


def test_registry_skips_broken_recipe_and_failed_runs(tmp_path):
    from iris_recipes.registry import load_variants, write_manifest

    write_recipe(tmp_path, "good", {"label": "Good"})
    (tmp_path / "recipes" / "bad.yaml").write_text("name: bad\nbase_model: x\n")  # misses required keys
    # a failed newer run does not hide... nothing: only finished runs count
    (tmp_path / "runs" / "good" / "20990101-000000").mkdir(parents=True)
    (tmp_path / "runs" / "good" / "20990101-000000" / "run.json").write_text('{"status": "failed"}')
    variants, problems = load_variants(tmp_path / "recipes", tmp_path / "runs")
    assert [v.id for v in variants] == ["good"] and variants[0].status == "not_built"
    assert len(problems) == 1 and "bad.yaml" in problems[0]
    # a done run whose GGUF file was deleted is not "built"
    write_done_run(tmp_path / "runs", "good", {"q4_k_m": smol_gguf()})
    next((tmp_path / "runs" / "good").glob("2025*/gguf/*.gguf")).unlink()
    assert load_variants(tmp_path / "recipes", tmp_path / "runs")[0][0].status == "not_built"
    out = write_manifest(tmp_path / "m" / "variants.json", variants)
    data = json.loads(out.read_text())
    assert data["format"] == 1 and data["variants"][0]["id"] == "good"
    assert [p.name for p in out.parent.iterdir()] == ["variants.json"]  # no temp file left behind


# -- iris-recipes space build ----------------------------------------------------------------------------------------
def test_space_build_writes_a_deployable_folder(space_project, tmp_path, monkeypatch, capsys):
    from iris_recipes.cli import main

    monkeypatch.setenv("IRIS_HOME", str(space_project["root"]))
    monkeypatch.setenv("IRIS_RUNS_DIR", str(space_project["runs"]))
    # the space/ sources come from the checkout; IRIS_HOME points at the test project, so give it a space/ link
    link = space_project["root"] / "space"
    if not link.exists():
        link.symlink_to(REPO / "space")
    out = tmp_path / "deploy"
    assert main(["space", "build", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "app.py", "requirements.txt", "variants.json"]
    variants = json.loads((out / "variants.json").read_text())["variants"]
    assert [v["id"] for v in variants] == ["hub-model"]
    assert variants[0]["status"] == "published" and "path" not in variants[0]["gguf"] and "run" not in variants[0]
    readme = (out / "README.md").read_text()
    assert readme.startswith("---\n") and "sdk: gradio" in readme and "app_file: app.py" in readme
    assert "- iris-test/hub-model-gguf" in readme
    reqs = (out / "requirements.txt").read_text()
    assert "llama-cpp-python==0.3.36" in reqs and "abetlen.github.io/llama-cpp-python/whl/cpu" in reqs
    # a second build into the same (now non-empty) folder is refused and changes nothing
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(["space", "build", str(out)]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# -- the app, in process --------------------------------------------------------------------------------------------
def test_reply_stops_at_end_of_turn_without_template_tokens(space_manifest):
    app = load_app()
    manifest = app.Manifest.load(space_manifest)
    chat = app.Chat(manifest, app.ModelPool(manifest))
    replies = list(chat.stream("smol-tutor", "What is the capital of France?", [], "short", 0.0, 0.9, 200))
    final = replies[-1]
    assert final.done and final.stats["finish_reason"] == "stop"  # ended by the model's end of turn, not the limit
    assert final.stats["tokens"] < 200 and "Paris" in final.text
    assert not any(m in final.text for m in MARKERS)
    assert app.clean("Hi<|im_end|>\n<|im_start|>user") == "Hi\nuser"


def test_long_conversation_is_trimmed_with_a_notice(space_manifest):
    app = load_app(N_CTX=512)
    manifest = app.Manifest.load(space_manifest)
    chat = app.Chat(manifest, app.ModelPool(manifest))
    history = []
    for i in range(12):
        history += [{"role": "user", "content": f"Question {i}: " + "tell me about the sea. " * 8},
                    {"role": "assistant", "content": f"Answer {i}: " + "the sea is big and blue. " * 8}]
    final = list(chat.stream("smol-tutor", "What is 2 + 2?", history, None, 0.0, 0.9, 32))[-1]
    assert final.done and final.text.strip()
    assert final.stats["dropped_turns"] > 0 and "oldest turns" in final.notice and "512-token" in final.notice
    assert final.stats["prompt_tokens"] <= 512 - 32
    # a single message larger than the whole context is refused with a clear message, not trimmed to nothing
    with pytest.raises(app.UserError, match="context"):
        list(chat.stream("smol-tutor", "sea " * 1500, [], None, 0.0, 0.9, 32))


def test_loading_another_variant_does_not_break_a_running_reply(space_manifest):
    app = load_app(MAX_MODELS=1)
    manifest = app.Manifest.load(space_manifest)
    pool = app.ModelPool(manifest)
    chat = app.Chat(manifest, pool)
    stream = chat.stream("smol-tutor", "Count from 1 to 30, separated by commas.", [], None, 0.0, 0.9, 48)
    first = next(stream)  # the reply is running and holds the tutor's model
    tutor = pool._cached("smol-tutor")
    model, loaded_now = pool.load("smol-pirate")  # another user picks another variant meanwhile
    assert loaded_now and pool.loaded() == ["smol-pirate"] and tutor.evicted
    assert not tutor.closed  # still open: the running reply keeps using it
    rest = list(stream)
    assert rest[-1].done and rest[-1].text.startswith(first.text) and rest[-1].stats["tokens"] > 5
    assert tutor.users == 0 and tutor.closed  # closed once the reply ended


# -- the app, served: gradio_client -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_api_concurrent_clients(space_server):
    url, _, demo = space_server
    prompts = ["What is the capital of France?", "Name a color.", "What is 3 + 4?", "Say hello."]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda p: chat(client(url), "smol-tutor", p, mode="short"), prompts))
    finals = [assert_well_formed(r) for r in results]
    assert len(finals) == 4
    assert any(len(r) > 2 for r in results)  # replies stream in several updates


def test_api_multi_turn_and_variants_listing(space_server):
    url, _, _ = space_server
    c = client(url)
    listing = {v["id"]: v for v in c.predict(api_name="/variants")}
    assert listing["todo-model"]["status"] == "not_built" and "iris-recipes run" in listing["todo-model"]["build_command"]
    first = assert_well_formed(chat(c, "smol-tutor", "My name is Ada.", max_new_tokens=24))
    history = [{"role": "user", "content": "My name is Ada."}, {"role": "assistant", "content": first["reply"]}]
    assert_well_formed(chat(c, "smol-tutor", "What is my name?", history, max_new_tokens=24))


@pytest.mark.parametrize("variant, message, expected", [
    ("smol-tutor", "", "empty message"),
    ("smol-tutor", "   \n ", "empty message"),
    ("smol-tutor", "x" * 100_000, "100,000 characters"),
    ("no-such-variant", "hi", "Unknown variant 'no-such-variant'"),
    ("missing", "hi", "is missing"),
    ("corrupt", "hi", "is not a GGUF file"),
    ("truncated", "hi", "damaged or incomplete"),
    ("truncated-unknown-size", "hi", "llama.cpp could not load"),
    ("todo-model", "hi", "not built yet. Build it with: iris-recipes run"),
])
def test_api_bad_input_gets_a_clear_message_and_the_app_keeps_serving(space_server, variant, message, expected):
    from gradio_client.exceptions import AppError

    url, _, _ = space_server
    c = client(url)
    with pytest.raises(AppError, match=expected.replace("(", r"\(").replace(".", r"\.")):
        chat(c, variant, message)
    assert_well_formed(chat(c, "smol-tutor", "Say hi.", max_new_tokens=8))


def test_api_bad_mode_and_history(space_server):
    from gradio_client.exceptions import AppError

    c = client(space_server[0])
    with pytest.raises(AppError, match="Unknown mode 'shout'"):
        chat(c, "smol-tutor", "hi", mode="shout")
    with pytest.raises(AppError, match=r"history\[0\]"):
        chat(c, "smol-tutor", "hi", history=[{"role": "wizard", "content": "x"}])


@pytest.mark.slow
def test_queue_full_gets_a_clear_message(space_manifest):
    from gradio_client.exceptions import AppError

    with served(space_manifest, QUEUE_SIZE=1, CONCURRENCY=1) as (url, _, _):
        jobs = [client(url).submit("smol-tutor", "Count from 1 to 50.", [], "", 0.0, 0.9, 64, api_name="/chat")
                for _ in range(4)]
        errors, done = [], 0
        for job in jobs:
            try:
                job.result(timeout=120)
                done += 1
            except Exception as exc:  # noqa: BLE001 (the client's error type for a rejected job varies)
                errors.append(str(exc))
        assert done >= 1, errors
        assert any("Queue is full" in e for e in errors), errors


# -- iris-recipes space --port ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_serves_the_registry_on_localhost(space_project, tmp_path):
    link = space_project["root"] / "space"
    if not link.exists():
        link.symlink_to(REPO / "space")
    port = free_port()
    env = {**os.environ, "IRIS_HOME": str(space_project["root"]), "IRIS_RUNS_DIR": str(space_project["runs"])}
    log = open(tmp_path / "space.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "iris_recipes", "space", "--port", str(port),
                             "--manifest", str(tmp_path / "variants.json")], env=env, stdout=log, stderr=log)
    try:
        wait_for_port(port, proc=proc)
        c = client(f"http://127.0.0.1:{port}/")
        ids = [v["id"] for v in c.predict(api_name="/variants")]
        assert ids == ["hub-model", "smol-pirate", "smol-tutor", "todo-model"]
        assert_well_formed(chat(c, "smol-pirate", "Hello!", max_new_tokens=16))
        assert json.loads((tmp_path / "variants.json").read_text())["variants"][2]["status"] == "built"
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    # the port is taken: a clear error, no traceback
    with served(tmp_path / "variants.json") as (url, _, _):
        taken = int(url.rsplit(":", 1)[1].strip("/"))
        r = subprocess.run([sys.executable, "-m", "iris_recipes", "space", "--port", str(taken),
                            "--manifest", str(tmp_path / "v2.json")], env=env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 2 and "--port" in r.stderr and "Traceback" not in r.stderr, r.stderr
