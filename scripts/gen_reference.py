#!/usr/bin/env python3
"""Rewrite the generated parts of README.md: the recipe reference (from the JSON Schema) and the table of unsafe
axolotl: keys (from iris_recipes/recipe/unsafe.py), each between its markers."""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from iris_recipes.recipe import reference, unsafe  # noqa: E402

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
