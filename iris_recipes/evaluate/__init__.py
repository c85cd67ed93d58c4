"""Evidence that a fine-tune helped: `iris-recipes eval` (runner), task metrics, validation loss, generations.

plan(run, samples=None) -> Plan       check a run can be evaluated (no model loaded)
evaluate_into(plan, facts, log)       the eval stage's work: RUN/eval.json (stages.py runs and records it)
"""

from iris_recipes.evaluate.runner import EVAL_FILE, Plan, evaluate_into, plan

__all__ = ["EVAL_FILE", "Plan", "evaluate_into", "plan"]
