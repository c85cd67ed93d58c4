"""`iris-recipes compare`: the eval.json metrics of several runs side by side, flagging real differences.

A difference between two runs counts as real (marked `*`) when it exceeds the run-to-run noise of that metric:
the larger of the two runs' spreads of the metric over their seeded sampled answers (eval.json `noise`).
Validation loss and perplexity are deterministic for a given model and have no seed spread, so they are shown
with their differences but never marked; nor are the forgetting check's rows (greedy, no seed spread).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from iris_recipes import fsutil
from iris_recipes.errors import IrisError
from iris_recipes.locate import NEWEST_DONE, find_run
from iris_recipes.rundir import RunDir

MARK = "*"
IGNORED_KEYS = ("name", "description")  # recipe keys that differ between variants without changing the model


@dataclass
class ComparedRun:
    run: RunDir
    label: str
    eval: dict
    recipe: dict


def load_entry(run: RunDir) -> ComparedRun:
    ev_path = run.file("eval.json")
    if not ev_path.is_file():
        raise IrisError(f"{run.path}: not evaluated yet (no eval.json). Run `iris-recipes eval {run.path}` first.")
    redo = f"re-run `iris-recipes eval {run.path}`"
    try:
        ev = json.loads(ev_path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise IrisError(f"{ev_path}: not UTF-8 text (byte offset {exc.start}); {redo}.") from None
    except json.JSONDecodeError as exc:
        raise IrisError(f"{ev_path}:{exc.lineno}: not valid JSON ({exc.msg}); {redo}.") from None
    except ValueError:  # Python refuses integers of more than 4300 digits
        raise IrisError(f"{ev_path}: holds a number of thousands of digits; {redo}.") from None
    problem = eval_problem(ev)
    if problem:
        raise IrisError(f"{ev_path}: {problem}; {redo}.")
    import yaml

    recipe_path = run.file("recipe.yaml")
    try:
        recipe = yaml.safe_load(recipe_path.read_text(encoding="utf-8")) if recipe_path.is_file() else {}
    except (UnicodeDecodeError, yaml.YAMLError):
        raise IrisError(f"{recipe_path}: not a readable recipe; the run directory is damaged.") from None
    return ComparedRun(run, f"{run.path.parent.name}/{run.path.name}", ev, recipe if isinstance(recipe, dict) else {})


# The sections of eval.json this module reads, each an object when present (null counts as absent); the tables
# below trust these shapes, so an eval.json is checked once, here.
EVAL_SECTIONS = ("base", "tuned", "noise", "forgetting", "gguf")
EVAL_SUBSECTIONS = {"base": ("metrics",), "tuned": ("metrics",), "forgetting": ("base", "tuned")}


def eval_problem(ev) -> str | None:
    """What is wrong with the shape of a parsed eval.json, or None."""
    if not isinstance(ev, dict):
        return "eval.json must hold an object (base, tuned, noise, ...)"
    for key in EVAL_SECTIONS:
        section = ev.get(key)
        if section is not None and not isinstance(section, dict):
            return f"key '{key}' must be an object, not {json.dumps(section)[:40]}"
        for sub in EVAL_SUBSECTIONS.get(key, ()):
            value = (section or {}).get(sub)
            if value is not None and not isinstance(value, dict):
                return f"key '{key}.{sub}' must be an object, not {json.dumps(value)[:40]}"
    for quant, value in (ev.get("gguf") or {}).items():
        if value is not None and not isinstance(value, dict):
            return f"key 'gguf.{quant}' must be an object, not {json.dumps(value)[:40]}"
    return None


def check_loss_methods(entries: list[ComparedRun]) -> None:
    """Validation losses measured in different ways are not comparable: refuse, naming the runs to evaluate again."""
    from iris_recipes.evaluate.loss import LOSS_METHOD

    def method(e: ComparedRun) -> object:
        return e.eval.get("loss_method", 1)  # eval.json files from before the key measured with method 1

    if len({json.dumps(method(e)) for e in entries}) <= 1:
        return
    old = [e for e in entries if method(e) != LOSS_METHOD]
    raise IrisError(
        "compare: these runs measured their validation loss in different ways ("
        + ", ".join(f"{e.label}: method {method(e)}" for e in entries)
        + f"), so their losses are not comparable. Evaluate the older ones again with this version (method "
        f"{LOSS_METHOD}, the loss on exactly the tokens and labels training uses): "
        + "; ".join(f"`iris-recipes eval {e.run.path}`" for e in old)
    )


def _flatten(data, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = data
    return out


def differing_keys(entries: list[ComparedRun]) -> dict[str, list]:
    """Recipe keys whose value is not the same in every run: what the comparison is about."""
    flat = [_flatten(e.recipe) for e in entries]
    keys = sorted(set().union(*flat)) if flat else []
    return {
        k: [f.get(k) for f in flat]
        for k in keys
        if k.split(".")[0] not in IGNORED_KEYS and len({json.dumps(f.get(k), default=str) for f in flat}) > 1
    }


GENERAL = (
    ("general: stops on its own", "stop_rate"),
    ("general: replies that loop", "loops"),
    ("general: median tokens", "median_tokens"),
    ("general: agreement with base", "agreement"),
)


def _general(ev: dict, side: str, key: str):
    return ((ev.get("forgetting") or {}).get(side) or {}).get(key)


def _rows(entries: list[ComparedRun]) -> list[tuple[str, object, list]]:
    """(measure, base value of the first run, fine-tuned value per run) rows."""
    first = entries[0].eval.get("base") or {}
    rows = [
        (key, first.get(key), [(e.eval.get("tuned") or {}).get(key) for e in entries])
        for key in ("val_loss", "perplexity")
    ]
    names = list(dict.fromkeys(n for e in entries for n in ((e.eval.get("tuned") or {}).get("metrics") or {})))
    rows += [
        (
            n,
            (first.get("metrics") or {}).get(n),
            [((e.eval.get("tuned") or {}).get("metrics") or {}).get(n) for e in entries],
        )
        for n in names
    ]
    if any(e.eval.get("forgetting") for e in entries):
        ev0 = entries[0].eval
        rows += [
            (label, _general(ev0, "base", key), [_general(e.eval, "tuned", key) for e in entries])
            for label, key in GENERAL
        ]
        rows.append(("general behaviour", None, [_verdict(e.eval) for e in entries]))
    quants = list(dict.fromkeys(q for e in entries for q in (e.eval.get("gguf") or {})))
    rows += [
        (f"{q} decode tok/s", None, [((e.eval.get("gguf") or {}).get(q) or {}).get("decode_tok_s") for e in entries])
        for q in quants
    ]
    return rows


def _verdict(ev: dict) -> str | None:
    f = ev.get("forgetting")
    return None if not f else ("kept" if f.get("kept") else f.get("verdict", "degraded"))


def _number(value) -> float | None:
    """A metric value as a float, None when it is no number a float holds (JSON integers have no bound)."""
    try:
        return float(value) if isinstance(value, (int, float)) else None
    except OverflowError:
        return None


def _noise(entry: ComparedRun, measure: str) -> float | None:
    return _number((entry.eval.get("noise") or {}).get(measure))


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def table(entries: list[ComparedRun]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: base of the first run, then each run's value with its change from the first run."""
    header = ["measure", f"base ({entries[0].label})", *(e.label for e in entries)]
    out = []
    for measure, b, values in _rows(entries):
        row = [measure, _fmt(b) if b is not None else "-", _fmt(values[0])]
        ref = _number(values[0])
        for e, v in zip(entries[1:], values[1:]):
            cell = _fmt(v)
            if _number(v) is not None and ref is not None:
                delta = _number(v) - ref
                noises = [n for n in (_noise(entries[0], measure), _noise(e, measure)) if n is not None]
                real = bool(noises) and abs(delta) > max(noises)
                cell += f" ({delta:+.4g}{' ' + MARK if real else ''})"
            row.append(cell)
        out.append(row)
    noise_row = [
        "noise (seed spread)",
        "",
        *(", ".join(f"{k} {_fmt(v)}" for k, v in (e.eval.get("noise") or {}).items()) or "-" for e in entries),
    ]
    out.append(noise_row)
    return header, out


