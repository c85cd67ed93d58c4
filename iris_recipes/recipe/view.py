"""A typed, defaulted view of a resolved recipe: the settings the stages read, with the JSON Schema's defaults
filled in. The schema stays the one place a default is written (editors and error messages read it too); code
reads `view(data).lora.r`, never `data.get("lora", {}).get("r", 16)`."""

from __future__ import annotations

from dataclasses import dataclass

from iris_recipes.recipe.schema import apply_defaults


@dataclass(frozen=True)
class LoraView:
    r: int
    alpha: int
    dropout: float
    target: str | tuple[str, ...]  # "all-linear" or module names
    rslora: bool


@dataclass(frozen=True)
class RecipeView:
    method: str  # lora | qlora | full
    lora: LoraView | None  # None for full fine-tuning
    quantize: tuple[str, ...]  # export.quantize
    space_quant: str
    space_temperature: float
    metrics: tuple[str, ...]  # eval.metrics


def view(data: dict) -> RecipeView:
    """The view of a recipe's data (a loaded Recipe's `data`, or a dict missing keys the schema defaults)."""
    d = apply_defaults(data)
    lora = None
    if d["method"] != "full":
        block = d["lora"]
        target = block["target"]
        lora = LoraView(
            r=block["r"],
            alpha=block["alpha"],
            dropout=block["dropout"],
            target=target if isinstance(target, str) else tuple(target),
            rslora=bool(block["rslora"]),
        )
    return RecipeView(
        method=d["method"],
        lora=lora,
        quantize=tuple(d["export"]["quantize"]),
        space_quant=d["space"]["quant"],
        space_temperature=d["space"]["temperature"],
        metrics=tuple(d["eval"]["metrics"]),
    )
