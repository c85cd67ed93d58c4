"""`iris-recipes card RUN`: (re)write a run's model card (README.md) and loss curve (loss.png)."""

from __future__ import annotations

from iris_recipes.commands.common import add_command


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "card",
        help="write a run's model card (RUN/README.md) and loss curve (RUN/loss.png)",
        example="iris-recipes card runs/smollm2-demo/20250101-120000",
    )
    p.add_argument("run", metavar="RUN", help="run directory (runs/<recipe>/<run-id>)")
    p.set_defaults(func=run)


def run(args) -> int:
    from iris_recipes.rundir import RunDir
    from iris_recipes.stages import StageContext, run_alone

    print(run_alone("card", StageContext(RunDir.open(args.run))))
    return 0
