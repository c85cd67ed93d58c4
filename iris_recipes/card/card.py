"""The model card of a run: Hugging Face front matter (`ModelCardData`) and a Markdown body built from its facts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from iris_recipes import fsutil
from iris_recipes.card.facts import CardFacts, gather
from iris_recipes.card.plot import loss_series, plot_loss
from iris_recipes.rundir import RunDir, gguf_filename

CARD_FILE = "README.md"
PLOT_FILE = "loss.png"
PREFERRED_QUANTS = ("q4_k_m", "q5_k_m", "q8_0")  # what a usage snippet loads when the recipe names none


def write_card(run: RunDir, repo_id: str | None = None) -> Path:
    """Write `RUN/loss.png` and `RUN/README.md`; `repo_id` overrides the recipe's publish.repo_id in snippets.

    Everything is checked (license, JSON inputs) before the first file is written; each file is written atomically.
    """
    facts = gather(run, repo_id=repo_id)
    plot = plot_loss(facts.metrics, run.file(PLOT_FILE), title=f"{facts.name}: loss")
    if plot is None:
        run.file(PLOT_FILE).unlink(missing_ok=True)  # a stale curve from an earlier card would mislead
    text = str(build_card(facts, has_plot=plot is not None))
    dest = fsutil.write_text(run.file(CARD_FILE), text)
    run.set_artifact(
        "card", {"file": CARD_FILE, "plot": PLOT_FILE if plot else None, "sha256": fsutil.sha256_file(dest)}
    )
    return dest


def build_card(facts: CardFacts, has_plot: bool = True):
    """A `huggingface_hub.ModelCard` for the run (front matter + body); nothing is written."""
    from huggingface_hub import ModelCard

    data = card_data(facts)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body(facts, has_plot)}")


# -- front matter -------------------------------------------------------------------------------------------------
def card_data(facts: CardFacts):
    from huggingface_hub import ModelCardData

    method = facts.settings.method
    tags = list(
        dict.fromkeys(
            [*facts.get("card.tags", []), "gguf", *(["lora"] if method in ("lora", "qlora") else []), "iris-recipes"]
        )
    )
    datasets = list(dict.fromkeys(s.hub for s in facts.sources if s.hub))
    fields: dict[str, Any] = dict(
        model_name=facts.name,
        license=facts.license,
        language=facts.get("card.language") or None,
        library_name="gguf",
        pipeline_tag="text-generation",
        tags=tags,
        datasets=datasets or None,
        eval_results=eval_results(facts) or None,
    )
    if facts.base_model:
        # The files are GGUFs of a *trained* model: the relation to the base is a fine-tune, not a quantization
        # (the Hub would guess "quantized" from the .gguf files).
        fields.update(base_model=facts.base_model, base_model_relation="finetune")
    return ModelCardData(**fields)


def eval_results(facts: CardFacts) -> list:
    """model-index entries for the fine-tuned model's scores in eval.json."""
    from huggingface_hub import EvalResult

    tuned = (facts.eval or {}).get("tuned") or {}
    main = facts.sources[0] if facts.sources else None
    dataset = dict(
        dataset_type=(main.hub or main.name) if main else facts.name,
        dataset_name=main.name if main else facts.name,
        dataset_split="validation",
    )
    scores = [("loss", "validation loss", tuned.get("val_loss")), ("perplexity", "perplexity", tuned.get("perplexity"))]
    scores += [(name, name.replace("_", " "), value) for name, value in (tuned.get("metrics") or {}).items()]
    out = []
    for metric_type, metric_name, value in scores:
        number = _number(value)
        if number is not None:
            out.append(
                EvalResult(
                    task_type="text-generation",
                    metric_type=metric_type,
                    metric_name=metric_name,
                    metric_value=round(number, 4),
                    **dataset,
                )
            )
    return out


# -- body ---------------------------------------------------------------------------------------------------------
def body(f: CardFacts, has_plot: bool) -> str:
    sections = [
        _title(f),
        _uses(f),
        _data(f),
        _training(f, has_plot),
        _files(f),
        _evaluation(f),
        _usage(f),
        _recipe(f),
        _footer(f),
    ]
    return "\n\n".join(s.strip("\n") for s in sections if s) + "\n"


