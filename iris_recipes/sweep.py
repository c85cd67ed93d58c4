"""`iris-recipes sweep`: one normal run per variant of a recipe, each evaluated, then compared.

    iris-recipes sweep RECIPE train.learning_rate=1e-4,2e-4 lora.r=8,16 [--grid] [KEY=VALUE ...]

An argument with several comma-separated values is a swept axis; one with a single value is an override applied
to every variant. By default one factor changes at a time: the reference variant takes, for each axis, the
recipe's own value when it is among the listed ones (else the first listed), and each other value of each axis
gives one more variant. `--grid` runs every combination. Every variant is validated before the first one starts.
"""

from __future__ import annotations

import itertools
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from iris_recipes import fsutil
from iris_recipes.errors import IrisError


@dataclass
class Variant:
    index: int
    changes: dict[str, str]  # key -> value text, the swept keys of this variant
    overrides: list[str]  # fixed overrides + this variant's
    run_dir: Path | None = None
    status: str = "planned"
    error: str | None = None

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.changes.items())


@dataclass
class SweepPlan:
    recipe_path: Path
    name: str
    axes: list[tuple[str, list[str]]]
    fixed: list[str]
    grid: bool
    variants: list[Variant] = field(default_factory=list)
    allow_unsafe_axolotl_keys: bool = False  # the user's --allow-unsafe-axolotl-keys, for every variant


def split_values(text: str) -> list[str]:
    """Split on commas outside brackets and quotes: `1e-4,2e-4` -> 2 values; `[q4_k_m,q8_0]` stays one."""
    out, depth, quote, cur = [], 0, None, ""
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        cur += ch
    out.append(cur)
    return [v.strip() for v in out]


def parse_args(items: list[str]) -> tuple[list[tuple[str, list[str]]], list[str]]:
    axes: list[tuple[str, list[str]]] = []
    fixed: list[str] = []
    for item in items:
        if item.startswith("~"):
            fixed.append(item)
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise IrisError(f"{item!r}: expected KEY=VALUE or KEY=V1,V2,... (e.g. train.learning_rate=1e-4,2e-4)")
        values = split_values(value)
        if len(values) == 1:
            fixed.append(item)
            continue
        if any(not v for v in values):
            raise IrisError(f"{item!r}: an empty value in the list; write KEY=V1,V2 without empty items")
        if len(set(values)) != len(values):
            raise IrisError(f"{item!r}: a value is listed twice")
        if key in (k for k, _ in axes):
            raise IrisError(f"{key}: swept twice; give all its values in one KEY=V1,V2 argument")
        axes.append((key.strip(), values))
    if not axes:
        raise IrisError(
            "sweep: no axis to sweep; give at least one KEY=V1,V2 with two or more values "
            "(e.g. train.learning_rate=1e-4,2e-4)"
        )
    return axes, fixed


def _same(a, text: str) -> bool:
    """Whether an axis value (text, parsed the way overrides are) equals the recipe's current value."""
    from iris_recipes.recipe.yamlpos import parse_value

    try:
        return parse_value(text) == a
    except yaml.YAMLError:
        return False


def make_plan(
    recipe_arg: str, items: list[str], *, grid: bool = False, allow_unsafe_axolotl_keys: bool = False
) -> SweepPlan:
    """Every variant, each validated with the recipe loader; all problems reported together, before any work."""
    from iris_recipes.errors import RecipeError
    from iris_recipes.locate import recipe_path
    from iris_recipes.recipe import load_recipe

    path = recipe_path(recipe_arg)
    axes, fixed = parse_args(items)
    unsafe = {"allow_unsafe_axolotl_keys": allow_unsafe_axolotl_keys}
    recipe = load_recipe(path, overrides=fixed, **unsafe)  # the recipe itself (with the fixed overrides) must be valid
    if grid:
        combos = [dict(zip((k for k, _ in axes), vals)) for vals in itertools.product(*(v for _, v in axes))]
    else:
        ref = {}
        for key, values in axes:
            current = recipe.get(key)
            ref[key] = next((v for v in values if _same(current, v)), values[0])
        combos = [dict(ref)]
        for key, values in axes:
            combos += [{**ref, key: v} for v in values if v != ref[key]]
    plan = SweepPlan(path, recipe.name, axes, fixed, grid, allow_unsafe_axolotl_keys=allow_unsafe_axolotl_keys)
    problems: list[str] = []
    for i, changes in enumerate(combos):
        v = Variant(i, changes, [*fixed, *(f"{k}={val}" for k, val in changes.items())])
        try:
            load_recipe(path, overrides=v.overrides, **unsafe)
        except RecipeError as exc:
            problems += [f"variant {i} ({v.label}): {p}" for p in exc.problems]
        except IrisError as exc:
            problems.append(f"variant {i} ({v.label}): {exc}")
        plan.variants.append(v)
    if problems:
        raise IrisError("sweep: invalid variants (nothing was run):\n" + "\n".join(dict.fromkeys(problems)))
    return plan


