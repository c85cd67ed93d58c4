"""Loaded models, at most `MAX_MODELS` of them, and the saved KV states of the conversations they serve."""

from __future__ import annotations

import contextlib
import ctypes
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import settings
from .manifest import Busy, Manifest, ModelError, UserError, check_gguf, gguf_file
from .prompt import fold_system, markers_of, neutralize

# A state shorter than this is cheaper to recompute than to keep.
MIN_STATE_TOKENS = 16


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if len(diff) else n


@dataclass
class SavedState:
    key: str  # the model's
    tokens: np.ndarray  # what the KV state holds
    data: Any  # llama.cpp's bytes of the sequence (a ctypes array)
    size: int


class StateCache:
    """KV states of conversations that left a model's context, least recently used dropped first, at most
    `capacity_bytes` in all. Found by token prefix: a returning conversation's prompt starts with its saved state,
    so no conversation id is needed (the API is stateless)."""

    def __init__(self, capacity_bytes: int):
        self.capacity = capacity_bytes
        self._entries: OrderedDict[int, SavedState] = OrderedDict()
        self._lock = threading.Lock()
        self._next = 0
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, state: SavedState) -> bool:
        with self._lock:
            for eid, e in list(self._entries.items()):  # states this one extends are of no further use
                if (
                    e.key == state.key
                    and len(e.tokens) <= len(state.tokens)
                    and common_prefix(e.tokens, state.tokens) == len(e.tokens)
                ):
                    self._drop(eid)
            if state.size > self.capacity:
                return False
            while self.bytes + state.size > self.capacity:
                self._drop(next(iter(self._entries)))
            self._entries[self._next] = state
            self._next += 1
            self.bytes += state.size
            return True

    def take(self, key: str, tokens: np.ndarray) -> tuple[SavedState | None, int]:
        """Remove and return the state of `key` sharing the longest prefix with `tokens`, and that prefix's length."""
        with self._lock:
            best, best_n = None, 0
            for eid, e in self._entries.items():
                if e.key == key:
                    n = common_prefix(e.tokens, tokens)
                    if n > best_n:
                        best, best_n = eid, n
            if best is None:
                return None, 0
            state = self._entries[best]
            self._drop(best)
            return state, best_n

    def drop_model(self, key: str) -> None:
        with self._lock:
            for eid in [eid for eid, e in self._entries.items() if e.key == key]:
                self._drop(eid)

    def _drop(self, eid: int) -> None:
        self.bytes -= self._entries.pop(eid).size