def _title(f: CardFacts) -> str:
    base = _link(f.base_model) if f.base_model else f"`{f.base_model_spec}`"
    method = {"lora": "a LoRA adapter", "qlora": "a QLoRA adapter", "full": "full fine-tuning"}[f.settings.method]
    data = ", ".join(_source_ref(s) for s in f.sources)
    lines = [f"# {f.name}", ""]
    if _banner(f):  # first thing a reader sees
        lines += [_banner(f), ""]
    if f.get("description"):
        lines += [f.get("description"), ""]
    lines.append(
        f"A fine-tune of {base} trained with {method} on {data}, merged and exported to GGUF for llama.cpp "
        "(CPU inference). Made with [iris-recipes](#reproduce) from the recipe embedded below."
    )
    return "\n".join(lines)


def _banner(f: CardFacts) -> str:
    warning = f.get("card.warning")
    if not warning:
        return ""
    text = " ".join(str(warning).split())
    return f"> [!WARNING]\n> **{text}**"


def _uses(f: CardFacts) -> str:
    intended = f.get("card.intended_use") or f.get("description") or "Not stated by the recipe (card.intended_use)."
    scope = f.get("card.out_of_scope") or "Not stated by the recipe (card.out_of_scope)."
    return (
        f"## Intended use\n\n{intended}\n\n## Out of scope\n\n{scope}\n\n"
        "Like any small language model it can state false things fluently; check what matters."
    )


def _data(f: CardFacts) -> str:
    rows = []
    for s in f.sources:
        c = s.counts
        rows.append(
            [
                _source_ref(s) + (" (mix)" if s.key != "dataset" else ""),
                s.license or "unknown",
                _int(c.get("read")),
                _int(c.get("train")),
                _int(c.get("val")),
            ]
        )
    lines = ["## Training data", "", _table(["dataset", "license", "rows read", "train rows", "validation rows"], rows)]
    report = f.data_report
    if report:
        dropped = {
            k: sum(s.counts.get(k, 0) for s in f.sources) for k in ("bad", "duplicates", "too_short", "too_long")
        }
        dropped_text = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in dropped.items() if v)
        lines += [
            "",
            f"{_int(report.get('train'))} training and {_int(report.get('val'))} validation conversations "
            f"(held out by seed {report.get('seed')}, val_size {report.get('val_size')})"
            + (f"; dropped: {dropped_text}" if dropped_text else "")
            + ".",
        ]
    else:
        lines += ["", "Row counts appear once the data stage has run (`data/report.json`)."]
    if f.get("dataset.system_prompt"):
        lines += ["", f"System prompt added to every conversation: {_quote(f.get('dataset.system_prompt'))}"]
    for s in f.sources:
        if s.description:
            lines += ["", f"**{s.name}**: {s.description}"]
    lines += ["", "Only assistant turns are trained on (the rest of each conversation is masked out of the loss)."]
    return "\n".join(lines)


