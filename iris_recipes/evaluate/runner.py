"""`iris-recipes eval RUN`: the fine-tuned model against its base, on the same held-out rows and prompts.

Everything that can be wrong with the inputs (no merged model, no GGUF, no held-out data, a metric the rows
cannot support, a bad regex, an unknown base model) is checked before any model is loaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from iris_recipes import fsutil, objectives
from iris_recipes.data.formats import CHAT
from iris_recipes.errors import IrisError
from iris_recipes.evaluate import metrics as M
from iris_recipes.evaluate.generate import SAMPLING
from iris_recipes.rundir import RunDir

LOSS_ROWS = 200  # validation loss is computed on at most this many held-out conversations
SLOTS = 16  # sequences llama.cpp decodes together
EVAL_FILE = "eval.json"


@dataclass
class Plan:
    run: RunDir
    recipe: object
    settings: dict  # the recipe's eval block (defaults filled in), samples possibly overridden
    rows: list[dict]  # held-out rows scored by the task metrics
    loss_rows: list[dict]
    merged: Path
    base: Path
    ggufs: dict[str, Path]  # quant -> file
    base_name: str | None = None  # the base model's name (its hub name) for its GGUF


def _prompt_messages(row: dict) -> list[dict]:
    """A held-out conversation up to (not including) its last assistant turn: what the model must answer."""
    msgs = row["messages"]
    last = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=len(msgs))
    return msgs[:last]


def check_samples(samples: int | None) -> None:
    """The --samples rule, for `eval` and for `sweep` (which checks it before any variant trains)."""
    if samples is not None and samples < 1:
        raise IrisError(f"--samples {samples}: must be at least 1 (held-out rows scored per metric).")


def plan(run_path: str | Path, samples: int | None = None) -> Plan:
    """Check a run can be evaluated and gather what the evaluation needs; loads no model."""
    from iris_recipes.data import load_split
    from iris_recipes.data.prepare import MIX_KEY
    from iris_recipes.models import resolve_base_model

    check_samples(samples)
    run = RunDir.open(run_path)
    recipe = run.recipe(check_data=False)
    settings = dict(recipe.data.get("eval") or {})
    if samples is not None:
        settings["samples"] = samples

    merged = run.file("merged")
    if not (merged / "config.json").is_file():
        raise IrisError(
            f"{run.path}: no merged model ({merged}/config.json is missing). Finish the run first: "
            f"`iris-recipes run {recipe.name} --resume` (or its merge stage) writes merged/."
        )
    gguf_art = run.artifact("gguf") or {}
    ggufs = {q: run.file(a["file"]) for q, a in gguf_art.items() if isinstance(a, dict) and a.get("file")}
    missing = [str(p) for p in ggufs.values() if not p.is_file()]
    if not ggufs or missing:
        what = (
            f"GGUF files listed in run.json are missing: {', '.join(missing)}"
            if missing
            else "no GGUF export recorded in run.json (artifacts.gguf)"
        )
        raise IrisError(f"{run.path}: {what}. Export first: `iris-recipes export {run.path}`.")
    if "f16" not in ggufs:
        raise IrisError(
            f"{run.path}: no F16 GGUF among the exports ({', '.join(ggufs)}); the answers are "
            f"generated from F16. Re-export: `iris-recipes export {run.path}`."
        )

    val_path = run.file("data", "val.jsonl")
    if not val_path.is_file():
        raise IrisError(
            f"{val_path}: no held-out data. Give the recipe a validation split (dataset.val_size) "
            "and re-run the data stage."
        )
    objective = objectives.of(recipe.data)
    if objective.rows != CHAT:  # held-out pair accuracy and margin are not measured yet
        raise IrisError(
            f"{run.path}: objective {objective.name} trains on {objective.rows} rows, and eval measures chat rows "
            "only so far; the run's merged model and GGUF files are ready to serve (`iris-recipes space`)."
        )
    val = load_split(val_path)
    if not val:
        raise IrisError(f"{val_path}: empty; the evaluation needs held-out rows (raise dataset.val_size).")
    rows = [r for r in val if MIX_KEY not in r][: settings["samples"]]  # task rows: the main dataset's
    if not rows:
        raise IrisError(
            f"{val_path}: no held-out row of the main dataset (only dataset.mix rows); raise "
            "dataset.val_size and re-run the data stage."
        )
    no_answer = [
        i
        for i, r in enumerate(rows, 1)
        if not _prompt_messages(r) or not any(m.get("role") == "assistant" for m in r["messages"])
    ]
    if no_answer:
        raise IrisError(
            f"{val_path}: rows {', '.join(map(str, no_answer[:5]))} have no assistant turn to "
            "compare with; re-run the data stage."
        )
    M.check_metrics(settings, rows, str(val_path))
    # The model the run trained from (as `run` resolved it), through the same resolver as every stage.
    base_model = resolve_base_model(
        str(recipe.data["base_model"]), base_dir=run.path, prefer=run.read().get("base_model_path")
    )
    return Plan(
        run,
        recipe,
        settings,
        rows,
        val[:LOSS_ROWS],
        merged,
        base_model.path,
        ggufs,
        base_model.hub_id.rsplit("/", 1)[-1] if base_model.hub_id else None,
    )


def evaluate_into(p: Plan, info: dict, log: Callable[[str], None]) -> dict:
    """The eval stage's work (stages.STAGES runs and records it): RUN/eval.json; `info` gets its facts."""
    result = _evaluate(p, log, info)
    fsutil.write_json(p.run.file(EVAL_FILE), result)
    info.update(file=EVAL_FILE, samples=result["samples"])
    return result


