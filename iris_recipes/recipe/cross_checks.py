"""Rules the schema's field-by-field checks cannot express: combinations of keys, finite numbers, usable paths."""

from __future__ import annotations

import math
import re
import warnings
from typing import Any

from iris_recipes import objectives
from iris_recipes.data.formats import UNPAIRED
from iris_recipes.models import base_model_problem
from iris_recipes.recipe.schema import Problem


def non_finite_problems(value: Any, path: tuple = ()) -> list[Problem]:
    """NaN and infinities anywhere in the recipe: YAML reads `.nan` and `.inf` as numbers, and every range check
    of the schema lets NaN through (it compares false with everything)."""
    if isinstance(value, float) and not math.isfinite(value):
        text = ".nan" if math.isnan(value) else ("-.inf" if value < 0 else ".inf")
        return [(path, f"{text} is not a usable number; give a finite value")]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in non_finite_problems(item, path + (key,))]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in non_finite_problems(item, path + (i,))]
    return []


def cross_field_problems(r: dict) -> list[Problem]:
    out: list[Problem] = []
    train = r.get("train", {})
    dataset = r.get("dataset", {})
    method = r.get("method", "lora")

    base = r.get("base_model")
    problem = base_model_problem(base, text_only=True) if isinstance(base, str) else None
    if problem:  # what this machine holds is checked with the data (loader.problems_of, check_data)
        out.append((("base_model",), problem))
    if "weight" in dataset:
        out.append(
            (
                ("dataset", "weight"),
                "weight belongs to the sources in dataset.mix; the main dataset is the reference (1.0)",
            )
        )
    if "epochs" not in train and "max_steps" not in train:
        out.append((("train",), "give train.epochs or train.max_steps"))
    if "warmup_ratio" in train and "warmup_steps" in train:
        out.append((("train", "warmup_steps"), "give warmup_ratio or warmup_steps, not both"))
    if method == "full" and "lora" in r:
        out.append(
            (("lora",), "method is full, so lora settings would be ignored: delete them (~lora) or use method: lora")
        )
    out += _objective_problems(r)
    no_val = dataset["val_size"] == 0  # defaults are filled in before these checks
    for key in ("eval_steps", "early_stopping_patience"):
        if train.get(key) and no_val:  # eval_steps 0 (no validation during training) needs no split
            out.append((("train", key), "needs a validation split, but dataset.val_size is 0"))
    if "early_stopping_patience" in train and not train.get("eval_steps"):
        out.append(
            (
                ("train", "early_stopping_patience"),
                "needs train.eval_steps >= 1 (how often validation loss is measured during training)",
            )
        )
    if train["sample_packing"] and train["micro_batch_size"] > 1 and train["sequence_len"] < 128:
        out.append((("train", "sample_packing"), "packing needs sequence_len >= 128"))

    export = r.get("export", {})
    space = r.get("space", {})
    quants = export["quantize"]  # defaults filled in (the loader checks apply_defaults(data))
    quant = space["quant"]
    if quant not in ("f16", "auto") and quant not in quants:
        out.append((("space", "quant"), f"{quant} is not exported: add it to export.quantize {quants} or use f16"))

    ev = r.get("eval", {})
    metrics = ev.get("metrics", [])
    if "format_regex" in metrics and not ev.get("format_regex"):
        out.append((("eval", "metrics"), "metric format_regex needs eval.format_regex"))
    if ev.get("format_regex"):
        problem = regex_problem(ev["format_regex"])
        if problem:
            out.append((("eval", "format_regex"), problem))
    return out


def regex_problem(pattern: str) -> str | None:
    """Why Python's `re` cannot compile `pattern` (eval.format_regex), in a line of at most a few hundred
    characters, or None."""
    try:
        with warnings.catch_warnings():  # FutureWarning for "[[", printed to stderr otherwise
            warnings.simplefilter("ignore")
            re.compile(pattern)
    except re.error as exc:
        return f"not a valid regular expression: {_cut(str(exc))}"
    except RecursionError:
        return "not a usable regular expression: it nests groups too deeply"
    except OverflowError as exc:  # a repeat count past C's limits
        return f"not a usable regular expression: {exc}"
    except ValueError as exc:  # Python reads no integer of more than sys.get_int_max_str_digits() digits
        digits = max((len(run) for run in re.findall(r"\d+", pattern)), default=0)
        if digits <= 4300:
            return f"not a usable regular expression: {_cut(str(exc))}"
        return (
            f"not a usable regular expression: it holds a number of {digits:,} digits "
            "(a repeat count is at most 4,294,967,294)"
        )
    return None


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _objective_problems(r: dict) -> list[Problem]:
    objective = objectives.of(r)
    out: list[Problem] = []
    for other in objectives.OBJECTIVES.values():
        if other is not objective and other.name in r:
            out.append(
                (
                    (other.name,),
                    f"objective is {objective.name}, so {other.name} settings would be ignored: delete them "
                    f"(~{other.name}) or set objective: {other.name}",
                )
            )
    if objective.preference and r["train"]["sample_packing"]:
        out.append(
            (
                ("train", "sample_packing"),
                f"objective {objective.name} trains on whole prompt/answer sequences; packing is for sft",
            )
        )
    if objective.rows == UNPAIRED and r["train"]["micro_batch_size"] < 2:
        out.append(
            (
                ("train", "micro_batch_size"),
                f"objective {objective.name} estimates its KL term from the other answers of a micro batch, so it "
                "needs micro_batch_size >= 2",
            )
        )
    settings = r.get(objective.name) or {}
    if settings.get("label_smoothing") and settings.get("loss_type") != "robust":
        out.append(
            (
                (objective.name, "label_smoothing"),
                f"applies to loss_type robust only (loss_type is {settings.get('loss_type')})",
            )
        )
    return out
