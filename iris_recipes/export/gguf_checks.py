"""Checks run on every exported GGUF before the export counts as done.

1. tokens: the GGUF's chat template, BOS/EOS and end-of-turn token match the training tokenizer (merged/), llama.cpp
   treats the end-of-turn token as end-of-generation, and both tokenize the check prompts identically;
2. agreement: top-1 next-token agreement between transformers (merged model) and llama.cpp at every position of a
   fixed set of chat prompts, near-ties aside, and the mean KL divergence;
3. chat: a short greedy chat through llama-cpp-python with the GGUF's own template: why it stopped, no template
   tokens in the text, no echo of the user turn;
plus speed on this CPU (export/speed.py: decode tokens/s, time to first token, latency).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iris_recipes import chat_families
from iris_recipes.export import modelfile, speed
from iris_recipes.hostinfo import child_env, cpu_count

# Fixed conversations whose every position is compared; varied enough to exercise system turns and multi-turn.
CHECK_CONVERSATIONS: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a haiku about autumn leaves."}],
    [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Explain photosynthesis in one sentence."},
    ],
    [
        {"role": "user", "content": "Sam has 7 apples and buys 5 more. How many apples does Sam have?"},
        {"role": "assistant", "content": "7 + 5 = 12. Answer: 12"},
        {"role": "user", "content": "And if he eats 3?"},
    ],
    [{"role": "user", "content": "List three primary colors."}],
    [{"role": "user", "content": "Translate 'good morning' into Spanish."}],
    [{"role": "user", "content": "def add(a, b):\n    return a + b\n\nWhat does this Python function do?"}],
    [{"role": "user", "content": "Give me a tip for sleeping better."}],
]
CHAT_PROBE = "Name one fruit that is yellow. Reply in a few words."  # when the recipe offers no prompt of its own


def chat_probe(system_prompt: str | None = None, prompt: str | None = None) -> list[dict[str, str]]:
    """The messages of the chat check: what the Space sends (the recipe's system prompt and first example),
    so a model specialised on its task is checked on that task rather than on small talk it was trained away from."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*messages, {"role": "user", "content": prompt or CHAT_PROBE}]


def load_tokenizer(merged: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(merged)


def prompt_token_ids(tok, family: chat_families.ChatFamily | None = None) -> list[list[int]]:
    """The check prompts rendered with the training tokenizer's chat template, as token ids (a system prompt in the
    first user message for a `family` without a system turn, as its training data had it)."""
    out = []
    for conv in CHECK_CONVERSATIONS:
        conv = family.fold_system(conv) if family else conv
        text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
        out.append(tok(text, add_special_tokens=False)["input_ids"])
    return out


def end_of_turn_token(tok) -> str | None:
    """The special token the tokenizer's chat template puts right after an assistant message (its end of turn)."""
    marker = "IRISCHECKREPLY"
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": marker}], tokenize=False
    )
    tail = text[text.rindex(marker) + len(marker) :]
    specials = set(tok.all_special_tokens) | {t for t, a in tok.get_added_vocab().items()}
    ids = tok(tail, add_special_tokens=False)["input_ids"]
    for token in tok.convert_ids_to_tokens(ids):
        if token in specials:
            return token
    return tok.eos_token


def _llama(path: Path, threads: int | None = None, **kwargs):
    from llama_cpp import Llama

    # The export's --threads, else every CPU this process may use (its affinity mask, which test workers and
    # containers narrow): more threads than that would spin against each other.
    threads = threads or cpu_count()
    if kwargs.get("lora_path") is None:
        kwargs.pop("lora_path", None)
    else:
        kwargs["lora_path"] = str(kwargs["lora_path"])
    return Llama(model_path=str(path), verbose=False, n_threads=threads, n_threads_batch=threads, **kwargs)


# -- 1. tokens and template ---------------------------------------------------------------------------------------
def check_tokens(gguf: Path, tok, prompts: list[list[int]], chat_template: str | None = None) -> dict[str, Any]:
    """Compare the GGUF's template and special tokens with the training tokenizer, and the tokenizer's end of turn
    with the recipe's chat family (`chat_template`; None or tokenizer_default: the tokenizer decides); `passed` and
    what differed."""
    import llama_cpp

    llm = _llama(gguf, vocab_only=True)
    vocab = llm._model.vocab
    meta = llm.metadata
    problems: list[str] = []

    def gguf_text(tid: int) -> str | None:
        return llm._model.token_get_text(tid) if tid >= 0 else None

    template = meta.get("tokenizer.chat_template")
    if template != tok.chat_template:
        problems.append(
            "chat template differs from the training tokenizer's" if template else "the GGUF has no chat template"
        )
    bos, eos = llm.token_bos(), llm.token_eos()
    if tok.bos_token is not None and (bos != tok.bos_token_id or gguf_text(bos) != tok.bos_token):
        problems.append(
            f"BOS is {gguf_text(bos)!r} (id {bos}), training used {tok.bos_token!r} (id {tok.bos_token_id})"
        )
    if eos != tok.eos_token_id or gguf_text(eos) != tok.eos_token:
        problems.append(
            f"EOS is {gguf_text(eos)!r} (id {eos}), training used {tok.eos_token!r} (id {tok.eos_token_id})"
        )
    eot = end_of_turn_token(tok)
    family = chat_families.get(chat_template) if chat_template else None
    if family is not None and eot not in family.end_of_turn:
        problems.append(
            f"the model's chat template ends a turn with {eot!r}, but chat_template {family.name} ends it with "
            f"{family.end_of_turn[0]!r}: the recipe names the wrong chat_template for this model"
        )
    eot_id = tok.convert_tokens_to_ids(eot) if eot else None
    eot_is_eog = bool(eot_id is not None and llama_cpp.llama_vocab_is_eog(vocab, eot_id))
    if eot_id is not None and gguf_text(eot_id) != eot:
        problems.append(f"end-of-turn token {eot!r} has id {eot_id} in training but {gguf_text(eot_id)!r} in the GGUF")
    if not eot_is_eog:
        problems.append(
            f"llama.cpp does not treat the end-of-turn token {eot!r} as end of generation: chats would not stop"
        )
    mismatched = 0
    for ids in prompts:
        text = tok.decode(ids)
        if llm.tokenize(text.encode("utf-8"), add_bos=False, special=True) != ids:
            mismatched += 1
    if mismatched:
        problems.append(f"{mismatched} of {len(prompts)} check prompts tokenize differently in llama.cpp")
    return {
        "passed": not problems,
        "problems": problems,
        "bos": gguf_text(bos),
        "eos": gguf_text(eos),
        "end_of_turn": eot,
        "end_of_turn_is_eog": eot_is_eog,
        "chat_template_matches": template == tok.chat_template,
        "prompts_tokenized_alike": len(prompts) - mismatched,
    }


# -- 2. next-token agreement --------------------------------------------------------------------------------------
# Floating-point rounding, which differs between CPUs and kernels, flips near-ties in a correct file. So the agreement
# that gates an export accepts the file's top token where the merged model itself scores it within this many nats
# (logits) of its own top token: e^-1, a third as likely. Where the merged model's choice is clear, only that token
# counts; a broken conversion picks tokens far below it.
NEAR_TIE_NATS = 1.0


def _log_softmax(logits):
    import numpy as np

    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def hf_reference(merged: Path, prompts: list[list[int]]) -> list:
    """transformers' next-token log-probabilities at every position of every prompt (float32 reference)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        out = [_log_softmax(model(torch.tensor([ids])).logits[0].numpy()) for ids in prompts]
    del model
    return out


def gguf_logits(gguf: Path, prompts: list[list[int]], threads: int | None = None, lora: Path | None = None):
    """llama.cpp's logits at every position of every prompt (with `lora`: the GGUF adapter applied over `gguf`)."""
    import numpy as np

    n_ctx = max(len(p) for p in prompts) + 16
    llm = _llama(gguf, threads, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, logits_all=True, lora_path=lora)
    out = []
    for ids in prompts:
        llm.reset()
        llm.eval(ids)
        out.append(np.array(llm.scores[: len(ids)], dtype=np.float32))
    llm.close()
    return out


def agreement(reference: list, logits: list) -> dict[str, Any]:
    """How closely a file's next-token predictions follow the reference, over every position:
    top1_agreement (the gate): its top token is the reference's, or within NEAR_TIE_NATS of it in the reference;
    top1_agreement_exact: its top token is exactly the reference's; kl_divergence: mean KL(reference || file) in
    nats, the measure llama.cpp's own quantization reports use."""
    import numpy as np

    agree = exact = total = 0
    kl = 0.0
    for ref, got in zip(reference, logits):
        rows = np.arange(len(ref))
        top, chosen = ref.argmax(-1), got.argmax(-1)
        exact += int((top == chosen).sum())
        agree += int((ref[rows, chosen] >= ref[rows, top] - NEAR_TIE_NATS).sum())
        total += len(ref)
        kl += float((np.exp(ref) * (ref - _log_softmax(got))).sum())
    if not total:
        return {"top1_agreement": 0.0, "top1_agreement_exact": 0.0, "kl_divergence": 0.0}
    return {
        "top1_agreement": round(agree / total, 4),
        "top1_agreement_exact": round(exact / total, 4),
        "kl_divergence": round(kl / total, 6),
    }


# -- 3. chat ------------------------------------------------------------------------------------------------------
def check_chat(
    gguf: Path,
    tok,
    *,
    require_stop: bool,
    messages: list[dict[str, str]] | None = None,
    max_tokens: int = 128,
    threads: int | None = None,
    lora: Path | None = None,
    family: chat_families.ChatFamily | None = None,
) -> dict[str, Any]:
    """A greedy chat with the GGUF's own template (with `lora`: the adapter applied over it; for a `family` without
    a system turn, the system prompt in the first user message).

    Real models must stop on their own (end-of-generation token). A random-weight test model cannot be expected to,
    so with `require_stop=False` stopping at max_tokens is accepted; the tokens check has already made sure the
    end-of-turn token is one llama.cpp stops on.
    """
    messages = messages or chat_probe()
    user = messages[-1]["content"]
    messages = family.fold_system(messages) if family else messages
    llm = _llama(gguf, threads, n_ctx=1024, seed=0, lora_path=lora)
    result = llm.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0)
    llm.close()
    choice = result["choices"][0]
    text = choice["message"]["content"] or ""
    finish = choice["finish_reason"]
    specials = sorted(set(tok.all_special_tokens) | {t for t in tok.get_added_vocab() if t.startswith("<")})
    leaked = [s for s in specials if s and s in text]
    echoed = user.strip().lower() in text.lower()
    problems = []
    if leaked:
        problems.append(f"reply contains template tokens {leaked[:5]}")
    if echoed:
        problems.append("reply repeats the user's message")
    if finish not in ("stop", "length"):
        problems.append(f"generation ended with {finish!r}")
    stopped = finish == "stop"
    if require_stop and not stopped:
        problems.append(f"no end-of-turn token within {max_tokens} tokens: the model does not stop on its own")
    forced = None if require_stop else forced_stop(gguf, tok, messages, specials, threads, lora)
    if forced is not None:
        problems += forced["problems"]
    return {
        "passed": not problems,
        "problems": problems,
        "finish_reason": finish,
        "stopped_on_its_own": stopped,
        "stop_required": require_stop,
        "completion_tokens": result["usage"]["completion_tokens"],
        "prompt": user,
        "reply": text[:300],
        "forced_stop": forced,
    }


