"""Checking a request body against one of OpenAI's request schemas, with an OpenAI-style 400.

Why it exists: a caller's mistake must be refused before any provider is paid for it, naming
the field (`messages[2].content[0].image_url`) and the rule ("must be <= 2"), never echoing the
value (it may be long, or a secret). The schemas are compiled once by jsonschema-rs (a Rust
validator: a typical chat request costs microseconds); only a failing request pays for
explaining itself.

Top-level fields the schema does not list are refused as OpenAI refuses them
(`Unrecognized request argument supplied: X`), except the extras a route documents (the
image plugins' `loras`, `seed`, ...). Nested objects stay open, as the document leaves them:
providers take extensions there (a content part's `cache_control`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jsonschema_rs

from proxy.contract.schema import DEFS_PREFIX, json_schemas
from proxy.errors import InvalidRequestError

__all__ = ["SchemaCheck", "param_path"]

_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "an object",
    "array": "an array",
    "null": "null",
}
_MAX_OPTIONS = 12
_MAX_NAME = 64
Path = Sequence[str | int]


def param_path(path: Iterable[str | int]) -> str:
    """`["messages", 2, "content"]` -> `messages[2].content`, the form OpenAI's `param` uses."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        # A map's keys (metadata, logit_bias) are the caller's text: cut, never carried whole.
        name = part if len(part) <= _MAX_NAME else part[:_MAX_NAME] + "..."
        out += f".{name}" if out else name
    return out


def _either(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _types(names: Iterable[str]) -> str:
    ordered = [n for n in _TYPE_NAMES if n in set(names)]
    return _either([_TYPE_NAMES[n] for n in ordered] or ["of another type"])


def _options(values: Sequence[Any]) -> str:
    shown = [repr(v) for v in values[:_MAX_OPTIONS]]
    if len(values) > _MAX_OPTIONS:
        shown.append(f"{len(values) - _MAX_OPTIONS} more")
    return ", ".join(shown)


# The rule of each bounded keyword, given the schema's limit.
_LIMITS = {
    "Maximum": "must be <= {}",
    "Minimum": "must be >= {}",
    "ExclusiveMaximum": "must be < {}",
    "ExclusiveMinimum": "must be > {}",
    "MaxItems": "must hold at most {} item(s)",
    "MinItems": "must hold at least {} item(s)",
    "MaxLength": "must be at most {} character(s) long",
    "MinLength": "must be at least {} character(s) long",
    "MaxProperties": "must have at most {} field(s)",
    "MinProperties": "must have at least {} field(s)",
}


def _rule(kind: Any) -> str:  # noqa: PLR0911 - one sentence per JSON Schema keyword
    """The rule a failed keyword states, worded from the schema, never from the value."""
    name = type(kind).__name__
    facts = kind.as_dict()
    if name in _LIMITS:
        return _LIMITS[name].format(facts["limit"])
    match name:
        case "Type":
            return f"must be {_types(facts['types'])}"
        case "Enum":
            return f"is not one of {_options(facts['options'])}"
        case "Constant":
            return f"must be {facts['expected_value']!r}"
        case "Pattern":
            return f"must match the pattern {facts['pattern']}"
        case "MultipleOf":
            return f"must be a multiple of {facts['multiple_of']}"
        case "UniqueItems":
            return "must hold unique items"
        case _:
            return "is not allowed here"


def _explain(error: jsonschema_rs.ValidationError) -> tuple[list[str | int], str]:
    """The field a failure is about and the rule it broke; a union's failure is explained by
    the branch the value was meant for."""
    path = list(error.instance_path)
    kind = error.kind
    name = type(kind).__name__
    if name == "Required":
        return [*path, kind.as_dict()["property"]], "is required"
    if name == "AdditionalProperties":
        return [*path, str(kind.as_dict()["unexpected"][0])], "is not a recognized field"
    if name == "AnyOf":
        branches: list[list[jsonschema_rs.ValidationError]] = kind.as_dict()["context"]
        meant = [b for b in branches if b and not _wrong_shape(b[0], path)]
        if meant:
            # The branch whose first error lies deepest is the one the caller was writing.
            deepest = max(meant, key=lambda b: len(b[0].instance_path))
            return _explain(deepest[0])
        shapes = {t for b in branches if b for t in b[0].kind.as_dict().get("types", ("object",))}
        return path, f"must be {_types(shapes)}"
    return path, _rule(kind)


def _wrong_shape(error: jsonschema_rs.ValidationError, path: list[str | int]) -> bool:
    """Whether a union branch failed only because the value has another JSON type."""
    return list(error.instance_path) == path and type(error.kind).__name__ == "Type"


def _properties(schemas: Mapping[str, Any], node: Any) -> set[str]:
    """The top-level fields a schema names, through `$ref` and `allOf`."""
    if not isinstance(node, dict):
        return set()
    if "$ref" in node:
        return _properties(schemas, schemas[node["$ref"][len(DEFS_PREFIX) :]])
    found = set(node.get("properties") or ())
    for part in node.get("allOf") or ():
        found |= _properties(schemas, part)
    return found


class SchemaCheck:
    """One request schema, compiled; `__call__` raises `InvalidRequestError` naming the field."""

    def __init__(self, root: str, *, extras: Iterable[str] = ()) -> None:
        schemas = json_schemas()
        self.root = root
        self.fields = frozenset(_properties(schemas, schemas[root]) | set(extras))
        self._validator = jsonschema_rs.validator_for(
            {"$schema": _DRAFT, "$ref": DEFS_PREFIX + root, "$defs": schemas}
        )

    def names(self, names: Iterable[str], *, prefix: Path = ()) -> None:
        """Refuse the first name that is neither the schema's nor a documented extra."""
        for key in names:
            if key not in self.fields:
                # The name is the caller's text: cut, so an error never carries much of it.
                param = param_path([*prefix, key])
                raise InvalidRequestError(
                    f"Unrecognized request argument supplied: {param}", param=param
                )

    def __call__(self, body: Mapping[str, Any], *, prefix: Path = ()) -> None:
        self.names(body, prefix=prefix)
        if self._validator.is_valid(body):
            return
        error = next(iter(self._validator.iter_errors(body)))
        path, rule = _explain(error)
        param = param_path([*prefix, *path])
        raise InvalidRequestError(f"Invalid '{param}': {rule}.", param=param or None)
