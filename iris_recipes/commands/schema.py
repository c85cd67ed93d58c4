from __future__ import annotations

from iris_recipes.commands.common import add_command


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "schema",
        help="print the recipe JSON Schema (draft 2020-12)",
        example="iris-recipes schema > recipe.schema.json",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from iris_recipes.paths import schema_path

    print(schema_path().read_text(), end="")
    return 0
