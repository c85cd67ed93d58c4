#!/usr/bin/env python3
"""Rewrite the recipe reference in README.md from the JSON Schema (between the recipe-reference markers)."""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from iris_recipes.recipe.reference import BEGIN, END, render  # noqa: E402

readme = Path(__file__).resolve().parent.parent / "README.md"
text = readme.read_text()
if BEGIN not in text:
    sys.exit(f"{readme}: no {BEGIN} marker")
readme.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: render(), text, flags=re.S))
print(f"updated {readme}")
