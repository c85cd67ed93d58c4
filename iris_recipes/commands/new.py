from __future__ import annotations

import os
import re

from iris_recipes.cli import add_command

SCHEMA_LINE = "# yaml-language-server: $schema=../iris_recipes/schema/recipe.schema.json\n"


def add_parser(sub) -> None:
    p = add_command(sub, "new", help="copy a recipe to recipes/NAME.yaml for editing",
                    example="iris-recipes new my-math --from llama1b-math",
                    description="Create recipes/NAME.yaml from an existing recipe: by default a short file that "
                                "extends it; --flat writes the whole resolved recipe. Never overwrites.")
    p.add_argument("name", metavar="NAME", help="the new variant's name (lower-case, digits, . _ -)")
    p.add_argument("--from", dest="source", required=True, metavar="RECIPE", help="recipe to start from")
    p.add_argument("--flat", action="store_true", help="copy every setting instead of extending the source")
    p.set_defaults(func=run)


def run(args) -> int:
    from iris_recipes.commands.common import recipe_path
    from iris_recipes.errors import IrisError
    from iris_recipes.fsutil import atomic_path
    from iris_recipes.paths import recipes_dir
    from iris_recipes.recipe import dump_yaml, load_recipe
    from iris_recipes.recipe.schema import load_schema

    pattern = load_schema()["properties"]["name"]["pattern"]
    if not re.fullmatch(pattern, args.name):
        raise IrisError(f"name '{args.name}' is not a valid recipe name: use lower-case letters, digits, '.', '_' or '-'")
    source = load_recipe(recipe_path(args.source))
    dest = recipes_dir() / f"{args.name}.yaml"
    header = SCHEMA_LINE + f"# Run:      iris-recipes run recipes/{args.name}.yaml\n"
    if args.flat:
        body = dump_yaml({**source.raw, "name": args.name})
        header += f"# Copied from {source.path.name}.\n"
    else:
        rel = os.path.relpath(source.path, recipes_dir())
        body = (f"extends: {rel}\nname: {args.name}\ndescription: {source.raw.get('description', '')} (edited copy)\n"
                "# Change only what differs, e.g.:\n# train:\n#   learning_rate: 1.0e-4\n")
    try:  # exclusive create: refuse to overwrite, even if another process creates the file meanwhile
        with atomic_path(dest.with_suffix(".yaml.new")) as tmp:
            tmp.write_text(header + body)
            os.link(tmp, dest)
    except FileExistsError:
        raise IrisError(f"{dest} already exists; choose another name or delete it first") from None
    finally:
        dest.with_suffix(".yaml.new").unlink(missing_ok=True)
    load_recipe(dest)  # the copy must validate as written
    print(f"wrote {dest}\nedit it, then: iris-recipes validate {dest.relative_to(recipes_dir().parent)}")
    return 0
