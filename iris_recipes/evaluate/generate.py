"""Generations and speed with llama.cpp (llama-cpp-python), for the fine-tuned model and its base alike.

Both models answer through the same engine, from F16 GGUFs, with the same prompt token ids (rendered by the
training tokenizer's chat template) and the same sampling settings, so a difference in their answers comes from
the weights, not from the engine. llama.cpp decodes several times faster than transformers' `generate` on a
2-core CPU, and the base model's F16 GGUF is converted once per base (seconds for small models) and cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import statistics
import time
from pathlib import Path
from typing import Iterator

from iris_recipes.hostinfo import cpu_count
from iris_recipes.paths import cache_dir

SAMPLING = {"temperature": 0.7, "top_p": 0.9, "top_k": 40}  # the seeded sampled generations
BENCH_PROMPT = "Explain in a few sentences why the sky is blue, then give one everyday example."


def _model_key(model_dir: Path) -> str:
    """Content hash of a Hugging Face model directory (weights, config, tokenizer)."""
    from iris_recipes.fsutil import sha256_file

    h = hashlib.sha256()
    for p in sorted(model_dir.iterdir()):
        if p.is_file() and (p.suffix in (".safetensors", ".bin", ".json", ".model") or p.name == "tokenizer.json"):
            h.update(p.name.encode())
            h.update(sha256_file(p).encode())
    return h.hexdigest()[:16]


def base_f16_gguf(model_dir: str | Path, name: str | None = None) -> Path:
    """The base model as an F16 GGUF, converted by llama.cpp's converter once and cached by content and `name`
    (its `general.name`, e.g. the hub model's name: llama.cpp reads tokenizer rules from it)."""
    from iris_recipes.export.convert import convert_f16

    model_dir = Path(model_dir)
    key = _model_key(model_dir) + (hashlib.sha256(name.encode()).hexdigest()[:8] if name else "")
    dest = cache_dir() / "eval-base" / f"{model_dir.name}-{key}" / "base-f16.gguf"
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        convert_f16(model_dir, dest, log=dest.parent / "convert.log", model_name=name)
    return dest


class Generator:
    """One GGUF loaded in llama.cpp, answering token-id prompts."""

    def __init__(self, gguf: str | Path, *, n_ctx: int = 2048, threads: int | None = None):
        from llama_cpp import Llama

        self.path = Path(gguf)
        threads = threads or cpu_count()
        self.llm = Llama(model_path=str(self.path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                         verbose=False)

    def __call__(self, prompt_ids: list[int], max_tokens: int, seed: int | None = None) -> str:
        sampling = {"temperature": 0.0} if seed is None else {**SAMPLING, "seed": seed}
        budget = max(1, min(max_tokens, self.llm.n_ctx() - len(prompt_ids) - 1))
        out = self.llm.create_completion(prompt_ids, max_tokens=budget, **sampling)
        return out["choices"][0]["text"].strip()

    def close(self) -> None:
        self.llm.close()


@contextlib.contextmanager
def generator(gguf: str | Path, **kwargs) -> Iterator[Generator]:
    gen = Generator(gguf, **kwargs)
    try:
        yield gen
    finally:
        gen.close()


def benchmark(gguf: str | Path, prompt_ids: list[int], banned: list[int], *, new_tokens: int = 64,
              repeats: int = 3, threads: int | None = None) -> dict:
    """Latency, time to first token and decode tokens/s of one GGUF on this CPU (median of `repeats`).

    End-of-turn and other special tokens are banned so every repeat decodes exactly `new_tokens` tokens; the KV
    cache is reset before each repeat so the prompt is processed every time, as for a new chat.
    """
    from llama_cpp import Llama

    threads = threads or cpu_count()
    t0 = time.perf_counter()
    llm = Llama(model_path=str(gguf), n_ctx=len(prompt_ids) + new_tokens + 8, n_threads=threads,
                n_threads_batch=threads, verbose=False)
    load_s = time.perf_counter() - t0
    bias = {int(t): -1e9 for t in banned}
    ttfts, latencies, speeds = [], [], []
    try:
        for _ in range(repeats):
            llm.reset()
            n, first = 0, None
            start = time.perf_counter()
            for _chunk in llm.create_completion(prompt_ids, max_tokens=new_tokens, temperature=0.0,
                                                logit_bias=bias, stream=True):
                n += 1
                if first is None:
                    first = time.perf_counter()
            end = time.perf_counter()
            ttfts.append(first - start if first else end - start)
            latencies.append(end - start)
            if first and n > 1:
                speeds.append((n - 1) / max(end - first, 1e-9))
    finally:
        llm.close()
    return {"decode_tok_s": round(statistics.median(speeds), 2) if speeds else None,
            "ttft_s": round(statistics.median(ttfts), 4), "latency_s": round(statistics.median(latencies), 4),
            "new_tokens": new_tokens, "prompt_tokens": len(prompt_ids), "load_s": round(load_s, 3),
            "threads": threads, "repeats": repeats,
            # other work on the CPU slows llama.cpp's threads a lot: the load says how far to trust the figures
            "load_avg_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