def _training(f: CardFacts, has_plot: bool) -> str:
    train, lora = f.get("train", {}) or {}, f.get("lora", {}) or {}
    rows: list[list[str]] = [
        ["method", f.settings.method],
        ["base model", f"`{f.base_model_spec}`"],
        ["chat template", f.get("chat_template")],
    ]
    if f.settings.method in ("lora", "qlora"):
        target = lora.get("target")
        rows += [
            ["LoRA rank r / alpha", f"{lora.get('r')} / {lora.get('alpha')}"],
            ["LoRA dropout", lora.get("dropout")],
            ["LoRA target modules", target if isinstance(target, str) else ", ".join(target or [])],
            ["rsLoRA", lora.get("rslora")],
        ]
    if train.get("max_steps"):
        rows.append(["max steps", train["max_steps"]])
    elif train.get("epochs"):
        rows.append(["epochs", train["epochs"]])
    warmup = (
        f"{train['warmup_steps']} steps"
        if train.get("warmup_steps") is not None
        else f"{train['warmup_ratio']:g} of the steps"
        if train.get("warmup_ratio") is not None
        else "none"
    )
    mb, ga = train.get("micro_batch_size"), train.get("gradient_accumulation")
    rows += [
        ["learning rate", f"{train.get('learning_rate'):g}"],
        ["scheduler", train.get("scheduler")],
        ["warmup", warmup],
        ["micro batch size", mb],
        ["gradient accumulation", ga],
        ["sequences per step, per process", mb * ga if isinstance(mb, int) and isinstance(ga, int) else None],
        ["sequence length", train.get("sequence_len")],
        ["sample packing", train.get("sample_packing")],
        ["optimizer", train.get("optimizer")],
        ["weight decay", train.get("weight_decay")],
        ["max grad norm", train.get("max_grad_norm")],
        ["gradient checkpointing", train.get("gradient_checkpointing")],
        ["precision", _precision(train.get("precision"), (f.meta.get("stages") or {}).get("train") or {})],
        ["seed", train.get("seed")],
    ]
    lines = ["## Training", "", _table(["hyperparameter", "value"], [[k, _cell(v)] for k, v in rows if v is not None])]

    stages = f.meta.get("stages") or {}
    timed = [
        [name, info.get("status", ""), _seconds(info.get("seconds"))]
        for name, info in stages.items()
        if isinstance(info, dict) and name != "card"
    ]
    if timed:
        lines += ["", "Pipeline stages of this run:", "", _table(["stage", "status", "time"], timed)]

    lines += ["", "### Loss", ""]
    train_pts, val_pts = loss_series(f.metrics)
    if has_plot:
        shown = "Training and validation loss" if val_pts else "Training loss"
        lines += [f"![{shown} per optimizer step]({PLOT_FILE})", ""]
    if train_pts:
        lines.append(
            f"Training loss: {train_pts[0][1]:.4f} at step {train_pts[0][0]:g}, "
            f"{train_pts[-1][1]:.4f} at step {train_pts[-1][0]:g}."
        )
    if val_pts:
        best = min(val_pts, key=lambda p: p[1])
        lines.append(
            f"Validation loss: {val_pts[0][1]:.4f} at step {val_pts[0][0]:g}, {val_pts[-1][1]:.4f} at step "
            f"{val_pts[-1][0]:g} (best {best[1]:.4f} at step {best[0]:g})."
        )
    if train_pts and not val_pts and train.get("eval_steps") == 0:
        lines.append(
            "Validation loss was not measured during training (`train.eval_steps: 0`); the evaluation compares the "
            "base and fine-tuned models' validation loss."
        )
    if not train_pts and not val_pts:
        lines.append("No losses were logged for this run (`metrics.jsonl` is missing or has no `loss` values).")
    return "\n".join(lines)


def _files(f: CardFacts) -> str:
    if not f.gguf:
        return (
            "## Files\n\nNo GGUF files yet: run `iris-recipes export RUN` to write them, then "
            "`iris-recipes card RUN` to update this card."
        )
    measured = (f.eval or {}).get("gguf") or {}
    rows = []
    for quant, art in _ordered(f.gguf):
        decode = art.get("decode_tok_s", (measured.get(quant) or {}).get("decode_tok_s"))
        top1, kl = art.get("top1_agreement"), art.get("kl_divergence")
        rows.append(
            [
                f"`{gguf_filename(f.name, quant)}`",
                quant.upper(),
                _size(art.get("bytes")),
                f"`{art['sha256']}`" if art.get("sha256") else "",
                f"{top1 * 100:.1f}%" if _number(top1) is not None else "",
                f"{kl:.2e}" if _number(kl) is not None else "",
                f"{decode:.1f}" if _number(decode) is not None else "",
            ]
        )
    export = (f.meta.get("stages") or {}).get("export") or {}
    lines = [
        "## Files",
        "",
        _table(["file", "type", "size", "sha256", "top-1 agreement", "KL divergence", "decode tok/s"], rows),
        "",
        "Top-1 agreement: how often the file's most likely next token equals the merged model's (transformers) "
        "on a fixed set of prompts (at a near-tie, a token the merged model scores within 1 nat of its own "
        "top token also counts); KL divergence: mean KL(merged model || file) in nats over every position. "
        "F16 must reach "
        f"{f.get('export.min_top1_agreement', 0.99) * 100:.0f}% for the export to pass. "
        f"Decode tokens/s: llama-cpp-python on the CPU that ran the export ({_cpu(export)}). Each quantized file "
        "must also reach its type's agreement gate (`QUANT_TYPES` in iris_recipes/export/hf_to_gguf.py).",
    ]
    judged = _quant_judgement(f)
    if judged:
        lines += ["", judged]
    return "\n".join(lines)


