from __future__ import annotations

import sys
import time
from pathlib import Path

from iris_recipes.commands.common import add_command, add_unsafe_flag, is_override
from iris_recipes.errors import IrisError, RecipeError
from iris_recipes.locate import all_recipe_paths


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "validate",
        help="check recipes against the schema, all errors at once",
        example="iris-recipes validate recipes/llama1b-math.yaml train.learning_rate=5e-5",
        description="Validate recipes (default: every recipes/*.yaml). Exit 2 if any has a problem.",
    )
    p.add_argument("recipes", nargs="*", metavar="RECIPE", help="recipe files (default: recipes/*.yaml)")
    p.add_argument(
        "-o",
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="apply an override to every recipe before validating (repeatable)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    add_unsafe_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from iris_recipes.recipe import load_recipe

    # `validate a.yaml train.lr=1` is accepted too: arguments with '=' or a leading '~' are overrides
    paths = [a for a in args.recipes if not is_override(a)]
    overrides = args.override + [a for a in args.recipes if a not in paths]
    targets = [Path(p) for p in paths] or all_recipe_paths()
    if not targets:
        raise IrisError("no recipes to validate: recipes/ holds no *.yaml (create one with iris-recipes new)")
    start = time.perf_counter()
    failed = 0
    for path in targets:
        try:
            recipe = load_recipe(path, overrides, allow_unsafe_axolotl_keys=args.allow_unsafe_axolotl_keys)
        except RecipeError as exc:
            failed += 1
            for line in exc.problems:
                print(line, file=sys.stderr)
            continue
        if not args.quiet:
            print(f"ok  {path}  ({recipe.name})")
    elapsed = time.perf_counter() - start
    if not args.quiet:
        print(f"{len(targets) - failed}/{len(targets)} valid in {elapsed * 1000:.0f} ms", file=sys.stderr)
    return 2 if failed else 0
