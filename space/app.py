"""iris-recipes Space: chat with the fine-tuned variants of the recipes, on a CPU, with llama.cpp.

Needs only gradio, llama-cpp-python, huggingface_hub and pocketsphinx (voice input), so it runs on a Hugging Face
Space where iris_recipes is not installed; its engine is the `iris_space` folder beside this file. It reads a
manifest of variants (`variants.json` beside this file; `--manifest FILE` or the IRIS_SPACE_MANIFEST environment
variable elsewhere) written by `iris-recipes space`, and loads the chosen variant's GGUF lazily: a local file, or a
download from the Hub repo the recipe publishes to.

    python app.py [--manifest variants.json] [--host 127.0.0.1] [--port 7860]

Settings (environment): IRIS_SPACE_THREADS (CPU threads, default the CPUs this process may use),
IRIS_SPACE_N_CTX (context window, 4096), IRIS_SPACE_MAX_CHARS (longest message, 8000), IRIS_SPACE_MAX_TURNS
(earlier turns a request may carry, 50), IRIS_SPACE_MAX_HISTORY_CHARS (64000), IRIS_SPACE_QUEUE_SIZE (waiting
requests, 16), IRIS_SPACE_CONCURRENCY (replies handled at once, 2; each model still answers one at a time),
IRIS_SPACE_MAX_MODELS (models in memory, 2), IRIS_SPACE_LOAD_WAIT_S (how long a request waits for a model slot,
120), IRIS_SPACE_KV_CACHE_MB (saved conversation states, 1024; 0 = off), IRIS_SPACE_UPDATES_PER_S (streamed UI
updates a second per reply, 20), IRIS_SPACE_QUEUE_POLL_MS (how often Gradio's queue looks for requests and,
before Gradio 6.11, an event stream for its next update, 10), IRIS_SPACE_ASR (pocketsphinx | whisper),
IRIS_SPACE_WHISPER_MODEL (base.en), IRIS_SPACE_MAX_AUDIO_S (60).

API (gradio_client): `/chat` streams dicts {"reply", "done", "notice", "stats", "transcript", "base"} for
(variant, message, history=[{"role", "content"}...], mode, temperature, top_p, max_new_tokens, audio=None,
compare=False); `audio` (a file, `gradio_client.handle_file(path)`) is transcribed and sent as the message (after
`message`, if both are given); with `compare`, "base" holds the base model's reply {"reply", "done", "notice",
"stats"}. `/transcribe` turns audio into text; `/variants` lists the variants.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import gradio as gr

APP_DIR = Path(__file__).resolve().parent
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))

from iris_space import settings, speech  # noqa: E402
from iris_space.chat import Chat, Reply, stats_line  # noqa: E402
from iris_space.manifest import Manifest, UserError  # noqa: E402
from iris_space.models import ModelPool  # noqa: E402

STATUS_TEXT = {"built": "built locally", "published": "on the Hub", "not_built": "not built yet"}


def _choices(manifest: Manifest) -> list[tuple[str, str]]:
    return [
        (f"{v.get('label') or vid} — {STATUS_TEXT.get(v.get('status'), v.get('status'))}", vid)
        for vid, v in manifest.variants.items()
    ]


def describe(manifest: Manifest, vid: str | None) -> str:
    if vid not in manifest.variants:
        return manifest.problem or "Choose a variant."
    v = manifest.variants[vid]
    lines = [f"**{v.get('label') or vid}** (`{vid}`) — {v.get('description') or ''}"]
    gguf = v.get("gguf") or {}
    if v.get("status") == "not_built":
        lines.append(f"Not built yet. Build it with `{v.get('build_command')}`, then restart `iris-recipes space`.")
    elif v.get("status") == "published" and gguf.get("repo_id"):
        lines.append(
            f"Published at [{gguf['repo_id']}](https://huggingface.co/{gguf['repo_id']}) · "
            f"`{gguf.get('filename')}`, downloaded when chosen."
        )
    else:
        size = f", {gguf['bytes'] / 1e6:,.0f} MB" if isinstance(gguf.get("bytes"), int) else ""
        lines.append(f"Built locally · `{gguf.get('filename') or v.get('quant')}`{size}")
    return "\n\n".join(lines)


def _file_path(audio: Any, uploads_only: bool = False) -> str | None:
    """A path from what gradio hands over for a file: a path, a FileData or its dict. An API call's file must be one
    gradio received (its upload folder): a path the caller names is never read."""
    if audio is None or audio == "":
        return None
    if isinstance(audio, (str, os.PathLike)):
        path = str(audio)
    elif isinstance(audio, dict):
        path = audio.get("path")
    else:
        path = getattr(audio, "path", None)
    if not isinstance(path, str) or not path:
        raise UserError("audio must be a file (gradio_client.handle_file(PATH)).")
    if uploads_only:
        from gradio.utils import get_upload_folder

        if not Path(path).resolve().is_relative_to(Path(get_upload_folder()).resolve()):
            raise UserError("audio must be uploaded with the request (gradio_client.handle_file(PATH)).")
    return path


def _reply_dict(reply: Reply | None) -> dict | None:
    if reply is None:
        return None
    return {"reply": reply.text, "done": reply.done, "notice": reply.notice, "stats": reply.stats}


def build_app(manifest_path: str | os.PathLike | None = None) -> gr.Blocks:
    manifest = Manifest.load(manifest_path or os.environ.get("IRIS_SPACE_MANIFEST") or APP_DIR / "variants.json")
    pool = ModelPool(manifest)
    chat = Chat(manifest, pool)
    first = manifest.default_id()

    def has_base(vid) -> bool:
        v = manifest.variants.get(vid) or {}
        return bool((v.get("base_gguf") or {}).get("path") or (v.get("base_gguf") or {}).get("repo_id"))

    def settings_of(vid):
        v = manifest.variants.get(vid) or {}
        modes = list(v.get("modes") or {})
        return (
            describe(manifest, vid),
            gr.Radio(choices=modes, value=modes[0] if modes else None, visible=bool(modes)),
            gr.Slider(value=v.get("temperature", 0.7)),
            gr.Slider(value=v.get("top_p", 0.9)),
            gr.Slider(value=v.get("max_new_tokens", 256)),
            gr.Dataset(samples=[[e] for e in v.get("examples") or []], visible=bool(v.get("examples"))),
            gr.Checkbox(value=False, interactive=has_base(vid)),
            [],
            [],
            [],  # a new variant starts a new conversation
        )

    def load(vid, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 (Gradio injects progress this way)
        """The variant's model, loaded ahead of the first message; a new (empty) conversation."""
        return _load_status(vid, progress), [], [], []

    def _load_status(vid, progress) -> str:
        if vid not in manifest.variants:
            return manifest.problem or ""
        v = manifest.variants[vid]
        if v.get("status") == "not_built":
            return f"⚠ Not built yet: `{v.get('build_command')}`"
        t = time.perf_counter()
        try:
            model, now = pool.preload(vid, v, progress)
        except UserError as exc:
            gr.Warning(str(exc))
            return f"⚠ {exc}"
        took = f" in {time.perf_counter() - t:.1f} s" if now else ""
        name = (v.get("gguf") or {}).get("filename") or model.path.name
        return (
            f"✓ Loaded {v.get('label') or vid} (`{name}`){took} · context {model.n_ctx:,} tokens · "
            f"{settings.THREADS} threads"
        )

    def voice_to_message(audio):
        """Voice to the message box: the transcript stays editable, because an offline recognizer gets words
        wrong and a reply to a misheard message costs the visitor a slow generation."""
        try:
            path = _file_path(audio)
            if path is None:
                return gr.skip(), ""
            t = speech.transcribe(path)
        except UserError as exc:
            gr.Warning(str(exc))
            return gr.skip(), f"⚠ {exc}"
        note = f" · {t.notice}" if t.notice else ""
        return t.text, (
            f"🎤 Transcribed {t.seconds:.1f} s of speech with {t.engine} in {t.took_s:.1f} s{note}. "
            "Edit the message if needed, then send it."
        )

    def respond(message, display, base_display, conv, vid, mode, temperature, top_p, max_new_tokens, compare):
        """Stream a reply (and the base model's beside it) into the chat; a problem becomes a warning (toast and
        chat line), never a broken UI."""
        before, base_before = list(display or []), list(base_display or [])
        if not isinstance(message, str) or not message.strip():
            gr.Warning("Type a message first: an empty message gets no reply.")
            yield before, base_before, conv, gr.skip()
            return
        user = {"role": "user", "content": message}
        pending = {"role": "assistant", "content": "…"}
        try:
            replies = chat.stream(vid, message, conv, mode, temperature, top_p, max_new_tokens, compare=bool(compare))
            yield before + [user, pending], (base_before + [user, pending]) if compare else base_before, conv, ""
            for reply in replies:
                text = _shown(reply)
                base = base_before
                if compare:
                    base = base_before + [user, {"role": "assistant", "content": _shown(reply.base)}]
                if reply.done:
                    if reply.notice:
                        gr.Warning(reply.notice)
                    conv = list(conv or []) + [user, {"role": "assistant", "content": reply.text}]
                yield before + [user, {"role": "assistant", "content": text}], base, conv, gr.skip()
        except UserError as exc:
            gr.Warning(str(exc))
            shown = message if len(message) <= 2000 else message[:2000] + f" … ({len(message):,} characters)"
            yield (
                before + [{"role": "user", "content": shown}, {"role": "assistant", "content": f"⚠ {exc}"}],
                base_before,
                conv,
                gr.skip(),
            )

    def api_chat(
        variant: str,
        message: str = "",
        history: list[dict] = [],  # noqa: B006 (read only)
        mode: str = "",
        temperature: float = 0.7,
        top_p: float = 0.9,
        max_new_tokens: int = 256,
        audio: gr.FileData | None = None,
        compare: bool = False,
    ) -> dict:
        """Stream a reply: dicts {"reply", "done", "notice", "stats", "transcript", "base"}; the last has done=True.
        `audio` is transcribed and sent at once (no one is there to edit it); `compare` adds the base model's reply."""
        try:
            transcript = None
            path = _file_path(audio, uploads_only=True)
            if path is not None:
                transcript = speech.transcribe(path).text
                message = f"{message}\n{transcript}".strip() if message else transcript
            for reply in chat.stream(
                variant, message, history, mode or None, temperature, top_p, max_new_tokens, compare=bool(compare)
            ):
                yield {**_reply_dict(reply), "transcript": transcript, "base": _reply_dict(reply.base)}
        except UserError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    def api_transcribe(audio: gr.FileData) -> dict:
        """The words spoken in `audio`: {"text", "engine", "seconds", "took_s", "notice"}."""
        try:
            path = _file_path(audio, uploads_only=True)
            if path is None:
                raise UserError("Send an audio file to transcribe.")
            t = speech.transcribe(path)
        except UserError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return {"text": t.text, "engine": t.engine, "seconds": t.seconds, "took_s": t.took_s, "notice": t.notice}

    def api_variants() -> list[dict]:
        """The variants of this Space: id, label, status, modes and defaults, and whether compare is possible."""
        keys = (
            "id",
            "label",
            "description",
            "status",
            "build_command",
            "modes",
            "examples",
            "temperature",
            "top_p",
            "max_new_tokens",
            "quant",
            "base_model",
        )
        return [{**{k: v.get(k) for k in keys}, "compare": has_base(vid)} for vid, v in manifest.variants.items()]

    with gr.Blocks(title="iris-recipes Space") as demo:
        gr.Markdown("# iris-recipes\nChat with the fine-tuned variants of the recipes. Runs on CPU with llama.cpp.")
        variant = gr.Dropdown(choices=_choices(manifest), value=first, label="Variant", interactive=True)
        info = gr.Markdown(describe(manifest, first))
        status = gr.Markdown("", elem_id="load-status")
        with gr.Row():
            chatbot = gr.Chatbot(label="Fine-tuned variant", height=420, elem_id="chat")
            base_chatbot = gr.Chatbot(label="Base model", height=420, elem_id="base-chat", visible=False)
        conv = gr.State([])
        with gr.Row():
            message = gr.Textbox(
                placeholder="Type a message and press Enter", show_label=False, scale=8, elem_id="message", max_lines=8
            )
            send = gr.Button("Send", variant="primary", scale=1)
            stop = gr.Button("Stop", scale=1)
            clear = gr.Button("Clear", scale=1)
        with gr.Row():
            audio = gr.Audio(
                sources=["upload", "microphone"],
                type="filepath",
                format=None,
                label="Voice input",
                elem_id="voice",
                scale=3,
            )
            with gr.Column(scale=2):
                compare = gr.Checkbox(
                    label="Compare with base model",
                    value=False,
                    elem_id="compare",
                    interactive=has_base(first),
                    info="The base model answers the same message with the same settings.",
                )
                voice_status = gr.Markdown("", elem_id="voice-status")
        v0 = manifest.variants.get(first) or {}
        examples = gr.Dataset(
            components=[message],
            samples=[[e] for e in v0.get("examples") or []],
            label="Examples",
            visible=bool(v0.get("examples")),
        )
        with gr.Row():
            modes0 = list(v0.get("modes") or {})
            mode = gr.Radio(choices=modes0, value=modes0[0] if modes0 else None, label="Mode", visible=bool(modes0))
            temperature = gr.Slider(0, 2, value=v0.get("temperature", 0.7), step=0.05, label="Temperature")
            top_p = gr.Slider(0.05, 1, value=v0.get("top_p", 0.9), step=0.05, label="Top-p")
            max_new = gr.Slider(
                1, 4096, value=v0.get("max_new_tokens", 256), step=1, label="Max new tokens", elem_id="max-new"
            )

        inputs = [message, chatbot, base_chatbot, conv, variant, mode, temperature, top_p, max_new, compare]
        events = [
            ev(
                respond,
                inputs,
                [chatbot, base_chatbot, conv, message],
                concurrency_limit=settings.CONCURRENCY,
                concurrency_id="chat",
                api_visibility="private",
            )
            for ev in (message.submit, send.click)
        ]
        # The reply in progress belongs to the old conversation: it is stopped, and once the new variant is loaded
        # (by then no update of the stopped reply is in flight) the chat is cleared again.
        variant.change(
            settings_of,
            variant,
            [info, mode, temperature, top_p, max_new, examples, compare, chatbot, base_chatbot, conv],
            cancels=events,
            queue=False,
            api_visibility="private",
        ).then(load, variant, [status, chatbot, base_chatbot, conv], concurrency_limit=None, api_visibility="private")
        demo.load(
            load, variant, [status, chatbot, base_chatbot, conv], concurrency_limit=None, api_visibility="private"
        )
        compare.change(
            lambda on: gr.Chatbot(visible=bool(on)), compare, base_chatbot, queue=False, api_visibility="private"
        )
        audio.change(
            voice_to_message,
            audio,
            [message, voice_status],
            concurrency_limit=settings.CONCURRENCY,
            concurrency_id="voice",
            api_visibility="private",
        )
        examples.click(lambda sample: sample[0], examples, message, queue=False, api_visibility="private")
        stop.click(None, cancels=events, queue=False, api_visibility="private")
        clear.click(lambda: ([], [], []), None, [chatbot, base_chatbot, conv], queue=False, api_visibility="private")
        gr.api(api_chat, api_name="chat", concurrency_limit=settings.CONCURRENCY, concurrency_id="chat")
        gr.api(api_transcribe, api_name="transcribe", concurrency_limit=settings.CONCURRENCY, concurrency_id="voice")
        gr.api(api_variants, api_name="variants", queue=False)

    demo.queue(max_size=settings.QUEUE_SIZE, default_concurrency_limit=settings.CONCURRENCY)
    _quiet_queue(demo)
    _quiet_event_streams()
    demo.iris_manifest, demo.iris_pool = manifest, pool  # for tests and `iris-recipes space`
    return demo


