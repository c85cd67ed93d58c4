"""Speed of one GGUF on this CPU, measured once per exported file by the export's checks: decode tokens/s, time to
first token and latency of a fixed chat prompt. The eval stage, `compare` and the model card read it back from
run.json instead of measuring the same file again."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from iris_recipes.hostinfo import cpu_count

BENCH_PROMPT = "Explain in a few sentences why the sky is blue, then give one everyday example."


def bench_prompt_ids(tok) -> list[int]:
    """BENCH_PROMPT as a user turn, rendered by the training tokenizer's chat template, as token ids."""
    text = tok.apply_chat_template(
        [{"role": "user", "content": BENCH_PROMPT}], tokenize=False, add_generation_prompt=True
    )
    return tok(text, add_special_tokens=False)["input_ids"]


def _rss_bytes() -> int:
    """This process's resident memory (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def benchmark(
    gguf: str | Path,
    prompt_ids: list[int],
    banned: list[int],
    *,
    new_tokens: int = 64,
    repeats: int = 3,
    threads: int | None = None,
) -> dict:
    """Latency, time to first token and decode tokens/s of one GGUF on this CPU (median of `repeats`).

    End-of-turn and other special tokens are banned so every repeat decodes exactly `new_tokens` tokens; the KV
    cache is reset before each repeat so the prompt is processed every time, as for a new chat.
    """
    from llama_cpp import Llama

    threads = threads or cpu_count()
    rss_before = _rss_bytes()
    t0 = time.perf_counter()
    llm = Llama(
        model_path=str(gguf),
        n_ctx=len(prompt_ids) + new_tokens + 8,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    load_s = time.perf_counter() - t0
    bias = {int(t): -1e9 for t in banned}
    ttfts, latencies, speeds = [], [], []
    try:
        for _ in range(repeats):
            llm.reset()
            n, first = 0, None
            start = time.perf_counter()
            for _chunk in llm.create_completion(
                prompt_ids, max_tokens=new_tokens, temperature=0.0, logit_bias=bias, stream=True
            ):
                n += 1
                if first is None:
                    first = time.perf_counter()
            end = time.perf_counter()
            ttfts.append(first - start if first else end - start)
            latencies.append(end - start)
            if first and n > 1:
                speeds.append((n - 1) / max(end - first, 1e-9))
        resident = _rss_bytes() - rss_before  # the weights read by a decode (mapped pages) and the context
    finally:
        llm.close()
    return {
        "decode_tok_s": round(statistics.median(speeds), 2) if speeds else None,
        "ttft_s": round(statistics.median(ttfts), 4),
        "latency_s": round(statistics.median(latencies), 4),
        "new_tokens": new_tokens,
        "prompt_tokens": len(prompt_ids),
        "load_s": round(load_s, 3),
        "resident_mb": round(resident / 2**20, 1) if resident > 0 else None,
        "threads": threads,
        "repeats": repeats,
        # other work on the CPU slows llama.cpp's threads a lot: the load says how far to trust the figures
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
