"""iris-recipes Space: chat with the fine-tuned variants of the recipes, on a CPU, with llama.cpp.

Needs only gradio, llama-cpp-python and huggingface_hub, so it runs on a Hugging Face Space where iris_recipes is
not installed. It reads a manifest of variants (`variants.json` beside this file; `--manifest FILE` or the
IRIS_SPACE_MANIFEST environment variable elsewhere) written by `iris-recipes space`, and loads the chosen
variant's GGUF lazily: a local file, or a download from the Hub repo the recipe publishes to.

    python app.py [--manifest variants.json] [--host 127.0.0.1] [--port 7860]

Settings (environment): IRIS_SPACE_THREADS (CPU threads, default all cores), IRIS_SPACE_N_CTX (context window,
default 4096), IRIS_SPACE_MAX_CHARS (longest message, default 8000), IRIS_SPACE_QUEUE_SIZE (waiting requests,
default 16), IRIS_SPACE_CONCURRENCY (replies handled at once, default 2; each model still answers one at a time),
IRIS_SPACE_MAX_MODELS (models kept in memory, default 1), IRIS_SPACE_UPDATES_PER_S (streamed UI updates a second
per reply, default 20).

API (gradio_client): `/chat` streams dicts {"reply", "done", "notice", "stats"} for
(variant, message, history=[{"role", "content"}...], mode, temperature, top_p, max_new_tokens).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import gradio as gr

APP_DIR = Path(__file__).resolve().parent


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


THREADS = _env_int("IRIS_SPACE_THREADS", os.cpu_count() or 2)
N_CTX = _env_int("IRIS_SPACE_N_CTX", 4096)
MAX_CHARS = _env_int("IRIS_SPACE_MAX_CHARS", 8000)
QUEUE_SIZE = _env_int("IRIS_SPACE_QUEUE_SIZE", 16)
CONCURRENCY = _env_int("IRIS_SPACE_CONCURRENCY", 2)
MAX_MODELS = _env_int("IRIS_SPACE_MAX_MODELS", 1)
# At most this many UI updates a second per reply: a per-token update costs the server (diffing, SSE) and the
# browser CPU time that the model decodes on, and nobody reads faster than ~20 updates a second.
UPDATES_PER_S = _env_int("IRIS_SPACE_UPDATES_PER_S", 20)

# Chat-template markers of the model families the recipes use (ChatML, Llama 3, Phi-3, Mistral/Llama 2). Generation
# stops at any of them, and they are removed from the text in case one slips through as plain text.
TEMPLATE_MARKERS = (
    "<|im_end|>", "<|im_start|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|end_of_text|>",
    "<|end|>", "<|user|>", "<|assistant|>", "<|system|>", "<|endoftext|>", "</s>", "[INST]", "[/INST]",
)
_MARKER_RE = re.compile("|".join(re.escape(m) for m in TEMPLATE_MARKERS) + r"|<\|[a-z_]{2,30}\|>")

STATUS_TEXT = {"built": "built locally", "published": "on the Hub", "not_built": "not built yet"}


class UserError(Exception):
    """A problem the user can fix; shown as a message, never a traceback."""


def clean(text: str) -> str:
    return _MARKER_RE.sub("", text)


# -- the manifest ------------------------------------------------------------------------------------------------
@dataclass
class Manifest:
    path: Path
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    problem: str | None = None  # why no variant could be read

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Manifest":
        path = Path(path).resolve()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path, problem=f"No variants manifest at {path}. Write one with `iris-recipes space`.")
        except (OSError, ValueError) as exc:
            return cls(path, problem=f"{path}: not a readable variants manifest ({exc}). Write it again with "
                                     "`iris-recipes space`.")
        variants = {}
        for i, v in enumerate(data.get("variants", []) if isinstance(data, dict) else []):
            if isinstance(v, dict) and isinstance(v.get("id"), str):
                variants[v["id"]] = v
            else:
                print(f"{path}: variants[{i}] has no id; skipped")
        return cls(path, variants, None if variants else f"{path} lists no variants. Build one with "
                                                         "`iris-recipes run recipes/NAME.yaml`.")

    def get(self, variant_id: Any) -> dict[str, Any]:
        if not isinstance(variant_id, str) or variant_id not in self.variants:
            known = ", ".join(self.variants) or "none"
            raise UserError(f"Unknown variant {str(variant_id)[:80]!r}. Variants in this Space: {known}.")
        return self.variants[variant_id]

    def default_id(self) -> str | None:
        """A local variant first (no download), then a published one."""
        for status in ("built", "published"):
            for k, v in self.variants.items():
                if v.get("status") == status:
                    return k
        return next(iter(self.variants), None)


# -- models --------------------------------------------------------------------------------------------------------
def gguf_file(manifest: Manifest, variant: dict[str, Any], progress=None) -> Path:
    """The variant's GGUF on disk: its local file, or the published file downloaded (once) from the Hub."""
    name = variant.get("label") or variant["id"]
    if variant.get("status") == "not_built":
        raise UserError(f"{name} is not built yet. Build it with: {variant.get('build_command', 'iris-recipes run')}")
    gguf = variant.get("gguf") or {}
    if gguf.get("path"):
        path = manifest.path.parent / gguf["path"]  # an absolute path stays as it is
        if path.is_file():
            return path
        if not gguf.get("repo_id"):
            raise UserError(f"{name}: its GGUF file {path} is missing. Build it again with: "
                            f"{variant.get('build_command', 'iris-recipes run')}")
    if not gguf.get("repo_id") or not gguf.get("filename"):
        raise UserError(f"{name}: the manifest gives neither a local GGUF nor a Hub repo. Write it again with "
                        "`iris-recipes space`.")
    from huggingface_hub import hf_hub_download

    if progress:
        progress(0, desc=f"Downloading {gguf['filename']} from {gguf['repo_id']}")
    try:
        return Path(hf_hub_download(gguf["repo_id"], gguf["filename"]))
    except Exception as exc:  # network, auth, missing file: all end the same way for the user
        raise UserError(f"{name}: could not download {gguf['filename']} from https://huggingface.co/"
                        f"{gguf['repo_id']} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}).") from exc


