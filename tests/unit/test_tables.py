"""The names the schema offers (for editors and error messages) are exactly the ones the code implements: one table
each for task metrics and quantization types, the schema's enums kept in step with them."""

from __future__ import annotations

from iris_recipes.data import METRIC_NEEDS
from iris_recipes.evaluate.metrics import SCORERS
from iris_recipes.export.hf_to_gguf import QUANT_TYPES
from iris_recipes.recipe.schema import load_schema
from iris_recipes.recipe.view import view
from iris_recipes.space_variants import QUANT_FALLBACK


def test_metric_names_are_the_scorers():
    enum = load_schema()["properties"]["eval"]["properties"]["metrics"]["items"]["enum"]
    assert list(SCORERS) == enum
    assert set(METRIC_NEEDS) <= set(SCORERS)


def test_quantization_types_are_the_quantizer_table():
    defs = load_schema()["$defs"]
    assert defs["quant"]["enum"] == list(QUANT_TYPES)
    assert defs["quant_or_f16"]["enum"] == ["f16", *QUANT_TYPES]
    assert defs["space_quant"]["enum"] == ["auto", "f16", *QUANT_TYPES]
    assert sorted(QUANT_FALLBACK) == sorted(["f16", *QUANT_TYPES])


def test_the_view_reads_the_schema_defaults():
    """A recipe that sets nothing gets the schema's defaults through the view (no default restated in code)."""
    schema = load_schema()
    settings = view({"name": "x", "base_model": "m", "chat_template": "chatml", "dataset": {"name": "d"}})
    lora = schema["properties"]["lora"]["properties"]
    assert settings.method == schema["properties"]["method"]["default"]
    assert (settings.lora.r, settings.lora.alpha, settings.lora.dropout, settings.lora.target) == tuple(
        lora[k]["default"] for k in ("r", "alpha", "dropout", "target")
    )
    assert list(settings.quantize) == schema["properties"]["export"]["properties"]["quantize"]["default"]
    assert settings.space_quant == schema["properties"]["space"]["properties"]["quant"]["default"]
    assert view({"method": "full"}).lora is None