def assign_dirs(plan: SweepPlan, sweep_id: str) -> None:
    from iris_recipes.paths import runs_dir

    for v in plan.variants:
        v.run_dir = runs_dir() / plan.name / f"{sweep_id}-v{v.index}"


def commands(plan: SweepPlan, *, samples: int | None = None) -> list[str]:
    """The shell commands of the sweep, one launch per variant (independent: a cluster can run them at once)."""
    exe = "iris-recipes"
    flag = ["--allow-unsafe-axolotl-keys"] if plan.allow_unsafe_axolotl_keys else []
    out = [
        shlex.join([exe, "run", str(plan.recipe_path), *v.overrides, "--output", str(v.run_dir), *flag])
        for v in plan.variants
    ]
    eval_flags = ["--samples", str(samples)] if samples is not None else []
    out += [shlex.join([exe, "eval", str(v.run_dir), *eval_flags]) for v in plan.variants]
    out.append(shlex.join([exe, "compare", *(str(v.run_dir) for v in plan.variants)]))
    return out


def sweep_record(plan: SweepPlan, sweep_id: str, **extra) -> dict:
    return {
        "sweep_id": sweep_id,
        "recipe": plan.name,
        "recipe_path": str(plan.recipe_path),
        "grid": plan.grid,
        "axes": {k: v for k, v in plan.axes},
        "fixed_overrides": plan.fixed,
        "variants": [
            {
                "index": v.index,
                "changes": v.changes,
                "overrides": v.overrides,
                "run_dir": str(v.run_dir),
                "status": v.status,
                "error": v.error,
            }
            for v in plan.variants
        ],
        **extra,
    }


def execute(plan: SweepPlan, sweep_id: str, *, samples: int | None = None, log=None) -> dict:
    """Run, evaluate and compare every variant, one after another; a failed variant does not stop the others."""
    from iris_recipes.compare import compare
    from iris_recipes.evaluate import plan as eval_plan
    from iris_recipes.evaluate.runner import check_samples
    from iris_recipes.paths import runs_dir
    from iris_recipes.pipeline import run_recipe
    from iris_recipes.run_options import RunOptions
    from iris_recipes.stages import evaluate_run

    check_samples(samples)  # eval would refuse it, but only after every variant has trained
    log = log or (lambda m: print(m, file=sys.stderr))
    record = runs_dir() / plan.name / f"sweep-{sweep_id}.json"
    fsutil.write_json(record, sweep_record(plan, sweep_id))
    for v in plan.variants:
        log(f"sweep: variant {v.index}/{len(plan.variants) - 1}: {v.label} -> {v.run_dir}")
        try:
            v.status = "running"
            run = run_recipe(
                str(plan.recipe_path),
                RunOptions(
                    overrides=tuple(v.overrides),
                    output=str(v.run_dir),
                    evaluate=False,
                    allow_unsafe_axolotl_keys=plan.allow_unsafe_axolotl_keys,
                ),
            )
            v.status = "trained"
            evaluate_run(eval_plan(run.path, samples=samples), log=lambda m: log(f"eval: {m}"))
            v.status = "done"
        except IrisError as exc:
            v.status, v.error = "failed", str(exc)
            log(f"sweep: variant {v.index} failed: {exc}")
        fsutil.write_json(record, sweep_record(plan, sweep_id))
    done = [v for v in plan.variants if v.status == "done"]
    md = None
    if done:
        _, md = compare([str(v.run_dir) for v in done], runs_dir() / plan.name / f"sweep-{sweep_id}.md")
    result = sweep_record(plan, sweep_id, comparison=str(md) if md else None)
    fsutil.write_json(record, result)
    return result
