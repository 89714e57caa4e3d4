"""The published JSON Schema must match what the Structs generate."""

from __future__ import annotations

import json

from schemas.jsonschema import SCHEMA_PATH, generate, main, render


def test_checked_in_schema_is_up_to_date() -> None:
    """schemas/events.schema.json equals the generated schema (run --write after changes)."""
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render()


def test_check_mode_passes_on_the_checked_in_file() -> None:
    """`python -m schemas.jsonschema --check` exits 0 when the file is current."""
    assert main(["--check"]) == 0


def test_schema_covers_every_topic_family() -> None:
    """Each topic family is described and every event type appears with its tag."""
    schema = generate()
    assert set(schema["properties"]) == {"requests", "results", "status", "dead_letters"}
    text = json.dumps(schema)
    for tag in (
        "completion.requested",
        "completion.succeeded",
        "completion.failed",
        "job.progress",
        "dead_letter",
    ):
        assert f'"{tag}"' in text
