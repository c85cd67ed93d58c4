"""The row-format registry: one class per format turns a source row into a training row (see datasets/README.md).

A format is a `RowFormat` subclass registered with `@FORMATS.register`: its name (what `format:` says), the kind of
rows it produces, its `columns:` keys with their defaults, the keys a mapping must give, the columns a source must
have, the conversion of one row and the problems of a mapping. The recipe schema's enum, the "unknown format" and
"not a key of format" messages and the data stage all read this registry, so adding a format is one class here
plus its tests.

Every format also accepts the common keys `lists` ({column: separator}: the column holds a list, or a string of
items joined by the separator) and `reference` ({key: column}, {key: {words: column}} or {key: {last_number:
column}}): scoring data kept beside the converted row for eval.
This module is pure Python (no pandas/datasets) so recipe validation can use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from iris_recipes.data.cells import (
    RowProblem,
    content_words,
    last_number,
    list_items,
    missing,
    render,
    scalar_text,
    template_fields,
    text_cell,
)
from iris_recipes.data.conversation_checks import prompt_problem, text_problem
from iris_recipes.errors import IrisError, closest

ROLES = ("system", "user", "assistant")
COMMON_KEYS = ("lists", "reference")

# What a format's conversion produces; each objective (iris_recipes.objectives) trains on one kind.
CHAT = "chat"  # a list of {role, content} turns: {"messages": [...]} in train.jsonl
PREFERENCE = "preference"  # a list of pairs {prompt: turns, chosen: text, rejected: text}
UNPAIRED = "unpaired"  # a list of {prompt: turns, completion: text, label: bool} (desirable or not)
ROW_KINDS = (CHAT, PREFERENCE, UNPAIRED)


class RowFormat:
    """One row format. Subclasses set the class attributes and implement `required_columns` and `convert`.

    name      what recipes and dataset entries write as `format:`
    produces  the kind of row `convert` returns (ROW_KINDS: chat turns, or a list of pairs or of unpaired answers)
    keys      columns.KEY -> default (None: optional, nothing by default); the common keys come on top
    required  keys a mapping must give -> what to give, for the message ("a `user:` template, e.g. ...")
    """

    name: ClassVar[str]
    produces: ClassVar[str] = CHAT
    keys: ClassVar[dict[str, Any]] = {}
    required: ClassVar[dict[str, str]] = {}

    def column(self, columns: dict, key: str):
        """The value of `columns.KEY`, or the format's default for it."""
        return columns.get(key, self.keys[key])

    def value_problems(self, key: str, value: Any) -> list[tuple[str, str]]:
        """(columns.key, message) problems of one of the format's own keys; by default the value names a column."""
        if not isinstance(value, str) or not value:
            return [(f"columns.{key}", "must be a non-empty string")]
        return []

    def mapping_problems(self, columns: dict) -> list[tuple[str, str]]:
        """Problems of the mapping as a whole, found after each key's own (none by default)."""
        return []

    def required_columns(self, columns: dict) -> set[str]:
        """The source columns this mapping reads (the common `reference` key's come on top)."""
        raise NotImplementedError

    def convert(self, row: dict, columns: dict):
        """One source row (a dict) -> the row this format produces; RowProblem when the row does not fit."""
        raise NotImplementedError


class FormatRegistry:
    """Row formats by name, in registration order (the order the schema's enum and messages list them in)."""

    def __init__(self, formats: dict[str, RowFormat] | None = None):
        self._formats: dict[str, RowFormat] = dict(formats or {})

    def register(self, cls: type[RowFormat]) -> type[RowFormat]:
        """Add a format class (usable as a decorator); a malformed entry fails here, at import."""
        fmt = cls()
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name or name in self._formats:
            raise ValueError(f"{cls.__name__}: format name {name!r} is missing or already registered")
        if fmt.produces not in ROW_KINDS:
            raise ValueError(f"{cls.__name__}: produces {fmt.produces!r}; use one of {', '.join(ROW_KINDS)}")
        if set(fmt.keys) & set(COMMON_KEYS) or not set(fmt.required) <= set(fmt.keys):
            raise ValueError(f"{cls.__name__}: keys must not reuse {COMMON_KEYS}; required keys must be keys")
        self._formats[name] = fmt
        return cls

    def get(self, name: Any) -> RowFormat | None:
        return self._formats.get(name) if isinstance(name, str) else None

    def names(self) -> tuple[str, ...]:
        return tuple(self._formats)

    def __contains__(self, name: Any) -> bool:
        return self.get(name) is not None

    def copy(self) -> FormatRegistry:
        return FormatRegistry(self._formats)

    def unknown(self, name: Any) -> str:
        return f"unknown format {name!r}; use one of {', '.join(self.names())}"


