"""Reading the cells of a source row: text, lists, `{Column}` templates, and the reference values eval scores with.

Every row format reads its cells through these helpers, so an empty cell, a NaN from a CSV/Parquet reader or a
numpy array means the same thing whatever the format. Pure Python (no pandas/datasets): recipe validation uses it.
"""

from __future__ import annotations

import math
import re
from typing import Any

# `{Column}` inserts the cell; `{Column[i]}` picks item i of a list column; `{{` and `}}` are literal braces.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}\[\]]+)(?:\[(-?\d+)\])?\}")
MAX_INDEX_DIGITS = 9  # in `{Column[i]}`: a longer index is a typo
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")
_STOPWORDS = frozenset(
    "that this with from have been were they them their there what when where which while about into your "
    "than then also just like more most some such very will would could should does done being other only "
    "someone something used using uses often".split()
)


class RowProblem(Exception):
    """A row that cannot become a training row; the message says why (the caller adds where)."""


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def scalar_text(value: Any) -> str:
    if missing(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


def text_cell(row: dict, col: str, *, optional: bool = False):
    """A text cell as-is; a missing optional cell is ''."""
    value = row.get(col)
    if missing(value):
        if optional:
            return ""
        raise RowProblem(f"column '{col}' is empty")
    if not isinstance(value, str):
        raise RowProblem(f"column '{col}' is a {type(value).__name__}, not text")
    return value


def list_items(value: Any, sep: str) -> list[str]:
    if missing(value):
        return []
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        items = [scalar_text(v) for v in value]
    else:
        items = scalar_text(value).split(sep)
    return [s.strip() for s in items if s and s.strip()]


def template_fields(template: str) -> list[tuple[str, int | None]]:
    """The (column, index) placeholders of a template; ValueError for an index of more than MAX_INDEX_DIGITS digits
    (Python refuses to read an integer of 4,300+ digits)."""
    out = []
    for m in _PLACEHOLDER.finditer(template):
        if m.group(1) is not None:
            index = m.group(2)
            digits = len(index.lstrip("-")) if index is not None else 0
            if digits > MAX_INDEX_DIGITS:
                shown = index if len(index) <= 12 else index[:12] + "..."
                raise ValueError(
                    f"{{{m.group(1)}[{shown}]}} picks an item by a number of {digits:,} digits; "
                    f"an index has at most {MAX_INDEX_DIGITS}"
                )
            out.append((m.group(1), int(index) if index is not None else None))
    return out


def render(template: str, row: dict, lists: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        if m.group(1) is None:
            return m.group(0)[0]
        col, index = m.group(1), m.group(2)
        value = row.get(col)
        if index is None:
            if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
                return "; ".join(str(v) for v in list(value))
            return scalar_text(value)
        items = list_items(value, lists.get(col, ";"))
        i = int(index)
        if not -len(items) <= i < len(items):
            raise RowProblem(f"column '{col}' has {len(items)} item(s), so {{{col}[{i}]}} has nothing to pick")
        return items[i]

    return _PLACEHOLDER.sub(sub, template)


def last_number(text: str) -> str:
    """The last number in a text ("... = 63.", "x=887; y=1113" -> "1113"), commas dropped; '' when none."""
    found = _NUMBER.findall(text or "")
    return found[-1].replace(",", "").rstrip(".") if found else ""


def content_words(text: str) -> list[str]:
    """Distinct lower-case content words (4+ letters, common function words dropped), in order of appearance."""
    seen: dict[str, None] = {}
    for w in _WORD.findall(text or ""):
        w = w.lower().strip("'-")
        if len(w) >= 4 and w not in _STOPWORDS:
            seen.setdefault(w, None)
    return list(seen)
