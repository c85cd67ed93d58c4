"""GGUF export: llama.cpp's converter (fetched once), quantization, and the checks every exported file passes."""

from __future__ import annotations

from typing import Any

__all__ = ["QUANT_TYPES"]


def __getattr__(name: str) -> Any:  # lazy, so `python -m iris_recipes.export.converter` runs its module cleanly
    if name == "QUANT_TYPES":
        from iris_recipes.export.hf_to_gguf import QUANT_TYPES

        return QUANT_TYPES
    raise AttributeError(name)