FORMATS = FormatRegistry()  # the built-in formats, registered below
_active = [FORMATS]


def row_formats() -> FormatRegistry:
    """The registry every lookup reads: FORMATS, or the one `using` has put in place."""
    return _active[-1]


@contextmanager
def using(registry: FormatRegistry) -> Iterator[FormatRegistry]:
    """Read `registry` instead of FORMATS while the block runs (a test's throwaway formats live in a copy)."""
    _active.append(registry)
    try:
        yield registry
    finally:
        _active.remove(registry)


# -- the built-in formats ------------------------------------------------------------------------------------
def _roles_problems(value: Any) -> list[tuple[str, str]]:
    if not isinstance(value, dict):
        return [("columns.roles", "must map role values in the data to system/user/assistant")]
    return [
        (f"columns.roles.{raw}", f"maps to {role!r}; use system, user or assistant")
        for raw, role in value.items()
        if role not in ROLES
    ]


def _turn(turn: Any, i: int, role_key: str, content_key: str, roles: dict) -> dict:
    """One {role, content} turn from a turn object of the data (role values mapped through `roles`)."""
    if not isinstance(turn, dict):
        raise RowProblem(f"turn {i} is a {type(turn).__name__}, not an object with '{role_key}' and '{content_key}'")
    raw_role = turn.get(role_key)
    if not isinstance(raw_role, (str, int, float, bool, type(None))) or raw_role not in roles:
        known = ", ".join(sorted(map(str, roles)))
        shown = repr(raw_role) if len(repr(raw_role)) <= 40 else repr(raw_role)[:37] + "..."
        raise RowProblem(f"turn {i} has role {shown} (known: {known}; map others in columns.roles)")
    return {"role": roles[raw_role], "content": turn.get(content_key)}


def _turn_list(value: Any, role_key: str, content_key: str, roles: dict) -> list[dict] | None:
    """The cell as {role, content} turns when it holds a list of turns (or one turn object); None for text."""
    if hasattr(value, "tolist"):  # numpy arrays from parquet readers
        value = value.tolist()
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return None
    return [_turn(turn, i, role_key, content_key, roles) for i, turn in enumerate(value, 1)]


class _Turns(RowFormat):
    """A column holds the conversation as a list of turns; column, key names and role values are mappable."""

    default_roles: ClassVar[dict[str, str]]

    def value_problems(self, key, value):
        return _roles_problems(value) if key == "roles" else super().value_problems(key, value)

    def required_columns(self, columns):
        return {self.column(columns, "messages")}

    def convert(self, row, columns):
        col = self.column(columns, "messages")
        roles = {**self.default_roles, **(columns.get("roles") or {})}
        turns = row.get(col)
        if missing(turns):
            raise RowProblem(f"column '{col}' is empty")
        if isinstance(turns, dict):
            raise RowProblem(f"column '{col}' is a dict, not a list of turns")
        out = _turn_list(turns, self.column(columns, "role"), self.column(columns, "content"), roles)
        if out is None:
            raise RowProblem(f"column '{col}' is a {type(turns).__name__}, not a list of turns")
        return out


@FORMATS.register
class Messages(_Turns):
    """messages: [{role, content}, ...] with system/user/assistant role values."""

    name = "messages"
    keys = {"messages": "messages", "role": "role", "content": "content", "roles": {}}
    default_roles = {"system": "system", "user": "user", "assistant": "assistant"}


@FORMATS.register
class ShareGPT(_Turns):
    """conversations: [{from, value}, ...] with human/gpt (and system) role values."""

    name = "sharegpt"
    keys = {"messages": "conversations", "role": "from", "content": "value", "roles": {}}
    default_roles = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


@FORMATS.register
class Alpaca(RowFormat):
    """instruction (+ input, after a blank line) -> user, output -> assistant, an optional system column."""

    name = "alpaca"
    keys = {"instruction": "instruction", "input": "input", "output": "output", "system": None}

    def required_columns(self, columns):
        # input and system are optional cells: a source needs those columns only when the mapping names them
        return {self.column(columns, "instruction"), self.column(columns, "output")} | {
            columns[k] for k in ("input", "system") if k in columns
        }

    def convert(self, row, columns):
        instruction = text_cell(row, self.column(columns, "instruction"))
        extra = text_cell(row, self.column(columns, "input"), optional=True)
        output = text_cell(row, self.column(columns, "output"))
        user = f"{instruction}\n\n{extra}" if isinstance(instruction, str) and extra and extra.strip() else instruction
        messages = []
        if "system" in columns:
            system = text_cell(row, columns["system"], optional=True)
            if system and system.strip():
                messages.append({"role": "system", "content": system})
        return messages + [{"role": "user", "content": user}, {"role": "assistant", "content": output}]


