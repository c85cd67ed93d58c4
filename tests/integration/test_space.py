"""The Space: the variant registry, `iris-recipes space`, and the Gradio app serving real GGUFs with llama.cpp."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conftest_space import (
    REPO,
    VOICE_KEY_WORDS,
    free_port,
    load_app,
    served,
    smol_gguf,
    wait_for_port,
    write_done_run,
    write_recipe,
)

MARKERS = ("<|im_end|>", "<|im_start|>", "<|eot_id|>", "<|end|>", "</s>")


def client(url):
    from gradio_client import Client

    return Client(url, verbose=False)


def chat(
    c, variant, message, history=(), mode="", temperature=0.0, top_p=0.9, max_new_tokens=32, audio=None, compare=False
):
    """All streamed updates of one /chat call."""
    job = c.submit(
        variant, message, list(history), mode, temperature, top_p, max_new_tokens, audio, compare, api_name="/chat"
    )
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


def assert_stream_grew(outputs):
    texts = [o["reply"] for o in outputs]
    assert len(set(texts)) >= 2, texts  # at least one partial state before the final one


# -- registry ------------------------------------------------------------------------------------------------------
def test_registry_statuses(space_project):
    from iris_recipes.space_variants import load_variants

    variants, problems = load_variants(space_project["root"] / "recipes", space_project["runs"])
    assert problems == []
    by_id = {v.id: v for v in variants}
    assert [v.id for v in variants] == sorted(by_id)
    tutor = by_id["smol-tutor"]
    assert tutor.status == "built" and tutor.quant == "q4_k_m"
    assert Path(tutor.gguf["path"]).is_file() and tutor.gguf["filename"] == "smol-tutor-q4_k_m.gguf"
    assert tutor.label == "Smol tutor" and tutor.modes["short"] == "Answer in one sentence."
    assert tutor.temperature == 0.0 and tutor.max_new_tokens == 48 and tutor.top_p == 0.9  # schema default
    # the base GGUF that the run's eval built is named for "compare with base model"
    assert tutor.base_gguf["path"] == str(space_project["gguf"]) and tutor.base_gguf["filename"] == "base-f16.gguf"
    assert by_id["smol-pirate"].base_gguf == {}  # not evaluated
    # preferred q8_0 was not exported: the run's q4_k_m is served
    assert by_id["smol-pirate"].status == "built" and by_id["smol-pirate"].quant == "q4_k_m"
    hub = by_id["hub-model"]
    assert hub.status == "published"
    assert hub.gguf == {"repo_id": "iris-test/hub-model-gguf", "filename": "hub-model-q4_k_m.gguf"}
    todo = by_id["todo-model"]
    assert todo.status == "not_built" and todo.gguf == {}
    assert todo.build_command.startswith("iris-recipes run ") and todo.build_command.endswith("todo-model.yaml")


def test_a_manifest_entry_without_its_sampling_settings_is_skipped(space_manifest, tmp_path, capsys):
    """The Space has no sampling defaults of its own: they come from the manifest, which `iris-recipes space` writes
    from the recipe and the schema's defaults. An entry without them is refused, and says how to fix it."""
    data = json.loads(space_manifest.read_text())
    del next(v for v in data["variants"] if v["id"] == "smol-pirate")["temperature"]
    path = tmp_path / "variants.json"
    path.write_text(json.dumps(data))
    manifest = load_app().Manifest.load(path)
    assert "smol-pirate" not in manifest.variants and "smol-tutor" in manifest.variants
    assert "(smol-pirate) has no temperature; skipped. Write the manifest again with `iris-recipes space`" in (
        capsys.readouterr().out
    )


