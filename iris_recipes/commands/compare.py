"""`iris-recipes compare RUN_OR_RECIPE ...`: eval metrics of several runs, changes beyond seed noise marked."""

from __future__ import annotations

from contextlib import nullcontext

from iris_recipes.commands.common import add_command, writing_to


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "compare",
        help="compare the eval metrics of several runs (table + Markdown)",
        example="iris-recipes compare smollm2-demo runs/smollm2-demo/20250101-120000",
    )
    p.add_argument(
        "runs",
        nargs="+",
        metavar="RUN_OR_RECIPE",
        help="a run directory, or a recipe name/file meaning its newest finished run",
    )
    p.add_argument(
        "--output",
        "-o",
        metavar="FILE.md",
        help="where to write the Markdown (default: RUNS/comparisons/compare-<time>.md)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from iris_recipes.compare import compare

    with writing_to("--output", args.output) if args.output is not None else nullcontext() as output:
        _, dest = compare(args.runs, output)
    print(f"written: {dest}")
    return 0