def log_tracking(run: RunDir, result: dict, log: Callable[[str], None]) -> None:
    """Eval metrics and the evidence files into the run's tracked runs (recipe `track:`), when there are any."""
    from iris_recipes import track

    if not run.read().get("tracking"):
        return
    try:
        done = track.log_eval(run, result, [run.file("recipe.yaml"), run.file(EVAL_FILE), run.file("README.md")])
    except Exception as exc:  # the evaluation itself is done and written; say what the tracker refused
        log(f"logging to the experiment tracker failed: {type(exc).__name__}: {exc}")
        return
    log(f"logged to {', '.join(done)}")


def _tokenizer(p: Plan):
    from transformers import AutoTokenizer

    from iris_recipes.models import CHATML_TEMPLATE

    tok = AutoTokenizer.from_pretrained(p.merged)
    if not tok.chat_template:
        if p.recipe.data.get("chat_template") not in (None, "chatml"):
            raise IrisError(f"{p.merged}: the tokenizer has no chat template; re-run the merge stage.")
        tok.chat_template = CHATML_TEMPLATE
    return tok


def _evaluate(p: Plan, log: Callable[[str], None], info: dict) -> dict:
    from iris_recipes.evaluate import base_cache
    from iris_recipes.evaluate import forgetting as F
    from iris_recipes.evaluate.generate import base_f16_gguf, generator
    from iris_recipes.evaluate.loss import LOSS_METHOD, training_examples, validation_loss
    from iris_recipes.export import speed
    from iris_recipes.hostinfo import cpu_count
    from iris_recipes.train.config import tokenization_config

    timings: dict[str, float] = {}
    info["timings"] = timings
    threads = cpu_count()
    tok = _tokenizer(p)
    s = p.settings
    max_new, seeds = int(s["max_new_tokens"]), list(s["seeds"])
    fs = s["forgetting"]
    scorers = M.scorers(s)

    def ids(messages: list[dict]) -> list[int]:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return tok(text, add_special_tokens=False)["input_ids"]

    row_prompts = [ids(_prompt_messages(r)) for r in p.rows]
    eval_prompts = list(s.get("prompts") or [])
    side_prompts = [ids([{"role": "user", "content": q}]) for q in eval_prompts]
    general = F.prompts_for(s) if fs["enabled"] else []
    general_prompts = [ids([{"role": "user", "content": q}]) for q in general]

    # Every generation of one model in one batch: (prompt ids, token limit, seed) per job, in this order.
    jobs: list[tuple[list[int], int, int | None]] = []
    for seed in [None, *seeds]:
        jobs += [(x, max_new, seed) for x in row_prompts + side_prompts]
    jobs += [(x, fs["max_new_tokens"], None) for x in general_prompts]
    n_ctx = min(4096, max(len(x) + limit for x, limit, _ in jobs) + 16)

    t0 = time.perf_counter()
    log(f"converting the base model {p.base} to GGUF (cached)")
    base_gguf = base_f16_gguf(p.base, p.base_name)
    timings["base_gguf"] = round(time.perf_counter() - t0, 2)

    result: dict = {
        "base": {},
        "tuned": {},
        "generations": [],
        "gguf": {},
        "samples": len(p.rows),
        "noise": {},
        "seeds": seeds,
        "sampled": {"base": {}, "tuned": {}},
        "max_new_tokens": max_new,
        "models": {"base": str(p.base), "tuned": str(p.merged)},
        "base_gguf": str(base_gguf),  # the Space's "compare with base model" serves this file
        "engine": "llama-cpp-python (F16 GGUF)",
        "sampling": dict(SAMPLING),
        "base_cached": False,  # True: the base's loss and answers were read back (evaluate/base_cache.py)
    }
    replies: dict[str, list] = {}
    by_seed: dict[str, dict] = {}  # side -> seed (None: greedy) -> replies to the rows and eval prompts
    refs = [r.get("reference") or {} for r in p.rows]
    n_rows, n_side = len(row_prompts), len(side_prompts)
    # the held-out conversations tokenized and labelled exactly as training does it (Axolotl's own strategy)
    examples = training_examples(
        tok, tokenization_config(p.recipe.data, p.merged), [r["messages"] for r in p.loss_rows]
    )
    result["loss_method"] = LOSS_METHOD
    # the base's loss and answers depend only on these: a later run with the same ones reads them back
    base_key = base_cache.key(
        base=base_gguf.parent.name,
        template=tok.chat_template,
        loss_examples=examples.pairs,
        jobs=jobs,
        n_ctx=n_ctx,
        threads=threads,
        slots=SLOTS,
        sampling=SAMPLING,
    )
    for side, model_dir, gguf in (("base", p.base, base_gguf), ("tuned", p.merged, p.ggufs["f16"])):
        cached = base_cache.load(base_key) if side == "base" else None
        if cached is not None:
            log(f"base: loss and answers from an earlier evaluation with the same inputs (key {base_key[:12]})")
            (loss, out), result["base_cached"] = cached, True
            replies[side] = out
        else:
            t0 = time.perf_counter()
            left_out = (
                f" ({examples.too_long} longer than train.sequence_len {examples.sequence_len} left out, as training "
                "leaves them out)"
                if examples.too_long
                else ""
            )
            log(f"{side}: validation loss on {len(examples.pairs)} held-out conversations{left_out}")
            loss = validation_loss(model_dir, examples, threads=threads)
            timings[f"{side}_loss"] = round(time.perf_counter() - t0, 2)
            t0 = time.perf_counter()
            log(
                f"{side}: {n_rows} held-out answers (greedy + {len(seeds)} seeds), {n_side} prompts and "
                f"{len(general)} general prompts"
            )
            with generator(gguf, n_ctx=n_ctx, threads=threads, slots=SLOTS) as gen:
                out = gen.batch_generate([j[0] for j in jobs], [j[1] for j in jobs], [j[2] for j in jobs])
            timings[f"{side}_generate"] = round(time.perf_counter() - t0, 2)
            replies[side] = out
            if side == "base" and (why := base_cache.store(base_key, loss, out)):
                log(f"base: answers not cached for later runs ({why})")
        per_seed = by_seed[side] = {
            seed: out[k * (n_rows + n_side) : (k + 1) * (n_rows + n_side)] for k, seed in enumerate([None, *seeds])
        }
        greedy = [r.text for r in per_seed[None][:n_rows]]
        scores = {name: M.mean([f(a, ref) for a, ref in zip(greedy, refs)]) for name, f in scorers.items()}
        result[side] = {
            **loss,
            "metrics": scores,
            "answers": [
                {"prompt": m[-1]["content"] if m else "", "answer": a}
                for m, a in zip((_prompt_messages(r) for r in p.rows), greedy)
            ],
        }
        result["sampled"][side] = {
            name: [M.mean([f(r.text, ref) for r, ref in zip(per_seed[seed][:n_rows], refs)]) for seed in seeds]
            for name, f in scorers.items()
        }

    for name in scorers:
        spreads = [max(v) - min(v) for v in (result["sampled"][side][name] for side in ("base", "tuned")) if v]
        result["noise"][name] = round(max(spreads), 4) if spreads else None
    for seed in [None, *seeds]:
        for i, prompt in enumerate(eval_prompts):
            entry = {
                "prompt": prompt,
                "base": by_seed["base"][seed][n_rows + i].text,
                "tuned": by_seed["tuned"][seed][n_rows + i].text,
            }
            if seed is not None:
                entry["seed"] = seed
            result["generations"].append(entry)
    if general:
        n_gen = len(general)
        result["forgetting"] = F.check(replies["base"][-n_gen:], replies["tuned"][-n_gen:], general, fs)
        log(f"general prompts: {result['forgetting']['verdict']}")

    t0 = time.perf_counter()
    result["quants"] = {
        "f16": _quant_entry(
            result["tuned"]["metrics"], result.get("forgetting"), p.ggufs["f16"], checked_speed(p, "f16")
        ),
        **_judge_quants(p, replies["base"], jobs, row_prompts, general_prompts, refs, log),
    }
    timings["quants"] = round(time.perf_counter() - t0, 2)

    # Each file's speed as the export's checks measured it; measured here only for a file they did not measure (an
    # export from before they did, or a quantized file kept from an earlier export of the same F16).
    t0 = time.perf_counter()
    for quant, path in p.ggufs.items():
        measured = checked_speed(p, quant)
        if not isinstance(measured, dict):
            log(f"speed of {path.name}")
            measured = speed.benchmark(
                path, speed.bench_prompt_ids(tok), sorted(set(tok.all_special_ids)), threads=threads
            )
        result["gguf"][quant] = measured
        if quant in result.get("quants", {}):
            result["quants"][quant].update(_speed_fields(measured))
    timings["gguf_speed"] = round(time.perf_counter() - t0, 2)
    return result


