"""The data stage: recipe `dataset:` block -> normalized `train.jsonl`, `val.jsonl` and `report.json`.

Order of work, per source: read -> map to rows of the objective's kind (data/rows.py: chat turns, preference pairs
or unpaired answers) -> check (bad rows) -> system prompt (into the first user message for a chat family without a
system turn, in chat rows and preference prompts alike) -> dedup -> min_assistant_chars -> shuffle (seed) -> take
rows up to the source's quota, dropping those longer than train.sequence_len (a pair: its longer answer). The main
source's quota is `dataset.limit`; a mix source's is weight x (main rows used), capped by its own `limit`. Then all
rows are shuffled once more and the first val_size share is held out; rows that share a prompt (the pairs of one
question) are held out together, so no prompt is on both sides.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from iris_recipes import chat_families, fsutil, objectives
from iris_recipes.data import rows as rowkind
from iris_recipes.data.cells import RowProblem
from iris_recipes.data.conversation_checks import conversation_problem
from iris_recipes.data.formats import CHAT
from iris_recipes.data.sources import Source, read_rows, resolve_source
from iris_recipes.errors import IrisError
from iris_recipes.recipe.view import DatasetView, view

MAX_LISTED = 10
REPORT_FORMAT = 1
MIX_KEY = "mix"  # rows from dataset.mix sources carry their source's name under this key

CountTokens = Callable[[list[dict]], int]


def recipe_parts(recipe) -> tuple[dict, Path]:
    """(resolved recipe dict, folder that relative dataset paths are resolved against)."""
    if hasattr(recipe, "data"):
        return recipe.data, Path(recipe.path).resolve().parent
    return recipe, Path.cwd()


def prepare(recipe, out_dir: str | Path, count_tokens: CountTokens | None = None) -> dict:
    """Write out_dir/train.jsonl, val.jsonl and report.json for `recipe` (a Recipe or its data dict)."""
    data, base_dir = recipe_parts(recipe)
    ds = data["dataset"]
    settings = view(data)
    seed = settings.dataset.seed
    blocks = [("dataset", ds)] + [(f"dataset.mix.{i}", m) for i, m in enumerate(ds.get("mix") or [])]
    sources = [resolve_source(block, key, base_dir) for key, block in blocks]
    objective = objectives.of(data)
    kind = objective.rows
    for src in sources:
        problem = objectives.row_kind_problem(objective, src.mapping.produces, f"format {src.mapping.format}")
        if problem:
            raise IrisError(f"{src.key}.format: {problem}")

    seen: set[str] = set()
    stats, pools, bad_rows = [], [], []
    family = chat_families.get(data.get("chat_template") or chat_families.TOKENIZER_DEFAULT)
    for src in sources:
        converted = {"converted": 0} if kind != CHAT else {}  # one source row may give several pairs or answers
        st = {"read": 0, "bad": 0, **converted, "duplicates": 0, "too_short": 0, "too_long": 0, "train": 0, "val": 0}
        rows = _load_clean(src, kind, settings.dataset, st, bad_rows, seen, family)
        stats.append(st)
        pools.append(rows)

    if bad_rows and settings.dataset.on_bad_rows == "fail":
        listed = "\n".join(f"  {line}" for line in bad_rows[:MAX_LISTED])
        more = f"\n  ... and {len(bad_rows) - MAX_LISTED} more" if len(bad_rows) > MAX_LISTED else ""
        raise IrisError(
            f"dataset: {len(bad_rows)} bad row(s):\n{listed}{more}\n"
            "Fix them in the data (or its column mapping), or set dataset.on_bad_rows=skip to drop them."
        )

    seq_len = settings.train.sequence_len
    chosen: list[tuple[int, dict]] = []
    tokens: dict[int, int] = {}  # id(row) -> its tokens under the chat template (the launch plan's tokens per epoch)
    for i, (src, rows, st) in enumerate(zip(sources, pools, stats)):
        random.Random(f"{seed}:{i}").shuffle(rows)
        if i == 0:
            quota = src.limit or len(rows)
        else:
            quota = round(src.weight * stats[0]["train"])
            quota = min(quota, src.limit) if src.limit else quota
        for row in rows:
            if st["train"] >= quota:
                break
            counts = [count_tokens(c) for c in rowkind.conversations(kind, row)] if count_tokens is not None else []
            if counts and max(counts) > seq_len:
                st["too_long"] += 1
                continue
            st["train"] += 1  # provisional: moved to "val" below for held-out rows
            if i:  # eval scores its task metrics on the main dataset's held-out rows only
                row = {**row, MIX_KEY: src.name}
            chosen.append((i, row))
            tokens[id(row)] = sum(counts)

    if not chosen:
        summary = "; ".join(
            f"{s.label}: " + ", ".join(f"{k} {v}" for k, v in st.items() if k not in ("train", "val"))
            for s, st in zip(sources, stats)
        )
        raise IrisError(
            f"dataset: no rows left to train on ({summary}). Check the data, dataset.min_assistant_chars "
            "and train.sequence_len."
        )

    random.Random(f"{seed}:split").shuffle(chosen)
    val_size = settings.dataset.val_size
    n = len(chosen)
    n_val = 0 if val_size <= 0 or n < 2 else min(n - 1, max(1, round(n * val_size)))
    if kind == CHAT:
        val, train = chosen[:n_val], chosen[n_val:]
    else:
        val, train = _split_by_prompt(kind, chosen, n_val)
    for i, _ in val:
        stats[i]["train"] -= 1
        stats[i]["val"] += 1

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for fname, part in (("train.jsonl", train), ("val.jsonl", val)):
        fsutil.write_text(out / fname, "".join(json.dumps(r, ensure_ascii=False) + "\n" for _, r in part))
        files[fname] = fsutil.sha256_file(out / fname)

    report = {
        "format": REPORT_FORMAT,
        "kind": kind,
        "train": len(train),
        "val": len(val),
        "train_tokens": sum(tokens[id(r)] for _, r in train) if count_tokens is not None else None,
        "seed": seed,
        "val_size": val_size,
        "sequence_len": seq_len if count_tokens is not None else None,
        "system_prompt": settings.dataset.system_prompt,
        "sources": [
            _source_info(s, ds if s.key == "dataset" else s_block, st)
            for s, st, (_, s_block) in zip(sources, stats, blocks)
        ],
        "bad_rows": bad_rows[:MAX_LISTED],
        "files": files,
    }
    if kind != CHAT:
        report["prompts"] = {
            part: len({rowkind.prompt_key(kind, r) for _, r in rows}) for part, rows in (("train", train), ("val", val))
        }
    fsutil.write_json(out / "report.json", report)
    return report


def _split_by_prompt(kind: str, rows: list[tuple[int, dict]], n_val: int):
    """(val, train): whole prompt groups are held out, in the shuffled order, until at least n_val rows are; at
    least one group stays in training."""
    groups: dict[str, int] = {}
    for _, row in rows:
        key = rowkind.prompt_key(kind, row)
        groups[key] = groups.get(key, 0) + 1
    held: set[str] = set()
    taken = 0
    for key, size in groups.items():
        if taken >= n_val or len(held) == len(groups) - 1:
            break
        held.add(key)
        taken += size
    in_val = [rowkind.prompt_key(kind, r) in held for _, r in rows]
    return [x for x, v in zip(rows, in_val) if v], [x for x, v in zip(rows, in_val) if not v]


def _load_clean(
    src: Source,
    kind: str,
    ds: DatasetView,
    st: dict,
    bad_rows: list[str],
    seen: set[str],
    family: chat_families.ChatFamily | None,
) -> list[dict]:
    rows_iter, columns = read_rows(src)
    missing = sorted(src.mapping.required_columns() - set(columns))
    if columns and missing:
        where = src.entry.file if src.entry else f"the recipe's {src.key}.columns"
        raise IrisError(
            f"{src.key}: {src.label} has no column(s) {', '.join(map(repr, missing))} "
            f"(its columns: {', '.join(columns)}); fix the mapping in {where}"
        )
    system_prompt, dedup, min_chars = ds.system_prompt, ds.dedup, ds.min_assistant_chars
    rows = []
    for number, row in rows_iter:
        st["read"] += 1
        try:
            if isinstance(row, RowProblem):
                raise row
            converted, reference = src.mapping.convert(row)
            problem = conversation_problem(converted) if kind == CHAT else None
            if problem:
                raise RowProblem(problem)
        except RowProblem as exc:
            st["bad"] += 1
            bad_rows.append(f"{src.label} row {number}: {exc}")
            continue
        for out in rowkind.build(kind, converted):
            if kind != CHAT:
                st["converted"] += 1
            if system_prompt:
                out = rowkind.with_system(kind, out, system_prompt)
            if family is not None:  # the rows are what training renders: no system turn where the family has none
                out = rowkind.fold_system(kind, out, family)
            if dedup:
                key = rowkind.duplicate_key(kind, out)
                if key in seen:
                    st["duplicates"] += 1
                    continue
                seen.add(key)
            if rowkind.shortest_answer(kind, out) < min_chars:
                st["too_short"] += 1
                continue
            rows.append({**out, **({"reference": reference} if reference else {})})
    return rows


def _source_info(src: Source, block: dict, st: dict) -> dict:
    info = {
        "key": src.key,
        "name": src.name,
        "origin": src.label,
        "source": block.get("source", "full") if src.entry else "file",
        "hub": src.entry.hub if src.entry else None,
        "license": src.license,
        "format": src.mapping.format,
    }
    if src.weight is not None:
        info["weight"] = src.weight
    return {**info, **st}


def load_split(path: str | Path) -> list[dict]:
    """Rows of a train.jsonl / val.jsonl written by `prepare` (of any kind: data/rows.py)."""
    path = Path(path)
    if not path.is_file():
        raise IrisError(f"{path}: not found; run the data stage first (iris-recipes run RECIPE)")
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise IrisError(f"{path}:{lineno}: not valid JSON ({exc.msg}); re-run the data stage") from None
            if not isinstance(row, dict):
                raise IrisError(f"{path}:{lineno}: not a row of the data stage (an object); re-run the data stage")
            kind = rowkind.kind_of(row)
            problem = rowkind.row_problem(kind, row)
            if problem:
                raise IrisError(f"{path}:{lineno}: not a {kind} row ({problem}); re-run the data stage")
            rows.append(row)
    return rows
