"""OpenAI's request schemas shaped for the document: unions a client generator reads, allOf
parts merged and closed, `model` narrowed to a route's tasks.

Why it exists: the contract validates with OpenAI's schemas translated for precise errors
(`proxy.contract.schema`); a published document wants the same requests in the plain form
clients and fuzzers read, so the translation is undone here where it differs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from proxy.openapi._parts import COMPONENTS

__all__ = ["as_unions", "task_schema"]


def _narrow_model(schema: Mapping[str, Any], tasks: Sequence[str]) -> dict[str, Any]:
    """`schema` (flattened) with its `model` property the task enum, and required."""
    found = copy.deepcopy(dict(schema))
    found.setdefault("properties", {})["model"] = {"type": "string", "enum": list(tasks)}
    # Only a task's requests are served by these routes: without a model they are not.
    if "model" not in found.get("required", ()):
        found["required"] = [*found.get("required", ()), "model"]
    return found


def as_unions(node: Any) -> Any:
    """`node` with each dispatch on a property (an allOf of if/then branches, as the contract
    writes unions for precise errors) written back as the union of its branches: the same
    requests, in the form a client generator or a fuzzer reads."""
    if isinstance(node, list):
        return [as_unions(item) for item in node]
    if not isinstance(node, dict):
        return node
    found = {key: as_unions(value) for key, value in node.items()}
    parts = found.get("allOf")
    if parts and all(isinstance(p, dict) and p.keys() == {"if", "then"} for p in parts):
        del found["allOf"]
        found = {"anyOf": [part["then"] for part in parts]} | (
            {} if found.keys() <= {"type", "required", "properties"} else found
        )
    return found


def _flattened(schema: Mapping[str, Any], schemas: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` with the properties and required fields of its allOf parts (references
    followed) merged in, and closed: the gateway refuses unknown fields, as OpenAI does, and
    `additionalProperties` would not see properties declared inside an allOf. Other keywords
    of the parts are dropped; the parts of these request schemas only declare fields."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for part in schema.get("allOf", ()):
        named = str(part.get("$ref", "")).removeprefix(COMPONENTS)
        merged = _flattened(schemas[named] if named else part, schemas)
        properties.update(merged.get("properties", {}))
        required.extend(merged.get("required", ()))
    found = {k: copy.deepcopy(v) for k, v in schema.items() if k != "allOf"}
    found["properties"] = {**properties, **found.get("properties", {})}
    found["required"] = list(dict.fromkeys([*required, *found.get("required", ())]))
    found.update(type="object", additionalProperties=False)
    return found


def task_schema(
    schemas: Mapping[str, Any],
    name: str,
    tasks: Sequence[str],
    components: dict[str, Any],
    files: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A reference to OpenAI's request schema `name` narrowed to `tasks`, added as a component;
    `files` replaces the form fields that are file parts (JSON Schema has no notion of one)."""
    narrowed = f"{name}ForTasks"
    components[narrowed] = _narrow_model(_flattened(schemas[name], schemas), tasks)
    if files:
        components[narrowed].setdefault("properties", {}).update(files)
    return {"$ref": f"{COMPONENTS}{narrowed}"}