@FORMATS.register
class Template(RowFormat):
    """`user:`, `assistant:` (and `system:`) text templates over the columns: "What does {Slang} mean?"."""

    name = "template"
    keys = {"user": None, "assistant": None, "system": None}
    required = {key: f'a `{key}:` template, e.g. {key}: "{{Question}}"' for key in ("user", "assistant")}

    def mapping_problems(self, columns):
        out = []
        lists = columns.get("lists") if isinstance(columns.get("lists"), dict) else {}
        for key in ROLES:
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

    def required_columns(self, columns):
        return {name for key in ROLES if key in columns for name, _ in template_fields(columns[key])}

    def convert(self, row, columns):
        lists = columns.get("lists") or {}
        messages = []
        for role in ROLES:
            if role in columns:
                text = render(columns[role], row, lists)
                if role == "system" and not text.strip():
                    continue  # an empty optional system column means "no system turn"
                messages.append({"role": role, "content": text})
        return messages


class _Answers(RowFormat):
    """A prompt and answers to it: the base of the preference formats.

    The prompt is a column holding text (one user turn) or turns (`role`/`content` keys, role values mapped as in
    messages); an optional `system` column adds a system turn. An answer column holds text, an assistant turn, or a
    whole conversation whose turns before the answer are the prompt (then `prompt: null` needs no prompt column). A
    column declared in `lists` holds alternative answers (a list, or text split on the separator).
    """

    default_roles: ClassVar[dict[str, str]] = {"system": "system", "user": "user", "assistant": "assistant"}
    common: ClassVar[dict[str, Any]] = {
        "prompt": "prompt",
        "system": None,
        "role": "role",
        "content": "content",
        "roles": {},
    }
    limit_key: ClassVar[str]  # at most this many rows from one source row (list columns give several)

    def value_problems(self, key, value):
        if key == "roles":
            return _roles_problems(value)
        if key == "prompt" and value is None:
            return []
        if key == self.limit_key:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                return [(f"columns.{key}", "must be a whole number >= 1")]
            return []
        return super().value_problems(key, value)

    def read_keys(self, columns: dict) -> list[str]:
        """The keys of this mapping whose columns a row is read from, besides the prompt and system."""
        raise NotImplementedError

    def required_columns(self, columns):
        keys = ["prompt", "system", *self.read_keys(columns)]
        return {self.column(columns, k) for k in keys if self.column(columns, k) is not None}

    def _roles(self, columns) -> dict:
        return {**self.default_roles, **(columns.get("roles") or {})}

    def _answers(self, row: dict, columns: dict, key: str) -> list[tuple[list[dict], str]]:
        """(turns before the answer, answer) for each answer the column holds."""
        col = self.column(columns, key)
        value = row.get(col)
        if hasattr(value, "tolist"):  # numpy arrays from parquet readers
            value = value.tolist()
        texts = isinstance(value, list) and not any(isinstance(v, dict) for v in value)
        lists = columns.get("lists") or {}
        if col in lists and (texts or not isinstance(value, (list, dict))):
            items = list_items(value, lists[col])
            if not items:
                raise RowProblem(f"column '{col}' has no answers")
            return [([], item) for item in items]
        if missing(value):
            raise RowProblem(f"column '{col}' is empty")
        if isinstance(value, str):
            return [([], value)]
        if texts and value:
            raise RowProblem(
                f"column '{col}' holds a list of texts; declare it in columns.lists to use them as alternative answers"
            )
        turns = self._turns(value, columns, col)
        if not turns or turns[-1]["role"] != "assistant":
            raise RowProblem(f"column '{col}': the last turn must be the assistant's answer")
        return [(turns[:-1], turns[-1]["content"])]

    def _turns(self, value: Any, columns: dict, col: str) -> list[dict]:
        try:
            turns = _turn_list(
                value, self.column(columns, "role"), self.column(columns, "content"), self._roles(columns)
            )
        except RowProblem as exc:
            raise RowProblem(f"column '{col}': {exc}") from None
        if turns is None:
            raise RowProblem(f"column '{col}' is a {type(value).__name__}, not text or turns")
        return turns

    def _prompt(self, row: dict, columns: dict, answers: dict[str, list[tuple[list[dict], str]]]) -> list[dict]:
        """The prompt turns, from the prompt column or the answers' conversations (which must agree), with the
        system column's turn first."""
        col = self.column(columns, "prompt")
        if col is not None:
            value = row.get(col)
            if missing(value) or (isinstance(value, str) and not value.strip()):
                raise RowProblem(f"column '{col}' is empty")
            prompt = (
                [{"role": "user", "content": value}] if isinstance(value, str) else self._turns(value, columns, col)
            )
            source = col
            for key, found in answers.items():
                for before, _ in found:
                    if before and before != prompt:
                        raise RowProblem(
                            f"column '{self.column(columns, key)}' holds a conversation that does not start with "
                            f"the prompt in column '{col}' ({_first_difference(before, prompt)})"
                        )
        else:
            (key, first), *others = [(k, found[0][0]) for k, found in answers.items()]
            if not first:
                raise RowProblem(
                    f"no prompt: column '{self.column(columns, key)}' holds only an answer; map columns.prompt, "
                    "or give the answers as conversations"
                )
            for other, before in others:
                if before != first:
                    raise RowProblem(
                        f"columns '{self.column(columns, key)}' and '{self.column(columns, other)}' hold different "
                        f"prompts ({_first_difference(before, first)}); a pair must answer the same prompt"
                    )
            prompt, source = first, self.column(columns, key)
        system_col = columns.get("system")
        if system_col is not None and prompt[0]["role"] != "system":
            system = text_cell(row, system_col, optional=True)
            if system.strip():
                prompt = [{"role": "system", "content": system}, *prompt]
        problem = prompt_problem(prompt)
        if problem:
            raise RowProblem(f"column '{source}': {problem}")
        return prompt

    def _answer_text(self, text: Any, columns: dict, key: str) -> str:
        problem = text_problem(text)
        if problem:
            raise RowProblem(f"column '{self.column(columns, key)}': {problem.replace('content ', 'the answer ', 1)}")
        return text


