"""The OpenAI-compatible API's speed: decode versus llama-cpp-python called directly, and conversations taking turns.

    .venv/bin/python benchmarks/bench_api.py [--models demo,1b] [--threads 2] [--runs 5] [--max-tokens 128]
                                             [--turns 5] [--conversations 2,4] [--reply-tokens 48] [--quick]

Models as in bench_space.py: `demo` is SmolLM2-135M-Instruct (Q4_1), `1b` a random-weight GGUF of Llama-3.2-1B's
shapes (Q4_K_M, built once and cached).

Decode: `space/app.py --no-ui` (what `iris-recipes serve` runs) serves the GGUF in its own process and is asked
through `POST /v1/chat/completions` with `stream: true`, read with httpx (a light client: the benchmark's client
shares the cores the server decodes on); llama-cpp-python's own `create_chat_completion` (streaming) answers the same
messages in a process of its own and times itself. Runs alternate between the sides (and which goes first). Decode
speed is (tokens - 1) / (last text - first text) where the caller sees the text, tokens counted the same way on
both sides (the reply tokenized again); time to first token (TTFT) counts from the request.

Conversations taking turns: 2 and 4 conversations send ~150-token user turns in rotation to one served model through
the API (the whole conversation in every request, as OpenAI clients do), 48-token greedy replies; TTFT per turn,
median over the conversations, and the prompt tokens read again (usage: prompt_tokens - cached_tokens). Prints
Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_space import PROMPT, SYSTEM, Direct, bench_manifest, llama_1b_shaped_gguf, user_turn  # noqa: E402
from common import REPO, table  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))
from conftest_space import free_port, smol_gguf, wait_for_port  # noqa: E402


class ApiServer:
    """`space/app.py --no-ui` serving one GGUF (variant "bench") in a process of its own."""

    def __init__(self, gguf: Path, threads: int, work: Path, kv_cache_mb: int | None = None):
        manifest = bench_manifest(work / "variants.json", gguf)
        port = free_port()
        env = {**os.environ, "IRIS_SPACE_THREADS": str(threads)}
        if kv_cache_mb is not None:
            env["IRIS_SPACE_KV_CACHE_MB"] = str(kv_cache_mb)
        self.log = open(work / f"api-{port}.log", "w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "space" / "app.py"),
                "--no-ui",
                "--manifest",
                str(manifest),
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        wait_for_port(port, proc=self.proc)
        import httpx

        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}/v1", timeout=600)

    def ask(self, messages: list[dict], max_tokens: int) -> dict:
        """One streamed completion: its text, usage, TTFT and decode times at the client."""
        body = {
            "model": "bench",
            "messages": messages,
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        t0 = time.perf_counter()
        first = last = None
        text, usage = "", None
        with self.http.stream("POST", "/chat/completions", json=body) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    raise RuntimeError(chunk["error"]["message"])
                piece = chunk["choices"][0]["delta"].get("content") if chunk["choices"] else None
                if piece:
                    last = time.perf_counter()
                    first = first or last
                    text += piece
                usage = chunk.get("usage") or usage
        return {"text": text, "usage": usage, "t0": t0, "first": first or time.perf_counter(), "last": last}

    def close(self) -> None:
        self.http.close()
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def decode_table(gguf: Path, threads: int, runs: int, max_tokens: int) -> None:
    from llama_cpp import Llama

    vocab = Llama(model_path=str(gguf), vocab_only=True, verbose=False)

    def count(text: str) -> int:  # as bench_space's direct side counts
        return len(vocab.tokenize(text.encode(), add_bos=False, special=False))

    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    direct, api = Direct(gguf, threads), None
    rows: dict[str, list[dict]] = {"direct": [], "api": []}
    try:
        api = ApiServer(gguf, threads, work)

        def api_run(user: str) -> dict:
            r = api.ask([{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}], max_tokens)
            n = count(r["text"])
            return {
                "tokens": n,
                "server_tokens": r["usage"]["completion_tokens"],
                "ttft": r["first"] - r["t0"],
                "tok_s": (n - 1) / (r["last"] - r["first"]) if r["last"] and r["last"] > r["first"] else float("nan"),
            }

        sides = {"direct": lambda u: direct.run(u, max_tokens), "api": api_run}
        for run in sides.values():  # warm-up: loads the model, touches the weights
            run("Hello")
        names = list(sides)
        for i in range(runs):
            user = PROMPT.format(i=i)
            for k in names[i % 2 :] + names[: i % 2]:
                rows[k].append(sides[k](user))
    finally:
        direct.close()
        if api:
            api.close()

    def rng(rs, k, f):
        vals = [r[k] for r in rs]
        return f"{statistics.median(vals):{f}} ({min(vals):{f}}–{max(vals):{f}})"

    pairs = list(zip(rows["api"], rows["direct"]))
    ratio = statistics.median(a["tok_s"] / d["tok_s"] for a, d in pairs)
    added = statistics.median(a["ttft"] - d["ttft"] for a, d in pairs) * 1000
    print(
        f"### Decode: the /v1 API vs llama-cpp-python direct, `{gguf.name}`\n\n{gguf.stat().st_size / 1e6:,.0f} MB, "
        f"{threads} threads, greedy, up to {max_tokens} new tokens, {runs} rotating runs; median (min–max).\n"
    )
    print(
        table(
            ["path", "decode tok/s", "TTFT s", "tokens", "decode / direct (median of run pairs)", "TTFT added"],
            [
                [
                    "llama-cpp-python direct (`create_chat_completion`, streaming)",
                    rng(rows["direct"], "tok_s", ".1f"),
                    rng(rows["direct"], "ttft", ".3f"),
                    rng(rows["direct"], "tokens", ".0f"),
                    "—",
                    "—",
                ],
                [
                    "`POST /v1/chat/completions` (`app.py --no-ui`, streaming, httpx)",
                    rng(rows["api"], "tok_s", ".1f"),
                    rng(rows["api"], "ttft", ".3f"),
                    rng(rows["api"], "tokens", ".0f"),
                    f"{ratio:.1%}",
                    f"{added:+.0f} ms",
                ],
            ],
        )
    )
    same = sum(r["tokens"] == r["server_tokens"] for r in rows["api"])
    print(
        f"\nTokens: the reply text tokenized again, the same for both paths (the API's own usage.completion_tokens "
        f"agreed in {same} of {len(rows['api'])} runs; random weights' text can re-tokenize into fewer tokens). "
        "Goal: decode >= 95% of direct, TTFT added <= 50 ms.\n"
    )


def kv_table(gguf: Path, threads: int, turns: int, counts: list[int], reply_tokens: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-api-kv-"))
    rows = []
    for n in counts:
        api = ApiServer(gguf, threads, work)
        try:
            api.ask([{"role": "user", "content": "Hello"}], 4)  # warm-up: loads the model
            convs: list[list[dict]] = [[{"role": "system", "content": SYSTEM}] for _ in range(n)]
            ttft: list[list[float]] = [[] for _ in range(turns)]
            read: list[list[int]] = [[] for _ in range(turns)]
            prompt: list[list[int]] = [[] for _ in range(turns)]
            for turn in range(turns):
                for c in range(n):
                    convs[c].append({"role": "user", "content": user_turn(c, turn)})
                    r = api.ask(convs[c], reply_tokens)
                    convs[c].append({"role": "assistant", "content": r["text"]})
                    ttft[turn].append(r["first"] - r["t0"])
                    u = r["usage"]
                    prompt[turn].append(u["prompt_tokens"])
                    read[turn].append(u["prompt_tokens"] - u["prompt_tokens_details"]["cached_tokens"])
        finally:
            api.close()
        med = [statistics.median(t) for t in ttft]
        rows.append(
            [
                n,
                *(f"{t:.2f}" for t in med),
                f"{med[-1] / med[0]:.2f}x",
                f"{statistics.median(prompt[-1]):.0f}",
                f"{statistics.median(read[0]):.0f} / {statistics.median(read[-1]):.0f}",
            ]
        )
    print(
        f"### Conversations taking turns through the API, `{gguf.name}`\n\n{threads} threads; each conversation sends "
        f"~150-token turns in rotation with its whole history, {reply_tokens}-token greedy replies; time to first "
        "token (s) at the client, median over the conversations.\n"
    )
    print(
        table(
            [
                "conversations",
                *(f"turn {t + 1}" for t in range(turns)),
                f"turn {turns} / turn 1",
                f"prompt tokens, turn {turns}",
                f"tokens read, turn 1 / turn {turns}",
            ],
            rows,
        )
    )
    print(
        "\nTokens read: usage.prompt_tokens - usage.prompt_tokens_details.cached_tokens, the part of the prompt "
        "llama.cpp read again. Goal: turn 5 / turn 1 <= 1.5x.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="demo,1b", help="comma-separated: demo, 1b, or GGUF paths")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--conversations", default="2,4")
    parser.add_argument("--reply-tokens", type=int, default=48)
    parser.add_argument("--no-kv", action="store_true", help="skip the conversations table")
    parser.add_argument("--no-decode", action="store_true", help="skip the decode table")
    parser.add_argument("--quick", action="store_true", help="demo model only, 3 runs, 3 turns")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.turns, args.models = min(args.runs, 3), min(args.turns, 3), "demo"
    print("## The OpenAI-compatible API: decode vs llama-cpp-python, and conversations taking turns\n")
    for name in args.models.split(","):
        gguf = (
            smol_gguf().resolve()
            if name == "demo"
            else llama_1b_shaped_gguf()
            if name == "1b"
            else Path(name).resolve()
        )
        if not args.no_decode:
            decode_table(gguf, args.threads, args.runs, args.max_tokens)
        if not args.no_kv:
            kv_table(gguf, args.threads, args.turns, [int(n) for n in args.conversations.split(",")], args.reply_tokens)


if __name__ == "__main__":
    main()