def test_hosted_manifest_names_the_base_gguf_push_uploads(space_project):
    from dataclasses import replace

    from iris_recipes.space_variants import hosted, load_variants

    variants, _ = load_variants(space_project["root"] / "recipes", space_project["runs"])
    tutor = next(v for v in variants if v.id == "smol-tutor")
    published = replace(tutor, gguf={**tutor.gguf, "repo_id": "me/tutor-GGUF"})
    (out,) = hosted([published])
    assert out.gguf == {
        "repo_id": "me/tutor-GGUF",
        "filename": "smol-tutor-q4_k_m.gguf",
        "bytes": tutor.gguf["bytes"],
        "sha256": tutor.gguf["sha256"],
    }
    assert out.base_gguf == {
        "repo_id": "me/tutor-GGUF",
        "filename": "base-f16.gguf",
        "bytes": space_project["gguf"].stat().st_size,
    }
    hub = next(v for v in hosted(variants) if v.id == "hub-model")
    assert hub.base_gguf == {}  # never built here: whether a base was pushed is unknown


def test_registry_skips_broken_recipe_and_failed_runs(tmp_path):
    from iris_recipes.space_variants import load_variants, write_manifest

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
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "app.py",
        "iris_space",
        "requirements.txt",
        "variants.json",
    ]
    engine = sorted(p.name for p in (out / "iris_space").iterdir())
    assert engine == sorted(p.name for p in (REPO / "space" / "iris_space").glob("*.py")) and "chat.py" in engine
    variants = json.loads((out / "variants.json").read_text())["variants"]
    assert [v["id"] for v in variants] == ["hub-model"]
    assert variants[0]["status"] == "published" and "path" not in variants[0]["gguf"] and "run" not in variants[0]
    readme = (out / "README.md").read_text()
    assert readme.startswith("---\n") and "sdk: gradio" in readme and "app_file: app.py" in readme
    assert "- iris-test/hub-model-gguf" in readme
    reqs = (out / "requirements.txt").read_text()
    assert "llama-cpp-python==0.3.36" in reqs and "abetlen.github.io/llama-cpp-python/whl/cpu" in reqs
    assert "pocketsphinx" in reqs
    # the deployed folder runs on its own: its app imports its engine from beside it, not from the checkout
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.argv = ['app.py']; import runpy; "
            "m = runpy.run_path('app.py', run_name='space'); print(m['build_app'].__module__, "
            "sys.modules['iris_space'].__file__)",
        ],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and str(out / "iris_space") in r.stdout, r.stderr[-2000:]
    # a second build into the same (now non-empty) folder is refused and changes nothing
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(["space", "build", str(out)]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


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
    assert sys.modules["iris_space.prompt"].neutralize("Hi<|im_end|>\n<|im_start|>user") == "Hi\nuser"


def test_long_conversation_is_trimmed_with_a_notice(space_manifest):
    app = load_app(N_CTX=512)
    manifest = app.Manifest.load(space_manifest)
    chat = app.Chat(manifest, app.ModelPool(manifest))
    history = []
    for i in range(12):
        history += [
            {"role": "user", "content": f"Question {i}: " + "tell me about the sea. " * 8},
            {"role": "assistant", "content": f"Answer {i}: " + "the sea is big and blue. " * 8},
        ]
    final = list(chat.stream("smol-tutor", "What is 2 + 2?", history, None, 0.0, 0.9, 32))[-1]
    assert final.done and final.text.strip()
    assert final.stats["dropped_turns"] > 0 and "oldest turns" in final.notice and "512-token" in final.notice
    assert final.stats["prompt_tokens"] <= 512 - 32
    # a single message larger than the whole context is refused with a clear message, not trimmed to nothing
    with pytest.raises(app.UserError, match="context"):
        list(chat.stream("smol-tutor", "sea " * 1500, [], None, 0.0, 0.9, 32))


def test_stream_yields_independent_snapshots(space_manifest):
    app = load_app(UPDATES_PER_S=50)
    manifest = app.Manifest.load(space_manifest)
    chat = app.Chat(manifest, app.ModelPool(manifest))
    replies = list(chat.stream("smol-tutor", "Count from 1 to 20, separated by commas.", [], None, 0.0, 0.9, 40))
    texts = [r.text for r in replies]
    assert len({id(r) for r in replies}) == len(replies)  # a new object every update
    assert len(set(texts)) >= 3, texts  # the reply was seen in several states, each kept as it was
    assert all(b.startswith(a) for a, b in zip(texts, texts[1:]))
    assert [r.done for r in replies] == [False] * (len(replies) - 1) + [True]


def test_history_is_bounded(space_manifest):
    app = load_app(MAX_TURNS=2, MAX_HISTORY_CHARS=300)
    manifest = app.Manifest.load(space_manifest)
    chat = app.Chat(manifest, app.ModelPool(manifest))
    turn = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    with pytest.raises(app.UserError, match=r"6 earlier messages; this Space takes at most 4 \(2 turns\)"):
        chat.stream("smol-tutor", "hi", turn * 3)
    with pytest.raises(app.UserError, match=r"exceed 300 characters \(at history\[1\]\)"):
        chat.stream(
            "smol-tutor", "hi", [{"role": "user", "content": "x" * 200}, {"role": "assistant", "content": "y" * 200}]
        )
    list(chat.stream("smol-tutor", "hi", turn * 2, max_new_tokens=4))  # within the bounds


def test_trimming_renders_the_prompt_a_bounded_number_of_times(space_manifest):
    app = load_app(N_CTX=512, MAX_TURNS=500, MAX_HISTORY_CHARS=10**6)
    models = sys.modules["iris_space.models"]
    manifest = app.Manifest.load(space_manifest)
    pool = app.ModelPool(manifest)
    chat = app.Chat(manifest, pool)
    pool.preload("smol-tutor", manifest.get("smol-tutor"))
    calls = []
    render = models.Model.prompt_tokens
    models.Model.prompt_tokens = lambda self, messages: calls.append(len(messages)) or render(self, messages)
    try:
        history = [
            {"role": r, "content": f"{r} message {i}: " + "words " * 10}
            for i in range(300)
            for r in ("user", "assistant")
        ]
        final = list(chat.stream("smol-tutor", "What is 2 + 2?", history, None, 0.0, 0.9, 16))[-1]
    finally:
        models.Model.prompt_tokens = render
    assert final.done and final.stats["dropped_turns"] > 250 and final.stats["prompt_tokens"] <= 512 - 16
    assert len(calls) <= 3, calls  # one render to measure, one or two to check: not one per dropped turn


def test_threads_follow_affinity_and_cgroup_quota(tmp_path):
    app = load_app()
    cpus = app.settings.available_cpus
    affinity = len(os.sched_getaffinity(0))
    assert cpus(tmp_path / "none") == affinity
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "cpu.max").write_text("max 100000\n")
    assert cpus(tmp_path / "v2") == affinity
    (tmp_path / "v2" / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs: two threads, one of them part-time
    assert cpus(tmp_path / "v2") == min(affinity, 2)
    (tmp_path / "v2" / "cpu.max").write_text("50000 100000\n")
    assert cpus(tmp_path / "v2") == 1
    (tmp_path / "v1" / "cpu").mkdir(parents=True)
    (tmp_path / "v1" / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / "v1" / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpus(tmp_path / "v1") == 1
    assert app.settings.THREADS == int(os.environ.get("IRIS_SPACE_THREADS") or cpus())


def test_kv_states_let_conversations_take_turns(space_manifest):
    """Two conversations alternate on one model: with the state cache each turn re-reads only its new message, and
    the replies are exactly those each conversation gets on its own (the restored state is its own)."""
    app = load_app()
    manifest = app.Manifest.load(space_manifest)

    def talk(mb, order):
        pool = app.ModelPool(manifest, kv_cache_mb=mb)
        chat = app.Chat(manifest, pool)
        convs, stats = [[], []], []
        for c, turn in order:
            msg = f"Conversation {c}, turn {turn}: say something about the number {10 * c + turn}."
            final = list(chat.stream("smol-tutor", msg, convs[c], None, 0.0, 0.9, 12))[-1]
            convs[c] += [{"role": "user", "content": msg}, {"role": "assistant", "content": final.text}]
            stats.append(final.stats)
        return convs, stats, pool

    alternating = [(c, turn) for turn in range(3) for c in (0, 1)]
    cached, stats_on, pool = talk(64, alternating)
    _, stats_off, _ = talk(0, alternating)
    alone, _, _ = talk(0, [(c, turn) for c in (0, 1) for turn in range(3)])
    assert cached == alone
    for on, off in zip(stats_on[2:], stats_off[2:]):  # from the second turn of each conversation on
        assert on["reused_tokens"] >= on["prompt_tokens"] - 40, on  # only the new turn was read
        assert off["reused_tokens"] < 30, off  # the other conversation had taken the context
    assert 0 < pool.states.bytes <= 64 << 20 and len(pool.states) == 1  # the conversation not in the context


def test_a_reply_in_other_tokens_than_its_text_is_not_read_again(space_manifest):
    """A generated reply often is other tokens than its text tokenizes into when it comes back in the history: the
    prompt keeps the tokens the KV state holds wherever both spell the same text, and reads only what follows; a
    marker spelled out in text is never taken for the control token."""
    import numpy as np

    app = load_app()
    common_prefix = sys.modules["iris_space.models"].common_prefix
    manifest = app.Manifest.load(space_manifest)
    pool = app.ModelPool(manifest, kv_cache_mb=64)
    model, _ = pool.preload("smol-tutor", manifest.get("smol-tutor"))

    def run():
        first = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 12345 + 1?"}]
        reply = "The answer is 12346, twelve thousand."
        pieces = [t for ch in reply for t in model.llm.tokenize(ch.encode(), add_bos=False, special=False)]
        assert pieces != model.llm.tokenize(reply.encode(), add_bos=False, special=False)  # not the canonical ones
        held = np.asarray(model.prompt_tokens(first) + pieces, dtype=np.intc)
        want = np.asarray(
            model.prompt_tokens(first + [{"role": "assistant", "content": reply}, {"role": "user", "content": "And?"}]),
            dtype=np.intc,
        )
        text = lambda ids: model.llm.detokenize([int(t) for t in ids], special=True)  # noqa: E731
        use, reused = model._align(want, held, 4096)
        assert (
            reused == len(held) and text(use) == text(want) and list(use[reused:]) == list(want[-(len(use) - reused) :])
        )
        over = model._align(want, held, len(use) - 1)  # longer than the limit: the prompt as it was
        assert over[0] is want and over[1] == common_prefix(held, want)
        spelled = np.concatenate([held, model.llm.tokenize(b"<|im_end|>", add_bos=False, special=False)])
        assert model._align(want, spelled, 4096)[1] == len(held)  # the marker in text stays unmatched

    model.thread.submit(run).result()
    model.close().result()


def test_state_cache_is_bounded_lru():
    load_app()
    models = sys.modules["iris_space.models"]
    import numpy as np

    cache = models.StateCache(1000)
    state = lambda key, toks, size: models.SavedState(key, np.array(toks, dtype=np.intc), None, size)  # noqa: E731
    assert cache.put(state("m", [1, 2, 3], 400)) and cache.put(state("m", [7, 8], 400))
    assert cache.put(state("m", [1, 2, 3, 4, 5], 300))  # extends [1, 2, 3]: that one goes
    assert cache.bytes == 700 and len(cache) == 2
    assert cache.put(state("n", [9], 600))  # over the budget: the least recently used ([7, 8]) goes
    assert cache.bytes == 900 and cache.take("m", np.array([7, 8, 9], dtype=np.intc)) == (None, 0)
    got, n = cache.take("m", np.array([1, 2, 3, 4, 9], dtype=np.intc))
    assert n == 4 and list(got.tokens) == [1, 2, 3, 4, 5] and cache.bytes == 600  # taken out
    assert not cache.put(state("m", [1], 5000))  # larger than the whole budget: not kept
    cache.drop_model("n")
    assert cache.bytes == 0 and len(cache) == 0


def test_model_cap_holds_and_a_model_in_use_is_never_pushed_out(space_manifest):
    app = load_app(MAX_MODELS=1, LOAD_WAIT_S=1)
    manifest = app.Manifest.load(space_manifest)
    pool = app.ModelPool(manifest)
    chat = app.Chat(manifest, pool)
    with ThreadPoolExecutor(1) as ex:
        with pool.use(("smol-tutor", manifest.get("smol-tutor"))) as (tutor,):  # a visitor's reply holds the model
            # another visitor picks another variant meanwhile: its load waits for a slot, then is refused clearly
            with pytest.raises(app.UserError, match="at most 1 model in memory, and all are answering other visitors"):
                pool.preload("smol-pirate", manifest.get("smol-pirate"))
            assert pool.loaded() == ["smol-tutor"] and not tutor.closed
            # a visitor who waits long enough gets a slot as soon as the model is free
            pool.wait_s = 600
            waiting = ex.submit(lambda: list(chat.stream("smol-pirate", "Hello!", [], None, 0.0, 0.9, 8))[-1])
            # the model in use still answers (its own visitors are not held up)
            reply = list(chat.stream("smol-tutor", "Count from 1 to 30, separated by commas.", [], None, 0.0, 0.9, 24))[
                -1
            ]
            assert reply.done and reply.stats["tokens"] > 5 and not waiting.done()
        final = waiting.result(timeout=600)
    assert final.done and final.text.strip()
    assert tutor.closed and pool.loaded() == ["smol-pirate"]
    assert pool.peak == 1  # never two models in memory at once


def test_compare_streams_the_base_model_beside_the_variant(space_manifest):
    app = load_app()
    manifest = app.Manifest.load(space_manifest)
    pool = app.ModelPool(manifest)
    chat = app.Chat(manifest, pool)
    replies = list(chat.stream("smol-tutor", "Name a color.", [], "short", 0.0, 0.9, 24, compare=True))
    final = replies[-1]
    assert final.done and final.text.strip() and final.base is not None
    assert final.base.done and final.base.text.strip() and final.base.stats["tokens"] >= 1
    assert all(r.base is not None for r in replies) and not replies[0].done
    base_key = manifest.base_of(manifest.get("smol-tutor"))["id"]
    assert sorted(pool.loaded()) == sorted(["smol-tutor", base_key])
    with pytest.raises(app.UserError, match="nothing to compare with"):
        chat.stream("smol-pirate", "hi", compare=True)


def _hub_cache(root, repo_id, filename, src):
    """A Hugging Face cache holding one file of `repo_id`, as a Space restart finds it."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123456789abcdef0123456789abcdef01234567")
    snap = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    snap.mkdir(parents=True)
    os.symlink(src, snap / filename)


def test_published_gguf_from_the_hub_cache_and_a_failing_download(space_manifest, space_project, tmp_path, monkeypatch):
    from huggingface_hub import constants

    app = load_app()
    manifest = app.Manifest.load(space_manifest)
    chat = app.Chat(manifest, app.ModelPool(manifest))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    # nothing cached and offline: a clear message, not a traceback
    with pytest.raises(
        app.UserError,
        match=r"Hub model: could not download hub-model-q4_k_m\.gguf from "
        r"https://huggingface\.co/iris-test/hub-model-gguf \(",
    ):
        list(chat.stream("hub-model", "Hello!", max_new_tokens=4))
    # the network fails: the same clear message
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", dead)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", dead + "/{repo_id}/resolve/{revision}/{filename}")
    with pytest.raises(app.UserError, match=r"could not download .* Try again later"):
        list(chat.stream("hub-model", "Hello!", max_new_tokens=4))
    # the file in the local Hub cache (a restarted Space): served offline
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    _hub_cache(tmp_path / "hub", "iris-test/hub-model-gguf", "hub-model-q4_k_m.gguf", space_project["gguf"])
    final = list(chat.stream("hub-model", "Say hello.", max_new_tokens=8))[-1]
    assert final.done and final.text.strip()
    assert chat.pool.get("hub-model").path.parent.parent.parent.name == "models--iris-test--hub-model-gguf"


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
    assert (
        listing["todo-model"]["status"] == "not_built" and "iris-recipes run" in listing["todo-model"]["build_command"]
    )
    first = assert_well_formed(chat(c, "smol-tutor", "My name is Ada.", max_new_tokens=24))
    history = [{"role": "user", "content": "My name is Ada."}, {"role": "assistant", "content": first["reply"]}]
    assert_well_formed(chat(c, "smol-tutor", "What is my name?", history, max_new_tokens=24))


@pytest.mark.parametrize(
    "variant, message, expected",
    [
        ("smol-tutor", "", "empty message"),
        ("smol-tutor", "   \n ", "empty message"),
        ("smol-tutor", "x" * 100_000, "100,000 characters"),
        ("no-such-variant", "hi", "Unknown variant 'no-such-variant'"),
        ("missing", "hi", "is missing"),
        ("corrupt", "hi", "is not a GGUF file"),
        ("truncated", "hi", "damaged or incomplete"),
        ("truncated-unknown-size", "hi", "llama.cpp could not load"),
        ("todo-model", "hi", "not built yet. Build it with: iris-recipes run"),
    ],
)
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


def test_api_compare_with_base_model(space_server):
    c = client(space_server[0])
    outputs = chat(c, "smol-tutor", "Name a color.", mode="short", max_new_tokens=16, compare=True)
    final = assert_well_formed(outputs)
    base = final["base"]
    assert base["done"] and base["reply"].strip() and base["stats"]["tokens"] >= 1
    assert not any(m in base["reply"] for m in MARKERS)
    assert all(o["base"] is not None for o in outputs)
    assert next(v for v in c.predict(api_name="/variants") if v["id"] == "smol-tutor")["compare"] is True


def test_api_voice_input_is_transcribed_and_answered(space_server, speech_wavs):
    from gradio_client import handle_file

    c = client(space_server[0])
    text = c.predict(handle_file(str(speech_wavs["speech"])), api_name="/transcribe")
    assert text["engine"] == "pocketsphinx" and all(w in text["text"] for w in VOICE_KEY_WORDS), text
    outputs = chat(c, "smol-tutor", "", max_new_tokens=24, audio=handle_file(str(speech_wavs["speech"])))
    final = assert_well_formed(outputs)
    assert all(w in final["transcript"] for w in VOICE_KEY_WORDS), final["transcript"]
    assert final["stats"]["prompt_tokens"] > 20


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("silence", "The recording is silent"),
        ("noise", "sounds like noise, not speech"),
        ("long", "10.0 minutes long; this Space transcribes at most 60 s"),
        ("not_audio", "is not an audio file this Space can read"),
    ],
)
def test_api_bad_audio_gets_a_clear_message(space_server, speech_wavs, kind, expected):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    c = client(space_server[0])
    with pytest.raises(AppError, match=expected):
        chat(c, "smol-tutor", "", audio=handle_file(str(speech_wavs[kind])))
    assert_well_formed(chat(c, "smol-tutor", "Say hi.", max_new_tokens=8))  # the server keeps serving


def test_whisper_setting_falls_back_to_pocketsphinx(speech_wavs):
    app = load_app(ASR="whisper", WHISPER_MODEL="base.en")
    t = app.speech.transcribe(speech_wavs["speech"])  # offline: faster-whisper is missing or cannot fetch its model
    assert t.engine == "pocketsphinx" and t.notice.startswith("faster-whisper could not load")
    assert all(w in t.text for w in VOICE_KEY_WORDS)


def test_api_four_conversations_on_two_variants(space_manifest):
    """Four visitors talk at once, two per variant, with room for one model: every conversation finishes, every
    reply is well formed, and there is never more than one model in memory."""
    with served(space_manifest, CONCURRENCY=4, MAX_MODELS=1) as (url, _, demo):

        def conversation(i):
            c, variant, history, finals = client(url), ("smol-tutor", "smol-pirate")[i % 2], [], []
            for turn in range(2):
                message = f"Visitor {i}, question {turn + 1}: name a color."
                outputs = chat(c, variant, message, history, max_new_tokens=16)
                finals.append(assert_well_formed(outputs))
                history += [{"role": "user", "content": message}, {"role": "assistant", "content": finals[-1]["reply"]}]
            return finals

        with ThreadPoolExecutor(4) as ex:
            results = list(ex.map(conversation, range(4)))
        assert [len(r) for r in results] == [2, 2, 2, 2]
        assert demo.iris_pool.peak == 1 and len(demo.iris_pool.loaded()) == 1


@pytest.mark.slow
def test_queue_full_gets_a_clear_message(space_manifest):

    with served(space_manifest, QUEUE_SIZE=1, CONCURRENCY=1) as (url, _, _):
        jobs = [
            client(url).submit("smol-tutor", "Count from 1 to 50.", [], "", 0.0, 0.9, 64, api_name="/chat")
            for _ in range(4)
        ]
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
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "iris_recipes",
            "space",
            "--port",
            str(port),
            "--manifest",
            str(tmp_path / "variants.json"),
        ],
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        wait_for_port(port, proc=proc)
        c = client(f"http://127.0.0.1:{port}/")
        ids = [v["id"] for v in c.predict(api_name="/variants")]
        assert ids == ["hub-model", "smol-pirate", "smol-tutor", "todo-model"]
        assert_well_formed(chat(c, "smol-pirate", "Hello!", max_new_tokens=16))
        assert json.loads((tmp_path / "variants.json").read_text())["variants"][2]["status"] == "built"
        # the OpenAI-compatible API on the same port: the built and published variants
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=60).json()["data"]
        assert [m["id"] for m in models] == ["hub-model", "smol-pirate", "smol-tutor"]
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    # the port is taken: a clear error, no traceback
    with served(tmp_path / "variants.json") as (url, _, _):
        taken = int(url.rsplit(":", 1)[1].strip("/"))
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "iris_recipes",
                "space",
                "--port",
                str(taken),
                "--manifest",
                str(tmp_path / "v2.json"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 2 and "--port" in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads a process's CPU time from /proc")
def test_idle_server_leaves_the_cores_to_the_models(space_manifest, tmp_path):
    """A served app that nobody is talking to uses almost no CPU: Gradio's queue polls for requests every 1 ms by
    default (~8% of a core), CPU time llama.cpp's threads lose on a 2-core Space while they decode."""
    port = free_port()
    with (tmp_path / "app.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "space" / "app.py"), "--manifest", str(space_manifest), "--port", str(port)],
            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        wait_for_port(port, proc=proc)
        time.sleep(2)  # start-up work settles

        def cpu_s() -> float:  # user + system time of the app process, all its threads
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        # The quietest of three windows: polling costs every window alike, while a one-off burst (a garbage
        # collection, a busy neighbour on a loaded machine) lands in one of them.
        shares = []
        for _ in range(3):
            before, t0 = cpu_s(), time.monotonic()
            time.sleep(3)
            shares.append((cpu_s() - before) / (time.monotonic() - t0))
        assert min(shares) < 0.03, f"the idle app used {min(shares):.1%} of a core at least ({shares})"
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads a thread's CPU time from /proc")
def test_a_streaming_reply_leaves_the_cores_to_the_model(space_manifest):
    """While replies stream, Gradio's event loop (HTTP, queue, event streams) takes little CPU: Gradio before 6.11
    looks for each open event stream's next message every 1 ms, ~15% of a core on this machine, CPU time llama.cpp's
    threads lose on a 2-core Space while they decode (measured: 12-13% without the app's remedy, 6-7.5% with it)."""
    import httpx

    app = load_app()
    demo = app.build_app(space_manifest)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        loop_stat = Path(f"/proc/self/task/{demo.server.thread.native_id}/stat")

        def loop_cpu_s() -> float:
            fields = loop_stat.read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        def reply(i: int) -> int:  # through Gradio's REST API and event stream, as the browser's requests go
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
                data = ["smol-tutor", f"Count from {i} to {i + 40}.", [], "", 0.7, 0.9, 96, None, False]
                event = http.post("/gradio_api/call/chat", json={"data": data}).raise_for_status().json()["event_id"]
                with http.stream("GET", f"/gradio_api/call/chat/{event}") as stream:
                    return sum(line.startswith("event: generating") for line in stream.iter_lines())

        reply(0)  # loads the model
        before, t0 = loop_cpu_s(), time.monotonic()
        updates = sum(reply(i) for i in range(1, 5))
        share = (loop_cpu_s() - before) / (time.monotonic() - t0)
        assert updates >= 8, "the replies did not stream"
        assert share < 0.095, f"Gradio's event loop used {share:.1%} of a core while {updates} updates streamed"
    finally:
        demo.close()
