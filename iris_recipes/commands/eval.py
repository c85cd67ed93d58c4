"""`iris-recipes eval RUN`: fine-tuned vs base on held-out data: loss, task metrics, answers, GGUF speed."""

from __future__ import annotations

import sys

from iris_recipes.commands.common import add_command


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "eval",
        help="measure a run's fine-tuned model against its base (writes RUN/eval.json, then the card)",
        example="iris-recipes eval runs/smollm2-demo/20250101-120000 --samples 10",
        description="Validation loss and perplexity (assistant tokens), the recipe's task metrics "
        "(eval.metrics) on held-out rows with greedy and seeded answers, the eval prompts "
        "answered side by side, and latency / time to first token / tokens/s of each GGUF. The model card is "
        "written again afterwards (the card stage).",
    )
    p.add_argument("run", metavar="RUN", help="a run directory (runs/<recipe>/<run-id>)")
    p.add_argument("--samples", type=int, default=None, help="held-out rows per metric (default: eval.samples)")
    p.set_defaults(func=run)


def run(args) -> int:
    from iris_recipes.evaluate import plan
    from iris_recipes.evaluate.report import print_eval
    from iris_recipes.stages import evaluate_run

    checked = plan(args.run, samples=args.samples)  # every input problem surfaces here, before any model loads
    result = evaluate_run(checked, log=lambda m: print(f"eval: {m}", file=sys.stderr))
    print_eval(result, checked.run.file("eval.json"))
    return 0
