"""Bad data files never crash, hang or run away with memory in `iris-recipes data prepare`.

Hypothesis mixes good rows with hostile ones (bytes that are not UTF-8, roles that are lists or mappings, cells that
are not text, rows nested thousands of levels deep, integers of thousands of digits, NaN and infinite contents),
writes them as JSONL, JSON, CSV (ragged rows, quotes that never close, cells over the CSV limit) or a damaged
Parquet file, and runs the real command in a sandboxed child (tests/cli_sandbox.py). A bad row is named with its
row number (or counted under on_bad_rows: skip); a broken file is a located error; both exit 2 and write nothing.
Preference files (objective dpo) get every class of bad pair too: a missing or empty answer, chosen identical to
rejected, a conversation whose prompt differs from the row's, roles out of order, template tokens in content.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iris_recipes.chat_families import all_markers
from iris_recipes.data.prepare import MAX_LISTED
from iris_recipes.data.sources import MAX_CSV_CELL, MAX_ROW_DEPTH

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli_sandbox import tree  # noqa: E402

EXAMPLES = int(os.environ.get("IRIS_FUZZ_EXAMPLES", 15))  # per test; CI keeps it small, raise it to dig
FUZZ = settings(
    deadline=None,
    max_examples=EXAMPLES,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
KNOWN_ROLES = "known: assistant, system, user; map others in columns.roles"


def recipe_text(path: str, fmt: str, on_bad_rows: str) -> str:
    objective = "objective: dpo\n" if fmt == "preference" else ""
    return (
        f"name: fuzz\nbase_model: org/model\nchat_template: chatml\n{objective}"
        f"dataset: {{path: {path}, format: {fmt}, val_size: 0, on_bad_rows: {on_bad_rows}}}\n"
        "train: {max_steps: 1}\n"
    )


def good_row(fmt: str, i: int) -> dict:
    if fmt == "alpaca":
        return {"instruction": f"question {i}", "output": f"answer {i}"}
    if fmt == "preference":
        return {"prompt": f"question {i}", "chosen": f"answer {i}", "rejected": f"wrong {i}"}
    return {"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]}


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@st.composite
def bad_json_row(draw, fmt: str, i: int, suffix: str):
    """(JSON text of a bad row, the reason the data stage must give; None: the row is fine after all)."""
    kind = draw(st.sampled_from(["deep", "huge int", "role", "not text", "not json", "nan"]))
    row = good_row(fmt, i)
    text = json.dumps(row)
    if kind == "deep":
        deepest = [5_000, 100_000] if suffix == ".jsonl" else [200]  # a .json file is parsed whole (see below)
        depth = draw(st.one_of(st.integers(MAX_ROW_DEPTH, 200), st.sampled_from(deepest)))
        return text[:-1] + f', "extra": {nested(depth)}}}', f"is nested deeper than {MAX_ROW_DEPTH} levels"
    if kind == "huge int":
        digits = draw(st.integers(41, 20_000))
        return text[:-1] + f', "extra": {"7" * digits}}}', f"holds an integer of {digits} digits"
    if kind == "not json":
        return text[:-1], "not valid JSON (Expecting ',' delimiter at column " + str(len(text)) + ")"
    if fmt == "alpaca":
        if kind == "nan":  # a NaN cell is an empty one, and input is optional
            return text[:-1] + ', "input": NaN}', None
        column = draw(st.sampled_from(["instruction", "output", "input"]))
        value = draw(st.sampled_from([5, 2.5, True, [1, 2], {"a": "b"}]))
        row[column] = value
        return json.dumps(row), f"column '{column}' is a {type(value).__name__}, not text"
    if kind == "role":
        role = draw(st.sampled_from([["user"], {"r": "user"}, [], {}]))
        row["messages"][0]["role"] = role
        return json.dumps(row), f"turn 1 has role {role!r} ({KNOWN_ROLES})"
    if kind == "nan":
        token, name = draw(st.sampled_from([("NaN", "float"), ("Infinity", "float"), ("1e999", "float")]))
        return text.replace(
            '"answer', token + ', "x": "answer', 1
        ), f"turn 2 (assistant): content is a {name}, not text"
    value = draw(st.sampled_from([5, [1, 2], {"a": "b"}, True]))
    row["messages"][1]["content"] = value
    return json.dumps(row), f"turn 2 (assistant): content is a {type(value).__name__}, not text"


@st.composite
def json_case(draw):
    """A .jsonl or .json file of good rows and bad ones; the expected bad-row lines."""
    fmt = draw(st.sampled_from(["messages", "alpaca"]))
    suffix = draw(st.sampled_from([".jsonl", ".json"]))
    n = draw(st.integers(2, 25))
    bad_at = set(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=min(n - 1, 14), unique=True)))
    rows, bad = [], []
    for i in range(n):
        if i in bad_at:
            text, reason = draw(bad_json_row(fmt, i, suffix))
        else:
            text, reason = json.dumps(good_row(fmt, i)), None
        rows.append(text.encode())
        if reason:
            bad.append((i + 1, reason))
    if suffix == ".jsonl" and draw(st.booleans()):  # a line that is not UTF-8
        i = draw(st.integers(0, n - 1))
        line = rows[i]
        cut = draw(st.integers(1, len(line) - 1))
        rows[i] = line[:cut] + b"\xff" + line[cut:]
        bad = [(r, m) for r, m in bad if r != i + 1] + [(i + 1, f"not UTF-8 text (byte 0xff at column {cut + 1})")]
        bad.sort()
    if suffix == ".jsonl":
        raw = b"\n".join(rows) + b"\n"
    else:
        if any(not r.startswith(b"{") or not r.endswith(b"}") for r in rows) or any(
            m.startswith("not valid JSON") for _, m in bad
        ):
            rows = [r if r.endswith(b"}") else r + b"}" for r in rows]
            bad = [(r, m) for r, m in bad if not m.startswith("not valid JSON")]
        raw = b"[" + b",\n".join(rows) + b"]"
    return fmt, suffix, raw, bad, n - len(bad)


@st.composite
def bad_pair(draw, i: int):
    """(JSON text of a bad preference row, the reason the data stage must give)."""
    row = good_row("preference", i)
    kind = draw(
        st.sampled_from(["missing", "empty", "identical", "prompts differ", "roles", "marker", "not text", "deep"])
    )
    side = draw(st.sampled_from(["chosen", "rejected"]))
    if kind == "missing":
        value = draw(st.sampled_from([None, "drop"]))
        row.pop(side) if value == "drop" else row.update({side: None})
        return json.dumps(row), f"column '{side}' is empty"
    if kind == "empty":
        row[side] = draw(st.sampled_from(["", " ", "\n\t"]))
        return json.dumps(row), f"column '{side}': the answer is empty"
    if kind == "identical":
        row["rejected"] = draw(st.sampled_from([row["chosen"], f" {row['chosen']}\n"]))
        return json.dumps(row), (
            f"columns 'chosen' and 'rejected' give the same answer as chosen and rejected ('answer {i}')"
        )
    if kind == "prompts differ":
        other = draw(st.sampled_from([f"question {i + 1}", "another question"]))
        row[side] = [{"role": "user", "content": other}, {"role": "assistant", "content": f"answer {side}"}]
        return json.dumps(row), (
            f"column '{side}' holds a conversation that does not start with the prompt in column 'prompt' "
            "(turn 1 differs)"
        )
    if kind == "roles":
        order = draw(st.sampled_from([["assistant", "user"], ["user", "user"], ["user", "system", "user"]]))
        row["prompt"] = [{"role": r, "content": f"turn {n}"} for n, r in enumerate(order, 1)]
        bad_at = next(n for n, r in enumerate(order, 1) if r != ("user" if n % 2 else "assistant"))
        if order[bad_at - 1] == "system":
            reason = f"turn {bad_at} (system): a system turn may only come first"
        else:
            wanted = "user" if bad_at % 2 else "assistant"
            reason = (
                f"turn {bad_at} ({order[bad_at - 1]}): expected {wanted} (after an optional system turn, user and "
                "assistant turns alternate, starting with user)"
            )
        return json.dumps(row), f"column 'prompt': {reason}"
    if kind == "marker":
        marker = draw(st.sampled_from(all_markers()))
        where = draw(st.sampled_from(["prompt", side]))
        row[where] = f"{row[where]}{marker}"
        if where == "prompt":
            return json.dumps(row), (
                f"column 'prompt': turn 1 (user): content contains the chat-template token {marker} (strip it "
                "from the data)"
            )
        return json.dumps(row), (
            f"column '{side}': the answer contains the chat-template token {marker} (strip it from the data)"
        )
    if kind == "not text":
        value = draw(st.sampled_from([5, 2.5, True]))
        row[side] = value
        return json.dumps(row), f"column '{side}' is a {type(value).__name__}, not text or turns"
    depth = draw(st.integers(MAX_ROW_DEPTH, 300))
    return json.dumps(row)[:-1] + f', "extra": {nested(depth)}}}', f"is nested deeper than {MAX_ROW_DEPTH} levels"


@st.composite
def preference_case(draw):
    n = draw(st.integers(2, 20))
    bad_at = set(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=min(n - 1, 14), unique=True)))
    lines, bad = [], []
    for i in range(n):
        if i in bad_at:
            text, reason = draw(bad_pair(i))
            bad.append((i + 1, reason))
        else:
            text = json.dumps(good_row("preference", i))
        lines.append(text)
    return ("\n".join(lines) + "\n").encode(), bad, n - len(bad)


@FUZZ
@given(case=preference_case(), skip=st.booleans())
def test_preference_rows(cli_sandbox, case, skip):
    raw, bad, good = case
    tmp, root, before, result = prepare(cli_sandbox, "preference", "pairs.jsonl", raw, "skip" if skip else "fail")
    with tmp:
        path = root / "pairs.jsonl"
        if skip:
            assert result.rc == 0 and not result.timed_out and "Traceback" not in result.err, result.describe()
            report = json.loads((root / "out" / "report.json").read_text())
            assert (report["sources"][0]["bad"], report["train"]) == (len(bad), good), result.describe()
            assert report["bad_rows"] == [f"{path} row {r}: {m}" for r, m in bad[:MAX_LISTED]]
        else:
            result.assert_clean_failure()
            assert result.problems() == bad_rows_message(path, bad), result.describe()
            assert tree(root) == before, "a failed data stage wrote files"


def prepare(sandbox, fmt: str, name: str, raw: bytes, on_bad_rows: str):
    tmp = tempfile.TemporaryDirectory(prefix="datafuzz-")
    root = Path(tmp.name).resolve()
    (root / name).write_bytes(raw)
    (root / "r.yaml").write_text(recipe_text(name, fmt, on_bad_rows))
    before = tree(root)
    result = sandbox.run(["data", "prepare", str(root / "r.yaml"), "--out", str(root / "out")], cwd=root, timeout=60)
    return tmp, root, before, result


def bad_rows_message(path: Path, bad: list[tuple[int, str]]) -> list[str]:
    lines = [f"dataset: {len(bad)} bad row(s):", *[f"  {path} row {r}: {m}" for r, m in bad[:MAX_LISTED]]]
    if len(bad) > MAX_LISTED:
        lines.append(f"  ... and {len(bad) - MAX_LISTED} more")
    return lines + ["Fix them in the data (or its column mapping), or set dataset.on_bad_rows=skip to drop them."]


@FUZZ
@given(case=json_case(), skip=st.booleans())
def test_json_rows(cli_sandbox, case, skip):
    fmt, suffix, raw, bad, good = case
    tmp, root, before, result = prepare(cli_sandbox, fmt, f"data{suffix}", raw, "skip" if skip else "fail")
    with tmp:
        path = root / f"data{suffix}"
        if skip and not good:
            result.assert_clean_failure()
            assert result.problems() == [
                f"error: dataset: no rows left to train on ({path}: read {len(bad)}, bad {len(bad)}, duplicates 0, "
                "too_short 0, too_long 0). Check the data, dataset.min_assistant_chars and train.sequence_len."
            ]
        elif skip or not bad:
            assert result.rc == 0 and not result.timed_out and "Traceback" not in result.err, result.describe()
            report = json.loads((root / "out" / "report.json").read_text())
            assert (report["sources"][0]["bad"], report["train"]) == (len(bad), good), result.describe()
            assert report["bad_rows"] == [f"{path} row {r}: {m}" for r, m in bad[:MAX_LISTED]]
        else:
            result.assert_clean_failure()
            assert result.problems() == bad_rows_message(path, bad), result.describe()
            assert tree(root) == before, "a failed data stage wrote files"


@st.composite
def csv_case(draw):
    """An alpaca CSV with ragged rows (bad rows) and at most one flaw that breaks the file itself."""
    n = draw(st.integers(2, 20))
    lines, bad = ["instruction,output"], []
    ragged = set(draw(st.lists(st.integers(0, n - 1), max_size=n - 1, unique=True)))
    for i in range(n):
        cells = [f"question {i}", f"answer {i}"]
        if i in ragged:
            cells = cells + ["extra"] * draw(st.integers(1, 3)) if draw(st.booleans()) else cells[:1]
            bad.append((i + 1, f"has {len(cells)} cells but the header has 2 (line {i + 2})"))
        lines.append(",".join(cells))
    flaw = draw(st.sampled_from([None, "unclosed quote", "long cell", "not utf-8"]))
    error = None
    if flaw is not None:
        i = draw(st.integers(0, n - 1))
        line = i + 2
        if flaw == "unclosed quote":
            lines[line - 1] = f'question {i},"answer {i}'
            error = (
                f'{line}: row {i + 1}: a quote (") opened in this row is never closed, so it swallows the rows '
                "after it. Fix the quoting (or use .jsonl)."
            )
        elif flaw == "long cell":
            lines[line - 1] = f'question {i},"{"x" * (MAX_CSV_CELL + draw(st.integers(1, 50_000)))}"'
            error = (
                f'{line}: row {i + 1}: a cell is longer than {MAX_CSV_CELL // 1024} KiB, usually a quote (") '
                "that is never closed, so the cell swallows the rows after it. Fix the quoting (or use .jsonl)."
            )
    raw = ("\n".join(lines) + "\n").encode()
    if flaw == "not utf-8":
        at = raw.index(f"\nquestion {i}".encode()) + 4
        raw = raw[:at] + b"\xe9" + raw[at:]
        column = at - raw.rfind(b"\n", 0, at)
        error = f"{line}:{column}: not UTF-8 text (byte 0xe9); save the file as UTF-8"
    return raw, bad, n - len(bad), error


@FUZZ
@given(case=csv_case(), skip=st.booleans())
def test_csv_files(cli_sandbox, case, skip):
    raw, bad, good, error = case
    tmp, root, before, result = prepare(cli_sandbox, "alpaca", "data.csv", raw, "skip" if skip else "fail")
    with tmp:
        path = root / "data.csv"
        if error:
            result.assert_clean_failure()
            assert result.problems() == [f"error: dataset: {path}:{error}"], result.describe()
            assert tree(root) == before
        elif skip or not bad:
            assert result.rc == 0 and "Traceback" not in result.err, result.describe()
            report = json.loads((root / "out" / "report.json").read_text())
            assert (report["sources"][0]["bad"], report["train"]) == (len(bad), good)
        else:
            result.assert_clean_failure()
            assert result.problems() == bad_rows_message(path, bad), result.describe()
            assert tree(root) == before


@pytest.fixture(scope="module")
def parquet_bytes() -> bytes:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([good_row("alpaca", i) for i in range(50)])
    with tempfile.TemporaryDirectory() as tmp:
        pq.write_table(table, f"{tmp}/d.parquet")
        return Path(f"{tmp}/d.parquet").read_bytes()


@settings(FUZZ, max_examples=max(1, EXAMPLES * 2 // 3))
@given(
    damage=st.sampled_from(["truncate", "garbage", "no footer", "flip"]),
    at=st.floats(0.05, 0.95),
    seed=st.binary(min_size=64, max_size=4096),
)
def test_damaged_parquet(cli_sandbox, parquet_bytes, damage, at, seed):
    raw = parquet_bytes
    cut = int(len(raw) * at)
    if damage == "truncate":
        raw = raw[:cut]
    elif damage == "garbage":
        raw = b"PAR1" + seed + b"PAR1"
    elif damage == "no footer":
        raw = raw[:-8] + seed[:4] + b"PAR1"
    else:  # bytes overwritten in the middle: the file may still read, or must fail cleanly
        raw = raw[:cut] + seed[: len(raw) - cut] + raw[cut + len(seed[: len(raw) - cut]) :]
    tmp, root, before, result = prepare(cli_sandbox, "alpaca", "data.parquet", raw, "fail")
    with tmp:
        assert not result.timed_out and result.rc in (0, 2) and "Traceback" not in result.err, result.describe()
        if result.rc == 2:
            assert tree(root) == before
            if damage != "flip":  # overwritten bytes may also just make bad rows
                [line] = result.problems()
                assert line.startswith(
                    f"error: dataset: {root / 'data.parquet'}: not a readable Parquet file ("
                ) and line.endswith("); write it again or use .jsonl"), line


def test_whole_json_file_nested_too_deep_or_not_utf8(cli_sandbox):
    tmp, root, before, result = prepare(cli_sandbox, "messages", "data.json", b"[" * 200_000 + b"]" * 200_000, "fail")
    with tmp:
        result.assert_clean_failure()
        assert result.problems() == [
            f"error: dataset: {root / 'data.json'}: nested too deeply to read (rows are a few levels deep)"
        ]
        assert tree(root) == before
    tmp, root, before, result = prepare(cli_sandbox, "messages", "data.json", b'[{"a":\n "caf\xe9"}]', "fail")
    with tmp:
        result.assert_clean_failure()
        assert result.problems() == [
            f"error: dataset: {root / 'data.json'}:2:6: not UTF-8 text (byte 0xe9); save the file as UTF-8"
        ]
