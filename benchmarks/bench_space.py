"""Chat speed through the Space versus llama-cpp-python called directly: same GGUF, prompt, threads and settings.

    .venv/bin/python benchmarks/bench_space.py [--gguf FILE] [--threads 2] [--runs 5] [--max-tokens 128]

The app runs in its own process (as when served), reached with gradio_client over HTTP with streaming; the direct
side loads the same GGUF in a process of its own and times itself (no IPC counted). Runs alternate between the two (and which goes first) so machine load drifts hit both alike.
Decode speed is (tokens - 1) / (last token time - first token time), time to first token (TTFT) counts from the
request; both are measured where the caller sees the text. Prints Markdown.
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
from common import REPO, table  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))
from conftest_space import free_port, load_app, smol_gguf, wait_for_port  # noqa: E402

SYSTEM = "You are a helpful assistant."
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle. (take {i})"


def direct_run(llm, app, messages, max_tokens) -> dict:
    """One streamed reply from llama-cpp-python itself, with the app's sampling settings and stop strings."""
    t0 = time.perf_counter()
    first = last = None
    text = ""
    for chunk in llm.create_chat_completion(messages=messages, stream=True, temperature=0.0, top_p=0.9,
                                            max_tokens=max_tokens, stop=list(app.TEMPLATE_MARKERS)):
        piece = chunk["choices"][0]["delta"].get("content") or ""
        if piece:
            last = time.perf_counter()
            first = first or last
            text += piece
    n = len(llm.tokenize(text.encode(), add_bos=False, special=False))
    return {"tokens": n, "ttft": first - t0, "tok_s": (n - 1) / (last - first)}


def direct_worker(gguf: str, threads: int) -> None:
    """`--direct-worker`: llama-cpp-python in a process of its own (like the app's); JSON requests on stdin."""
    from llama_cpp import Llama

    app = load_app()
    llm = Llama(model_path=gguf, n_ctx=app.N_CTX, n_threads=threads, n_threads_batch=threads, verbose=False)
    for line in sys.stdin:
        req = json.loads(line)
        print(json.dumps(direct_run(llm, app, req["messages"], req["max_tokens"])), flush=True)


class Direct:
    def __init__(self, gguf: Path, threads: int):
        self.proc = subprocess.Popen([sys.executable, __file__, "--direct-worker", str(gguf), "--threads",
                                      str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, user: str, max_tokens: int) -> dict:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
        self.proc.stdin.write(json.dumps({"messages": messages, "max_tokens": max_tokens}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(30)


def app_run(client, variant, user, max_tokens) -> dict:
    """One streamed reply through the Space's /chat endpoint, timed at the client."""
    t0 = time.perf_counter()
    first = last = None
    final = None
    job = client.submit(variant, user, [], "", 0.0, 0.9, max_tokens, api_name="/chat")
    for update in job:
        if update["reply"] and first is None:
            first = time.perf_counter()
        if update["done"]:
            last = time.perf_counter()
            final = update
    n = final["stats"]["tokens"]
    return {"tokens": n, "ttft": first - t0, "tok_s": (n - 1) / (last - first),
            "server_tok_s": final["stats"]["tokens_per_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, default=None, help="GGUF to serve (default: SmolLM2-135M Q4_1)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="3 runs of each (for run_all.py --quick)")
    parser.add_argument("--direct-worker", metavar="GGUF", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.runs = min(args.runs, 3)
    if args.direct_worker:
        return direct_worker(args.direct_worker, args.threads)
    gguf = (args.gguf or smol_gguf()).resolve()

    work = Path(tempfile.mkdtemp(prefix="bench-space-"))
    manifest = work / "variants.json"
    manifest.write_text(json.dumps({"format": 1, "variants": [{
        "id": "bench", "label": "bench", "status": "built", "system_prompt": SYSTEM, "modes": {},
        "gguf": {"path": str(gguf), "filename": gguf.name}}]}))
    port = free_port()
    env = {**os.environ, "IRIS_SPACE_THREADS": str(args.threads), "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen([sys.executable, str(REPO / "space" / "app.py"), "--manifest", str(manifest),
                               "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=open(work / "server.log", "w"))
    try:
        wait_for_port(port, proc=server)
        from gradio_client import Client

        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        worker = Direct(gguf, args.threads)
        # warm-up: loads the app's model, touches both sides' weights
        app_run(client, "bench", "Hello", 8)
        worker.run("Hello", 8)
        direct, served = [], []
        for i in range(args.runs):
            user = PROMPT.format(i=i)
            # which side goes first alternates: the second of a pair may inherit the first's cache or CPU state
            for side in (("app", "direct") if i % 2 == 0 else ("direct", "app")):
                if side == "app":
                    served.append(app_run(client, "bench", user, args.max_tokens))
                else:
                    direct.append(worker.run(user, args.max_tokens))
        worker.close()
    finally:
        server.terminate()
        server.wait(30)

    med = lambda rows, k: statistics.median(r[k] for r in rows)  # noqa: E731
    rng = lambda rows, k, f: f"{med(rows, k):{f}} ({min(r[k] for r in rows):{f}}–{max(r[k] for r in rows):{f}})"  # noqa: E731
    ratios = [s["tok_s"] / d["tok_s"] for s, d in zip(served, direct)]
    print(f"## Space vs llama-cpp-python direct\n\n`{gguf.name}` ({gguf.stat().st_size / 1e6:,.0f} MB), "
          f"{args.threads} threads, greedy, up to {args.max_tokens} new tokens, {args.runs} alternating runs; "
          f"median (min–max).\n")
    print(table(["path", "decode tok/s", "TTFT s", "tokens"], [
        ["llama-cpp-python direct", rng(direct, "tok_s", ".1f"), rng(direct, "ttft", ".3f"), rng(direct, "tokens", ".0f")],
        ["Space /chat (gradio_client, streaming)", rng(served, "tok_s", ".1f"), rng(served, "ttft", ".3f"),
         rng(served, "tokens", ".0f")],
    ]))
    print(f"\nSpace / direct decode speed, per run pair: median {statistics.median(ratios):.1%} "
          f"(min {min(ratios):.1%}, max {max(ratios):.1%}); goal >= 95%.  ")
    print(f"Decode speed measured inside the app: {med(served, 'server_tok_s'):.1f} tok/s.  ")
    print(f"TTFT added by the app (median of per-run differences): "
          f"{statistics.median(s['ttft'] - d['ttft'] for s, d in zip(served, direct)) * 1000:+.0f} ms.")


if __name__ == "__main__":
    main()