def _quiet_queue(demo: gr.Blocks) -> None:
    """Gradio's queue looks for new requests every 1 ms and for progress every 10 ms, even when idle: ~8% of a core
    (measured: an idle Gradio app, 0.79 CPU-s in 10 s), taken from llama.cpp's threads on a 2-core Space while
    they decode. Every 10 ms and 50 ms is enough for a chat; a request waits at most 10 ms more to start."""
    queue = getattr(demo, "_queue", None)
    if hasattr(queue, "sleep_when_free") and hasattr(queue, "progress_update_sleep_when_free"):
        queue.sleep_when_free = max(queue.sleep_when_free, settings.QUEUE_POLL_S)
        queue.progress_update_sleep_when_free = max(queue.progress_update_sleep_when_free, 5 * settings.QUEUE_POLL_S)


class _SleepFloor:
    """The asyncio module, but with sleeps shorter than `floor` (other than 0, a plain yield) lengthened to it."""

    def __init__(self, module, floor: float):
        self._module, self.floor = module, floor

    def __getattr__(self, name: str):
        return getattr(self._module, name)

    def sleep(self, delay, *args, **kwargs):
        return self._module.sleep(self.floor if 0 < delay < self.floor else delay, *args, **kwargs)


def _quiet_event_streams() -> None:
    """Gradio before 6.11 looks for each open event stream's next message every 1 ms (6.11 waits for it instead,
    gradio-app/gradio#13046): ~15% of a core while a reply streams, taken from llama.cpp's threads on a 2-core
    Space (axolotl pins Gradio 6.10, so a training environment has it). Its routes' sleeps shorter than
    QUEUE_POLL_S are lengthened to it: a streamed update leaves at most 10 ms later."""
    import gradio.routes

    major, minor = (int(part) for part in gr.__version__.split(".")[:2])
    if (major, minor) < (6, 11) and not isinstance(gradio.routes.asyncio, _SleepFloor):
        gradio.routes.asyncio = _SleepFloor(gradio.routes.asyncio, settings.QUEUE_POLL_S)


def _shown(reply: Reply | None) -> str:
    """A reply as the chat shows it: its text, then (once done) a notice and the stats line."""
    if reply is None:
        return ""
    if not reply.done or reply.stats is None:
        text = reply.text or "…"
        return f"{text}\n\n⚠ {reply.notice}" if reply.done and reply.notice else text
    footer = f"*{stats_line(reply)}*"
    if reply.notice:
        footer = f"⚠ {reply.notice}  \n{footer}"
    return f"{reply.text}\n\n---\n{footer}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the iris-recipes Space.")
    parser.add_argument("--manifest", help="variants.json (default: IRIS_SPACE_MANIFEST or variants.json here)")
    parser.add_argument("--host", default=None, help="address to listen on (default: GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: GRADIO_SERVER_PORT or 7860)")
    args = parser.parse_args(argv)
    build_app(args.manifest).launch(server_name=args.host, server_port=args.port, show_error=True)


if __name__ == "__main__":
    main()
