"""Replies: generated on each model's own thread, streamed to the caller as independent snapshots."""

from __future__ import annotations

import codecs
import collections
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import settings
from .manifest import Manifest, ModelError, UserError
from .models import Model, ModelPool
from .prompt import build_messages, fit_context

# llama.cpp's seeds are 32-bit; this value asks it for a random one.
_RANDOM_SEED = 0xFFFFFFFF


@dataclass(frozen=True)
class Sampling:
    """How one reply is sampled: the request's settings, the variant's own where the request leaves one out."""

    temperature: float
    top_p: float
    max_new_tokens: int
    stop: tuple[str, ...] = ()  # texts that end the reply (besides the chat family's markers), not shown
    seed: int | None = None  # None: a random one

    @classmethod
    def of(
        cls,
        variant: dict[str, Any],
        temperature: float | None = None,
        top_p: float | None = None,
        max_new_tokens: int | None = None,
        stop: tuple[str, ...] = (),
        seed: int | None = None,
        max_tokens_param: str = "max_new_tokens",
    ) -> Sampling:
        """The settings of a request to `variant`; a setting left out (None) is the variant's, from the manifest.
        `max_tokens_param` is what the caller's API calls the reply's length limit (for its error message)."""
        sampling = cls(
            float(variant["temperature"] if temperature is None else temperature),
            float(variant["top_p"] if top_p is None else top_p),
            int(variant["max_new_tokens"] if max_new_tokens is None else max_new_tokens),
            tuple(stop),
            seed,
        )
        if not 0 <= sampling.temperature <= 2:
            raise UserError(f"temperature must be in [0, 2], not {sampling.temperature:g}.", "temperature")
        if not 0 < sampling.top_p <= 1:
            raise UserError(f"top_p must be in (0, 1], not {sampling.top_p:g}.", "top_p")
        if not 1 <= sampling.max_new_tokens <= settings.MAX_NEW_TOKENS:
            raise UserError(
                f"{max_tokens_param} must be in [1, {settings.MAX_NEW_TOKENS}], not {sampling.max_new_tokens}.",
                max_tokens_param,
            )
        return sampling


@dataclass(frozen=True)
class Reply:
    """One state of a streamed reply; every update is a new object. In compare mode `base` is the base model's."""

    text: str = ""
    done: bool = False
    notice: str | None = None
    stats: dict[str, Any] | None = None
    base: Reply | None = None


def _held_back(text: str, markers: tuple[str, ...]) -> int:
    """Where the part of `text` that may be the start of a template marker begins (len(text) if none)."""
    longest = max((len(m) for m in markers), default=0)
    for i in range(max(0, len(text) - longest + 1), len(text)):
        if any(m.startswith(text[i:]) for m in markers):
            return i
    return len(text)


