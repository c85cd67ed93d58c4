"""Where rows come from: resolve a recipe's source block to a file or hub dataset, and read its rows.

Rows are numbered from 1 as the source counts them: a JSONL row number is its line number, a CSV row number
counts data rows (the header is not a row), JSON arrays, Parquet files and hub splits count items.
Heavy libraries (`datasets`, `pyarrow`) are imported only when such a source is read.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from iris_recipes.data.formats import Mapping, RowProblem
from iris_recipes.data.registry import Entry, load_entry
from iris_recipes.errors import IrisError
from iris_recipes.paths import project_root

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


@dataclass
class Source:
    key: str                  # recipe key path: "dataset" or "dataset.mix.0"
    name: str                 # entry name, or the file name for an inline path
    mapping: Mapping
    file: Path | None = None  # a local file, or
    hub: dict | None = None   # {hub, split, config?, revision?, data_files?}
    license: str | None = None
    limit: int | None = None
    weight: float | None = None
    entry: Entry | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """How messages name this source: a path (relative to the project when inside it) or hub id + split."""
        if self.file is not None:
            try:
                return str(self.file.relative_to(project_root()))
            except ValueError:
                return str(self.file)
        return f"{self.hub['hub']} (hub, split {self.hub['split']})"


def resolve_source(block: dict, key: str, base_dir: Path) -> Source:
    """A recipe's `dataset` or `dataset.mix[i]` block -> Source (no data read yet)."""
    which = block.get("source", "full")
    if block.get("path"):
        path = (base_dir / block["path"]).resolve()
        mapping = Mapping(block["format"], dict(block.get("columns") or {}))
        return Source(key, path.name, mapping, file=path, limit=block.get("limit"), weight=block.get("weight"))
    entry = load_entry(block["name"])
    fmt = block.get("format", entry.format)
    if "columns" in block:  # a recipe may adjust the entry's mapping: same format merges, another replaces
        columns = {**entry.columns, **block["columns"]} if fmt == entry.format else dict(block["columns"])
    else:
        columns = dict(entry.columns) if fmt == entry.format else {}
    src = Source(key, entry.name, Mapping(fmt, columns), license=entry.license, limit=block.get("limit"),
                 weight=block.get("weight"), entry=entry)
    if which == "sample":
        if not entry.sample:
            raise IrisError(f"{key}.source: dataset '{entry.name}' ships no sample ({entry.file} has no `sample:`); "
                            "use source: full")
        src.file = entry.sample_path()
    elif "path" in entry.source:
        src.file = entry.full_path()
    else:
        src.hub = dict(entry.source)
    return src


def read_rows(src: Source) -> tuple[Iterator[tuple[int, object]], list[str]]:
    """(iterator of (row number, row dict or RowProblem), column names)."""
    if src.file is not None:
        return _read_file(src)
    return _read_hub(src)


def _read_file(src: Source):
    path = src.file
    if not path.is_file():
        hint = ""
        if src.entry is not None and src.file == src.entry.full_path():
            hint = " (build it with the command in datasets/README.md, or use dataset.source=sample)"
        raise IrisError(f"{src.key}: data file not found: {path}{hint}")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = list(_jsonl(path))
    elif suffix == ".json":
        rows = _json(path, src.key)
    elif suffix == ".csv":
        rows = _csv(path)
    elif suffix == ".parquet":
        rows = _parquet(path, src.key)
    else:
        raise IrisError(f"{src.key}: {path}: unsupported file type '{suffix}'; use one of {', '.join(SUFFIXES)}")
    columns: dict[str, None] = {}
    for _, row in rows:
        if isinstance(row, dict):
            columns.update(dict.fromkeys(row))
    return iter(rows), list(columns)


def _jsonl(path: Path):
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                yield lineno, RowProblem(f"not valid JSON ({exc.msg} at column {exc.colno})")


def _json(path: Path, key: str):
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise IrisError(f"{key}: {path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    if not isinstance(data, list):
        raise IrisError(f"{key}: {path}: a .json source must be a list of rows (use .jsonl for one row per line)")
    return list(enumerate(data, 1))


def _csv(path: Path):
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        return [(i, {k: (v if v != "" else None) for k, v in row.items() if k is not None})
                for i, row in enumerate(reader, 1)]


def _parquet(path: Path, key: str):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise IrisError(f"{key}: reading {path.name} needs pyarrow: pip install 'iris-recipes[train]'") from None
    return list(enumerate(pq.read_table(path).to_pylist(), 1))


def hub_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _read_hub(src: Source):
    spec = src.hub
    what = f"dataset '{src.name}' ({spec['hub']}, split {spec['split']})"
    advice = (f"use the shipped sample (dataset.source=sample), or download it where there is network and point "
              f"dataset.path at a local .jsonl/.csv/.parquet copy (with format: {src.mapping.format} and its columns)")
    try:
        import datasets
    except ImportError:
        raise IrisError(f"{src.key}: loading {what} needs the `datasets` library: pip install 'iris-recipes[train]'; "
                        f"or {advice}") from None
    kwargs = {k: spec[k] for k in ("revision", "data_files") if spec.get(k)}
    try:
        ds = datasets.load_dataset(spec["hub"], spec.get("config"), split=spec["split"], **kwargs)
    except Exception as exc:  # offline, missing, gated, renamed: all mean "not available here"
        offline = " Hugging Face offline mode is on (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE) and it is not cached." \
            if hub_offline() else ""
        reason = str(exc).strip().splitlines()[0][:300].rstrip(".") if str(exc).strip() else ""
        reason = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
        raise IrisError(f"{src.key}: cannot load {what} from the Hugging Face Hub ({reason}).{offline}\n"
                        f"To train without it: {advice}.") from None
    return ((i, row) for i, row in enumerate(ds, 1)), list(ds.column_names)