def check_gguf(path: Path, variant: dict[str, Any]) -> None:
    """Cheap checks that turn a corrupt or truncated file into a clear message before llama.cpp sees it."""
    name = variant.get("label") or variant["id"]
    size = path.stat().st_size
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise UserError(f"{name}: {path.name} is not a GGUF file (it starts with {magic!r}). Export it again with "
                        "`iris-recipes export RUN`.")
    expected = (variant.get("gguf") or {}).get("bytes")
    if isinstance(expected, int) and expected != size:
        raise UserError(f"{name}: {path.name} has {size:,} bytes, the export wrote {expected:,}: the file is "
                        "damaged or incomplete. Export it again with `iris-recipes export RUN`.")


def llama_thread(name: str) -> ThreadPoolExecutor:
    """The one thread that runs a model's llama.cpp work. ggml's OpenMP keeps a team of spinning worker threads per
    calling thread: a second calling thread (say, one per request) makes two teams fight over the cores, and decoding
    on 2 cores drops to a third of its speed. One long-lived thread per model keeps a single team."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{name}")


class Model:
    """One loaded GGUF with its own llama.cpp context; all its llama.cpp work runs on `thread`, one task at a time
    (llama.cpp is not thread-safe, and one calling thread keeps one OpenMP team)."""

    def __init__(self, variant: dict[str, Any], path: Path, llm, thread: ThreadPoolExecutor):
        self.variant, self.path, self.llm, self.thread = variant, path, llm, thread
        self.users = 0
        self.evicted = False
        self.closed = False
        self.n_ctx = llm.n_ctx()
        self._formatter = None
        template = llm.metadata.get("tokenizer.chat_template")
        if template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            eos, bos = llm.token_eos(), llm.token_bos()
            self._formatter = Jinja2ChatFormatter(
                template,
                eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
                bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
            )

    def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        """Tokens of the prompt the chat template makes of `messages` (call on the model's thread)."""
        if self._formatter is not None:
            text = self._formatter(messages=messages).prompt
            return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))
        # Without a template in the file llama-cpp-python uses a generic format: count contents plus a margin.
        return sum(len(self.llm.tokenize(m["content"].encode("utf-8"), add_bos=False)) + 8 for m in messages)

    def close(self) -> None:
        """Free the model's memory now rather than whenever the garbage collector gets to it (on its own thread,
        after a reply that is still stopping)."""
        if self.closed:
            return
        self.closed = True
        self.thread.submit(self.llm.close)
        self.thread.shutdown(wait=False)

    def count(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else 0


class ModelPool:
    """Loaded models, at most `capacity` of them; loading never waits on a model's thread, so running replies go on.

    A model pushed out while replies still use it is closed when the last of them ends.
    """

    def __init__(self, manifest: Manifest, capacity: int = MAX_MODELS):
        self.manifest, self.capacity = manifest, capacity
        self._models: dict[str, Model] = {}  # least recently used first
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def _cached(self, vid: str) -> Model | None:
        with self._lock:
            model = self._models.pop(vid, None)
            if model is not None:
                self._models[vid] = model  # most recently used
            return model

    def load(self, vid: str, progress=None) -> tuple[Model, bool]:
        """The variant's model, loading it if needed; (model, loaded_now)."""
        variant = self.manifest.get(vid)
        if (model := self._cached(vid)) is not None:
            return model, False
        with self._lock:
            loading = self._loading.setdefault(vid, threading.Lock())
        with loading:  # one load per variant at a time; other variants and running replies are not held up
            if (model := self._cached(vid)) is not None:
                return model, False
            path = gguf_file(self.manifest, variant, progress)
            check_gguf(path, variant)
            if progress:
                progress(0.5, desc=f"Loading {path.name} ({path.stat().st_size / 1e6:,.0f} MB)")
            from llama_cpp import Llama

            thread = llama_thread(vid)
            try:
                llm = thread.submit(Llama, model_path=str(path), n_ctx=N_CTX, n_threads=THREADS,
                                    n_threads_batch=THREADS, verbose=False).result()
            except Exception as exc:
                thread.shutdown(wait=False)
                raise UserError(f"{variant.get('label') or vid}: llama.cpp could not load {path.name} "
                                f"({str(exc).splitlines()[0][:200]}). Export it again with "
                                "`iris-recipes export RUN`.") from exc
            model = Model(variant, path, llm, thread)
            with self._lock:
                self._models[vid] = model
                while len(self._models) > self.capacity:
                    old = self._models.pop(next(iter(self._models)))
                    old.evicted = True
                    if old.users == 0:
                        old.close()
            return model, True

    @contextlib.contextmanager
    def use(self, vid: str, progress=None) -> Iterator[Model]:
        """A loaded model that stays open while the block runs, even if another load pushes it out."""
        while True:
            model, _ = self.load(vid, progress)
            with self._lock:
                if not model.evicted:  # it may have been pushed out between load() and here
                    model.users += 1
                    break
        try:
            yield model
        finally:
            with self._lock:
                model.users -= 1
                if model.evicted and model.users == 0:
                    model.close()


# -- chat ------------------------------------------------------------------------------------------------------------
def build_messages(variant: dict[str, Any], mode: str | None, history: Any, message: Any) -> list[dict[str, str]]:
    """System prompt (+ mode instruction), the earlier turns and the new message; bad input raises UserError."""
    if not isinstance(message, str) or not message.strip():
        raise UserError("Type a message first: an empty message gets no reply.")
    if len(message) > MAX_CHARS:
        raise UserError(f"Your message has {len(message):,} characters; this Space accepts at most {MAX_CHARS:,}. "
                        "Shorten it or split it into several messages.")
    modes = variant.get("modes") or {}
    if mode and mode not in modes:
        raise UserError(f"Unknown mode {str(mode)[:80]!r} for {variant['id']}. Modes: {', '.join(modes) or 'none'}.")
    system = "\n\n".join(p for p in (variant.get("system_prompt") or "", modes.get(mode or "", "")) if p)
    turns = []
    if not isinstance(history, list):
        raise UserError("history must be a list of {'role': 'user'|'assistant', 'content': str} messages.")
    for i, m in enumerate(history):
        if not (isinstance(m, dict) and m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str)):
            raise UserError(f"history[{i}] must be {{'role': 'user'|'assistant', 'content': str}}.")
        turns.append({"role": m["role"], "content": clean(m["content"])})
    return ([{"role": "system", "content": system}] if system else []) + turns + [{"role": "user", "content": message}]


