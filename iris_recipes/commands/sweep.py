"""`iris-recipes sweep RECIPE KEY=V1,V2 ...`: one run per variant, each evaluated, then compared."""

from __future__ import annotations

from iris_recipes.commands.common import add_command, add_unsafe_flag


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "sweep",
        help="run, evaluate and compare variants of a recipe (hyperparameter sweep)",
        example="iris-recipes sweep smollm2-demo train.learning_rate=1e-4,2e-4 lora.r=8,16",
        description="Each KEY=V1,V2,... argument is a swept axis; KEY=VALUE is an override for every "
        "variant. One factor at a time from the recipe's values by default; --grid for "
        "every combination. Each variant is a normal run with its own directory, then "
        "`eval`; the comparison goes to RUNS/<recipe>/sweep-<id>.md.",
    )
    p.add_argument("recipe", metavar="RECIPE", help="recipe file or name in recipes/")
    p.add_argument("values", nargs="+", metavar="KEY=V1,V2", help="swept axes and fixed overrides (~KEY deletes)")
    p.add_argument("--grid", action="store_true", help="every combination of the axes (default: one at a time)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="validate every variant and print the commands (one launch per variant, e.g. for a cluster)",
    )
    p.add_argument("--samples", type=int, default=None, help="held-out rows per metric in each eval")
    add_unsafe_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from iris_recipes.evaluate.runner import check_samples
    from iris_recipes.rundir import new_run_id
    from iris_recipes.sweep import assign_dirs, commands, execute, make_plan

    check_samples(args.samples)
    plan = make_plan(args.recipe, args.values, grid=args.grid, allow_unsafe_axolotl_keys=args.allow_unsafe_axolotl_keys)
    sweep_id = f"{new_run_id()}-sweep"
    assign_dirs(plan, sweep_id)
    print(
        f"sweep of {plan.name}: {len(plan.variants)} variant(s) "
        f"({'full grid' if plan.grid else 'one factor at a time'})"
    )
    for v in plan.variants:
        print(f"  v{v.index}: {v.label}")
    if args.dry_run:
        print("\n".join(commands(plan, samples=args.samples)))
        return 0
    result = execute(plan, sweep_id, samples=args.samples)
    failed = [v for v in result["variants"] if v["status"] != "done"]
    print(f"comparison: {result['comparison']}" if result["comparison"] else "no variant finished")
    return 1 if failed else 0