FORCE_AFTER = 4  # tokens generated before the end-of-turn token is forced


def forced_stop(
    gguf: Path,
    tok,
    messages: list[dict[str, str]],
    specials: list[str],
    threads: int | None = None,
    lora: Path | None = None,
) -> dict[str, Any]:
    """For a model that cannot choose to stop (random weights): force the end-of-turn token after a few tokens and
    check that llama.cpp ends the reply there, with the token itself kept out of the text."""
    import numpy as np

    eot = end_of_turn_token(tok)
    eot_id = tok.convert_tokens_to_ids(eot)
    calls = 0

    def force(_input_ids, scores):
        nonlocal calls
        calls += 1
        if calls > FORCE_AFTER:
            scores = np.full_like(scores, -np.inf)
            scores[eot_id] = 0.0
        return scores

    llm = _llama(gguf, threads, n_ctx=1024, seed=0, lora_path=lora)
    try:
        result = llm.create_chat_completion(
            messages=messages, max_tokens=FORCE_AFTER + 8, temperature=0.0, logits_processor=[force]
        )
    finally:
        llm.close()
    choice = result["choices"][0]
    text = choice["message"]["content"] or ""
    n = result["usage"]["completion_tokens"]
    problems = []
    if choice["finish_reason"] != "stop" or n > FORCE_AFTER + 1:
        problems.append(
            f"llama.cpp did not end the reply at the forced end-of-turn token {eot!r} "
            f"(finish {choice['finish_reason']!r} after {n} tokens)"
        )
    leaked = [s for s in specials if s and s in text]
    if leaked:
        problems.append(f"the reply ended by {eot!r} contains template tokens {leaked[:5]}")
    return {"end_of_turn": eot, "finish_reason": choice["finish_reason"], "completion_tokens": n, "problems": problems}