def _first_difference(a: list[dict], b: list[dict]) -> str:
    for i, (x, y) in enumerate(zip(a, b), 1):
        if x != y:
            return f"turn {i} differs"
    return f"{len(a)} turns against {len(b)}"


@FORMATS.register
class Preference(_Answers):
    """Pairs: a prompt with a chosen (preferred) and a rejected answer, for DPO, ORPO and SimPO.

    With list columns, `max_pairs` > 1 takes several pairs from one row: chosen x rejected combinations, nearest
    items first (1: the first item of each list).
    """

    name = "preference"
    produces = PREFERENCE
    limit_key = "max_pairs"
    keys = {**_Answers.common, "chosen": "chosen", "rejected": "rejected", "max_pairs": 1}

    def read_keys(self, columns):
        return ["chosen", "rejected"]

    def convert(self, row, columns):
        answers = {key: self._answers(row, columns, key) for key in ("chosen", "rejected")}
        prompt = self._prompt(row, columns, answers)
        chosen = [self._answer_text(text, columns, "chosen") for _, text in answers["chosen"]]
        rejected = [self._answer_text(text, columns, "rejected") for _, text in answers["rejected"]]
        combos = sorted(((i, j) for i in range(len(chosen)) for j in range(len(rejected))), key=lambda c: (sum(c), c))
        pairs = []
        for i, j in combos[: self.column(columns, "max_pairs")]:
            if chosen[i].strip() == rejected[j].strip():
                raise RowProblem(
                    f"columns '{self.column(columns, 'chosen')}' and '{self.column(columns, 'rejected')}' give the "
                    f"same answer as chosen and rejected ({_short(chosen[i].strip())})"
                )
            pairs.append({"prompt": prompt, "chosen": chosen[i], "rejected": rejected[j]})
        return pairs


LABELS = {"true": True, "1": True, "yes": True, "desirable": True, "false": False, "0": False, "no": False,
          "undesirable": False}  # fmt: skip