def fit_context(model: Model, messages: list[dict[str, str]], max_new_tokens: int) -> tuple[list[dict], int, int]:
    """Drop the oldest turns until prompt + reply fit the context; the system prompt and new message stay.

    Returns (messages, turns dropped, prompt tokens).
    """
    budget = model.n_ctx - max_new_tokens
    system = messages[:1] if messages[0]["role"] == "system" else []
    turns, last = messages[len(system):-1], messages[-1]
    dropped = 0
    while True:
        n = model.prompt_tokens(system + turns + [last])
        if n <= budget or not turns:
            break
        # a turn is a user message and the reply to it
        cut = 2 if len(turns) > 1 and turns[0]["role"] == "user" else 1
        turns, dropped = turns[cut:], dropped + 1
    if n > budget:
        raise UserError(f"Your message is {n:,} tokens with the system prompt; with {max_new_tokens} new tokens "
                        f"that exceeds this model's {model.n_ctx:,}-token context. Shorten it.")
    return system + turns + [last], dropped, n


@dataclass
class Reply:
    text: str = ""
    done: bool = False
    notice: str | None = None
    stats: dict[str, Any] | None = None


class Chat:
    """Streams replies: llama.cpp generates on the model's thread (queued behind earlier replies), the caller drains it."""

    def __init__(self, manifest: Manifest, pool: ModelPool):
        self.manifest, self.pool = manifest, pool

    def stream(self, variant_id: Any, message: Any, history: Any = (), mode: str | None = None,
               temperature: float | None = None, top_p: float | None = None,
               max_new_tokens: int | None = None) -> Iterator[Reply]:
        """Check the request now (UserError), then return the reply's stream."""
        variant = self.manifest.get(variant_id)
        messages = build_messages(variant, mode, list(history or []), message)
        temperature = float(variant.get("temperature", 0.7) if temperature is None else temperature)
        top_p = float(variant.get("top_p", 0.9) if top_p is None else top_p)
        max_new_tokens = int(variant.get("max_new_tokens", 256) if max_new_tokens is None else max_new_tokens)
        if not (0 <= temperature <= 2 and 0 < top_p <= 1 and 1 <= max_new_tokens <= 4096):
            raise UserError("temperature must be in [0, 2], top_p in (0, 1] and max_new_tokens in [1, 4096].")
        return self._stream(variant, messages, temperature, top_p, max_new_tokens)

    def _stream(self, variant, messages, temperature, top_p, max_new_tokens) -> Iterator[Reply]:
        requested = time.perf_counter()
        with self.pool.use(variant["id"]) as model:
            started = time.perf_counter()  # time to first token counts from here: a model load is reported apart
            load_s = started - requested
            max_new_tokens = min(max_new_tokens, model.n_ctx // 2)
            events: queue.Queue = queue.Queue()
            cancel = threading.Event()
            model.thread.submit(self._generate, model, messages, temperature, top_p, max_new_tokens, events, cancel)
            reply = Reply()
            interval = 1.0 / max(1, UPDATES_PER_S)
            sent = float("-inf")  # the first text goes out at once: time to first token is not delayed
            try:
                while True:
                    kind, value = events.get()
                    batch = [(kind, value)]
                    if kind == "text":
                        # Sleep until the next update is due, then take all text produced meanwhile. Sleeping (not
                        # waiting on the queue) keeps this thread from waking, and taking the GIL, on every token.
                        wait = sent + interval - time.perf_counter()
                        if wait > 0:
                            time.sleep(wait)
                        while kind == "text" and not events.empty():
                            kind, value = events.get_nowait()
                            batch.append((kind, value))
                    for k, v in batch:
                        if k == "text":
                            reply.text += v
                        elif k == "notice":
                            reply.notice = v
                        elif k == "error":
                            raise v
                        elif k == "done":
                            reply.stats = {**v, "ttft_s": round(v["first_token_at"] - started, 3),
                                           "load_s": round(load_s, 3)}
                            del reply.stats["first_token_at"]
                            reply.done = True
                    reply.text = clean(reply.text)
                    yield reply
                    sent = time.perf_counter()
                    if reply.done:
                        return
            finally:
                cancel.set()  # the reader went away (or finished): stop generating and free the model's thread

    @staticmethod
    def _generate(model: Model, messages, temperature, top_p, max_new_tokens, events, cancel) -> None:
        try:
            messages, dropped, n_prompt = fit_context(model, messages, max_new_tokens)
            if dropped:
                events.put(("notice", f"The {dropped} oldest turn{'s' if dropped > 1 else ''} of this "
                                      f"conversation {'were' if dropped > 1 else 'was'} left out to fit the "
                                      f"model's {model.n_ctx:,}-token context."))
            t0 = time.perf_counter()
            first = last = None
            text = ""
            stream = model.llm.create_chat_completion(
                messages=messages, stream=True, temperature=temperature, top_p=top_p,
                max_tokens=max_new_tokens, stop=list(TEMPLATE_MARKERS))
            finish = None
            for chunk in stream:
                if cancel.is_set():
                    finish = "cancelled"
                    break
                choice = chunk["choices"][0]
                piece = choice["delta"].get("content") or ""
                finish = choice.get("finish_reason") or finish
                if piece:
                    last = time.perf_counter()
                    first = first or last
                    text += piece
                    events.put(("text", piece))
            stream.close()
            n = model.count(clean(text))
            first = first or time.perf_counter()
            decode_s = (last - first) if last else 0.0
            events.put(("done", {
                "tokens": n,
                "prompt_tokens": n_prompt,
                "tokens_per_s": round((n - 1) / decode_s, 2) if n > 1 and decode_s > 0 else None,
                "first_token_at": first,
                "prompt_s": round(first - t0, 3),
                "finish_reason": finish,
                "dropped_turns": dropped,
            }))
        except UserError as exc:
            events.put(("error", exc))
        except Exception as exc:  # llama.cpp failure: report it, keep serving
            events.put(("error", UserError(f"Generation failed: {type(exc).__name__}: {str(exc)[:300]}")))


def stats_line(reply: Reply) -> str:
    s = reply.stats or {}
    rate = f"{s['tokens_per_s']:.1f} tokens/s" if s.get("tokens_per_s") else "—"
    return f"{rate} · first token after {s.get('ttft_s', 0):.2f} s · {s.get('tokens', 0)} tokens"


# -- the UI -----------------------------------------------------------------------------------------------------------
def _choices(manifest: Manifest) -> list[tuple[str, str]]:
    return [(f"{v.get('label') or vid} — {STATUS_TEXT.get(v.get('status'), v.get('status'))}", vid)
            for vid, v in manifest.variants.items()]


def describe(manifest: Manifest, vid: str | None) -> str:
    if vid not in manifest.variants:
        return manifest.problem or "Choose a variant."
    v = manifest.variants[vid]
    lines = [f"**{v.get('label') or vid}** (`{vid}`) — {v.get('description') or ''}"]
    gguf = v.get("gguf") or {}
    if v.get("status") == "not_built":
        lines.append(f"Not built yet. Build it with `{v.get('build_command')}`, then restart `iris-recipes space`.")
    elif v.get("status") == "published" and gguf.get("repo_id"):
        lines.append(f"Published at [{gguf['repo_id']}](https://huggingface.co/{gguf['repo_id']}) · "
                     f"`{gguf.get('filename')}`, downloaded when chosen.")
    else:
        size = f", {gguf['bytes'] / 1e6:,.0f} MB" if isinstance(gguf.get("bytes"), int) else ""
        lines.append(f"Built locally · `{gguf.get('filename') or v.get('quant')}`{size}")
    return "\n\n".join(lines)


def build_app(manifest_path: str | os.PathLike | None = None) -> gr.Blocks:
    manifest = Manifest.load(manifest_path or os.environ.get("IRIS_SPACE_MANIFEST") or APP_DIR / "variants.json")
    pool = ModelPool(manifest)
    chat = Chat(manifest, pool)
    first = manifest.default_id()

    def settings(vid):
        v = manifest.variants.get(vid) or {}
        modes = list(v.get("modes") or {})
        return (
            describe(manifest, vid),
            gr.Radio(choices=modes, value=modes[0] if modes else None, visible=bool(modes)),
            gr.Slider(value=v.get("temperature", 0.7)),
            gr.Slider(value=v.get("top_p", 0.9)),
            gr.Slider(value=v.get("max_new_tokens", 256)),
            gr.Dataset(samples=[[e] for e in v.get("examples") or []], visible=bool(v.get("examples"))),
            [], [],  # a new variant starts a new conversation
        )

    def load(vid, progress=gr.Progress(track_tqdm=True)):
        if vid not in manifest.variants:
            return manifest.problem or ""
        v = manifest.variants[vid]
        if v.get("status") == "not_built":
            return f"⚠ Not built yet: `{v.get('build_command')}`"
        t = time.perf_counter()
        try:
            model, now = pool.load(vid, progress)
        except UserError as exc:
            gr.Warning(str(exc))
            return f"⚠ {exc}"
        took = f" in {time.perf_counter() - t:.1f} s" if now else ""
        name = (v.get("gguf") or {}).get("filename") or model.path.name
        return f"✓ Loaded {v.get('label') or vid} (`{name}`){took} · context {model.n_ctx:,} tokens · {THREADS} threads"

    def respond(message, display, conv, vid, mode, temperature, top_p, max_new_tokens):
        """Stream a reply into the chat; a problem becomes a warning (toast and chat line), never a broken UI."""
        before = list(display or [])
        if not isinstance(message, str) or not message.strip():
            gr.Warning("Type a message first: an empty message gets no reply.")
            yield before, conv, gr.skip()
            return
        user = {"role": "user", "content": message}
        try:
            replies = chat.stream(vid, message, conv, mode, temperature, top_p, max_new_tokens)
            yield before + [user, {"role": "assistant", "content": "…"}], conv, ""
            for reply in replies:
                text = reply.text or "…"
                if reply.done:
                    footer = f"*{stats_line(reply)}*"
                    if reply.notice:
                        footer = f"⚠ {reply.notice}  \n{footer}"
                        gr.Warning(reply.notice)
                    text = f"{reply.text}\n\n---\n{footer}"
                    conv = list(conv or []) + [user, {"role": "assistant", "content": reply.text}]
                yield before + [user, {"role": "assistant", "content": text}], conv, ("" if reply.done else gr.skip())
        except UserError as exc:
            gr.Warning(str(exc))
            shown = message if len(message) <= 2000 else message[:2000] + f" … ({len(message):,} characters)"
            yield before + [{"role": "user", "content": shown}, {"role": "assistant", "content": f"⚠ {exc}"}], \
                conv, gr.skip()

    def api_chat(variant: str, message: str, history: list[dict] = [], mode: str = "",  # noqa: B006 (read only)
                 temperature: float = 0.7, top_p: float = 0.9, max_new_tokens: int = 256) -> dict:
        """Stream a reply: dicts {"reply", "done", "notice", "stats"}; the last has done=True and the stats."""
        try:
            for reply in chat.stream(variant, message, history, mode or None, temperature, top_p, max_new_tokens):
                yield {"reply": reply.text, "done": reply.done, "notice": reply.notice, "stats": reply.stats}
        except UserError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    def api_variants() -> list[dict]:
        """The variants of this Space: id, label, status, modes and defaults."""
        keys = ("id", "label", "description", "status", "build_command", "modes", "examples", "temperature",
                "top_p", "max_new_tokens", "quant")
        return [{k: v.get(k) for k in keys} for v in manifest.variants.values()]

    with gr.Blocks(title="iris-recipes Space") as demo:
        gr.Markdown("# iris-recipes\nChat with the fine-tuned variants of the recipes. Runs on CPU with llama.cpp.")
        variant = gr.Dropdown(choices=_choices(manifest), value=first, label="Variant", interactive=True)
        info = gr.Markdown(describe(manifest, first))
        status = gr.Markdown("", elem_id="load-status")
        chatbot = gr.Chatbot(label="Chat", height=420, elem_id="chat")
        conv = gr.State([])
        with gr.Row():
            message = gr.Textbox(placeholder="Type a message and press Enter", show_label=False, scale=8,
                                 elem_id="message", max_lines=8)
            send = gr.Button("Send", variant="primary", scale=1)
            stop = gr.Button("Stop", scale=1)
            clear = gr.Button("Clear", scale=1)
        v0 = manifest.variants.get(first) or {}
        examples = gr.Dataset(components=[message], samples=[[e] for e in v0.get("examples") or []],
                              label="Examples", visible=bool(v0.get("examples")))
        with gr.Row():
            modes0 = list(v0.get("modes") or {})
            mode = gr.Radio(choices=modes0, value=modes0[0] if modes0 else None, label="Mode", visible=bool(modes0))
            temperature = gr.Slider(0, 2, value=v0.get("temperature", 0.7), step=0.05, label="Temperature")
            top_p = gr.Slider(0.05, 1, value=v0.get("top_p", 0.9), step=0.05, label="Top-p")
            max_new = gr.Slider(1, 4096, value=v0.get("max_new_tokens", 256), step=1, label="Max new tokens")

        variant.change(settings, variant, [info, mode, temperature, top_p, max_new, examples, chatbot, conv],
                       queue=False, api_visibility="private") \
            .then(load, variant, status, concurrency_limit=None, api_visibility="private")
        demo.load(load, variant, status, concurrency_limit=None, api_visibility="private")
        examples.click(lambda sample: sample[0], examples, message, queue=False, api_visibility="private")
        inputs = [message, chatbot, conv, variant, mode, temperature, top_p, max_new]
        events = [ev(respond, inputs, [chatbot, conv, message], concurrency_limit=CONCURRENCY,
                     concurrency_id="chat", api_visibility="private")
                  for ev in (message.submit, send.click)]
        stop.click(None, cancels=events, queue=False, api_visibility="private")
        clear.click(lambda: ([], []), None, [chatbot, conv], queue=False, api_visibility="private")
        gr.api(api_chat, api_name="chat", concurrency_limit=CONCURRENCY, concurrency_id="chat")
        gr.api(api_variants, api_name="variants", queue=False)

    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)
    demo.iris_manifest, demo.iris_pool = manifest, pool  # for tests and `iris-recipes space`
    return demo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the iris-recipes Space.")
    parser.add_argument("--manifest", help="variants.json (default: IRIS_SPACE_MANIFEST or variants.json here)")
    parser.add_argument("--host", default=None, help="address to listen on (default: GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: GRADIO_SERVER_PORT or 7860)")
    args = parser.parse_args(argv)
    build_app(args.manifest).launch(server_name=args.host, server_port=args.port, show_error=True)


if __name__ == "__main__":
    main()
