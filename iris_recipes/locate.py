"""What a command names, found on disk: a recipe (a file or a bare name) and a run (a directory, or a recipe
meaning one of its runs). Every command resolves through here, so "RUN or recipe" means the same everywhere."""

from __future__ import annotations

from pathlib import Path

from iris_recipes.errors import IrisError
from iris_recipes.paths import recipes_dir, runs_dir
from iris_recipes.rundir import RunDir, find_runs

# Which run of a recipe a command means.
NEWEST = "newest"  # the newest run, whatever its status (export: re-export what is there)
NEWEST_DONE = "newest-done"  # the newest finished run (compare, the Space)
NEWEST_UNFINISHED = "newest-unfinished"  # the newest run not finished (run --resume)


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


def find_run(arg: str, which: str) -> RunDir:
    """The run `arg` names: a run directory, or a recipe (a file, or a recipe name) meaning its `which` run."""
    path = Path(arg)
    if which == NEWEST:
        if path.exists() or "/" in arg:
            return RunDir.open(path)
        return run_of_recipe(arg, which, arg=arg)
    if (path / "run.json").is_file():
        return RunDir.open(path)
    if path.is_dir():
        raise IrisError(
            f"{arg}: a directory without run.json; give a run directory (runs/<recipe>/<run-id>) or a recipe name"
        )
    name = arg
    if path.suffix in (".yaml", ".yml") or path.is_file():
        from iris_recipes.recipe import load_recipe

        name = load_recipe(recipe_path(arg), check_data=False).name
    return run_of_recipe(name, which, arg=arg)


def run_of_recipe(name: str, which: str, *, arg: str | None = None) -> RunDir:
    """The `which` run of the recipe called `name` (`arg`: what the user typed, for the error)."""
    arg = arg or name
    runs = find_runs(name)
    if which == NEWEST_DONE:
        runs = [r for r in runs if r.read().get("status") == "done"]
    elif which == NEWEST_UNFINISHED:
        runs = [r for r in runs if r.read().get("status") != "done"]
    elif which != NEWEST:
        raise ValueError(f"unknown run choice {which!r}")
    if runs:
        return runs[-1]
    if which == NEWEST:
        raise IrisError(f"{arg}: no such run directory, and no runs of a recipe named {arg!r}.")
    if which == NEWEST_DONE:
        raise IrisError(
            f"{arg}: no finished run of recipe '{name}' under the runs directory. Run it first: "
            f"`iris-recipes run {arg}`, or give a run directory."
        )
    raise IrisError(
        f"--resume: no unfinished run of recipe {name} in {runs_dir() / name}; start a new one without --resume."
    )