def _quant_judgement(f: CardFacts) -> str:
    """Every exported file on the task and the forgetting check (eval judged each), with speed and memory."""
    quants = (f.eval or {}).get("quants") or {}
    if not isinstance(quants, dict) or not quants:
        return ""
    names = list(dict.fromkeys(n for e in quants.values() if isinstance(e, dict) for n in (e.get("metrics") or {})))
    rows = []
    for quant in [q for q in ("f16", *sorted(set(quants) - {"f16"})) if isinstance(quants.get(q), dict)]:
        e = quants[quant]
        metrics = e.get("metrics") or {}
        kept = e.get("forgetting_kept")
        rows.append(
            [
                quant.upper(),
                *(f"{metrics[n]:.4f}" if _number(metrics.get(n)) is not None else "-" for n in names),
                "kept" if kept else ("-" if kept is None else "degraded"),
                f"{e['decode_tok_s']:.1f}" if _number(e.get("decode_tok_s")) is not None else "-",
                f"{e['resident_mb']:.0f}" if _number(e.get("resident_mb")) is not None else "-",
                _size(e.get("bytes")),
            ]
        )
    served = f.get("space.quant")
    note = (
        "`space.quant: auto` serves the smallest file whose task metric is within the seed noise (or "
        "`space.quant_tolerance`) of F16's and whose general behaviour is kept."
        if served == "auto"
        else f"The Space serves {str(served).upper()} (`space.quant`; `auto` picks by this table)."
    )
    header = ["file", *(n.replace("_", " ") for n in names), "general behaviour", "decode tok/s", "resident MB", "size"]
    return "\n".join(
        [
            "### Each file on the task",
            "",
            _table(header, rows),
            "",
            "Greedy answers to the held-out rows and the general prompts of the forgetting check, by each file "
            "(F16: the evaluation above). " + note,
        ]
    )


