"""Generate the published JSON Schema of every event (schemas/events.schema.json).

Why checked in: teams that produce or consume our topics in other languages read the schema
file, and CI fails when the Structs and the file disagree, so the file can be trusted. Request
kinds declared by handler packages are not importable from here (`schemas` sits below them),
so the composition root passes their Structs in and owns the command that writes and checks
the file:

    gateway schema --write   # regenerate the file
    gateway schema --check   # exit 1 when the file is stale
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Union

import msgspec

from schemas.events import (
    SCHEMA_VERSION,
    DeadLetterEvent,
    RequestEvent,
    ResultEvent,
    StatusEvent,
)

__all__ = ["SCHEMA_PATH", "generate", "render"]

SCHEMA_PATH = Path(__file__).with_name("events.schema.json")

_FAMILIES: dict[str, Any] = {
    "requests": RequestEvent,
    "results": ResultEvent,
    "status": StatusEvent,
    "dead_letters": DeadLetterEvent,
}


def _members(family: Any) -> tuple[Any, ...]:
    return typing.get_args(family) or (family,)


def _union(types: Iterable[Any]) -> Any:
    unique = tuple(dict.fromkeys(types))
    return unique[0] if len(unique) == 1 else Union[unique]  # noqa: UP007 - built at run time


def generate(
    *, requests: Iterable[type[msgspec.Struct]] = (), results: Iterable[type[msgspec.Struct]] = ()
) -> dict[str, Any]:
    """One JSON Schema document: a `oneOf` per topic family over shared `$defs`.

    `requests` / `results`: the tagged Structs of further kinds, joined to their families.
    """
    extra = {"requests": tuple(requests), "results": tuple(results)}
    families = [
        _union((*_members(family), *extra.get(name, ()))) for name, family in _FAMILIES.items()
    ]
    schemas, components = msgspec.json.schema_components(families, ref_template="#/$defs/{name}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "fashion-ai-gateway events",
        "description": (
            "Events on the gateway's Kafka topics, one entry per topic family. Consumers must "
            "tolerate unknown fields; schema_version changes only on breaking changes."
        ),
        "x-schema-version": SCHEMA_VERSION,
        "properties": dict(zip(_FAMILIES, schemas, strict=True)),
        "$defs": dict(sorted(components.items())),
    }


def render(document: dict[str, Any] | None = None) -> str:
    """The file's text for `document` (the built-in kinds' schema when None)."""
    return json.dumps(generate() if document is None else document, indent=2, sort_keys=True) + "\n"
