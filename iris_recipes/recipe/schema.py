"""JSON Schema validation with errors a person can act on: position, key path, and "did you mean"."""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterator
from typing import Any

from iris_recipes.errors import closest
from iris_recipes.paths import schema_path

Problem = tuple[tuple, str]  # (key path, message)


def registry_enums() -> dict[tuple[str, ...], tuple[str, ...]]:
    """Schema enums whose names a registry in the code owns: schema location -> names. The schema file keeps a copy
    for editors (`scripts/gen_reference.py` rewrites it; a test compares); validation reads the registry."""
    # iris_recipes.data imports this module (through the recipe view) as it loads, so it is imported here
    from iris_recipes import chat_families, objectives
    from iris_recipes.data.formats import row_formats

    return {
        ("$defs", "source", "properties", "format"): row_formats().names(),
        ("properties", "chat_template"): tuple(chat_families.names()),
        ("properties", "objective"): tuple(objectives.names()),
    }


def load_schema() -> dict:
    """The recipe schema, its registry-owned enums taken from the registries (read-only: shared between callers)."""
    return _schema_with(tuple(registry_enums().items()))


@functools.lru_cache(maxsize=4)
def _schema_with(enums: tuple) -> dict:
    schema = json.loads(schema_path().read_text())
    for where, names in enums:
        node = schema
        for part in where:
            node = node[part]
        node["enum"] = list(names)
    return schema


def schema_text() -> str:
    """The schema file's text as the registries make it (what scripts/gen_reference.py writes)."""
    return json.dumps(load_schema(), indent=2, ensure_ascii=False) + "\n"


def _ecma_pattern(validator, pattern, instance, schema):
    """`pattern` as JSON Schema means it (ECMA-262): `$` ends the string. Python's `$` also matches before a final
    newline, which let names like "demo\\n" through."""
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not re.search(re.sub(r"(?<!\\)\$$", r"\\Z", pattern), instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _validator():
    return _validator_for(tuple(registry_enums().items()))


@functools.lru_cache(maxsize=4)
def _validator_for(enums: tuple):
    from jsonschema import Draft202012Validator
    from jsonschema.validators import extend

    return extend(Draft202012Validator, {"pattern": _ecma_pattern})(_schema_with(enums))


def _resolve(schema: Any) -> Any:
    """Follow a local `$ref` (the schema only uses `#/$defs/...`)."""
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        target = load_schema()
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def known_keys(schema: dict) -> list[str]:
    """Every key a mapping may hold under `schema` (its properties, those of $ref and allOf parts)."""
    schema = _resolve(schema)
    keys = list(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        keys += known_keys(part)
    return list(dict.fromkeys(keys))


def did_you_mean(word: str, choices: list[str]) -> str:
    match = closest(word, choices)
    return f"; did you mean '{match}'?" if match else f"; expected one of: {', '.join(map(str, choices))}"


def _one_of(names: list[str]) -> str:
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else "".join(names)


def _type_name(value: Any) -> str:
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "list",
        dict: "mapping",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _describe(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def schema_problems(data: dict) -> list[Problem]:
    problems: list[Problem] = []
    for error in _validator().iter_errors(data):
        problems.extend(_translate(error))
    return problems


def _translate(error) -> Iterator[Problem]:
    path = tuple(error.absolute_path)
    kind = error.validator
    instance = error.instance
    if kind in ("additionalProperties", "unevaluatedProperties") and isinstance(instance, dict):
        allowed = known_keys(error.schema)
        for key in instance:
            if key not in allowed:
                yield path + (key,), f"unknown key '{key}'{did_you_mean(key, allowed)}"
    elif kind == "required":
        missing = [k for k in error.validator_value if k not in instance]
        for key in missing:
            yield path, f"missing required key '{key}'"
    elif kind in ("enum", "const"):
        choices = error.validator_value if kind == "enum" else [error.validator_value]
        yield path, f"{_describe(instance)} is not allowed{did_you_mean(instance, choices)}"
    elif kind == "type":
        wanted = error.validator_value
        wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
        yield path, f"expected {wanted}, got {_type_name(instance)} {_describe(instance)}"
    elif kind == "oneOf" and path and path[-1] == "target":
        yield path, "must be all-linear or a list of module names (q_proj, v_proj, ...)"
    elif (
        kind == "oneOf"
        and isinstance(instance, dict)
        and ("name" in instance or "path" in instance or "format" in instance or not instance.keys() & {"name", "path"})
    ):
        if "name" in instance and "path" in instance:
            yield path, "give either name (an entry of datasets/) or path (a local file), not both"
        elif "path" in instance and "format" not in instance:
            yield (
                path,
                f"a local path needs format: {_one_of(error.schema['properties']['format']['enum'])} (and columns)",
            )
        elif "name" in instance and "format" in instance:
            yield path + ("format",), "format belongs to local files (path); a registry entry declares its own format"
        elif "name" not in instance and "path" not in instance:
            yield path, "missing required key 'name' (an entry of datasets/) or 'path' (a local file)"
        else:
            yield path, error.message
    elif kind == "pattern":
        yield path, f"{_describe(instance)} does not match {error.validator_value}"
    elif kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[kind]
        yield path, f"{_describe(instance)} is out of range: must be {op} {error.validator_value}"
    elif kind == "uniqueItems":
        yield path, "items must be unique"
    else:
        yield path, error.message


def apply_defaults(data: dict) -> dict:
    """Fill in schema defaults for every key of every section present (and of sections that always apply)."""
    from iris_recipes import objectives

    data = copy.deepcopy(data)
    sections = ["train", "export", "eval", "card", "space"]
    if data.get("method", "lora") != "full":
        sections.append("lora")
    objective = data.get("objective")
    if isinstance(objective, str) and objective in objectives.OBJECTIVES and objectives.get(objective).settings:
        sections.append(objective)  # the chosen objective's settings block, with its defaults
    for section in sections:
        data.setdefault(section, {})
    _fill(data, load_schema())
    return data


def _fill(value: Any, schema: Any) -> None:
    schema = _resolve(schema)
    if not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        parts = [schema, *[_resolve(p) for p in schema.get("allOf", [])]]
        for part in parts:
            for key, sub in part.get("properties", {}).items():
                sub = _resolve(sub)
                if not isinstance(sub, dict):
                    continue
                if key not in value and "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
                if key in value:
                    _fill(value[key], sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _fill(item, schema["items"])
