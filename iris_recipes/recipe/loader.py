"""Load, resolve and validate a recipe: YAML -> extends -> overrides -> JSON Schema -> cross-field -> defaults."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from iris_recipes.errors import RecipeError
from iris_recipes.recipe.cross_checks import cross_field_problems, non_finite_problems
from iris_recipes.recipe.merge import apply_overrides, load_chain
from iris_recipes.recipe.schema import Problem, apply_defaults, schema_problems
from iris_recipes.recipe.unsafe import advice, unsafe_axolotl_keys
from iris_recipes.recipe.yamlpos import KeyPath, Pos, YamlProblem


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    data: dict  # resolved, validated, defaults filled in
    raw: dict = field(repr=False, default_factory=dict)  # resolved and validated, without defaults
    allow_unsafe_axolotl_keys: bool = False  # the user passed --allow-unsafe-axolotl-keys

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.data
        for key in dotted.split("."):
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.data, sort_keys=True, default=str).encode()).hexdigest()

    def to_yaml(self, *, defaults: bool = True) -> str:
        return dump_yaml(self.data if defaults else self.raw)


def dump_yaml(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def _locate(path: KeyPath, positions: dict[KeyPath, Pos], fallback: Pos) -> Pos:
    for n in range(len(path), -1, -1):
        if path[:n] in positions:
            return positions[path[:n]]
    return fallback


def format_problem(path: KeyPath, message: str, positions: dict[KeyPath, Pos], fallback: Pos) -> tuple[Pos, str]:
    pos = _locate(path, positions, fallback)
    key = ".".join(str(k) for k in path) or "(recipe)"
    return pos, f"{pos}: {key}: {message}"


def resolve(path: str | Path, overrides: Sequence[str] = ()) -> tuple[dict, dict[KeyPath, Pos]]:
    """The recipe after extends and overrides, not yet validated; YAML and extends problems raise RecipeError."""
    path = Path(path)
    try:
        data, positions = load_chain(path)
        data = apply_overrides(data, list(overrides), positions)
    except YamlProblem as exc:
        raise RecipeError([str(exc)]) from None
    return data, positions


def problems_of(
    data: dict,
    positions: dict[KeyPath, Pos],
    path: Path,
    *,
    check_data: bool = True,
    allow_unsafe_axolotl_keys: bool = False,
) -> list[str]:
    """Every problem of a resolved recipe, as sorted `FILE:LINE:COL: key.path: message` lines."""
    found: list[Problem] = non_finite_problems(data)
    flagged = {p for p, _ in found}
    found += [(p, m) for p, m in schema_problems(data) if p not in flagged]
    if not allow_unsafe_axolotl_keys:
        found += [(("axolotl", *p), advice(reason)) for p, reason in unsafe_axolotl_keys(data.get("axolotl"))]
    if not found:
        found = cross_field_problems(apply_defaults(data))
        if check_data and not found:
            found = _dataset_problems(data, path)
    fallback = Pos(str(path), 1, 1)
    located = [format_problem(p, m, positions, fallback) for p, m in found]
    located.sort(key=lambda item: (item[0].file, item[0].line, item[0].col))
    return list(dict.fromkeys(text for _, text in located))


def _dataset_problems(data: dict, path: Path) -> list[Problem]:
    """Problems only this machine can see: the dataset registry's (unknown entry, missing file, unsupported metric)
    and a local base model directory that is missing."""
    from iris_recipes.data import check_dataset_config
    from iris_recipes.fsutil import resolve as resolve_path
    from iris_recipes.models import base_model_problem

    def key_path(dotted: str) -> tuple:
        return tuple(int(k) if k.isdigit() else k for k in dotted.split("."))

    found = [
        (key_path(k) if isinstance(k, str) else tuple(k), m) for k, m in check_dataset_config(data, recipe_path=path)
    ]
    base = base_model_problem(data["base_model"], resolve_path(path).parent)
    return found + ([(("base_model",), base)] if base else [])


def load_recipe(
    path: str | Path, overrides: Sequence[str] = (), *, check_data: bool = True, allow_unsafe_axolotl_keys: bool = False
) -> Recipe:
    """Load and validate a recipe; raise RecipeError listing every problem at once.

    allow_unsafe_axolotl_keys: accept the `axolotl:` keys that load code, use the network or touch files outside
    the run directory (recipe/unsafe.py); only ever from the user's --allow-unsafe-axolotl-keys.
    """
    path = Path(path)
    data, positions = resolve(path, overrides)
    problems = problems_of(
        data, positions, path, check_data=check_data, allow_unsafe_axolotl_keys=allow_unsafe_axolotl_keys
    )
    if problems:
        raise RecipeError(problems)
    return Recipe(
        name=data["name"],
        path=path.resolve(),
        data=apply_defaults(data),
        raw=data,
        allow_unsafe_axolotl_keys=allow_unsafe_axolotl_keys,
    )