# -- all checks, in a child process -------------------------------------------------------------------------------
def run_all(
    merged: Path,
    files: dict[str, Path],
    *,
    require_stop: bool,
    threads: int | None,
    probe: list[dict[str, str]] | None = None,
    chat_template: str | None = None,
    system: str = "",
    adapter: tuple[Path, Path] | None = None,
) -> dict[str, Any]:
    """Every check on every file; {"positions": N, "results": {quant: {...}}, "modelfile": {"system", "problems"},
    "adapter": {...} or None} (`system`: the recipe's system prompt for the Modelfile; `adapter`: (GGUF adapter,
    base model's F16 GGUF), checked like a file: the base with the adapter applied against the merged model)."""
    tok = load_tokenizer(merged)
    family = chat_families.get(chat_template) if chat_template else None
    prompts = prompt_token_ids(tok, family)
    reference = hf_reference(merged, prompts)
    bench_ids, banned = speed.bench_prompt_ids(tok), sorted(set(tok.all_special_ids))
    results = {}
    for quant, path in files.items():
        results[quant] = {
            "tokens": check_tokens(path, tok, prompts, chat_template),
            **agreement(reference, gguf_logits(path, prompts, threads)),
            "chat": check_chat(path, tok, require_stop=require_stop, messages=probe, threads=threads, family=family),
            "speed": (measured := speed.benchmark(path, bench_ids, banned, threads=threads)),
            "decode_tok_s": measured["decode_tok_s"],
        }
    adapter_result = None
    if adapter is not None:
        lora, base = adapter
        adapter_result = {
            **agreement(reference, gguf_logits(base, prompts, threads, lora=lora)),
            "chat": check_chat(
                base, tok, require_stop=require_stop, messages=probe, threads=threads, lora=lora, family=family
            ),
        }
    # the Modelfile: its system prompt (the recipe's, else the one the model's template adds by itself) and whether
    # its template renders what the model's renders
    hf_render = lambda conv: tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)  # noqa: E731
    system = system or modelfile.default_system(family, hf_render)
    return {
        "positions": sum(len(p) for p in prompts),
        "results": results,
        "modelfile": {"system": system, "problems": modelfile.template_problems(family, hf_render, system)},
        "adapter": adapter_result,
    }