def generate(
    model: Model,
    messages: list[dict],
    sampling: Sampling,
    threads: int,
    emit,
    cancel: threading.Event,
) -> None:
    """One reply on the model's thread: trim to the context, bring back the conversation's KV state, sample, and
    `emit` (kind, value) events: "notice", "text" pieces, then "done" with the stats (or "error")."""
    try:
        if cancel.is_set():  # the caller left while this reply waited for the model: nobody reads it
            return
        max_new_tokens = min(sampling.max_new_tokens, model.n_ctx // 2)
        messages, dropped, tokens = fit_context(model, messages, max_new_tokens)
        if dropped:
            emit(
                "notice",
                f"The {dropped} oldest turn{'s' if dropped > 1 else ''} of this conversation "
                f"{'were' if dropped > 1 else 'was'} left out to fit the model's {model.n_ctx:,}-token "
                "context.",
            )
        llm = model.llm
        t0 = time.perf_counter()
        tokens, reused = model.switch_to(tokens, model.n_ctx - max_new_tokens)
        llm._ctx.set_n_threads(threads, threads)
        seed = random.randrange(1 << 31) if sampling.seed is None else sampling.seed % _RANDOM_SEED
        llm.set_seed(seed)
        stop_texts = model.stop_texts + sampling.stop
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending, started, n, finish = "", False, 0, "length"
        first = last = None
        model.unsaved = True
        stream = llm.generate(
            tokens, top_k=40, top_p=sampling.top_p, min_p=0.05, temp=sampling.temperature, repeat_penalty=1.0
        )
        try:
            for token in stream:
                if model.is_eog(model.vocab, token):
                    finish = "stop"
                    break
                n += 1
                pending += decoder.decode(model.piece(token))
                if not started:  # a reply does not open with the space or newline after the assistant's header
                    pending = pending.lstrip()
                    started = bool(pending)
                stop = min((i for i in (pending.find(m) for m in stop_texts) if i >= 0), default=-1)
                cut = stop if stop >= 0 else _held_back(pending, stop_texts)
                if cut:
                    last = time.perf_counter()
                    first = first or last
                    emit("text", pending[:cut])
                    pending = pending[cut:]
                if stop >= 0:
                    pending, finish = "", "stop"  # the stop text and what follows it are not shown
                    break
                if n >= max_new_tokens:
                    break
                if cancel.is_set():
                    finish = "cancelled"
                    break
        finally:
            stream.close()
        if pending and finish != "cancelled":  # held back in case a stop text began there; none did
            emit("text", pending)
        now = time.perf_counter()
        first = first or now
        decode_s = (last - first) if last else 0.0
        emit(
            "done",
            {
                "tokens": n,
                "prompt_tokens": len(tokens),
                "reused_tokens": reused,
                "tokens_per_s": round((n - 1) / decode_s, 2) if n > 1 and decode_s > 0 else None,
                "first_token_at": first,
                "prompt_s": round(first - t0, 3),
                "finish_reason": finish,
                "dropped_turns": dropped,
                "sampling": {
                    "temperature": sampling.temperature,
                    "top_p": sampling.top_p,
                    "max_new_tokens": max_new_tokens,
                    "seed": seed,
                },
            },
        )
    except UserError as exc:
        emit("error", exc)
    except Exception as exc:  # llama.cpp failure: report it, keep serving
        emit("error", ModelError(f"Generation failed: {type(exc).__name__}: {str(exc)[:300]}"))


class Chat:
    """Streams replies: llama.cpp generates on each model's thread (queued behind earlier replies), the caller
    drains the events at most UPDATES_PER_S times a second."""

    def __init__(self, manifest: Manifest, pool: ModelPool):
        self.manifest, self.pool = manifest, pool

    def stream(
        self,
        variant_id: Any,
        message: Any,
        history: Any = (),
        mode: str | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        max_new_tokens: int | None = None,
        compare: bool = False,
    ) -> Iterator[Reply]:
        """Check the request now (UserError), then return the reply's stream. With `compare`, the variant's base
        model answers the same messages with the same settings, beside it. A setting left out (None) is the
        variant's own."""
        variant = self.manifest.get(variant_id)
        messages = build_messages(variant, mode, list(history or []), message)
        sampling = Sampling.of(variant, temperature, top_p, max_new_tokens)
        return self.reply(variant, messages, sampling, compare)

    def reply(
        self, variant: dict[str, Any], messages: list[dict], sampling: Sampling, compare: bool = False
    ) -> Iterator[Reply]:
        """The stream of the reply to `messages` (as `build_messages` makes them)."""
        specs = [(variant["id"], variant)]
        if compare:
            base = self.manifest.base_of(variant)
            specs.append((base["id"], base))
        return self._stream(specs, messages, sampling)

    def _stream(self, specs, messages, sampling: Sampling) -> Iterator[Reply]:
        requested = time.perf_counter()
        with self.pool.use(*specs) as models:
            started = time.perf_counter()  # time to first token counts from here: a model load is reported apart
            load_s = round(started - requested, 3)
            events: collections.deque = collections.deque()  # appended by the models' threads
            wake = threading.Event()
            cancel = threading.Event()
            threads = max(1, settings.THREADS // len(models))  # models answering side by side share the cores

            def emit(i: int, kind: str, value: Any) -> None:
                events.append((i, kind, value))
                if kind != "text" or not any(s["text"] for s in sides):
                    wake.set()  # the first text and the end go out at once; later text waits for the next update

            sides: list[dict[str, Any]] = [{"text": "", "done": False, "notice": None, "stats": None} for _ in models]
            for i, model in enumerate(models):
                model.thread.submit(
                    generate,
                    model,
                    messages,
                    sampling,
                    threads,
                    lambda kind, value, i=i: emit(i, kind, value),
                    cancel,
                )
            interval = 1.0 / max(1, settings.UPDATES_PER_S)
            try:
                while not all(s["done"] for s in sides):
                    # This thread wakes once per update, not per token: on 2 cores every wake-up takes a core from
                    # llama.cpp's threads, which spin at a barrier until it comes back (decode measurably slows).
                    wake.wait(interval if any(s["text"] for s in sides) else None)
                    wake.clear()
                    batch = []
                    while events:
                        batch.append(events.popleft())
                    if not batch:
                        continue
                    for i, kind, value in batch:
                        side = sides[i]
                        if kind == "text":
                            side["text"] += value
                        elif kind == "notice":
                            side["notice"] = value
                        elif kind == "error":
                            if len(sides) == 1 or i == 0:
                                raise value
                            side.update(done=True, notice=str(value))  # the base failed: the variant goes on
                        elif kind == "done":
                            stats = {**value, "ttft_s": round(value["first_token_at"] - started, 3), "load_s": load_s}
                            del stats["first_token_at"]
                            side.update(done=True, stats=stats)
                    yield self._snapshot(sides)
            finally:
                cancel.set()  # the reader went away (or finished): stop generating and free the models' threads

    @staticmethod
    def _snapshot(sides: list[dict[str, Any]]) -> Reply:
        replies = [Reply(s["text"], s["done"], s["notice"], dict(s["stats"]) if s["stats"] else None) for s in sides]
        if len(replies) == 1:
            return replies[0]
        main, base = replies
        return Reply(main.text, all(r.done for r in replies), main.notice, main.stats, base)


def stats_line(reply: Reply) -> str:
    s = reply.stats or {}
    rate = f"{s['tokens_per_s']:.1f} tokens/s" if s.get("tokens_per_s") else "—"
    return f"{rate} · first token after {s.get('ttft_s', 0):.2f} s · {s.get('tokens', 0)} tokens"
