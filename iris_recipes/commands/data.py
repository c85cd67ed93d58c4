"""`iris-recipes data`: list the dataset registry, or run a recipe's data stage alone to inspect its rows."""

from __future__ import annotations

from iris_recipes.commands.common import add_command, add_overrides, add_unsafe_flag, writing_to
from iris_recipes.locate import recipe_path


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "data",
        help="list dataset entries, or prepare a recipe's data alone (train/val JSONL + report)",
        example="iris-recipes data prepare recipes/llama1b-liar.yaml dataset.source=sample --out /tmp/liar",
        description="`data list` shows the registry (datasets/NAME/dataset.yaml). `data prepare RECIPE` "
        "runs only the data stage: bad rows, duplicates and the split, without training. "
        "Rows are not length-filtered here (training does that with the real tokenizer).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="the registered datasets").set_defaults(func=run_list)
    prep = actions.add_parser("prepare", help="write OUT/train.jsonl, val.jsonl and report.json")
    prep.add_argument("recipe", metavar="RECIPE", help="recipe file, or the name of recipes/NAME.yaml")
    add_overrides(prep)
    prep.add_argument("--out", required=True, help="output folder (files are replaced atomically)")
    add_unsafe_flag(prep)
    prep.set_defaults(func=run_prepare)


def run_list(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from iris_recipes.data import entry_names, load_entry
    from iris_recipes.errors import IrisError

    table = Table(title="datasets", header_style="bold")
    table.add_column("name", no_wrap=True)
    for column in ("format", "data", "license", "reference"):
        table.add_column(column, overflow="fold")
    broken = 0
    for name in entry_names():
        try:
            e = load_entry(name)
        except IrisError as exc:
            broken += 1
            table.add_row(name, "[red]invalid[/]", str(exc).splitlines()[-1].strip(), "", "")
            continue
        data = e.hub or str(e.source.get("path"))
        table.add_row(name, e.format, data, e.license.split(" (")[0], ", ".join(e.columns.get("reference", {})))
    Console().print(table)
    return 2 if broken else 0


def run_prepare(args) -> int:
    from iris_recipes.data import prepare
    from iris_recipes.recipe import load_recipe

    with writing_to("--out", args.out, folder=True) as out:
        recipe = load_recipe(
            recipe_path(args.recipe), args.overrides, allow_unsafe_axolotl_keys=args.allow_unsafe_axolotl_keys
        )
        report = prepare(recipe, out)
    for s in report["sources"]:
        keys = ("read", "bad", "converted", "duplicates", "too_short", "train", "val")  # converted: pairs/answers
        counts = ", ".join(f"{k} {s[k]}" for k in keys if k in s)
        print(f"{s['key']}: {s['origin']}: {counts}")
    for line in report["bad_rows"]:
        print(f"  skipped: {line}")
    print(f"wrote {out}/train.jsonl ({report['train']} rows), val.jsonl ({report['val']}), report.json")
    return 0
