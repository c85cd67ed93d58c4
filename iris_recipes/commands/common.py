"""Helpers shared by the recipe commands: finding recipe files and reporting problems."""

from __future__ import annotations

import argparse
from pathlib import Path

from iris_recipes.errors import IrisError
from iris_recipes.paths import recipes_dir


def add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="override a key (train.learning_rate=5e-5, YAML-typed) or delete one (~card.tags)",
    )


def add_unsafe_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-unsafe-axolotl-keys",
        action="store_true",
        help="accept axolotl: keys that load code, use the network with your credentials or touch "
        "files outside the run directory (plugins, trust_remote_code, hub_model_id, "
        "output_dir, ...; see README). Only for recipes you trust",
    )


def recipe_path(arg: str) -> Path:
    """A recipe given as a path, or as a bare name of recipes/NAME.yaml."""
    path = Path(arg)
    if path.is_file():
        return path
    named = recipes_dir() / f"{arg.removesuffix('.yaml')}.yaml"
    if named.is_file():
        return named
    known = ", ".join(sorted(p.stem for p in recipes_dir().glob("*.yaml"))) or "none"
    raise IrisError(f"{arg}: no such recipe file or recipes/{arg}.yaml. Known recipes: {known}")


def all_recipe_paths() -> list[Path]:
    """The runnable recipes: recipes/*.yaml (bases in recipes/base/ are not runnable on their own)."""
    return sorted(recipes_dir().glob("*.yaml"))
