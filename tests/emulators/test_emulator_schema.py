"""The schema-instance generator behind structured output and tool arguments."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from emulators.http.schema import generate_instance

SCHEMAS: list[dict[str, Any]] = [
    {"type": "string", "minLength": 40},
    {"type": "string", "maxLength": 3},
    {"type": "string", "format": "date-time"},
    {"type": "integer", "minimum": 5, "maximum": 6},
    {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    {"type": "boolean"},
    {"type": ["string", "null"]},
    {"enum": ["a", "b", "c"]},
    {"const": 7},
    {"type": "array", "items": {"type": "integer"}, "minItems": 3, "maxItems": 3},
    {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"x": {"type": "integer"}}}]},
    {
        "type": "object",
        "properties": {
            "item": {"$ref": "#/$defs/Item"},
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
        },
        "required": ["item", "items"],
        "additionalProperties": False,
        "$defs": {
            "Item": {
                "type": "object",
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
                "required": ["sku", "qty"],
            }
        },
    },
    {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}]},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_instances_validate(schema: dict[str, Any]) -> None:
    """A generated instance validates against the JSON schema it was made from."""
    jsonschema.validate(generate_instance(schema, "seed"), schema)


def test_same_seed_same_instance() -> None:
    """Generation is a pure function of schema and seed."""
    schema = SCHEMAS[-2]
    assert generate_instance(schema, "a") == generate_instance(schema, "a")


def test_openapi_style_upper_case_types() -> None:
    """Gemini's upper-case OpenAPI types and nullable flags produce the matching JSON types."""
    schema = {
        "type": "OBJECT",
        "properties": {
            "name": {"type": "STRING"},
            "count": {"type": "INTEGER"},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
            "note": {"type": "STRING", "nullable": True},
        },
    }
    value = generate_instance(schema, "s")
    assert isinstance(value["name"], str) and isinstance(value["count"], int)
    assert isinstance(value["tags"], list) and isinstance(value["note"], str)
