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
class DatasetView:
    source: str  # full | sample (of the main dataset)
    seed: int
    val_size: float
    limit: int | None
    on_bad_rows: str  # fail | skip
    dedup: bool
    min_assistant_chars: int
    system_prompt: str | None


@dataclass(frozen=True)
class TrainView:
    precision: str  # auto | bf16 | fp16 | fp32
    sequence_len: int
    micro_batch_size: int
    gradient_accumulation: int
    sample_packing: bool
    epochs: float | None
    max_steps: int | None


@dataclass(frozen=True)
class ObjectiveView:
    name: str  # sft or a preference objective (iris_recipes.objectives)
    settings: dict  # its settings block, defaults filled in ({} for sft)


@dataclass(frozen=True)
class RecipeView:
    method: str  # lora | qlora | full
    objective: ObjectiveView
    lora: LoraView | None  # None for full fine-tuning
    dataset: DatasetView
    train: TrainView
    quantize: tuple[str, ...]  # export.quantize
    space_quant: str
    space_temperature: float
    metrics: tuple[str, ...]  # eval.metrics


def view(data: dict) -> RecipeView:
    """The view of a recipe's data (a loaded Recipe's `data`, or a dict missing keys the schema defaults)."""
    d = apply_defaults({"dataset": {}, **data})
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
    ds, train = d.get("dataset") or {}, d["train"]
    objective = d["objective"]
    return RecipeView(
        method=d["method"],
        objective=ObjectiveView(objective, dict(d.get(objective) or {})),
        lora=lora,
        dataset=DatasetView(
            source=ds["source"],
            seed=ds["seed"],
            val_size=ds["val_size"],
            limit=ds.get("limit"),
            on_bad_rows=ds["on_bad_rows"],
            dedup=ds["dedup"],
            min_assistant_chars=ds["min_assistant_chars"],
            system_prompt=ds.get("system_prompt"),
        ),
        train=TrainView(
            precision=train["precision"],
            sequence_len=train["sequence_len"],
            micro_batch_size=train["micro_batch_size"],
            gradient_accumulation=train["gradient_accumulation"],
            sample_packing=train["sample_packing"],
            epochs=train.get("epochs"),
            max_steps=train.get("max_steps"),
        ),
        quantize=tuple(d["export"]["quantize"]),
        space_quant=d["space"]["quant"],
        space_temperature=d["space"]["temperature"],
        metrics=tuple(d["eval"]["metrics"]),
    )
