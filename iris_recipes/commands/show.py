from __future__ import annotations

from iris_recipes.commands.common import add_command, add_overrides, add_unsafe_flag
from iris_recipes.locate import recipe_path


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "show",
        help="print a recipe fully resolved (extends, overrides, defaults)",
        example="iris-recipes show llama1b-math train.learning_rate=5e-5",
    )
    p.add_argument("recipe", metavar="RECIPE", help="recipe file or name")
    add_overrides(p)
    p.add_argument("--no-defaults", action="store_true", help="show only what the recipe and its bases set")
    add_unsafe_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from iris_recipes.recipe import load_recipe

    recipe = load_recipe(
        recipe_path(args.recipe), args.overrides, allow_unsafe_axolotl_keys=args.allow_unsafe_axolotl_keys
    )
    from iris_recipes import objectives

    print(f"# {recipe.path}  sha256:{recipe.hash()[:12]}")
    print(f"# trains: {objectives.describe(recipe.data)}, method {recipe.data['method']}")
    print(recipe.to_yaml(defaults=not args.no_defaults), end="")
    return 0