@FORMATS.register
class Unpaired(_Answers):
    """Unpaired answers for KTO: a prompt and one answer labelled desirable or undesirable.

    Either `completion` + `label` columns (label: true/false, yes/no, 1/0 or desirable/undesirable), or `desirable`
    and/or `undesirable` answer columns; with list columns, `max_answers` answers per column from one row.
    """

    name = "unpaired"
    produces = UNPAIRED
    limit_key = "max_answers"
    keys = {
        **_Answers.common,
        "completion": "completion",
        "label": "label",
        "desirable": None,
        "undesirable": None,
        "max_answers": 1,
    }

    @staticmethod
    def _by_side(columns: dict) -> bool:
        return "desirable" in columns or "undesirable" in columns

    def read_keys(self, columns):
        if self._by_side(columns):
            return [k for k in ("desirable", "undesirable") if k in columns]
        return ["completion", "label"]

    def mapping_problems(self, columns):
        if self._by_side(columns) and ("completion" in columns or "label" in columns):
            return [("columns", "give completion and label, or desirable/undesirable answer columns, not both")]
        return []

    def convert(self, row, columns):
        if self._by_side(columns):
            sides = [(k, k == "desirable") for k in ("desirable", "undesirable") if k in columns]
        else:
            sides = [("completion", self._label(row, columns))]
        answers = {key: self._answers(row, columns, key) for key, _ in sides}
        prompt = self._prompt(row, columns, answers)
        limit = self.column(columns, "max_answers")
        return [
            {"prompt": prompt, "completion": self._answer_text(text, columns, key), "label": label}
            for key, label in sides
            for _, text in answers[key][:limit]
        ]

    def _label(self, row: dict, columns: dict) -> bool:
        col = self.column(columns, "label")
        value = row.get(col)
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        text = scalar_text(value).strip().lower()
        if text in LABELS:
            return LABELS[text]
        shown = "empty" if missing(value) or not text else f"{_short(scalar_text(value))}"
        raise RowProblem(f"column '{col}' is {shown}, not a label (true/false, yes/no, 1/0, desirable/undesirable)")


def _short(text: str, n: int = 40) -> str:
    return repr(text) if len(text) <= n else repr(text[: n - 3] + "...")


# -- a mapping: a format plus its columns ----------------------------------------------------------------------
@dataclass(frozen=True)
class Mapping:
    """A format + columns mapping, ready to convert rows (check it with `mapping_problems` first)."""

    format: str
    columns: dict

    @property
    def row_format(self) -> RowFormat:
        fmt = row_formats().get(self.format)
        if fmt is None:
            raise IrisError(row_formats().unknown(self.format))
        return fmt

    @property
    def produces(self) -> str:
        return self.row_format.produces

    @property
    def lists(self) -> dict[str, str]:
        return self.columns.get("lists") or {}

    @property
    def reference(self) -> dict:
        return self.columns.get("reference") or {}

    def required_columns(self) -> set[str]:
        """Columns a source must have for this mapping."""
        need = set(self.row_format.required_columns(self.columns))
        for spec in self.reference.values():
            need.add(next(iter(spec.values())) if isinstance(spec, dict) else spec)
        return need

    def convert(self, row: dict) -> tuple[Any, dict]:
        """(converted row, reference) for one source row; RowProblem when the row does not fit the mapping."""
        if not isinstance(row, dict):
            raise RowProblem(f"row is a {type(row).__name__}, not an object with columns")
        return self.row_format.convert(row, self.columns), self._reference(row)

    def _reference(self, row: dict) -> dict:
        ref = {}
        for key, spec in self.reference.items():
            if isinstance(spec, dict):
                ((kind, col),) = spec.items()
                text = scalar_text(row.get(col))
                value = content_words(text) if kind == "words" else last_number(text)
            elif spec in self.lists:
                value = list_items(row.get(spec), self.lists[spec])
            else:
                value = scalar_text(row.get(spec))
            if value:  # an empty cell means "no reference of this kind for this row"
                ref[key] = value
        return ref


def mapping_problems(name: Any, columns: Any) -> list[tuple[str, str]]:
    """(columns.key, message) problems of a format + columns mapping, found without any data."""
    fmt = row_formats().get(name)
    if fmt is None:
        return [("format", row_formats().unknown(name))]
    if columns is None:
        columns = {}
    if not isinstance(columns, dict):
        return [("columns", f"must be a mapping for format {name}, not {type(columns).__name__}")]
    out: list[tuple[str, str]] = []
    allowed = (*fmt.keys, *COMMON_KEYS)
    for key, value in columns.items():
        if key not in allowed:
            hint = _did_you_mean(key, allowed)
            out.append((f"columns.{key}", f"not a key of format {name}{hint}; allowed: {', '.join(allowed)}"))
        elif key == "lists":
            if not isinstance(value, dict) or not all(isinstance(s, str) and s for s in value.values()):
                out.append(
                    ("columns.lists", "must map column names to a non-empty separator, e.g. {Incorrect Answers: ';'}")
                )
        elif key == "reference":
            out += _reference_problems(value)
        else:
            out += fmt.value_problems(key, value)
    for key, what in fmt.required.items():
        if key not in columns:
            out.append((f"columns.{key}", f"format {name} needs {what}"))
    return out + fmt.mapping_problems(columns)


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
