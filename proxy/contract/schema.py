"""OpenAI's request schemas, vendored, and their translation into plain JSON Schema.

Why it exists: the gateway checks requests against OpenAI's own document
(`openai_requests.json`, trimmed from the openai/openai-openapi repository by
`scripts/openai_contract.py`), not a list of rules kept by hand. The document is OpenAPI 3.1 in
name but keeps OpenAPI 3.0 idioms that a JSON Schema validator does not read, so they are
translated once, at start-up:

- `nullable: true` becomes a `null` alternative;
- `oneOf` becomes `anyOf`: the document uses it for "one of these shapes" where shapes overlap
  (`stop`: a string or a list), so "exactly one" would refuse valid requests;
- a union whose object branches each pin one property to a single value (messages by `role`,
  content parts, tools and response formats by `type`) becomes a dispatch on that property
  (`if`/`then`), so an error is reported inside the branch the caller meant
  (`messages[2].content`) rather than as "matches none of six shapes";
- the boolean `exclusiveMinimum` of OpenAPI 3.0 becomes the number JSON Schema expects, and
  integer bounds beyond 64 bits are clamped to them.

`openapi_components()` returns the vendored components as they are (OpenAPI form, for a
published OpenAPI document); `json_schemas()` the translated ones, keyed by component name.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["DEFS_PREFIX", "ROOTS", "json_schemas", "openapi_components", "source"]

DEFS_PREFIX = "#/$defs/"
_OPENAPI_PREFIX = "#/components/schemas/"
_INT64 = 2**63 - 1
# Annotations: nothing a validator reads, and `format: binary` means "a file part" in a form.
_ANNOTATIONS = frozenset({"default", "discriminator", "deprecated", "readOnly", "writeOnly"})
_NAMED = frozenset({"properties", "patternProperties", "$defs"})

# The request bodies validated: chat completions, embeddings, image generation and edits,
# fine-tuning jobs, videos.
ROOTS = (
    "CreateChatCompletionRequest",
    "CreateEmbeddingRequest",
    "CreateImageRequest",
    "CreateImageEditRequest",
    "CreateFineTuningJobRequest",
    "CreateVideoJsonBody",
    "CreateVideoMultipartBody",
)


@cache
def _document() -> Mapping[str, Any]:
    text = resources.files("proxy.contract").joinpath("openai_requests.json").read_text("utf-8")
    loaded: Mapping[str, Any] = json.loads(text)
    return loaded


def source() -> Mapping[str, Any]:
    """Where the vendored schemas come from: repository, revision, document version."""
    found: Mapping[str, Any] = _document()["source"]
    return found


def openapi_components() -> dict[str, Any]:
    """The vendored component schemas in the document's own (OpenAPI) form; a deep copy."""
    return copy.deepcopy(dict(_document()["components"]["schemas"]))


def json_schemas(ref_prefix: str = DEFS_PREFIX) -> dict[str, Any]:
    """Every vendored component translated to JSON Schema (2020-12), referring to each other
    as `{ref_prefix}Name` (`#/components/schemas/` for an OpenAPI 3.1 document)."""
    components = openapi_components()
    translator = _Translator(components, ref_prefix)
    return {name: translator.node(schema) for name, schema in components.items()}


class _Translator:
    def __init__(self, components: Mapping[str, Any], ref_prefix: str) -> None:
        self._components = components
        self._prefix = ref_prefix

    def _resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            node = self._components[node["$ref"][len(_OPENAPI_PREFIX) :]]
        return node

    def node(self, schema: Any) -> Any:
        if not isinstance(schema, dict):
            return schema
        out: dict[str, Any] = {}
        union: dict[str, Any] | None = None
        for key, value in schema.items():
            if key in ("oneOf", "anyOf"):
                union = self._union(value)
            elif not _dropped(key, value):
                out[key] = self._keyword(key, value)
        if union is not None:
            if out.keys() & union.keys():
                out["allOf"] = [*out.get("allOf", ()), union]
            else:
                out.update(union)
        self._bounds(out)
        if schema.get("nullable") is True:
            return _nullable(out)
        return out

    def _keyword(self, key: str, value: Any) -> Any:
        if key == "$ref":
            return self._prefix + value[len(_OPENAPI_PREFIX) :]
        if key in _NAMED:
            return {name: self.node(sub) for name, sub in value.items()}
        if key in ("allOf", "prefixItems"):
            return [self.node(sub) for sub in value]
        if key in ("items", "additionalProperties", "not", "if", "then", "else"):
            return self.node(value)
        return value

    @staticmethod
    def _bounds(out: dict[str, Any]) -> None:
        if out.get("exclusiveMinimum") is True:
            out["exclusiveMinimum"] = out.pop("minimum", 0)
        if out.get("exclusiveMaximum") is True:
            out["exclusiveMaximum"] = out.pop("maximum", 0)
        for key in ("minimum", "maximum"):
            value = out.get(key)
            if isinstance(value, int | float) and abs(value) > _INT64:
                out[key] = _INT64 if value > 0 else -_INT64

    def _pinned(self, branch: Any) -> tuple[str, Any] | None:
        """(property, value) when `branch` is an object pinning one required property to a
        single enum value; the first such property, in the document's order."""
        target = self._resolve(branch)
        if not isinstance(target, dict) or target.get("type") != "object":
            return None
        required = target.get("required") or ()
        for name, value in (target.get("properties") or {}).items():
            sub = self._resolve(value)
            if name in required and isinstance(sub, dict) and len(sub.get("enum") or ()) == 1:
                return name, sub["enum"][0]
        return None

    def _union(self, branches: list[Any]) -> dict[str, Any]:
        pins = [self._pinned(b) for b in branches]
        objects = [(b, p) for b, p in zip(branches, pins, strict=True) if p is not None]
        names = {p[0] for _, p in objects}
        values = [p[1] for _, p in objects]
        if not objects or len(names) != 1 or len(set(values)) != len(values):
            return {"anyOf": [self.node(b) for b in branches]}
        (name,) = names
        dispatch = {
            "type": "object",
            "required": [name],
            "properties": {name: {"enum": values}},
            "allOf": [
                {
                    "if": {
                        "type": "object",
                        "required": [name],
                        "properties": {name: {"const": value}},
                    },
                    "then": self.node(branch),
                }
                for branch, (_, value) in objects
            ],
        }
        others = [self.node(b) for b, p in zip(branches, pins, strict=True) if p is None]
        if not others:
            return dispatch
        return {"anyOf": [*others, dispatch]}


def _dropped(key: str, value: Any) -> bool:
    """Whether a keyword is left out of the JSON Schema: annotations, `nullable` (turned into
    a null alternative), vendor extensions, and `format: binary` (a form's file part)."""
    if key in _ANNOTATIONS or key == "nullable" or key.startswith("x-"):
        return True
    return key == "format" and value == "binary"


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, str) and "enum" not in schema and "const" not in schema:
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}
