"""Generate (or check) the published JSON Schema of every event: schemas/events.schema.json.

Why checked in: teams that produce or consume our topics in other languages read the schema
file, and CI fails when the Structs and the file disagree (`--check`), so the file can be trusted.

    python -m schemas.jsonschema --write   # regenerate the file
    python -m schemas.jsonschema --check   # exit 1 when the file is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from schemas.events import (
    SCHEMA_VERSION,
    DeadLetterEvent,
    RequestEvent,
    ResultEvent,
    StatusEvent,
)

__all__ = ["SCHEMA_PATH", "generate", "main", "render"]

SCHEMA_PATH = Path(__file__).with_name("events.schema.json")

_FAMILIES: dict[str, Any] = {
    "requests": RequestEvent,
    "results": ResultEvent,
    "status": StatusEvent,
    "dead_letters": DeadLetterEvent,
}


def generate() -> dict[str, Any]:
    """One JSON Schema document: a `oneOf` per topic family over shared `$defs`."""
    families = list(_FAMILIES.values())
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


def render() -> str:
    return json.dumps(generate(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.jsonschema", description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate the schema file")
    mode.add_argument("--check", action="store_true", help="fail when the file is stale")
    args = parser.parse_args(argv)
    expected = render()
    if args.write:
        SCHEMA_PATH.write_text(expected, encoding="utf-8")
        return 0
    current = SCHEMA_PATH.read_text(encoding="utf-8") if SCHEMA_PATH.exists() else ""
    if current != expected:
        sys.stderr.write(f"{SCHEMA_PATH} is stale: run python -m schemas.jsonschema --write\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