def llama_thread(name: str) -> ThreadPoolExecutor:
    """The one thread that runs a model's llama.cpp work. ggml's OpenMP keeps a team of spinning worker threads per
    calling thread: a second calling thread (say, one per request) makes two teams fight over the cores, and decoding
    on 2 cores drops to a third of its speed. One long-lived thread per model keeps a single team."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{name[:24]}")


class Model:
    """One loaded GGUF with its own llama.cpp context; all its llama.cpp work runs on `thread`, one task at a time
    (llama.cpp is not thread-safe, and one calling thread keeps one OpenMP team)."""

    def __init__(
        self, key: str, variant: dict[str, Any], path: Path, llm, thread: ThreadPoolExecutor, states: StateCache | None
    ):
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.key, self.variant, self.path, self.llm, self.thread, self.states = key, variant, path, llm, thread, states
        self.users = 0
        self.closed = False
        self.n_ctx = llm.n_ctx()
        self.unsaved = False  # the context holds a conversation whose state is not in `states`
        self.vocab = llm._model.vocab
        self.is_eog = llama_cpp.llama_vocab_is_eog
        self._pieces: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)
        eos, bos = llm.token_eos(), llm.token_bos()
        template = llm.metadata.get("tokenizer.chat_template") or (variant.get("chat") or {}).get("template")
        if not template:
            raise ModelError(
                f"{variant.get('label') or variant['id']}: {path.name} carries no chat template. Export it again "
                "with `iris-recipes export RUN`."
            )
        self._formatter = Jinja2ChatFormatter(
            template,
            eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
            bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
        )
        # The model's own control tokens (reserved ones too), removed from every text that enters its prompt.
        import re

        self._control_ids = frozenset(
            t for t in range(llm.n_vocab()) if llm._model.token_get_attr(t) & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
        )
        control = sorted({llm._model.token_get_text(t) for t in self._control_ids} - {""}, key=len, reverse=True)
        self._control_re = re.compile("|".join(re.escape(c) for c in control)) if control else None
        # Texts that end a reply when the model spells them out: its family's markers (from the manifest), else its
        # own control tokens.
        self.stop_texts = markers_of(variant) or tuple(control)
        # Template tokens a message costs besides its content (measured once; used to trim long conversations).
        one = self.prompt_tokens([{"role": "user", "content": "a"}])
        two = self.prompt_tokens(
            [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "a"}]
        )
        self.overhead = max(1, (len(two) - len(one) - self.count("b") - self.count("a")) // 2 + 1)

    # -- prompts (call on the model's thread) --
    def neutralize(self, text: str) -> str:
        text = neutralize(text)
        return neutralize(text, self._control_re) if self._control_re else text

    def prompt_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        """Token ids of the prompt the chat template makes of `messages`, ending with the assistant's header."""
        messages = [{"role": m["role"], "content": self.neutralize(m["content"])} for m in messages]
        messages = fold_system(self.variant, messages)
        result = self._formatter(messages=messages)
        return self.llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)

    def piece(self, token: int) -> bytes:
        """The bytes a generated token stands for (special tokens as nothing), cached per token."""
        piece = self._pieces.get(token)
        if piece is None:
            import llama_cpp

            n = llama_cpp.llama_token_to_piece(self.vocab, token, self._piece_buf, 256, 0, False)
            piece = self._pieces[token] = self._piece_buf.raw[: max(0, n)]
        return piece

    def count(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else 0

    # -- KV states --
    def switch_to(self, tokens: list[int], limit: int) -> tuple[list[int], int]:
        """Before a reply to `tokens`: keep the conversation the context holds if `tokens` is another one, and bring
        back the saved state that shares the longest prefix with `tokens`. Returns the prompt to generate from (see
        `_align`; at most `limit` tokens) and how many of its tokens llama.cpp does not need to read again."""
        llm = self.llm
        want = np.asarray(tokens, dtype=np.intc)
        held = llm.input_ids[: llm.n_tokens]
        use, reuse = self._align(want, held, limit)
        if self.states is None:
            return use.tolist(), reuse
        if reuse < len(held) and self.unsaved and len(held) >= MIN_STATE_TOKENS:
            self._save()
        state, n = self.states.take(self.key, want)
        if state is not None and n > reuse:
            if self._restore(state):
                use, reuse = self._align(want, state.tokens, limit)
            else:
                use, reuse = want, 0
        elif state is not None:  # not better than what the context holds: put it back
            self.states.put(state)
        return use.tolist(), reuse

    def _align(self, want: np.ndarray, held: np.ndarray, limit: int) -> tuple[np.ndarray, int]:
        """The prompt `want` with the tokens of `held` (what a KV state holds) wherever both spell the same text, and
        how many of them it reuses. A reply the model generated is often other tokens than its text tokenizes into
        when it comes back in the history (a number in digits, a word in pieces; random text nearly always): matched
        by token alone, every returning turn would read its last reply again. Control tokens match by id only, so
        a marker spelled out in text is never taken for one."""
        n = common_prefix(held, want)
        i = j = n
        a, b = bytearray(), bytearray()  # the text of want[n:i] and of held[n:j]
        best = n, n
        while True:
            if len(a) == len(b):  # the two texts are equal and both end on a token boundary
                best = i, j
                if i == len(want) or j == len(held):
                    break
                if want[i] in self._control_ids or held[j] in self._control_ids:
                    if want[i] != held[j]:
                        break
                    i, j = i + 1, j + 1
                    continue
                a += self.piece(int(want[i]))
                b += self.piece(int(held[j]))
                i, j = i + 1, j + 1
            elif len(a) < len(b):
                if i == len(want) or want[i] in self._control_ids:
                    break
                a += self.piece(int(want[i]))
                i += 1
            else:
                if j == len(held) or held[j] in self._control_ids:
                    break
                b += self.piece(int(held[j]))
                j += 1
            m = min(len(a), len(b))
            if a[:m] != b[:m]:
                break
        i, j = best
        if j == n:
            return want, n
        use = np.concatenate([held[:j], want[i:]])
        return (use, j) if len(use) <= limit else (want, n)

    def _save(self) -> None:
        import llama_cpp

        llm = self.llm
        size = llama_cpp.llama_state_seq_get_size(llm.ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(llm.ctx, buf, size, 0)
        if written:
            self.states.put(SavedState(self.key, llm.input_ids[: llm.n_tokens].copy(), buf, written))
        self.unsaved = False

    def _restore(self, state: SavedState) -> bool:
        import llama_cpp

        llm = self.llm
        # Empty the whole cache first (the conversation it held is saved or not worth keeping): the restored cells
        # then start at cell 0, and a later prompt attends over them alone. Measured on the demo model, 2
        # conversations taking turns: turn 5 took 1.0-1.1 s without this, 0.84-0.96 s with it (turn 1: 0.7 s).
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm.ctx), True)
        if not llama_cpp.llama_state_seq_set_data(llm.ctx, state.data, state.size, 0):
            llm.reset()
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            return False
        n = len(state.tokens)
        llm.input_ids[:n] = state.tokens
        llm.n_tokens = n
        llm._requires_eval = True  # the logits are not the restored state's
        self.unsaved = True
        return True

    def close(self) -> Future:
        """Free the model's memory now rather than whenever the garbage collector gets to it (on its own thread,
        after a reply that is still stopping); the future ends when it is freed."""
        self.closed = True
        if self.states is not None:
            self.states.drop_model(self.key)
        future = self.thread.submit(self.llm.close)
        self.thread.shutdown(wait=False)
        return future


