"""Deterministic instances of a JSON schema.

Why it exists: structured output and tool calls are only useful to test against if the
emulator's JSON validates against the schema the client asked for, and all three providers
need the same generator (OpenAI JSON Schema, Anthropic tool input schemas, Gemini's OpenAPI
subset with upper-case type names and ``nullable``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

__all__ = ["generate_instance"]

_MAX_DEPTH = 8
_FORMATS = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "00:00:00",
    "email": "emulator@example.com",
    "uri": "https://example.com/emulator",
    "url": "https://example.com/emulator",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def generate_instance(schema: Mapping[str, Any], seed: str = "") -> Any:
    """Return a value that validates against ``schema``, chosen deterministically by ``seed``."""
    return _Generator(schema, seed).value(schema, "$", 0)


class _Generator:
    def __init__(self, root: Mapping[str, Any], seed: str) -> None:
        self._root = root
        self._seed = seed

    def _pick(self, path: str, n: int) -> int:
        digest = hashlib.sha256(f"{self._seed}|{path}".encode()).digest()
        return int.from_bytes(digest[:4], "big") % max(n, 1)

    def _resolve(self, ref: str) -> Mapping[str, Any]:
        # Only local references occur in client-generated schemas (pydantic emits #/$defs/X).
        node: Any = self._root
        for part in ref.removeprefix("#/").split("/"):
            if part:
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node  # type: ignore[no-any-return]

    # One return per JSON-schema keyword mirrors the keyword precedence.
    def value(self, schema: Mapping[str, Any], path: str, depth: int) -> Any:  # noqa: PLR0911
        if depth > _MAX_DEPTH:
            return None
        if "$ref" in schema:
            return self.value(self._resolve(str(schema["$ref"])), path, depth + 1)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            options = list(schema["enum"])
            return options[self._pick(path, len(options))]
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                options = [o for o in schema[key] if _type_of(o) != "null"] or list(schema[key])
                return self.value(options[0], path, depth + 1)
        if schema.get("allOf"):
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                merged.update(part)
            return self.value(merged, path, depth + 1)
        return self._typed(schema, _type_of(schema), path, depth)

    def _typed(self, schema: Mapping[str, Any], kind: str | None, path: str, depth: int) -> Any:
        if kind is None:
            kind = "object" if "properties" in schema else "string"
        if kind == "null":
            return None
        if kind == "object":
            props: Mapping[str, Any] = schema.get("properties") or {}
            return {
                name: self.value(sub, f"{path}.{name}", depth + 1) for name, sub in props.items()
            }
        if kind == "array":
            items: Mapping[str, Any] = schema.get("items") or {"type": "string"}
            low = int(schema.get("minItems", 1))
            high = int(schema.get("maxItems", max(low, 2)))
            count = max(low, min(2, high))
            return [self.value(items, f"{path}[{i}]", depth + 1) for i in range(count)]
        if kind == "boolean":
            return self._pick(path, 2) == 1
        if kind in ("integer", "number"):
            return self._number(schema, kind, path)
        return self._string(schema, path)

    def _number(self, schema: Mapping[str, Any], kind: str, path: str) -> int | float:
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        high = schema.get("maximum", schema.get("exclusiveMaximum", low + 100))
        low_i, high_i = int(low) + 1, int(high) - 1
        if high_i < low_i:
            mid = (float(low) + float(high)) / 2
            return int(mid) if kind == "integer" else mid
        result = low_i + self._pick(path, high_i - low_i + 1)
        return result if kind == "integer" else float(result)

    def _string(self, schema: Mapping[str, Any], path: str) -> str:
        fmt = schema.get("format")
        if isinstance(fmt, str) and fmt in _FORMATS:
            return _FORMATS[fmt]
        name = path.rsplit(".", 1)[-1].strip("$[]0123456789") or "value"
        text = f"{name}-{hashlib.sha256(f'{self._seed}|{path}'.encode()).hexdigest()[:6]}"
        low = int(schema.get("minLength", 0))
        high = schema.get("maxLength")
        text = text.ljust(low, "x")
        return text[: int(high)] if high is not None else text


def _type_of(schema: Mapping[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        # ["string", "null"]: the non-null member is the useful one.
        real = [str(k).lower() for k in kind if str(k).lower() != "null"]
        return real[0] if real else "null"
    if kind is None:
        return None
    text = str(kind).lower()
    # Gemini serialises its Type enum as e.g. "OBJECT"; some clients send "TYPE_UNSPECIFIED".
    return None if text == "type_unspecified" else text
