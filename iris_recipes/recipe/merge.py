"""`extends:` chains and command-line overrides, keeping track of where each value came from."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from iris_recipes.fsutil import path_text_problem, resolve
from iris_recipes.models import BUILTIN_PREFIX
from iris_recipes.recipe.yamlpos import MAX_DEPTH, KeyPath, Pos, YamlProblem, parse_value, read_yaml, yaml_error_text

MAX_EXTENDS = 16  # files in one extends chain; the shipped recipes use at most 3


def deep_merge(base: dict, child: dict) -> dict:
    """Child wins; nested mappings merge; lists and scalars are replaced whole."""
    out = copy.deepcopy(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_chain(path: Path, _stack: tuple[Path, ...] = ()) -> tuple[dict, dict[KeyPath, Pos]]:
    """Load a recipe and everything it extends; `extends` is removed from the result."""
    path = resolve(path)
    if path in _stack:
        chain = " -> ".join(p.name for p in (*_stack, path))
        raise YamlProblem(Pos(str(_stack[-1]), 0, 0), f"extends: cycle {chain}; remove one of these extends")
    data, positions = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise YamlProblem(
            positions.get((), Pos(str(path), 1, 1)), "a recipe is a mapping of keys (name:, base_model:, ...)"
        )
    parent = data.pop("extends", None)
    if parent is None:
        return data, positions
    where = positions[("extends",)]
    if not isinstance(parent, str) or not parent:
        raise YamlProblem(where, "extends: must be the relative path of a base recipe, e.g. base/llama3.2-lora.yaml")
    problem = path_text_problem(parent)
    if problem:
        raise YamlProblem(where, f"extends: the path {problem}; give the relative path of a base recipe")
    if len(_stack) + 1 >= MAX_EXTENDS:
        raise YamlProblem(
            where, f"extends: the chain is longer than {MAX_EXTENDS} files; extend a recipe nearer the base"
        )
    parent_path = path.parent / parent
    if not parent_path.is_file():
        if parent_path.is_dir():
            problem = "is a directory; give the path of a base recipe file"
        elif parent_path.exists():
            problem = "is not a regular file; give the path of a base recipe file"
        else:
            problem = "does not exist"
            if not Path(parent).is_absolute():
                problem += f"; the path is relative to {path.parent}"
        raise YamlProblem(where, f"extends: {parent_path} {problem}")
    base, base_positions = load_chain(parent_path, (*_stack, path))
    merged = deep_merge(rebase_paths(base, resolve(parent_path).parent, path.parent), data)
    # a key is located where its winning value was written
    return merged, {**base_positions, **{k: v for k, v in positions.items() if k != ("extends",)}}


def rebase_paths(data: dict, source_dir: Path, dest_dir: Path) -> dict:
    """`data` with its relative local paths (dataset files, a base model directory), which are relative to the
    file that wrote them in `source_dir`, rewritten relative to `dest_dir`: a recipe's paths all resolve from the
    folder of the recipe that is loaded, whichever file of its extends chain gave them."""
    if source_dir == dest_dir:
        return data

    def moved(text: Any, *, only_dir: bool = False) -> Any:
        if not isinstance(text, str) or not text or path_text_problem(text) or Path(text).expanduser().is_absolute():
            return text  # not a usable relative path: the checks report it as written
        if only_dir and not (text.startswith(".") or (source_dir / text).is_dir()):
            return text
        return os.path.relpath(source_dir / text, dest_dir)

    data = copy.deepcopy(data)
    dataset = data.get("dataset")
    if isinstance(dataset, dict):
        mix = dataset.get("mix")
        for block in [dataset, *(mix if isinstance(mix, list) else [])]:
            if isinstance(block, dict) and "path" in block:
                block["path"] = moved(block["path"])
    base = data.get("base_model")
    if isinstance(base, str) and not base.startswith(BUILTIN_PREFIX):
        data["base_model"] = moved(base, only_dir=True)  # a hub id (org/name) is not a path: never starts with "."
    return data


def _depth(value: Any) -> int:
    """Levels of a parsed value: 1 for a scalar, one more per list or mapping around it."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, (dict, list)):
            stack.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...], positions: dict[KeyPath, Pos]) -> dict:
    """`a.b=value` sets (value parsed as YAML), `~a.b` deletes."""
    data = copy.deepcopy(data)
    for i, item in enumerate(overrides, 1):
        where = Pos(f"<override {i}: {item if len(item) <= 80 else item[:77] + '...'}>", 0, 0)
        delete = item.startswith("~")
        if delete:
            dotted, raw = item[1:], None
        elif "=" in item:
            dotted, raw = item.split("=", 1)
        else:
            raise YamlProblem(where, "an override is key.path=value, or ~key.path to delete a key")
        keys = dotted.strip().split(".")
        if not all(keys) or keys[0] == "extends":
            raise YamlProblem(where, f"'{dotted}' is not a key path like train.learning_rate")
        shown = dotted if len(dotted) <= 60 else dotted[:57] + "..."
        too_deep = f"{shown}: nested deeper than {MAX_DEPTH} levels; a recipe is a few levels deep"
        if len(keys) >= MAX_DEPTH:  # the recipe is level 1: the value would sit below level MAX_DEPTH
            raise YamlProblem(where, too_deep)
        node, created = data, []
        for depth, key in enumerate(keys[:-1]):
            nxt = node.get(key)
            if nxt is None and not delete:
                nxt = node[key] = {}
                created.append(tuple(keys[: depth + 1]))
            if not isinstance(nxt, dict):
                if delete and nxt is None:
                    raise YamlProblem(where, f"cannot delete {dotted}: {'.'.join(keys[: depth + 1])} is not set")
                raise YamlProblem(where, f"{'.'.join(keys[: depth + 1])} is not a mapping, so {dotted} cannot be set")
            node = nxt
        last = keys[-1]
        if delete:
            if last not in node:
                raise YamlProblem(where, f"cannot delete {dotted}: it is not set")
            del node[last]
        else:
            try:
                value = parse_value(raw) if raw.strip() else ""
            except yaml.YAMLError as exc:
                raise YamlProblem(where, f"{dotted}: {yaml_error_text(exc)}") from None
            if len(keys) + _depth(value) > MAX_DEPTH:
                raise YamlProblem(where, too_deep)
            node[last] = value
        path = tuple(keys)
        for key in [k for k in positions if k[: len(path)] == path]:
            del positions[key]
        if not delete:  # the mappings it created too: a problem with any of them lies in this override
            positions.update(dict.fromkeys([*created, path], where))
    return data
