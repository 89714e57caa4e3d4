"""The pieces every path of the document is built from: operations, parameters, answers.

Why it exists: each route group (task routes, jobs, key routes) states its operations in a
few lines; the OpenAI error shape for every 4xx/5xx and the answer shapes are written once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "ARRAY",
    "COMPONENTS",
    "ERROR_REF",
    "FILE",
    "JSON",
    "LIST",
    "MULTIPART",
    "TEXT",
    "error_schema",
    "json_body",
    "operation",
    "page_params",
    "param",
    "responses",
    "shape",
]

JSON = "application/json"
MULTIPART = "multipart/form-data"
COMPONENTS = "#/components/schemas/"
ERROR_REF = {"$ref": f"{COMPONENTS}ErrorResponse"}
# A form field sent as a file part (OpenAPI 3.1's spelling of `format: binary`).
FILE = {"type": "string", "contentMediaType": "application/octet-stream"}
ARRAY = {"type": "array"}
TEXT = {"type": "string"}


def error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": {"type": ["string", "null"]},
                    "code": {"type": ["string", "integer", "null"]},
                },
            }
        },
    }


def json_body(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": dict(schema)}}}


def responses(ok: Mapping[str, Any] | None = None, *, status: str = "200") -> dict[str, Any]:
    content = ok if ok is not None else {JSON: {"schema": {"type": "object"}}}
    error = {"content": {JSON: {"schema": ERROR_REF}}}
    return {
        status: {"description": "Served.", "content": dict(content)},
        "4XX": {"description": "A caller's mistake, in OpenAI's error shape.", **error},
        "5XX": {"description": "A provider or gateway failure, in OpenAI's error shape.", **error},
    }


def shape(**properties: Any) -> dict[str, Any]:
    """A JSON answer holding at least `properties` (a `const` where a value is a string)."""
    schemas = {
        name: {"const": value} if isinstance(value, str) else value
        for name, value in properties.items()
    }
    body = {"type": "object", "required": list(properties), "properties": schemas}
    return {JSON: {"schema": body}}


LIST = shape(object="list", data=ARRAY, has_more={"type": "boolean"})


def operation(
    operation_id: str, summary: str, *, body: Mapping[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    found: dict[str, Any] = {"operationId": operation_id, "summary": summary}
    if body is not None:
        found["requestBody"] = dict(body)
    found["responses"] = extra.pop("responses", None) or responses()
    found.update(extra)
    return found


def param(name: str, where: str, schema: Mapping[str, Any], *, required: bool) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "schema": dict(schema)}


def page_params() -> list[dict[str, Any]]:
    return [
        param("after", "query", {"type": "string"}, required=False),
        param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 100}, required=False),
    ]