def _evaluation(f: CardFacts) -> str:
    ev = f.eval
    if not ev:
        return (
            "## Evaluation\n\nNot evaluated yet: `iris-recipes eval RUN` compares the base and the fine-tuned "
            "model (validation loss, perplexity, task metrics and answers to the same prompts); then "
            "`iris-recipes card RUN` adds the results here."
        )
    base, tuned, noise = ev.get("base") or {}, ev.get("tuned") or {}, ev.get("noise") or {}
    engine = f" Answers are generated with {ev['engine']}." if ev.get("engine") else ""
    lines = ["## Evaluation", "", f"Base model versus this fine-tune, on held-out rows the training never saw.{engine}"]
    rows = [
        [label, _fmt(base.get(key)), _fmt(tuned.get(key)), _delta(base.get(key), tuned.get(key)), ""]
        for key, label in (("val_loss", "validation loss"), ("perplexity", "perplexity"))
        if _number(base.get(key)) is not None or _number(tuned.get(key)) is not None
    ]
    names = list(dict.fromkeys([*(base.get("metrics") or {}), *(tuned.get("metrics") or {})]))
    for name in names:
        b, t = (base.get("metrics") or {}).get(name), (tuned.get("metrics") or {}).get(name)
        rows.append([name.replace("_", " "), _fmt(b), _fmt(t), _delta(b, t), _fmt(noise.get(name))])
    general = ev.get("forgetting") if isinstance(ev.get("forgetting"), dict) else None
    if general:
        rows += _general_rows(general)
    if rows:
        header = ["measure", "base", "fine-tuned", "change", "noise (seed spread)"]
        if not any(r[4] for r in rows):
            header, rows = header[:4], [r[:4] for r in rows]
        lines += ["", _table(header, rows)]
    if general:
        lines += ["", f"**Forgetting check: {general.get('verdict')}.** " + _general_note(general)]
    samples = ev.get("samples") if isinstance(ev.get("samples"), int) else f.get("eval.samples")
    if names and samples:
        seeds = ev.get("seeds") or []
        lines += [
            "",
            f"Task metrics: greedy answers to {samples} held-out rows"
            + (
                f"; the noise column is the largest spread of the same metric over sampled answers with seeds "
                f"{', '.join(map(str, seeds))}: a change smaller than it is not evidence."
                if seeds
                else "."
            ),
        ]
    replies = [r for r in (general or {}).get("replies") or [] if isinstance(r, dict)]
    if replies:
        lines += [
            "",
            "<details><summary>General prompts answered by both models (greedy)</summary>",
            "",
            _table(
                ["prompt", "base", "fine-tuned"],
                [
                    [
                        _answer(r.get("prompt")),
                        _answer(r.get("base")) + _mark(r, "base"),
                        _answer(r.get("tuned")) + _mark(r, "tuned"),
                    ]
                    for r in replies
                ],
            ),
            "",
            "</details>",
        ]
    gens = [g for g in ev.get("generations") or [] if isinstance(g, dict) and g.get("prompt")]
    greedy = [g for g in gens if "seed" not in g] or gens
    if greedy:
        lines += [
            "",
            "### Answers side by side",
            "",
            "The same prompts, answered by the base model and by this fine-tune (greedy decoding):",
            "",
            _table(
                ["prompt", "base", "fine-tuned"],
                [[_answer(g["prompt"]), _answer(g.get("base")), _answer(g.get("tuned"))] for g in greedy],
            ),
        ]
    sampled = [g for g in gens if "seed" in g and g not in greedy]
    if sampled:
        lines += [
            "",
            "<details><summary>Sampled answers (one per seed)</summary>",
            "",
            _table(
                ["seed", "prompt", "base", "fine-tuned"],
                [[g["seed"], _answer(g["prompt"]), _answer(g.get("base")), _answer(g.get("tuned"))] for g in sampled],
            ),
            "",
            "</details>",
        ]
    speed = [
        [q.upper(), _fmt(v.get("decode_tok_s"), 1), _fmt(v.get("ttft_s"), 3), _fmt(v.get("latency_s"), 2)]
        for q, v in _ordered(ev.get("gguf") or {})
        if isinstance(v, dict)
    ]
    if speed:
        any_v = next(v for _, v in _ordered(ev.get("gguf") or {}) if isinstance(v, dict))
        setup = ", ".join(
            f"{v} {k.replace('_', ' ')}"
            for k, v in any_v.items()
            if k in ("prompt_tokens", "new_tokens", "threads") and v is not None
        )
        lines += [
            "",
            "### Speed on CPU",
            "",
            _table(["GGUF", "decode tok/s", "time to first token (s)", "latency (s)"], speed),
        ]
        if setup:
            lines += ["", f"llama-cpp-python, median of repeats ({setup})."]
    return "\n".join(lines)


def _general_rows(g: dict) -> list[list[str]]:
    """The forgetting check's measures as rows of the evaluation table."""
    base, tuned, n = g.get("base") or {}, g.get("tuned") or {}, g.get("prompts")
    share = lambda side, k: f"{side.get(k)} of {n}" if side.get(k) is not None else ""  # noqa: E731
    count = lambda k: _int_delta(base.get(k), tuned.get(k))  # noqa: E731
    return [
        ["general prompts: stop on their own", share(base, "stopped"), share(tuned, "stopped"), count("stopped"), ""],
        ["general prompts: replies that loop", share(base, "loops"), share(tuned, "loops"), count("loops"), ""],
        [
            "general prompts: median length (tokens)",
            _fmt(base.get("median_tokens"), 0),
            _fmt(tuned.get("median_tokens"), 0),
            count("median_tokens"),
            "",
        ],
        ["general prompts: agreement with the base reply", "", _fmt(tuned.get("agreement")), "", ""],
    ]


