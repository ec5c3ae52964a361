"""Payload schemas of webhook sources: a small JSON Schema subset, checked at load and on every event.

`admit` is what the service, `mesbridge test` and `dry-run` all do with an event: refuse it with a 422
naming each field, or hand it on with every declared but absent property as null.

Supported keywords: `type` (a name or a list of names, so `["string", "null"]` makes a field
nullable), `required`, `properties`, `additionalProperties` (boolean or a schema), `items`, `enum`,
`const`, `minLength`, `maxLength`, `minimum`, `maximum`, `minItems`, `maxItems`, `pattern`; `$schema`,
`$id`, `title`, `description`, `examples` and `default` are read and ignored. Any other keyword is a
load error, so a schema never silently checks less than its author thinks.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from engine.errors import RequestRejected, SchemaFileError

__all__ = ["PayloadSchema", "load_payload_schema"]

_TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
_IGNORED = frozenset({"$schema", "$id", "$comment", "title", "description", "examples", "default"})
_KNOWN = frozenset(
    {
        "type",
        "required",
        "properties",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "pattern",
    }
)


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _matches_type(value: Any, expected: str) -> bool:
    actual = _type_of(value)
    if expected == "number":
        return actual in ("number", "integer")
    if expected == "integer" and actual == "number":
        return float(value).is_integer()
    return actual == expected


def _check_schema(schema: Any, where: str) -> None:
    """Raise SchemaFileError unless `schema` uses only the supported subset correctly."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise SchemaFileError(f"{where}: a schema must be an object, got {_type_of(schema)}")
    unknown = sorted(set(schema) - _KNOWN - _IGNORED)
    if unknown:
        raise SchemaFileError(f"{where}: unsupported keyword(s) {', '.join(unknown)}")
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        for name in kinds:
            if name not in _TYPES:
                raise SchemaFileError(f"{where}: unknown type {name!r} (known: {', '.join(_TYPES)})")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise SchemaFileError(f"{where}: `required` must be a list of names")
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        raise SchemaFileError(f"{where}: `properties` must be an object")
    for name, sub in properties.items():
        _check_schema(sub, f"{where}.properties.{name}")
    if "additionalProperties" in schema:
        _check_schema(schema["additionalProperties"], f"{where}.additionalProperties")
    if "items" in schema:
        _check_schema(schema["items"], f"{where}.items")
    if "enum" in schema and not isinstance(schema["enum"], list):
        raise SchemaFileError(f"{where}: `enum` must be a list")
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
        except (re.error, TypeError) as exc:
            raise SchemaFileError(f"{where}: invalid pattern: {exc}") from None


def _path(parts: list[str]) -> str:
    text = ""
    for part in parts:
        text += part if part.startswith("[") else (f".{part}" if text else part)
    return text or "the event"


def _errors(schema: Any, value: Any, parts: list[str], found: list[str]) -> None:
    if schema is True:
        return
    if schema is False:
        found.append(f"{_path(parts)} is not allowed")
        return
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_matches_type(value, k) for k in kinds):
            found.append(f"{_path(parts)} must be {' or '.join(kinds)}, got {_type_of(value)}")
            return
    if "const" in schema and value != schema["const"]:
        found.append(f"{_path(parts)} must be {json.dumps(schema['const'])}")
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
        found.append(f"{_path(parts)} must be one of {allowed}, got {json.dumps(value, ensure_ascii=False)}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            found.append(f"{_path(parts)} is shorter than {schema['minLength']} character(s)")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            found.append(f"{_path(parts)} is longer than {schema['maxLength']} character(s)")
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            found.append(f"{_path(parts)} does not match {schema['pattern']!r}")
    if _type_of(value) in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{_path(parts)} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            found.append(f"{_path(parts)} is above the maximum {schema['maximum']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                found.append(f"{_path([*parts, name])} is required")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                _errors(properties[name], item, [*parts, name], found)
            elif extra is False:
                found.append(f"{_path([*parts, name])} is not an expected field")
            elif isinstance(extra, dict):
                _errors(extra, item, [*parts, name], found)
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            found.append(f"{_path(parts)} has fewer than {schema['minItems']} item(s)")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            found.append(f"{_path(parts)} has more than {schema['maxItems']} item(s)")
        if "items" in schema:
            for index, item in enumerate(value):
                _errors(schema["items"], item, [*parts, f"[{index}]"], found)


def _with_nulls(schema: Any, value: Any) -> Any:
    """`value` with each declared but absent property of each object set to null (a copy)."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        filled = {name: _with_nulls(properties.get(name), item) for name, item in value.items()}
        for name in properties:
            filled.setdefault(name, None)
        return filled
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_with_nulls(schema["items"], item) for item in value]
    return value


class PayloadSchema:
    """A loaded payload schema; `errors(event)` lists each violation naming its field."""

    def __init__(self, schema: Any, name: str = "schema") -> None:
        _check_schema(schema, name)
        self.schema = schema
        self.name = name

    def errors(self, event: Any, limit: int = 10) -> list[str]:
        """Every violation (at most `limit`), e.g. `item.quantity must be number, got string`."""
        found: list[str] = []
        _errors(self.schema, event, [], found)
        return found[:limit]

    def admit(self, event: Any) -> Any:
        """The event as pipelines see it: valid (else RequestRejected 422 naming each field), and with
        every property the schema declares but the caller left out present as null, so a field the
        caller may omit works when absent exactly as when null."""
        problems = self.errors(event)
        if problems:
            raise RequestRejected(422, "invalid event: " + "; ".join(problems))
        return _with_nulls(self.schema, event)


def load_payload_schema(root: Path, relative: str) -> PayloadSchema:
    """The schema at `relative` (to the config root); SchemaFileError says what is wrong with it."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise SchemaFileError(f"schema file must be inside the config root: {relative}")
    if not path.is_file():
        raise SchemaFileError(f"schema file not found: {relative}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaFileError(f"{relative} is not valid JSON: {exc}") from None
    return PayloadSchema(data, relative)
