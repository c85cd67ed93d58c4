from __future__ import annotations

from iris_recipes.commands.common import add_command


def add_parser(sub) -> None:
    p = add_command(
        sub, "list", help="table of the recipes: base model, dataset, method, built or not", example="iris-recipes list"
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from iris_recipes.errors import RecipeError
    from iris_recipes.locate import all_recipe_paths
    from iris_recipes.recipe import load_recipe
    from iris_recipes.rundir import find_runs, latest_done_run

    table = Table(title="iris-recipes", header_style="bold")
    for column in ("recipe", "base model", "dataset", "method", "built"):
        table.add_column(column)
    invalid = 0
    for path in all_recipe_paths():
        try:
            r = load_recipe(path, check_data=False)
        except RecipeError as exc:
            invalid += 1
            table.add_row(path.stem, "[red]invalid[/]", exc.problems[0].split(": ", 1)[-1], "", "")
            continue
        dataset = r.get("dataset.name") or r.get("dataset.path")
        done = latest_done_run(r.name)
        runs = len(find_runs(r.name))
        built = f"[green]{done.path.name}[/]" if done else (f"[yellow]{runs} unfinished[/]" if runs else "no")
        table.add_row(r.name, r.get("base_model"), dataset, r.get("method"), built)
    Console().print(table)
    return 2 if invalid else 0