def _general_note(g: dict) -> str:
    t = g.get("thresholds") or {}
    return (
        f"Both models answered {g.get('prompts')} general prompts outside the task (everyday questions, "
        f"instructions, short explanations) greedily, up to {g.get('max_new_tokens')} tokens. A reply loops when "
        f"at least {_fmt(t.get('loop_threshold'), 2)} of its token 4-grams repeat an earlier one; agreement is the "
        "content-word F1 overlap with the base model's reply where the base stopped without looping (a different "
        "style is not counted as broken). Kept means: stop rate at most "
        f"{_fmt(t.get('max_stop_drop'), 2)} below the base's, no more than {t.get('max_extra_loops')} extra "
        "looping replies"
        + (
            f", a median reply at least {_fmt(t['min_length_ratio'], 2)} of the base's length and agreement at "
            f"least {_fmt(t['min_agreement'], 2)}."
            if "min_length_ratio" in t and "min_agreement" in t
            else "."
        )
    )


def _mark(reply: dict, side: str) -> str:
    """What the check saw in one reply: it hit the token limit, or it loops."""
    marks = []
    if reply.get(f"{side}_stopped") is False:
        marks.append("no stop")
    if reply.get(f"{side}_loops"):
        marks.append(f"rep-4 {reply[f'{side}_rep4']:.2f}")
    return f" *({', '.join(marks)})*" if marks else ""


def _usage(f: CardFacts) -> str:
    quant, art = _preferred(f)
    filename = gguf_filename(f.name, quant)  # in the run's gguf/ and, pushed, in the repo
    system = f.get("space.system_prompt")
    examples = f.get("space.examples") or f.get("eval.prompts") or ["Hello! What can you do?"]
    messages = ([f'        {{"role": "system", "content": {_py(system)}}},'] if system else []) + [
        f'        {{"role": "user", "content": {_py(examples[0])}}},'
    ]
    if f.repo_id:
        load = f'llm = Llama.from_pretrained(repo_id="{f.repo_id}", filename="{filename}", n_ctx=2048)'
        where = f"from [{f.repo_id}](https://huggingface.co/{f.repo_id})"
    else:
        load = f'llm = Llama(model_path="gguf/{filename}", n_ctx=2048)  # in the run directory'
        where = "from the run directory"
    temp = f.settings.space_temperature
    lines = [
        "## Usage",
        "",
        f"With [llama-cpp-python](https://github.com/abetlen/llama-cpp-python) (`pip install llama-cpp-python`), "
        f"the {quant.upper()} file {where}; the GGUF carries its chat template:",
        "",
        "```python",
        "from llama_cpp import Llama",
        "",
        load,
        "reply = llm.create_chat_completion(",
        "    messages=[",
        *messages,
        "    ],",
        f"    temperature={temp},",
        ")",
        'print(reply["choices"][0]["message"]["content"])',
        "```",
    ]
    if art and art.get("modelfile"):
        modelfile = Path(art["modelfile"]).name
        lines += [
            "",
            f"With [Ollama](https://ollama.com) (LM Studio imports the same files): `{modelfile}` beside the GGUF gives "
            "it the chat template, stop tokens, system prompt and sampling the model was trained and checked with"
            + (" (download both files first)" if f.repo_id else " (in the run's `gguf/` folder)")
            + ":",
            "",
            "```bash",
            f"ollama create {f.name} -f {modelfile}",
            f"ollama run {f.name}",
            "```",
        ]
    lines += [
        "",
        "In the chat Space (a Gradio app that serves every variant built or published with iris-recipes):",
        "",
        "```bash",
        f'iris-recipes space          # then open http://127.0.0.1:7860 and pick "{f.get("space.label") or f.name}"',
        "```",
    ]
    return "\n".join(lines)


