"""The Space's Gradio API (gradio_client): `/chat`, `/transcribe` and `/variants`.

`/chat` streams dicts {"reply", "done", "notice", "stats", "transcript", "base"} for (variant, message,
history=[{"role", "content"}...], mode, temperature, top_p, max_new_tokens, audio=None, compare=False); a sampling
setting left out is the variant's own (from the manifest). `audio` (a file, `gradio_client.handle_file(path)`) is
transcribed and sent as the message (after `message`, if both are given); with `compare`, "base" holds the base
model's reply {"reply", "done", "notice", "stats"}. `/transcribe` turns audio into text; `/variants` lists the
variants.
"""

from __future__ import annotations

import gradio as gr

from . import settings, speech
from .chat import Chat, Reply
from .manifest import SAMPLING_KEYS, UserError

# What `/variants` tells of each variant.
VARIANT_KEYS = ("id", "label", "description", "status", "build_command", "modes", "examples", *SAMPLING_KEYS, "quant")
VARIANT_KEYS += ("base_model",)


def reply_dict(reply: Reply | None) -> dict | None:
    if reply is None:
        return None
    return {"reply": reply.text, "done": reply.done, "notice": reply.notice, "stats": reply.stats}


def add_endpoints(demo: gr.Blocks, chat: Chat) -> None:
    """Register the endpoints on `demo`."""
    manifest = chat.manifest

    def api_chat(
        variant: str,
        message: str = "",
        history: list[dict] = [],  # noqa: B006 (read only)
        mode: str = "",
        temperature: float | None = None,
        top_p: float | None = None,
        max_new_tokens: int | None = None,
        audio: gr.FileData | None = None,
        compare: bool = False,
    ) -> dict:
        """Stream a reply: dicts {"reply", "done", "notice", "stats", "transcript", "base"}; the last has done=True.
        `audio` is transcribed and sent at once (no one is there to edit it); `compare` adds the base model's reply.
        temperature, top_p and max_new_tokens left out are the variant's own."""
        try:
            transcript = None
            path = speech.audio_path(audio, uploads_only=True)
            if path is not None:
                transcript = speech.transcribe(path).text
                message = f"{message}\n{transcript}".strip() if message else transcript
            for reply in chat.stream(
                variant, message, history, mode or None, temperature, top_p, max_new_tokens, compare=bool(compare)
            ):
                yield {**reply_dict(reply), "transcript": transcript, "base": reply_dict(reply.base)}
        except UserError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    def api_transcribe(audio: gr.FileData) -> dict:
        """The words spoken in `audio`: {"text", "engine", "seconds", "took_s", "notice"}."""
        try:
            path = speech.audio_path(audio, uploads_only=True)
            if path is None:
                raise UserError("Send an audio file to transcribe.")
            t = speech.transcribe(path)
        except UserError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return {"text": t.text, "engine": t.engine, "seconds": t.seconds, "took_s": t.took_s, "notice": t.notice}

    def api_variants() -> list[dict]:
        """The variants of this Space: id, label, status, modes and defaults, and whether compare is possible."""
        return [
            {**{k: v.get(k) for k in VARIANT_KEYS}, "compare": manifest.has_base(vid)}
            for vid, v in manifest.variants.items()
        ]

    with demo:
        gr.api(api_chat, api_name="chat", concurrency_limit=settings.CONCURRENCY, concurrency_id="chat")
        gr.api(api_transcribe, api_name="transcribe", concurrency_limit=settings.CONCURRENCY, concurrency_id="voice")
        gr.api(api_variants, api_name="variants", queue=False)
