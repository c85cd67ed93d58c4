"""The Space's chat page (Gradio Blocks): choose a variant, chat with it, compare with its base model, speak."""

from __future__ import annotations

import time

import gradio as gr

from . import settings, speech
from .chat import Chat, Reply, stats_line
from .manifest import SAMPLING_KEYS, Manifest, UserError

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


def build_ui(chat: Chat) -> gr.Blocks:
    """The chat page: a variant's settings, its chat (and the base model's beside it), voice input. Its events are
    private: the Gradio API is `gradio_api`'s."""
    manifest, pool = chat.manifest, chat.pool
    first = manifest.default_id()
    has_base = manifest.has_base

    def settings_of(vid):
        v = manifest.variants.get(vid) or {}
        modes = list(v.get("modes") or {})
        return (
            describe(manifest, vid),
            gr.Radio(choices=modes, value=modes[0] if modes else None, visible=bool(modes)),
            *(gr.Slider(value=v[k]) if k in v else gr.skip() for k in SAMPLING_KEYS),
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
            path = speech.audio_path(audio)
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
            temperature = gr.Slider(0, 2, value=v0.get("temperature"), step=0.05, label="Temperature")
            top_p = gr.Slider(0.05, 1, value=v0.get("top_p"), step=0.05, label="Top-p")
            max_new = gr.Slider(
                1,
                settings.MAX_NEW_TOKENS,
                value=v0.get("max_new_tokens"),
                step=1,
                label="Max new tokens",
                elem_id="max-new",
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
    return demo


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