def checked_speed(p: Plan, quant: str) -> dict | None:
    """A GGUF's speed as the export's checks measured it, or None."""
    checked = ((p.run.read().get("stages") or {}).get("export") or {}).get("checks") or {}
    measured = (checked.get(quant) or {}).get("speed")
    return measured if isinstance(measured, dict) else None


def _speed_fields(measured: dict | None) -> dict:
    return {k: (measured or {}).get(k) for k in ("decode_tok_s", "resident_mb")}


def _quant_entry(metrics: dict, forgetting: dict | None, path: Path, measured: dict | None) -> dict:
    return {
        "metrics": metrics,
        "forgetting_kept": forgetting.get("kept") if forgetting else None,
        "forgetting_verdict": forgetting.get("verdict") if forgetting else None,
        "bytes": path.stat().st_size,
        **_speed_fields(measured),
    }


def _judge_quants(p, base_replies, jobs, row_prompts, general_prompts, refs, log) -> dict:
    """Every quantized file on the task (greedy answers to the held-out rows) and the forgetting check (the general
    prompts, against the base's replies), one batch per file: what `space.quant: auto` chooses from."""
    from iris_recipes.evaluate import forgetting as F
    from iris_recipes.evaluate.generate import generator
    from iris_recipes.hostinfo import cpu_count

    s, fs = p.settings, p.settings["forgetting"]
    scorers = M.scorers(s)
    general = F.prompts_for(s) if fs["enabled"] else []
    n_ctx = min(4096, max(len(x) + limit for x, limit, _ in jobs) + 16)
    prompts = row_prompts + general_prompts
    limits = [int(s["max_new_tokens"])] * len(row_prompts) + [fs["max_new_tokens"]] * len(general_prompts)
    out: dict[str, dict] = {}
    for quant, path in p.ggufs.items():
        if quant == "f16":
            continue
        t0 = time.perf_counter()
        log(f"{quant}: {len(row_prompts)} held-out answers and {len(general_prompts)} general prompts")
        with generator(path, n_ctx=n_ctx, threads=cpu_count(), slots=SLOTS) as gen:
            replies = gen.batch_generate(prompts, limits, [None] * len(prompts))
        answers = [r.text for r in replies[: len(row_prompts)]]
        metrics = {name: M.mean([f(a, ref) for a, ref in zip(answers, refs)]) for name, f in scorers.items()}
        check = F.check(base_replies[-len(general) :], replies[len(row_prompts) :], general, fs) if general else None
        out[quant] = _quant_entry(metrics, check, path, checked_speed(p, quant))
        out[quant]["seconds"] = round(time.perf_counter() - t0, 2)
    return out
