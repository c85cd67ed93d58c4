"""Generations and speed with llama.cpp (llama-cpp-python), for the fine-tuned model and its base alike.

Both models answer through the same engine, from F16 GGUFs, with the same prompt token ids (rendered by the
training tokenizer's chat template) and the same sampling settings, so a difference in their answers comes from
the weights, not from the engine. llama.cpp decodes several times faster than transformers' `generate` on a
2-core CPU, and the base model's F16 GGUF is converted once per base (seconds for small models) and cached.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
from collections.abc import Iterator
from pathlib import Path

from iris_recipes.errors import IrisError
from iris_recipes.export.hf_to_gguf import base_f16_gguf  # noqa: F401  (eval's base model, as eval names it)
from iris_recipes.hostinfo import cpu_count

SAMPLING = {"temperature": 0.7, "top_p": 0.9, "top_k": 40, "min_p": 0.05}  # the seeded sampled generations


class Generator:
    """One GGUF loaded once in llama.cpp, answering many token-id prompts together.

    Prompts run in `slots` parallel sequences of one llama.cpp context (continuous batching: a slot whose answer
    ended takes the next prompt), so each decode step reads the weights once for up to `slots` tokens. Every
    sequence has its own sampler chain, built like llama-cpp-python's `create_completion` builds it: greedy, or
    top-k/top-p/temperature with the sequence's seed. An answer ends at an end-of-generation token (it stopped on
    its own) or at its token limit.
    """

    def __init__(self, gguf: str | Path, *, n_ctx: int = 2048, threads: int | None = None, slots: int = 16):
        import llama_cpp as L

        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama.cpp's load chatter
        self.L = L
        self.path = Path(gguf)
        self.n_ctx, self.slots = -(-n_ctx // 256) * 256, slots  # llama.cpp sizes its cache in 256-token steps
        threads = threads or cpu_count()
        L.llama_backend_init()
        self.model = L.llama_model_load_from_file(str(self.path).encode(), L.llama_model_default_params())
        if not self.model:
            raise IrisError(f"{self.path}: llama.cpp could not load this GGUF")
        self.vocab = L.llama_model_get_vocab(self.model)
        params = L.llama_context_default_params()
        params.n_ctx = self.n_ctx * slots
        params.n_batch = self.n_ctx + slots  # any prompt (cut to n_ctx) fits beside one token of every other slot
        params.n_ubatch = min(512, params.n_batch)
        params.n_seq_max = slots
        # One KV buffer for all slots, sequences told apart by the attention mask: measured on SmolLM2-135M F16,
        # 2 cores, the demo's 112 eval generations: 146-152 tokens/s against 92 with a buffer per sequence
        # (llama.cpp then splits every decode step into equal per-sequence parts).
        params.kv_unified = True
        params.n_threads = params.n_threads_batch = threads
        # as llama-cpp-python's Llama (the Space, the export checks) runs it: flash attention off
        params.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.no_perf = True
        self.ctx = L.llama_init_from_model(self.model, params)
        if not self.ctx:
            L.llama_model_free(self.model)
            raise IrisError(f"{self.path}: llama.cpp could not create a context of {params.n_ctx} tokens")
        self.n_batch = params.n_batch
        self.batch = L.llama_batch_init(self.n_batch, 0, 1)

    def _sampler(self, seed: int | None):
        L = self.L
        chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        if seed is None:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
        else:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_k(SAMPLING["top_k"]))
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_p(SAMPLING["top_p"], 1))
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_min_p(SAMPLING["min_p"], 1))
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(SAMPLING["temperature"]))
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(seed))
        return chain

    def _text(self, tokens: list[int]) -> str:
        L = self.L
        arr = (L.llama_token * len(tokens))(*tokens)
        size = max(64, 8 * len(tokens))
        buf = ctypes.create_string_buffer(size)
        n = L.llama_detokenize(self.vocab, arr, len(tokens), buf, size, False, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = L.llama_detokenize(self.vocab, arr, len(tokens), buf, -n, False, False)
        return buf.raw[:n].decode("utf-8", errors="replace").strip()

    def _add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        b = self.batch
        i = b.n_tokens
        b.token[i], b.pos[i], b.n_seq_id[i] = token, pos, 1
        b.seq_id[i][0] = seq
        b.logits[i] = int(logits)
        b.n_tokens = i + 1
        return i

    def _decode(self) -> None:
        rc = self.L.llama_decode(self.ctx, self.batch)
        if rc != 0:
            raise IrisError(f"{self.path}: llama.cpp decode failed (code {rc})")
        self.batch.n_tokens = 0

    def batch_generate(
        self, prompts: list[list[int]], max_tokens: int | list[int], seeds: list[int | None] | None = None
    ) -> list:
        """One Reply per prompt, in order; `max_tokens` and `seeds` (None: greedy) for all or per prompt."""
        from iris_recipes.evaluate.forgetting import Reply

        L = self.L
        seeds = seeds if seeds is not None else [None] * len(prompts)
        limits = max_tokens if isinstance(max_tokens, list) else [max_tokens] * len(prompts)
        replies: list = [None] * len(prompts)
        queue = sorted(range(len(prompts)), key=lambda i: -limits[i])  # long answers first: fewer idle slots
        active: dict[int, dict] = {}  # slot -> {"i", "pos", "tokens", "budget", "sampler", "at"}
        free = list(range(self.slots))
        mem = L.llama_get_memory(self.ctx)
        try:
            while queue or active:
                # fill free slots with waiting prompts, as long as their prompt fits in this step's batch
                self.batch.n_tokens = 0
                for slot, st in active.items():
                    st["at"] = self._add(st["tokens"][-1], st["pos"], slot, True)
                    st["pos"] += 1
                while queue and free and self.batch.n_tokens + len(prompts[queue[0]]) <= self.n_batch:
                    i, slot = queue.pop(0), free.pop(0)
                    ids = prompts[i][-(self.n_ctx - 2) :] or [L.llama_vocab_bos(self.vocab)]
                    L.llama_memory_seq_rm(mem, slot, -1, -1)
                    for pos, tok in enumerate(ids):
                        at = self._add(tok, pos, slot, pos == len(ids) - 1)
                    active[slot] = {
                        "i": i,
                        "pos": len(ids),
                        "tokens": [],
                        "at": at,
                        "sampler": self._sampler(seeds[i]),
                        "budget": max(1, min(limits[i], self.n_ctx - len(ids) - 1)),
                    }
                self._decode()
                for slot in list(active):
                    st = active[slot]
                    tok = L.llama_sampler_sample(st["sampler"], self.ctx, st["at"])
                    stopped = L.llama_vocab_is_eog(self.vocab, tok)
                    if not stopped:
                        st["tokens"].append(tok)
                    if stopped or len(st["tokens"]) >= st["budget"]:
                        replies[st["i"]] = Reply(self._text(st["tokens"]), st["tokens"], bool(stopped))
                        L.llama_sampler_free(st["sampler"])
                        del active[slot]
                        free.append(slot)
        finally:
            for st in active.values():
                L.llama_sampler_free(st["sampler"])
        return replies

    def close(self) -> None:
        L = self.L
        if self.ctx:
            L.llama_batch_free(self.batch)
            L.llama_free(self.ctx)
            L.llama_model_free(self.model)
            self.ctx = self.model = None


@contextlib.contextmanager
def generator(gguf: str | Path, **kwargs) -> Iterator[Generator]:
    gen = Generator(gguf, **kwargs)
    try:
        yield gen
    finally:
        gen.close()