def _recipe(f: CardFacts) -> str:
    return "\n".join(
        [
            "## Reproduce",
            "",
            "```bash",
            f"iris-recipes run recipes/{f.name}.yaml",
            "```",
            "",
            f"Recipe sha256 `{f.recipe_hash}` (of the resolved recipe below; `iris-recipes show {f.name}` prints the "
            "same resolution of your checkout's recipe). To reproduce exactly, save the block as a file and run it.",
            "",
            "<details><summary>Full resolved recipe (extends, overrides and defaults applied)</summary>",
            "",
            "```yaml",
            f.recipe_yaml.rstrip("\n"),
            "```",
            "",
            "</details>",
        ]
    )


def _footer(f: CardFacts) -> str:
    versions = f.meta.get("versions") or {}
    if not versions:
        return ""
    listed = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()) if v)
    commit = f.meta.get("git_commit")
    return f"## Framework versions\n\n{listed}" + (f"\n\niris-recipes commit `{commit}`." if commit else "")


# -- helpers ------------------------------------------------------------------------------------------------------
def _ordered(by_quant: dict) -> list[tuple[str, Any]]:
    """F16 first, then quantized types from largest to smallest (by recorded size, else by name)."""
    items = [(q, v) for q, v in by_quant.items() if isinstance(v, dict)]
    return sorted(items, key=lambda kv: (kv[0] != "f16", -(kv[1].get("bytes") or 0), kv[0]))


def _preferred(f: CardFacts) -> tuple[str, dict | None]:
    for quant in (f.get("space.quant"), *PREFERRED_QUANTS, *f.gguf):
        if quant and isinstance(f.gguf.get(quant), dict) and f.gguf[quant].get("file"):
            return quant, f.gguf[quant]
    return f.settings.space_quant, None


def _source_ref(s) -> str:
    if s.hub:
        hub = f"[{s.hub}](https://huggingface.co/datasets/{s.hub})"
        return hub if s.name == s.hub.split("/")[-1].lower() else f"`{s.name}` ({hub})"
    return f"`{s.name}` (shipped in `datasets/{s.name}/`)" if s.registered else f"`{s.name}` (a local file)"


def _link(hub_id: str) -> str:
    return f"[{hub_id}](https://huggingface.co/{hub_id})"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _precision(asked, train_stage: dict) -> str | None:
    """The recipe's precision and, where it differs (auto), what the run trained in: "auto (trained in bf16)"."""
    used = train_stage.get("precision") if isinstance(train_stage, dict) else None
    if asked is None or not isinstance(used, str) or used == asked:
        return asked
    return f"{asked} (trained in {used})"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _answer(text: Any) -> str:
    """Model text in a table cell: HTML-escaped (template tokens stay visible), line breaks kept."""
    import html

    if isinstance(text, list):  # one answer per seed: show the first
        text = text[0] if text else ""
    text = html.escape(str(text if text is not None else "").strip(), quote=False)
    return text.replace("|", "&#124;").replace("\r", "").replace("\n", "<br>") or "*(empty)*"


def _quote(text: str) -> str:
    return '"' + " ".join(str(text).split()) + '"'


def _py(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)  # a valid Python string literal too


def _number(value: Any) -> float | None:
    if isinstance(value, dict):  # {"mean", "std", ...} from a multi-seed metric
        value = value.get("mean", value.get("value"))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _fmt(value: Any, digits: int = 4) -> str:
    number = _number(value)
    if number is None:
        return "" if value is None else str(value)
    text = f"{number:.{digits}f}"
    if isinstance(value, dict) and _number(value.get("std")) is not None:
        text += f" ± {value['std']:.{digits}f}"
    return text


def _delta(before: Any, after: Any) -> str:
    b, a = _number(before), _number(after)
    return "" if b is None or a is None else f"{a - b:+.4f}"


def _int_delta(before: Any, after: Any) -> str:
    b, a = _number(before), _number(after)
    return "" if b is None or a is None else f"{a - b:+g}"


def _int(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else ""


def _size(n: Any) -> str:
    if not isinstance(n, int):
        return ""
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _seconds(s: Any) -> str:
    if _number(s) is None:
        return ""
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def _cpu(export_stage: dict) -> str:
    """The machine the export stage ran on, as it recorded it."""
    return str(export_stage.get("machine") or "not recorded")
