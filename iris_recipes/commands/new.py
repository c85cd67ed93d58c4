from __future__ import annotations

import os
import re

from iris_recipes.commands.common import add_command, add_unsafe_flag

SCHEMA_LINE = "# yaml-language-server: $schema=../iris_recipes/schema/recipe.schema.json\n"


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "new",
        help="copy a recipe to recipes/NAME.yaml for editing",
        example="iris-recipes new my-math --from llama1b-math",
        description="Create recipes/NAME.yaml from an existing recipe: by default a short file that "
        "extends it; --flat writes the whole resolved recipe. Never overwrites; a copy that "
        "would not validate is not written.",
    )
    p.add_argument("name", metavar="NAME", help="the new variant's name (lower-case, digits, . _ -)")
    p.add_argument("--from", dest="source", required=True, metavar="RECIPE", help="recipe to start from")
    p.add_argument("--flat", action="store_true", help="copy every setting instead of extending the source")
    add_unsafe_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import tempfile
    from pathlib import Path

    from iris_recipes.errors import IrisError, RecipeError
    from iris_recipes.locate import recipe_path
    from iris_recipes.paths import recipes_dir
    from iris_recipes.recipe import dump_yaml, load_recipe
    from iris_recipes.recipe.merge import rebase_paths
    from iris_recipes.recipe.schema import load_schema

    pattern = load_schema()["properties"]["name"]["pattern"]
    if not re.fullmatch(pattern, args.name):
        raise IrisError(
            f"name '{args.name}' is not a valid recipe name: use lower-case letters, digits, '.', '_' or '-'"
        )
    unsafe = {"allow_unsafe_axolotl_keys": args.allow_unsafe_axolotl_keys}
    source = load_recipe(recipe_path(args.source), **unsafe)
    dest = recipes_dir() / f"{args.name}.yaml"
    if dest.exists():
        raise IrisError(f"{dest} already exists; choose another name or delete it first")
    header = SCHEMA_LINE + f"# Run:      iris-recipes run recipes/{args.name}.yaml\n"
    if args.flat:
        data = rebase_paths({**source.raw, "name": args.name}, source.path.parent, recipes_dir())
        body = dump_yaml(data)
        header += f"# Copied from {source.path.name}.\n"
    else:
        own = {"extends": os.path.relpath(source.path, recipes_dir()), "name": args.name}
        if source.raw.get("description"):
            own["description"] = f"{source.raw['description']} (edited copy)"
        body = dump_yaml(own) + "# Change only what differs, e.g.:\n# train:\n#   learning_rate: 1.0e-4\n"

    # Written and validated under a temporary name beside the destination (so `extends` resolves the same way),
    # then linked into place: the destination never exists unless the copy is valid, and is never overwritten.
    if not recipes_dir().is_dir():
        raise IrisError(f"{recipes_dir()}: no recipes folder; run iris-recipes from the project (or set IRIS_HOME)")
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".new", dir=recipes_dir())
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(header + body)
        tmp.chmod(0o644)
        try:
            load_recipe(tmp, **unsafe)
        except RecipeError as exc:
            raise RecipeError([line.replace(str(tmp), str(dest)) for line in exc.problems]) from None
        try:
            os.link(tmp, dest)
        except FileExistsError:
            raise IrisError(f"{dest} already exists; choose another name or delete it first") from None
    finally:
        tmp.unlink(missing_ok=True)
    print(f"wrote {dest}\nedit it, then: iris-recipes validate {dest.relative_to(recipes_dir().parent)}")
    return 0
