"""Task metrics: each scores one generated answer against a held-out row's `reference`, in [0, 1].

    exact_match_number  the answer's last number equals reference.answer (math; "Answer: 12", "= 12.0" both count)
    truthfulness        the answer is closer to one of reference.correct than to every reference.incorrect
                        (TruthfulQA-style; closeness = F1 overlap of content words)
    keyword_overlap     share of reference.keywords found among the answer's words (slang definitions)
    format_regex        the answer matches the recipe's eval.format_regex (Python `re.search`)

A metric's value over a set of rows is the mean of the per-row scores.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from iris_recipes.data import METRIC_NEEDS
from iris_recipes.data.cells import content_words, last_number
from iris_recipes.errors import IrisError
from iris_recipes.recipe.cross_checks import regex_problem


def _number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def exact_match_number(answer: str, reference: dict) -> float:
    got, want = _number(last_number(answer)), _number(str(reference.get("answer", "")).replace(",", ""))
    return float(got is not None and want is not None and abs(got - want) < 1e-9)


def word_f1(a: str, b: str) -> float:
    """F1 overlap of the two texts' content words (0 when either has none)."""
    wa, wb = set(content_words(a)), set(content_words(b))
    common = len(wa & wb)
    if not common:
        return 0.0
    precision, recall = common / len(wa), common / len(wb)
    return 2 * precision * recall / (precision + recall)


def truthfulness(answer: str, reference: dict) -> float:
    best_true = max((word_f1(answer, ref) for ref in reference.get("correct") or []), default=0.0)
    best_false = max((word_f1(answer, ref) for ref in reference.get("incorrect") or []), default=0.0)
    return float(best_true > best_false)


def keyword_overlap(answer: str, reference: dict) -> float:
    keywords = {k.lower() for k in reference.get("keywords") or []}
    if not keywords:
        return 0.0
    words = set(content_words(answer)) | {w.lower() for w in re.findall(r"[\w'-]+", answer)}
    return len(keywords & words) / len(keywords)


def format_scorer(pattern: str) -> Callable[[str, dict], float]:
    regex = re.compile(pattern)
    return lambda answer, reference: float(regex.search(answer) is not None)


# The task metrics: name -> score(answer, reference). format_regex is built from the recipe's eval.format_regex.
# What each needs from a held-out row is data.METRIC_NEEDS; the schema's eval.metrics enum lists the same names
# (tests/test_tables.py keeps the three in step).
SCORERS: dict[str, Callable[[str, dict], float] | None] = {
    "exact_match_number": exact_match_number,
    "truthfulness": truthfulness,
    "keyword_overlap": keyword_overlap,
    "format_regex": None,
}


def scorers(recipe_eval: dict) -> dict[str, Callable[[str, dict], float]]:
    """name -> score(answer, reference) for the recipe's eval.metrics (eval.format_regex already checked)."""
    out = {}
    for name in recipe_eval.get("metrics") or []:
        out[name] = format_scorer(recipe_eval["format_regex"]) if name == "format_regex" else SCORERS[name]
    return out


def check_metrics(recipe_eval: dict, rows: list[dict], where: str) -> None:
    """Fail before any work when a metric cannot be computed: no regex, or rows without the reference it needs.

    `where` names the held-out file the rows come from (errors say which row lacks what).
    """
    metrics = recipe_eval.get("metrics") or []
    problems = []
    if "format_regex" in metrics:
        pattern = recipe_eval.get("format_regex")
        if not pattern:
            problems.append("eval.metrics: format_regex needs eval.format_regex (a Python regex) in the recipe")
        elif problem := regex_problem(pattern):
            problems.append(f"eval.format_regex: {problem}")
    for name in metrics:
        needs = METRIC_NEEDS.get(name, ())
        if not needs:
            continue
        lacking = [i for i, row in enumerate(rows, 1) if any(not (row.get("reference") or {}).get(k) for k in needs)]
        if lacking:
            shown = ", ".join(map(str, lacking[:5])) + (" ..." if len(lacking) > 5 else "")
            problems.append(
                f"eval.metrics: {name} needs reference {' and '.join(needs)} on every held-out row, "
                f"but {len(lacking)} of {len(rows)} rows of {where} lack it (rows {shown}). Map the "
                "reference columns in the dataset (columns.reference) or drop the metric from the recipe"
            )
    if problems:
        raise IrisError("\n".join(problems))


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
