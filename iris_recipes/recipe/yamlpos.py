"""YAML loading that remembers where every key is, so errors can say `FILE:LINE:COL`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

try:  # the C loader is ~10x faster; fall back to pure Python where libyaml is missing
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader

import re


class RecipeLoader(_Loader):
    """Safe loader that also reads YAML 1.2 floats like `5e-5` as numbers (YAML 1.1 makes them strings)."""


RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_value(text: str):
    """One YAML scalar or flow value, as an override gives it."""
    return yaml.load(text, Loader=RecipeLoader)


KeyPath = tuple  # ("train", "learning_rate"), ("export", "quantize", 0)


@dataclass(frozen=True)
class Pos:
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}" if self.line else self.file


class YamlProblem(Exception):
    def __init__(self, pos: Pos, message: str):
        super().__init__(f"{pos}: {message}")
        self.pos = pos
        self.message = message


def load_with_positions(text: str, file: str) -> tuple[Any, dict[KeyPath, Pos]]:
    """Parse one YAML document; return the data and a map key path -> position of that key (or item)."""
    loader = RecipeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = Pos(file, mark.line + 1, mark.column + 1) if mark else Pos(file, 0, 0)
        raise YamlProblem(pos, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(Pos(file, 0, 0), f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    positions: dict[KeyPath, Pos] = {(): Pos(file, node.start_mark.line + 1, node.start_mark.column + 1)}
    _walk(node, (), file, positions)
    return data, positions


def _walk(node: yaml.Node, path: KeyPath, file: str, out: dict[KeyPath, Pos]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, Pos] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            pos = Pos(file, key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in seen:
                raise YamlProblem(pos, f"{'.'.join(map(str, path + (key,)))}: duplicate key (first at line {seen[key].line}); keep one")
            seen[key] = pos
            out[path + (key,)] = pos
            _walk(value_node, path + (key,), file, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[path + (i,)] = Pos(file, item.start_mark.line + 1, item.start_mark.column + 1)
            _walk(item, path + (i,), file, out)


def read_yaml(path: Path) -> tuple[Any, dict[KeyPath, Pos]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise YamlProblem(Pos(str(path), 0, 0), "file not found") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise YamlProblem(Pos(str(path), 0, 0), f"cannot read recipe: {exc}") from None
    return load_with_positions(text, str(path))
