"""The recipe reference (Markdown), generated from the JSON Schema so the docs cannot drift from the code."""

from __future__ import annotations

import json
from typing import Any

from iris_recipes.recipe.schema import _resolve, load_schema

BEGIN, END = "<!-- recipe-reference:begin -->", "<!-- recipe-reference:end -->"


def _type(s: dict) -> str:
    if "properties" in s and "oneOf" not in s:
        return "mapping"
    if "enum" in s:
        return " \\| ".join(f"`{v}`" for v in s["enum"])
    if "const" in s:
        return f"`{s['const']}`"
    if "oneOf" in s and "properties" in s:
        return "mapping"
    if "oneOf" in s:
        return " or ".join(_type(_resolve(o)) for o in s["oneOf"])
    t = s.get("type", "object" if "properties" in s or "allOf" in s else "any")
    if t == "array" and isinstance(s.get("items"), dict):
        return f"list of {_type(_resolve(s['items']))}"
    names = {"object": "mapping", "number": "number", "integer": "integer", "string": "string", "boolean": "bool"}
    return " or ".join(names.get(x, x) for x in t) if isinstance(t, list) else names.get(t, t)


def _rows(props: dict, prefix: str, required: list[str], out: list[str]) -> None:
    for key, sub in props.items():
        sub = _resolve(sub)
        if not isinstance(sub, dict):
            continue
        dotted = f"{prefix}{key}"
        default = f"`{json.dumps(sub['default'])}`" if "default" in sub else ("required" if key in required else "")
        desc = sub.get("description", "").replace("|", "\\|")
        out.append(f"| `{dotted}` | {_type(sub)} | {default} | {desc} |")
        children = dict(sub.get("properties", {}))
        for part in sub.get("allOf", []):
            children = {**_resolve(part).get("properties", {}), **{k: v for k, v in children.items() if v is not True}}
        if children and dotted != "axolotl":
            _rows(children, f"{dotted}.", sub.get("required", []), out)
        items = _resolve(sub.get("items")) if isinstance(sub.get("items"), dict) else None
        if items and (items.get("properties") or "$ref" in sub.get("items", {})):
            _rows(items.get("properties", {}), f"{dotted}[].", items.get("required", []), out)


def render(schema: dict[str, Any] | None = None) -> str:
    schema = schema or load_schema()
    out = [BEGIN, "| key | type | default | meaning |", "|---|---|---|---|"]
    _rows(schema["properties"], "", schema.get("required", []), out)
    out.append(END)
    return "\n".join(out)
