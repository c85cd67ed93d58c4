#!/usr/bin/env python3
"""Rewrite the generated parts of the docs and the schema: the recipe reference in README.md (from the JSON Schema),
the table of unsafe axolotl: keys (from iris_recipes/recipe/unsafe.py), each between its markers, and the enums of
iris_recipes/schema/recipe.schema.json that a registry in the code owns (row formats)."""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from iris_recipes.paths import schema_path  # noqa: E402
from iris_recipes.recipe import reference, unsafe  # noqa: E402
from iris_recipes.recipe.schema import schema_text  # noqa: E402

schema_path().write_text(schema_text())
print(f"updated {schema_path()}")
readme = Path(__file__).resolve().parent.parent / "README.md"
text = readme.read_text()
for part in (reference, unsafe):
    if part.BEGIN not in text:
        sys.exit(f"{readme}: no {part.BEGIN} marker")
    text = re.sub(
        re.escape(part.BEGIN) + ".*?" + re.escape(part.END), lambda _, part=part: part.render(), text, flags=re.S
    )
readme.write_text(text)
print(f"updated {readme}")
