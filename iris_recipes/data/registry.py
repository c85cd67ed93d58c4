"""The dataset registry: `datasets/<name>/dataset.yaml` entries (where the data is, its license and its mapping)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from iris_recipes.data.formats import mapping_problems
from iris_recipes.errors import IrisError, closest
from iris_recipes.fsutil import path_text_problem, resolve
from iris_recipes.paths import datasets_dir
from iris_recipes.recipe.yamlpos import KeyPath, Pos, YamlProblem, load_with_positions, read_text_bounded

ENTRY_FILE = "dataset.yaml"
ENTRY_KEYS = ("name", "description", "license", "homepage", "source", "format", "columns", "sample", "notes")
SOURCE_KEYS = ("hub", "split", "config", "revision", "data_files", "path")


@dataclass(frozen=True)
class Entry:
    """One registry entry. `source` is {hub, split, config?, revision?, data_files?} or {path}."""

    name: str
    dir: Path
    description: str
    license: str
    source: dict
    format: str
    columns: dict = field(default_factory=dict)
    sample: str | None = None
    homepage: str | None = None

    @property
    def file(self) -> Path:
        return self.dir / ENTRY_FILE

    @property
    def hub(self) -> str | None:
        return self.source.get("hub")

    def full_path(self) -> Path | None:
        return resolve(self.dir / self.source["path"]) if "path" in self.source else None

    def sample_path(self) -> Path | None:
        return resolve(self.dir / self.sample) if self.sample else None

    def mapping_for(self, block: dict) -> tuple[str, dict]:
        """(format, columns) of a recipe's source block that names this entry, unchecked (see mapping_problems).

        The block may adjust the entry's mapping: its `columns:` merge over the entry's when the format stays the
        same, and replace them when the block names another format."""
        fmt = block.get("format", self.format)
        given = block.get("columns") or {}
        if fmt != self.format:
            return fmt, given
        return fmt, {**self.columns, **given} if isinstance(given, dict) else given


def entry_names() -> list[str]:
    root = datasets_dir()
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob(f"*/{ENTRY_FILE}"))


def did_you_mean(name: str, choices: list[str]) -> str:
    close = closest(name, choices, cutoff=0.5)
    return f"did you mean '{close}'? " if close else ""


def load_entry(name: str) -> Entry:
    """The entry `datasets/NAME/dataset.yaml`; IrisError naming the file and the problem otherwise."""
    path = datasets_dir() / name / ENTRY_FILE
    if not path.is_file():
        names = entry_names()
        raise IrisError(
            f"unknown dataset '{name}': {did_you_mean(name, names)}"
            f"registered: {', '.join(names) or '(none)'} (each is {datasets_dir()}/NAME/{ENTRY_FILE})"
        )
    try:
        raw, positions = load_with_positions(read_text_bounded(path, "dataset entry"), str(path))
    except YamlProblem as exc:
        raise IrisError(str(exc)) from None
    problems = entry_problems(raw, path.parent)
    if problems:
        located = sorted(((_locate(k, positions, path), k, m) for k, m in problems), key=lambda p: p[0].line)
        raise IrisError(f"{path}: invalid dataset entry:\n" + "\n".join(f"  {p}: {k}: {m}" for p, k, m in located))
    return Entry(
        name=raw["name"],
        dir=path.parent,
        description=raw["description"],
        license=str(raw["license"]),
        source=raw["source"],
        format=raw["format"],
        columns=raw.get("columns") or {},
        sample=raw.get("sample"),
        homepage=raw.get("homepage"),
    )


def _locate(dotted: str, positions: dict[KeyPath, Pos], path: Path) -> Pos:
    """Where the key `dotted` (or the nearest mapping holding it) is written in the entry file."""
    by_text = {".".join(map(str, k)): pos for k, pos in positions.items()}
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in by_text:
            return by_text[".".join(parts[:n])]
    return positions.get((), Pos(str(path), 1, 1))


def entry_problems(raw, entry_dir: Path) -> list[tuple[str, str]]:
    """(key, message) problems of an entry's YAML (no data is read)."""
    if not isinstance(raw, dict):
        return [("(entry)", "must be a mapping of name, description, license, source, format, columns, sample")]
    out: list[tuple[str, str]] = []
    for key in raw:
        if key not in ENTRY_KEYS:
            hint = closest(key, ENTRY_KEYS)
            out.append((str(key), f"unknown key{f' (did you mean {hint!r}?)' if hint else ''}"))
    for key in ("name", "description", "license", "source", "format"):
        if key not in raw:
            out.append((key, "required"))
    if raw.get("name") not in (None, entry_dir.name):
        out.append(("name", f"is {raw['name']!r} but the folder is {entry_dir.name!r}; they must match"))
    source = raw.get("source")
    if source is not None:
        if not isinstance(source, dict) or ("hub" in source) == ("path" in source):
            out.append(("source", "give either {hub: ORG/NAME, split: train} or {path: FILE} (relative to the entry)"))
        else:
            for key in source:
                if key not in SOURCE_KEYS:
                    out.append((f"source.{key}", f"unknown key; allowed: {', '.join(SOURCE_KEYS)}"))
            if "hub" in source and "path" not in source and not source.get("split"):
                out.append(("source.split", "required with hub (e.g. train)"))
            if "path" in source and (not isinstance(source["path"], str) or path_text_problem(source["path"])):
                out.append(("source.path", "must be a file name relative to the entry"))
    if "format" in raw:
        out += mapping_problems(raw.get("format"), raw.get("columns"))
    if raw.get("sample") is not None and (not isinstance(raw["sample"], str) or path_text_problem(raw["sample"])):
        out.append(("sample", "must be a file name relative to the entry"))
    return out
