"""Rules the schema's field-by-field checks cannot express: combinations of keys, finite numbers, usable paths."""

from __future__ import annotations

import math
import re
import warnings
from typing import Any

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
        try:
            with warnings.catch_warnings():  # FutureWarning for "[[", printed to stderr otherwise
                warnings.simplefilter("ignore")
                re.compile(ev["format_regex"])
        except re.error as exc:
            out.append((("eval", "format_regex"), f"not a valid regular expression: {exc}"))
        except (OverflowError, RecursionError) as exc:  # a repeat count past C's limits; groups nested too deep
            reason = "it nests groups too deeply" if isinstance(exc, RecursionError) else str(exc)
            out.append((("eval", "format_regex"), f"not a usable regular expression: {reason}"))
    return out
