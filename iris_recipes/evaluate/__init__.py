"""Evidence that a fine-tune helped: `iris-recipes eval` (runner), task metrics, validation loss, generations.

plan(run, samples=None) -> Plan       check a run can be evaluated (no model loaded)
evaluate(plan) -> dict                run it; writes RUN/eval.json and the `eval` stage of run.json
"""

from iris_recipes.evaluate.runner import EVAL_FILE, Plan, evaluate, plan

__all__ = ["EVAL_FILE", "Plan", "evaluate", "plan"]
