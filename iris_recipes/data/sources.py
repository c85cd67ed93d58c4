"""Where rows come from: resolve a recipe's source block to a file or hub dataset, and read its rows.

Rows are numbered from 1 as the source counts them: a JSONL row number is its line number, a CSV row number
counts data rows (the header is not a row), JSON arrays, Parquet files and hub splits count items.
Heavy libraries (`datasets`, `pyarrow`) are imported only when such a source is read.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from iris_recipes.data.cells import RowProblem
from iris_recipes.data.formats import Mapping, row_formats
from iris_recipes.data.registry import Entry, load_entry
from iris_recipes.errors import IrisError
from iris_recipes.fsutil import path_text_problem, resolve
from iris_recipes.hostinfo import hub_offline
from iris_recipes.paths import project_root

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


@dataclass
class Source:
    key: str  # recipe key path: "dataset" or "dataset.mix.0"
    name: str  # entry name, or the file name for an inline path
    mapping: Mapping
    file: Path | None = None  # a local file, or
    hub: dict | None = None  # {hub, split, config?, revision?, data_files?}
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
    for name in ("path", "name"):
        problem = path_text_problem(str(block.get(name) or ""))
        if problem:
            raise IrisError(f"{key}.{name}: the {name} {problem}")
    if block.get("path"):
        path = resolve(base_dir / block["path"])
        mapping = _mapping(block["format"], block.get("columns"), key)
        return Source(key, path.name, mapping, file=path, limit=block.get("limit"), weight=block.get("weight"))
    entry = load_entry(block["name"])
    src = Source(
        key,
        entry.name,
        _mapping(*entry.mapping_for(block), key),
        license=entry.license,
        limit=block.get("limit"),
        weight=block.get("weight"),
        entry=entry,
    )
    if which == "sample":
        if not entry.sample:
            raise IrisError(
                f"{key}.source: dataset '{entry.name}' ships no sample ({entry.file} has no `sample:`); "
                "use source: full"
            )
        src.file = entry.sample_path()
    elif "path" in entry.source:
        src.file = entry.full_path()
    else:
        src.hub = dict(entry.source)
    return src


def _mapping(fmt, columns, key: str) -> Mapping:
    if fmt not in row_formats():
        raise IrisError(f"{key}.format: {row_formats().unknown(fmt)}")
    return Mapping(fmt, dict(columns or {}))


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
        rows = _csv(path, src.key)
    elif suffix == ".parquet":
        rows = _parquet(path, src.key)
    else:
        raise IrisError(f"{src.key}: {path}: unsupported file type '{suffix}'; use one of {', '.join(SUFFIXES)}")
    columns: dict[str, None] = {}
    for _, row in rows:
        if isinstance(row, dict):
            columns.update(dict.fromkeys(row))
    return iter(rows), list(columns)


# -- JSON ----------------------------------------------------------------------------------------------------------
MAX_ROW_DEPTH = 32  # nesting inside one row; a chat row is 3 levels deep
MAX_INT_DIGITS = 40  # longer integers are not data a chat row needs (Python refuses 4,300+ digits)


class _LongInteger(str):
    """An integer literal too long to be a number a row can use; kept as text so the row can be reported."""


def _parse_int(text: str):
    return int(text) if len(text.lstrip("-")) <= MAX_INT_DIGITS else _LongInteger(text)


def _loads(text: str):
    return json.loads(text, parse_int=_parse_int)


def json_row_problem(row) -> str | None:
    """Why a parsed JSON row cannot be used whatever the mapping (too deep, an absurd integer), or None."""
    stack = [(row, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, _LongInteger):
            return f"holds an integer of {len(value)} digits"
        if isinstance(value, (dict, list)):
            if depth > MAX_ROW_DEPTH:
                return f"is nested deeper than {MAX_ROW_DEPTH} levels"
            items = value.values() if isinstance(value, dict) else value
            stack.extend((v, depth + 1) for v in items)
    return None


def _json_value(text: str):
    """A row parsed from JSON text, or a RowProblem saying why it cannot be used."""
    try:
        row = _loads(text)
    except json.JSONDecodeError as exc:
        return RowProblem(f"not valid JSON ({exc.msg} at column {exc.colno})")
    except RecursionError:
        return RowProblem(f"is nested deeper than {MAX_ROW_DEPTH} levels")
    problem = json_row_problem(row)
    return RowProblem(problem) if problem else row


def _jsonl(path: Path):
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield lineno, RowProblem(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})")
                continue
            if line.strip():
                yield lineno, _json_value(line.rstrip("\r\n"))


def _decode(path: Path, key: str) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise IrisError(
            f"{key}: {path}:{line}:{col}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        ) from None


def _json(path: Path, key: str):
    text = _decode(path, key)
    try:
        data = _loads(text)
    except json.JSONDecodeError as exc:
        raise IrisError(f"{key}: {path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    except RecursionError:
        raise IrisError(f"{key}: {path}: nested too deeply to read (rows are a few levels deep)") from None
    if not isinstance(data, list):
        raise IrisError(f"{key}: {path}: a .json source must be a list of rows (use .jsonl for one row per line)")
    return [(i, RowProblem(p) if (p := json_row_problem(row)) else row) for i, row in enumerate(data, 1)]


# -- CSV -----------------------------------------------------------------------------------------------------------
MAX_CSV_CELL = 128 * 1024  # Python's csv default; a longer cell is nearly always a quote that never closes


def _csv(path: Path, key: str):
    """Rows of a CSV file with a header. A structural problem (a quote that never closes, which would swallow the
    rows after it) fails the file at the line where its row starts; a row with more or fewer cells than the header
    is a bad row."""
    text = _decode(path, key)
    limit = csv.field_size_limit()
    csv.field_size_limit(MAX_CSV_CELL)
    try:
        return list(_csv_rows(text, path, key))
    finally:
        csv.field_size_limit(limit)


def _csv_rows(text: str, path: Path, key: str):
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header, number, start = None, 0, 1
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            where = f"{key}: {path}:{start}: " + (f"row {number + 1}: " if header is not None else "header: ")
            reason = str(exc)
            if "field larger than field limit" in reason:
                reason = (
                    f'a cell is longer than {MAX_CSV_CELL // 1024} KiB, usually a quote (") that is never '
                    "closed, so the cell swallows the rows after it"
                )
            elif "unexpected end of data" in reason:
                reason = 'a quote (") opened in this row is never closed, so it swallows the rows after it'
            elif "expected after" in reason:
                reason = f'{reason}: a quote inside a quoted cell must be doubled ("")'
            raise IrisError(f"{where}{reason}. Fix the quoting (or use .jsonl).") from None
        if not cells:  # a blank line
            continue
        if header is None:
            header = cells
            continue
        number += 1
        if len(cells) != len(header):
            lines = f"lines {start}-{reader.line_num}" if reader.line_num > start else f"line {start}"
            yield number, RowProblem(f"has {len(cells)} cells but the header has {len(header)} ({lines})")
            continue
        yield number, {k: (v if v != "" else None) for k, v in zip(header, cells)}


def _parquet(path: Path, key: str):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise IrisError(f"{key}: reading {path.name} needs pyarrow: pip install 'iris-recipes[train]'") from None
    import pyarrow

    try:
        table = pq.read_table(path)
    except (pyarrow.ArrowException, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise IrisError(
            f"{key}: {path}: not a readable Parquet file ({reason}); write it again or use .jsonl"
        ) from None
    return list(enumerate(table.to_pylist(), 1))


def _read_hub(src: Source):
    spec = src.hub
    what = f"dataset '{src.name}' ({spec['hub']}, split {spec['split']})"
    advice = (
        f"use the shipped sample (dataset.source=sample), or download it where there is network and point "
        f"dataset.path at a local .jsonl/.csv/.parquet copy (with format: {src.mapping.format} and its columns)"
    )
    try:
        import datasets
    except ImportError:
        raise IrisError(
            f"{src.key}: loading {what} needs the `datasets` library: pip install 'iris-recipes[train]'; or {advice}"
        ) from None
    kwargs = {k: spec[k] for k in ("revision", "data_files") if spec.get(k)}
    try:
        ds = datasets.load_dataset(spec["hub"], spec.get("config"), split=spec["split"], **kwargs)
    except Exception as exc:  # offline, missing, gated, renamed: all mean "not available here"
        offline = (
            " Hugging Face offline mode is on (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE) and it is not cached."
            if hub_offline(datasets=True)
            else ""
        )
        reason = str(exc).strip().splitlines()[0][:300].rstrip(".") if str(exc).strip() else ""
        reason = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
        raise IrisError(
            f"{src.key}: cannot load {what} from the Hugging Face Hub ({reason}).{offline}\n"
            f"To train without it: {advice}."
        ) from None
    return ((i, row) for i, row in enumerate(ds, 1)), list(ds.column_names)