def run_isolated(
    merged: Path,
    files: dict[str, Path],
    *,
    require_stop: bool,
    threads: int | None,
    probe: list[dict[str, str]] | None = None,
    log: Path | None = None,
    chat_template: str | None = None,
    system: str = "",
    adapter: tuple[Path, Path] | None = None,
) -> dict[str, Any]:
    """run_all in a child process: a GGUF that makes llama.cpp abort (a broken vocabulary does) fails the export
    with a clear error instead of killing the pipeline mid-stage."""
    import json
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="iris-checks-") as tmp:
        out = Path(tmp) / "checks.json"
        cmd = [
            sys.executable,
            "-m",
            "iris_recipes.export.gguf_checks",
            str(merged),
            str(out),
            "--threads",
            str(threads or cpu_count()),
            *(["--require-stop"] if require_stop else []),
            *(["--probe", json.dumps(probe)] if probe else []),
            *(["--chat-template", chat_template] if chat_template else []),
            *(["--system", system] if system else []),
            *(["--adapter", str(adapter[0]), "--adapter-base", str(adapter[1])] if adapter else []),
            *(f"{quant}={path}" for quant, path in files.items()),
        ]
        env = child_env()
        env.setdefault("GGML_NO_BACKTRACE", "1")  # on abort, ggml would otherwise attach gdb for a backtrace
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if log is not None:
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"\n$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
        if proc.returncode != 0 or not out.is_file():
            from iris_recipes.errors import IrisError

            how = (
                f"was killed by signal {-proc.returncode}"
                if proc.returncode < 0
                else f"failed (exit {proc.returncode})"
            )
            last = next((ln for ln in reversed(proc.stderr.strip().splitlines()) if ln.strip()), "no output")
            raise IrisError(
                f"{merged}: checking the GGUF files {how}: {last[:300]}. The files are unusable; "
                + (f"details in {log}." if log else "re-run to see the details.")
            )
        return json.loads(out.read_text())


def _main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="python -m iris_recipes.export.gguf_checks")
    ap.add_argument("merged", type=Path)
    ap.add_argument("out", type=Path, help="JSON results are written here")
    ap.add_argument("files", nargs="+", metavar="QUANT=PATH")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--require-stop", action="store_true")
    ap.add_argument("--probe", type=json.loads, default=None, help="chat check messages as JSON")
    ap.add_argument("--chat-template", default=None, help="the recipe's chat_template (its chat family)")
    ap.add_argument("--system", default="", help="the system prompt the Modelfile carries")
    ap.add_argument("--adapter", type=Path, default=None, help="a GGUF LoRA adapter to check over --adapter-base")
    ap.add_argument("--adapter-base", type=Path, default=None, help="the base model's F16 GGUF")
    args = ap.parse_args(argv)
    files = dict((item.split("=", 1)[0], Path(item.split("=", 1)[1])) for item in args.files)
    result = run_all(
        args.merged,
        files,
        require_stop=args.require_stop,
        threads=args.threads,
        probe=args.probe,
        chat_template=args.chat_template,
        system=args.system,
        adapter=(args.adapter, args.adapter_base) if args.adapter else None,
    )
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