def markdown(entries: list[ComparedRun]) -> str:
    header, rows = table(entries)
    lines = [f"# Comparison of {len(entries)} runs", ""]
    diffs = differing_keys(entries)
    if diffs:
        lines += [
            "What differs between the runs:",
            "",
            "| key | " + " | ".join(e.label for e in entries) + " |",
            "|---" * (len(entries) + 1) + "|",
        ]
        lines += [f"| `{k}` | " + " | ".join(_fmt(v) for v in vals) + " |" for k, vals in diffs.items()]
        lines.append("")
    lines += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    lines += [
        "",
        f"Values are the fine-tuned models' (greedy answers on each run's held-out rows). In brackets: the "
        f"change from the first run; `{MARK}` marks a change larger than the run-to-run noise (the spread of "
        "the metric over seeded sampled answers, the larger of the two runs'). Loss and perplexity have no "
        "seed noise and are never marked. The general rows are the forgetting check (greedy replies to "
        "general prompts outside the task): the share that stop on their own, how many loop, their median "
        "length and their word overlap with the base model's replies; `general behaviour` is its verdict.",
        "",
    ]
    return "\n".join(lines)


def print_table(entries: list[ComparedRun], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    diffs = differing_keys(entries)
    if diffs:
        t = Table(title="what differs")
        t.add_column("key")
        for e in entries:
            t.add_column(e.label)
        for k, vals in diffs.items():
            t.add_row(k, *(_fmt(v) for v in vals))
        console.print(t)
    header, rows = table(entries)
    t = Table(title=f"comparison ({MARK}: change beyond seed noise)")
    for h in header:
        t.add_column(h)
    for row in rows:
        t.add_row(*row)
    console.print(t)


def compare(args: list[str], output: str | Path | None = None, console=None) -> tuple[list[ComparedRun], Path]:
    """Resolve, load (all checked before printing), print and write the Markdown comparison; returns its path."""
    from iris_recipes.paths import runs_dir
    from iris_recipes.rundir import new_run_id

    if not args:
        raise IrisError("compare: give at least one run directory or recipe name")
    entries = [load_entry(find_run(a, NEWEST_DONE)) for a in args]
    check_loss_methods(entries)
    dest = Path(output) if output else runs_dir() / "comparisons" / f"compare-{new_run_id()}.md"
    print_table(entries, console)
    fsutil.write_text(dest, markdown(entries))
    return entries, dest
