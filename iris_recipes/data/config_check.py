"""Dataset problems a recipe check can find without reading any data (YAML and paths only: fast, no pandas)."""

from __future__ import annotations

from pathlib import Path

from iris_recipes import objectives
from iris_recipes.data.formats import Mapping, mapping_problems
from iris_recipes.data.registry import ENTRY_FILE, did_you_mean, entry_names, load_entry
from iris_recipes.data.sources import SUFFIXES
from iris_recipes.errors import IrisError
from iris_recipes.fsutil import path_text_problem, resolve
from iris_recipes.paths import datasets_dir

# eval metric -> reference keys each held-out row must be able to carry
METRIC_NEEDS = {
    "exact_match_number": ("answer",),
    "truthfulness": ("correct", "incorrect"),
    "keyword_overlap": ("keywords",),
}


def check_dataset_config(recipe_data, recipe_path: str | Path | None = None) -> list[tuple[str, str]]:
    """(key.path, message) problems of the recipe's `dataset` block and the eval metrics it must support.

    `recipe_data` is the recipe dict (or a Recipe); relative `path:` values are resolved against the folder of
    `recipe_path` (the recipe file), else the Recipe's own path, else the working directory.
    """
    if hasattr(recipe_data, "data"):
        recipe_path = recipe_path or recipe_data.path
        recipe_data = recipe_data.data
    base_dir = resolve(recipe_path).parent if recipe_path else Path.cwd()
    ds = recipe_data.get("dataset")
    if not isinstance(ds, dict):
        return []
    out: list[tuple[str, str]] = []
    objective = objectives.of(recipe_data)
    main = _check_source(ds, "dataset", base_dir, out, objective)
    for i, block in enumerate(ds.get("mix") or []):
        if isinstance(block, dict):
            _check_source(block, f"dataset.mix.{i}", base_dir, out, objective)
    metrics = (recipe_data.get("eval") or {}).get("metrics") or []
    if main is not None:
        provided = set(main.reference)
        for metric in metrics:
            lacking = [k for k in METRIC_NEEDS.get(metric, ()) if k not in provided]
            if lacking:
                has = ", ".join(sorted(provided)) or "none"
                out.append(
                    (
                        "eval.metrics",
                        f"{metric} needs reference {' and '.join(lacking)} on held-out rows, but "
                        f"the dataset provides reference keys: {has}. Map them in columns.reference "
                        f"(e.g. {lacking[0]}: COLUMN) or drop the metric",
                    )
                )
    return out


def _check_source(block: dict, key: str, base_dir: Path, out: list, objective) -> Mapping | None:
    """Append the block's problems; return its effective mapping when it could be determined."""
    if block.get("path"):
        problem = path_text_problem(str(block["path"]))
        if problem:
            out.append((f"{key}.path", f"the path {problem}; give the path of a local data file"))
            return None
        path = resolve(base_dir / str(block["path"]))
        if path.suffix.lower() not in SUFFIXES:
            out.append((f"{key}.path", f"{path.name}: unsupported file type; use one of {', '.join(SUFFIXES)}"))
        elif not path.is_file():
            out.append((f"{key}.path", f"file not found: {path} (paths are relative to the recipe file)"))
        if block.get("source") == "sample":
            out.append((f"{key}.source", "`sample` applies to registry entries (name:); a path is always read whole"))
        return _mapping(block.get("format"), block.get("columns"), key, out, objective)

    name = block.get("name")
    if not name:
        return None
    problem = path_text_problem(str(name))
    if problem:
        out.append((f"{key}.name", f"the name {problem}; give the name of a folder in datasets/"))
        return None
    if not (datasets_dir() / name / ENTRY_FILE).is_file():
        names = entry_names()
        out.append(
            (
                f"{key}.name",
                f"unknown dataset '{name}': {did_you_mean(name, names)}registered: {', '.join(names) or '(none)'}",
            )
        )
        return None
    try:
        entry = load_entry(name)
    except IrisError as exc:
        out.append((f"{key}.name", str(exc)))
        return None
    if block.get("source", "full") == "sample":
        sample = entry.sample_path()
        if sample is None:
            out.append((f"{key}.source", f"dataset '{name}' ships no sample; use source: full"))
        elif not sample.is_file():
            out.append((f"{key}.source", f"the sample of '{name}' is missing: {sample}"))
    elif entry.full_path() is not None and not entry.full_path().is_file():
        out.append(
            (
                f"{key}.name",
                f"the data of '{name}' is missing: {entry.full_path()} "
                "(see datasets/README.md to build it, or use source: sample)",
            )
        )
    return _mapping(*entry.mapping_for(block), key, out, objective, entry=name)


def _mapping(fmt, columns, key: str, out: list, objective, entry: str | None = None) -> Mapping | None:
    problems = mapping_problems(fmt, columns)
    out.extend((f"{key}.{k}", m) for k, m in problems)
    if problems:
        return None
    mapping = Mapping(fmt, dict(columns or {}))
    source = f"dataset '{entry}' (format {fmt})" if entry else f"format {fmt}"
    problem = objectives.row_kind_problem(objective, mapping.produces, source)
    if problem:  # a registry entry declares its format: the recipe's dataset name is where to change it
        out.append((f"{key}.name" if entry else f"{key}.format", problem))
    return mapping
