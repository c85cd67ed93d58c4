"""Format adapters: one table-driven mapping per format turns a source row into chat turns and reference data.

Formats (see datasets/README.md):
  messages   a column holding [{role, content}, ...]; column, key names and role values mappable
  sharegpt   the same with ShareGPT defaults: conversations: [{from, value}], human/gpt/system
  alpaca     instruction (+ input) -> user, output -> assistant, optional system column
  template   `user:`, `assistant:` (and `system:`) string templates over columns: "What does {Slang} mean?"

Every format also accepts `lists` ({column: separator}: the column holds a list, or a string of items joined by the
separator) and `reference` ({key: column}, {key: {words: column}} or {key: {last_number: column}}): scoring data
kept beside the turns for eval.
This module is pure Python (no pandas/datasets) so recipe validation can use it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from iris_recipes.errors import closest

ROLES = ("system", "user", "assistant")

# Per format: mapping key -> default (None: optional, no default). `required` keys must be given or defaulted.
FORMAT_KEYS: dict[str, dict[str, Any]] = {
    "messages": {"messages": "messages", "role": "role", "content": "content", "roles": {}},
    "sharegpt": {"messages": "conversations", "role": "from", "content": "value", "roles": {}},
    "alpaca": {"instruction": "instruction", "input": "input", "output": "output", "system": None},
    "template": {"user": None, "assistant": None, "system": None},
}
COMMON_KEYS = ("lists", "reference")
REQUIRED = {"template": ("user", "assistant")}
DEFAULT_ROLES = {
    "messages": {"system": "system", "user": "user", "assistant": "assistant"},
    "sharegpt": {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"},
}

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
    """A row that cannot become a conversation; the message says why (the caller adds where)."""


@dataclass(frozen=True)
class Mapping:
    """A validated format + columns mapping, ready to convert rows."""

    format: str
    columns: dict

    @property
    def lists(self) -> dict[str, str]:
        return self.columns.get("lists") or {}

    @property
    def reference(self) -> dict:
        return self.columns.get("reference") or {}

    def required_columns(self) -> set[str]:
        """Columns a source must have for this mapping (optional alpaca columns excluded unless given)."""
        fmt, cols = self.format, self.columns
        need: set[str] = set()
        if fmt in ("messages", "sharegpt"):
            need.add(cols.get("messages", FORMAT_KEYS[fmt]["messages"]))
        elif fmt == "alpaca":
            need |= {cols.get("instruction", "instruction"), cols.get("output", "output")}
            need |= {cols[k] for k in ("input", "system") if k in cols}
        else:
            for key in ("system", "user", "assistant"):
                if key in cols:
                    need |= {name for name, _ in template_fields(cols[key])}
        for spec in self.reference.values():
            need.add(next(iter(spec.values())) if isinstance(spec, dict) else spec)
        return need

    def convert(self, row: dict) -> tuple[list[dict], dict]:
        """(messages, reference) for one row; RowProblem when the row does not fit the mapping."""
        if not isinstance(row, dict):
            raise RowProblem(f"row is a {type(row).__name__}, not an object with columns")
        fmt = self.format
        if fmt in ("messages", "sharegpt"):
            messages = self._turns(row)
        elif fmt == "alpaca":
            messages = self._alpaca(row)
        else:
            messages = self._template(row)
        return messages, self._reference(row)

    # -- formats ---------------------------------------------------------------------------------------------
    def _turns(self, row: dict) -> list[dict]:
        d = FORMAT_KEYS[self.format]
        col = self.columns.get("messages", d["messages"])
        role_key = self.columns.get("role", d["role"])
        content_key = self.columns.get("content", d["content"])
        roles = {**DEFAULT_ROLES[self.format], **(self.columns.get("roles") or {})}
        turns = row.get(col)
        if _missing(turns):
            raise RowProblem(f"column '{col}' is empty")
        if hasattr(turns, "tolist"):  # numpy arrays from parquet readers
            turns = turns.tolist()
        if not isinstance(turns, list):
            raise RowProblem(f"column '{col}' is a {type(turns).__name__}, not a list of turns")
        out = []
        for i, turn in enumerate(turns, 1):
            if not isinstance(turn, dict):
                raise RowProblem(
                    f"turn {i} is a {type(turn).__name__}, not an object with '{role_key}' and '{content_key}'"
                )
            raw_role = turn.get(role_key)
            if not isinstance(raw_role, (str, int, float, bool, type(None))) or raw_role not in roles:
                known = ", ".join(sorted(map(str, roles)))
                shown = repr(raw_role) if len(repr(raw_role)) <= 40 else repr(raw_role)[:37] + "..."
                raise RowProblem(f"turn {i} has role {shown} (known: {known}; map others in columns.roles)")
            out.append({"role": roles[raw_role], "content": turn.get(content_key)})
        return out

    def _alpaca(self, row: dict) -> list[dict]:
        c = self.columns
        instruction = _text(row, c.get("instruction", "instruction"))
        extra = _text(row, c.get("input", "input"), optional=True)
        output = _text(row, c.get("output", "output"))
        user = f"{instruction}\n\n{extra}" if isinstance(instruction, str) and extra and extra.strip() else instruction
        messages = []
        if "system" in c:
            system = _text(row, c["system"], optional=True)
            if system and system.strip():
                messages.append({"role": "system", "content": system})
        return messages + [{"role": "user", "content": user}, {"role": "assistant", "content": output}]

    def _template(self, row: dict) -> list[dict]:
        messages = []
        for role in ROLES:
            if role in self.columns:
                text = render(self.columns[role], row, self.lists)
                if role == "system" and not text.strip():
                    continue  # an empty optional system column means "no system turn"
                messages.append({"role": role, "content": text})
        return messages

    def _reference(self, row: dict) -> dict:
        ref = {}
        for key, spec in self.reference.items():
            if isinstance(spec, dict):
                ((kind, col),) = spec.items()
                text = _scalar_text(row.get(col))
                value = content_words(text) if kind == "words" else last_number(text)
            elif spec in self.lists:
                value = list_items(row.get(spec), self.lists[spec])
            else:
                value = _scalar_text(row.get(spec))
            if value:  # an empty cell means "no reference of this kind for this row"
                ref[key] = value
        return ref


# -- helpers shared with the config checks -------------------------------------------------------------------
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
            return _scalar_text(value)
        items = list_items(value, lists.get(col, ";"))
        i = int(index)
        if not -len(items) <= i < len(items):
            raise RowProblem(f"column '{col}' has {len(items)} item(s), so {{{col}[{i}]}} has nothing to pick")
        return items[i]

    return _PLACEHOLDER.sub(sub, template)


def list_items(value: Any, sep: str) -> list[str]:
    if _missing(value):
        return []
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        items = [_scalar_text(v) for v in value]
    else:
        items = _scalar_text(value).split(sep)
    return [s.strip() for s in items if s and s.strip()]


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


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _scalar_text(value: Any) -> str:
    if _missing(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


def _text(row: dict, col: str, *, optional: bool = False):
    """A text cell as-is; a missing optional cell is ''."""
    value = row.get(col)
    if _missing(value):
        if optional:
            return ""
        raise RowProblem(f"column '{col}' is empty")
    if not isinstance(value, str):
        raise RowProblem(f"column '{col}' is a {type(value).__name__}, not text")
    return value


def mapping_problems(fmt: str | None, columns: Any) -> list[tuple[str, str]]:
    """(columns.key, message) problems of a format + columns mapping, found without any data."""
    if fmt not in FORMAT_KEYS:
        return [("format", f"unknown format {fmt!r}; use one of {', '.join(FORMAT_KEYS)}")]
    if columns is None:
        columns = {}
    if not isinstance(columns, dict):
        return [("columns", f"must be a mapping for format {fmt}, not {type(columns).__name__}")]
    out: list[tuple[str, str]] = []
    allowed = (*FORMAT_KEYS[fmt], *COMMON_KEYS)
    for key, value in columns.items():
        if key not in allowed:
            hint = _did_you_mean(key, allowed)
            out.append((f"columns.{key}", f"not a key of format {fmt}{hint}; allowed: {', '.join(allowed)}"))
        elif key == "roles":
            if not isinstance(value, dict):
                out.append(("columns.roles", "must map role values in the data to system/user/assistant"))
            else:
                for raw, role in value.items():
                    if role not in ROLES:
                        out.append((f"columns.roles.{raw}", f"maps to {role!r}; use system, user or assistant"))
        elif key == "lists":
            if not isinstance(value, dict) or not all(isinstance(s, str) and s for s in value.values()):
                out.append(
                    ("columns.lists", "must map column names to a non-empty separator, e.g. {Incorrect Answers: ';'}")
                )
        elif key == "reference":
            out += _reference_problems(value)
        elif not isinstance(value, str) or not value:
            out.append((f"columns.{key}", "must be a non-empty string"))
    for key in REQUIRED.get(fmt, ()):
        if key not in columns:
            out.append((f"columns.{key}", f'format {fmt} needs a `{key}:` template, e.g. {key}: "{{Question}}"'))
    if fmt == "template":
        lists = columns.get("lists") if isinstance(columns.get("lists"), dict) else {}
        for key in ("system", "user", "assistant"):
            template = columns.get(key)
            if not isinstance(template, str):
                continue
            try:
                fields = template_fields(template)
            except ValueError as exc:
                out.append((f"columns.{key}", str(exc)))
                continue
            if not fields and key != "system":
                out.append((f"columns.{key}", "has no {Column} placeholder, so every row would get the same text"))
            for col, index in fields:
                if index is not None and col not in lists:
                    out.append(
                        (
                            f"columns.{key}",
                            f"picks {{{col}[{index}]}} but '{col}' is not declared in columns.lists (its separator)",
                        )
                    )
    return out


def _reference_problems(value: Any) -> list[tuple[str, str]]:
    if not isinstance(value, dict):
        return [("columns.reference", "must map reference keys to columns, e.g. {answer: answer}")]
    out = []
    for key, spec in value.items():
        ok = (isinstance(spec, str) and spec) or (
            isinstance(spec, dict)
            and len(spec) == 1
            and set(spec) <= {"words", "last_number"}
            and all(isinstance(v, str) and v for v in spec.values())
        )
        if not ok:
            out.append(
                (
                    f"columns.reference.{key}",
                    "must be a column name, {words: COLUMN} (its content words) "
                    "or {last_number: COLUMN} (the last number in it)",
                )
            )
    return out


def _did_you_mean(word: str, choices) -> str:
    close = closest(word, choices)
    return f" (did you mean '{close}'?)" if close else ""
