"""iris-recipes Space: chat with the fine-tuned variants of the recipes, on a CPU, with llama.cpp.

Needs only gradio, llama-cpp-python, huggingface_hub and pocketsphinx (voice input), so it runs on a Hugging Face
Space where iris_recipes is not installed; its engine is the `iris_space` folder beside this file. It reads a
manifest of variants (`variants.json` beside this file; `--manifest FILE` or the IRIS_SPACE_MANIFEST environment
variable elsewhere) written by `iris-recipes space`, and loads the chosen variant's GGUF lazily: a local file, or a
download from the Hub repo the recipe publishes to.

    python app.py [--manifest variants.json] [--host 127.0.0.1] [--port 7860] [--api-key KEY] [--no-ui]

Settings (environment): IRIS_SPACE_THREADS (CPU threads, default the CPUs this process may use),
IRIS_SPACE_N_CTX (context window, 4096), IRIS_SPACE_MAX_CHARS (longest message, 8000), IRIS_SPACE_MAX_TURNS
(earlier turns a request may carry, 50), IRIS_SPACE_MAX_HISTORY_CHARS (64000), IRIS_SPACE_QUEUE_SIZE (waiting
requests, 16), IRIS_SPACE_CONCURRENCY (replies handled at once, 2; each model still answers one at a time),
IRIS_SPACE_MAX_MODELS (models in memory, 2), IRIS_SPACE_LOAD_WAIT_S (how long a request waits for a model slot,
120), IRIS_SPACE_KV_CACHE_MB (saved conversation states, 1024; 0 = off), IRIS_SPACE_UPDATES_PER_S (streamed UI
updates a second per reply, 20), IRIS_SPACE_QUEUE_POLL_MS (how often Gradio's queue looks for requests and,
before Gradio 6.11, an event stream for its next update, 10), IRIS_SPACE_ASR (pocketsphinx | whisper),
IRIS_SPACE_WHISPER_MODEL (base.en), IRIS_SPACE_MAX_AUDIO_S (60), IRIS_SPACE_MAX_NEW_TOKENS (4096),
IRIS_SPACE_API_KEY (the OpenAI-compatible API's bearer token; none by default), IRIS_SPACE_MAX_REQUEST_KB (1024).

One port serves the chat page and its Gradio API at / (iris_space/ui.py, iris_space/gradio_api.py: `/chat`,
`/transcribe`, `/variants` for gradio_client) and an OpenAI-compatible API at /v1 (iris_space/openai_api.py:
`GET /v1/models`, `POST /v1/chat/completions`), all answered by one engine: the same models, memory cap and saved
conversation states. `--no-ui` serves the API alone. A sampling setting a request leaves out is the variant's own.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))

from iris_space import settings, speech  # noqa: E402, F401 (tests reach the engine's modules through the app)
from iris_space.chat import Chat  # noqa: E402
from iris_space.manifest import Manifest, UserError  # noqa: E402, F401
from iris_space.models import ModelPool  # noqa: E402

SHUTDOWN_S = 3


def engine(manifest_path: str | os.PathLike | None = None) -> Chat:
    """The variants of the manifest and the models that answer for them."""
    manifest = Manifest.load(manifest_path or os.environ.get("IRIS_SPACE_MANIFEST") or APP_DIR / "variants.json")
    return Chat(manifest, ModelPool(manifest))


def build_app(manifest_path: str | os.PathLike | None = None, chat: Chat | None = None):
    """The chat page and its Gradio API (a queued gr.Blocks), answered by `chat` (default: a new engine)."""
    from iris_space import gradio_api, gradio_patches, ui

    chat = chat or engine(manifest_path)
    demo = ui.build_ui(chat)
    gradio_api.add_endpoints(demo, chat)
    demo.queue(max_size=settings.QUEUE_SIZE, default_concurrency_limit=settings.CONCURRENCY)
    gradio_patches.apply(demo)
    demo.iris_manifest, demo.iris_pool = chat.manifest, chat.pool  # for tests and `iris-recipes space`
    return demo


def build_server(manifest_path: str | os.PathLike | None = None, ui: bool = True, api_key: str | None = None):
    """The web app: the OpenAI-compatible API at /v1 and, with `ui`, the chat page and its Gradio API mounted at /;
    one engine answers both. `app.state.chat` is the engine, `app.state.demo` the chat page (None without `ui`)."""
    from fastapi import FastAPI

    from iris_space import openai_api

    chat = engine(manifest_path)
    app = FastAPI(title="iris-recipes Space", docs_url=None, redoc_url=None, openapi_url=None)
    openai_api.install(app, chat, api_key)  # before the page: a mount at / would take every path
    demo = None
    if ui:
        import gradio as gr

        demo = build_app(chat=chat)
        app = gr.mount_gradio_app(app, demo, path="/", show_error=True)
    app.state.chat, app.state.demo = chat, demo
    return app


def bind(host: str | None = None, port: int | None = None) -> socket.socket:
    """The listening address, bound now so that a taken port is an OSError here (uvicorn would exit the process).
    Defaults: GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (what a Hugging Face Space sets), else 127.0.0.1:7860."""
    host = host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    port = port if port is not None else int(os.environ.get("GRADIO_SERVER_PORT") or 7860)
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def server(app):
    """A uvicorn server of `app`. Shutting down, it waits for open requests at most SHUTDOWN_S: a browser's or
    gradio_client's event stream stays open as long as its page or client does."""
    import uvicorn

    return uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=SHUTDOWN_S)
    )


def serve(app, sock: socket.socket) -> None:
    """Serve `app` on the bound `sock` until interrupted."""
    host, port = sock.getsockname()[:2]
    paths = "the chat page at /, " if getattr(app.state, "demo", None) is not None else ""
    print(f"Serving {paths}the OpenAI-compatible API at /v1 on http://{host}:{port}", flush=True)
    server(app).run(sockets=[sock])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the iris-recipes Space.")
    parser.add_argument("--manifest", help="variants.json (default: IRIS_SPACE_MANIFEST or variants.json here)")
    parser.add_argument("--host", default=None, help="address to listen on (default: GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: GRADIO_SERVER_PORT or 7860)")
    parser.add_argument(
        "--api-key", default=None, help="bearer token the /v1 API requires (default: IRIS_SPACE_API_KEY)"
    )
    parser.add_argument("--no-ui", action="store_true", help="serve the OpenAI-compatible API only")
    args = parser.parse_args(argv)
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        parser.exit(2, f"error: cannot serve on {args.host or ''}:{args.port or ''}: {exc}. Choose another --port.\n")
    serve(build_server(args.manifest, ui=not args.no_ui, api_key=args.api_key), sock)


if __name__ == "__main__":
    main()