class ModelPool:
    """Loaded models, at most `capacity` in memory at any moment (loaded, loading or still being freed).

    A request holds its models for the whole reply; a load that needs a slot takes the least recently used model
    that nobody is using, or waits up to `wait_s` for one (then a clear message). A model in use is never pushed out.
    """

    def __init__(
        self,
        manifest: Manifest,
        capacity: int | None = None,
        wait_s: float | None = None,
        kv_cache_mb: int | None = None,
    ):
        self.manifest = manifest
        self.capacity = capacity if capacity is not None else settings.MAX_MODELS
        self.wait_s = wait_s if wait_s is not None else settings.LOAD_WAIT_S
        mb = settings.KV_CACHE_MB if kv_cache_mb is None else kv_cache_mb
        self.states = StateCache(mb << 20) if mb > 0 else None
        self._models: dict[str, Model] = {}  # least recently used first
        self._loading: set[str] = set()
        self._freeing = 0  # evicted models whose memory is not freed yet
        self._cond = threading.Condition()
        self.live = 0  # llama.cpp models in memory now
        self.peak = 0  # the most there ever were at once

    def loaded(self) -> list[str]:
        with self._cond:
            return list(self._models)

    def get(self, key: str) -> Model | None:
        with self._cond:
            return self._models.get(key)

    def _acquire(self, keys: list[str]) -> tuple[list[str], list[Future]]:
        """Under the lock: take the loaded ones among `keys` (users + 1) and reserve slots for the others, all or
        nothing, pushing out idle models to make room. Returns the keys this caller must load and the frees it must
        wait for first. Waits while that is impossible."""
        deadline = time.monotonic() + self.wait_s
        while True:
            if not any(k in self._loading for k in keys):
                missing = [k for k in keys if k not in self._models]
                free = self.capacity - len(self._models) - len(self._loading) - self._freeing
                idle = [k for k, m in self._models.items() if m.users == 0 and k not in keys]
                if free >= 0 and len(missing) <= free + len(idle):
                    freeing = [self._evict(k) for k in idle[: max(0, len(missing) - free)]]
                    for k in keys:
                        if k in self._models:
                            model = self._models.pop(k)
                            model.users += 1
                            self._models[k] = model  # most recently used
                    self._loading.update(missing)
                    return missing, freeing
            left = deadline - time.monotonic()
            if left <= 0:
                busy = ", ".join(m.variant.get("label") or k for k, m in self._models.items()) or "loading"
                raise Busy(
                    f"This Space keeps at most {self.capacity} model{'s' if self.capacity > 1 else ''} "
                    f"in memory, and all are answering other visitors now ({busy}). Try again in a "
                    "minute."
                )
            self._cond.wait(left)

    def _evict(self, key: str) -> Future:
        model = self._models.pop(key)
        self._freeing += 1

        def freed(_):
            with self._cond:
                self._freeing -= 1
                self.live -= 1
                self._cond.notify_all()

        future = model.close()
        future.add_done_callback(freed)
        return future

    def _load(self, key: str, variant: dict[str, Any], progress=None) -> Model:
        path = gguf_file(self.manifest, variant, progress)
        check_gguf(path, variant)
        if progress:
            progress(0.5, desc=f"Loading {path.name} ({path.stat().st_size / 1e6:,.0f} MB)")
        from llama_cpp import Llama

        thread = llama_thread(key)
        try:
            llm = thread.submit(
                Llama,
                model_path=str(path),
                n_ctx=settings.N_CTX,
                n_threads=settings.THREADS,
                n_threads_batch=settings.THREADS,
                verbose=False,
            ).result()
        except Exception as exc:
            thread.shutdown(wait=False)
            raise ModelError(
                f"{variant.get('label') or key}: llama.cpp could not load {path.name} "
                f"({str(exc).splitlines()[0][:200]}). Export it again with "
                "`iris-recipes export RUN`."
            ) from exc
        with self._cond:
            self.live += 1
            self.peak = max(self.peak, self.live)
        try:
            return thread.submit(Model, key, variant, path, llm, thread, self.states).result()
        except Exception:
            thread.submit(llm.close)
            thread.shutdown(wait=False)
            with self._cond:
                self.live -= 1
            raise

    @contextlib.contextmanager
    def use(self, *specs: tuple[str, dict[str, Any]], progress=None) -> Iterator[list[Model]]:
        """The models of `specs` ((key, variant) pairs), loaded if needed, held (never pushed out) while the block
        runs."""
        keys = list(dict.fromkeys(k for k, _ in specs))
        if len(keys) > self.capacity:
            raise UserError(
                f"This needs {len(keys)} models in memory at once; this Space keeps at most "
                f"{self.capacity} (IRIS_SPACE_MAX_MODELS)."
            )
        with self._cond:
            missing, freeing = self._acquire(keys)
        held = [k for k in keys if k not in missing]
        try:
            for future in freeing:  # memory first: a model pushed out for this load is freed before it starts
                future.result()
            for key, variant in specs:
                if key in missing and key not in held:
                    model = self._load(key, variant, progress)
                    with self._cond:
                        model.users += 1
                        self._models[key] = model
                        self._loading.discard(key)
                        held.append(key)
                        self._cond.notify_all()
            with self._cond:
                models = [self._models[k] for k, _ in specs]
            yield models
        finally:
            with self._cond:
                self._loading.difference_update(k for k in missing if k not in held)
                for k in held:
                    if k in self._models:
                        self._models[k].users -= 1
                self._cond.notify_all()

    def preload(self, key: str, variant: dict[str, Any], progress=None) -> tuple[Model, bool]:
        """Load a variant ahead of its first message (it then waits, unused, like any other); (model, loaded now)."""
        was = key in self.loaded()
        with self.use((key, variant), progress=progress) as (model,):
            return model, not was
