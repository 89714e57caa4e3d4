"""The published JSON Schema holds every kind: `gateway schema --check`, and an event of each
kind the default config serves validates against it."""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import msgspec
import pytest
from gateway_support import ROOT, run_gateway

from consumers.kinds import EventKind
from consumers.settings import load_kafka_settings
from gateway.kinds import PRODUCT_KIND_MODULES, configured_kinds
from gateway.schema_cli import render_document
from gateway.send import new_envelope
from gateway.send_fields import example_fields
from schemas import ErrorInfo
from schemas.jsonschema import SCHEMA_PATH

CONFIG = ROOT / "litellm_config.yaml"
DEFAULT_KINDS = [s.kind for s in configured_kinds(load_kafka_settings(CONFIG))]


def _published() -> dict[str, Any]:
    return dict(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def _family(name: str) -> jsonschema_rs.Validator:
    published = _published()
    return jsonschema_rs.validator_for(
        {**published["properties"][name], "$defs": published["$defs"]}
    )


def test_the_published_file_is_current() -> None:
    """schemas/events.schema.json is what `gateway schema --write` writes today."""
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render_document(CONFIG)


async def test_check_fails_on_a_stale_file_and_passes_on_a_current_one(tmp_path: Path) -> None:
    """`gateway schema --check` exits 1 naming a stale file, 0 once --write refreshed it."""
    stale = tmp_path / "events.schema.json"
    stale.write_text(json.dumps({"properties": {}}), encoding="utf-8")
    code, _, err = await run_gateway("schema", "--check", "--path", str(stale))
    assert code == 1 and "is stale" in err
    assert (await run_gateway("schema", "--write", "--path", str(stale)))[0] == 0
    assert (await run_gateway("schema", "--check", "--path", str(stale)))[0] == 0


@pytest.mark.parametrize("kind", DEFAULT_KINDS, ids=lambda k: k.name)
def test_every_configured_kind_is_published(kind: EventKind[Any, Any]) -> None:
    """The request, success and failure types of each default-config kind are in the file."""
    mappings = {
        family: set(_published()["properties"][family].get("discriminator", {}).get("mapping", {}))
        for family in ("requests", "results")
    }
    assert kind.name in mappings["requests"]
    succeeded, failed = (str(t.__struct_config__.tag) for t in (kind.succeeded, kind.failed))
    assert {succeeded, failed} <= mappings["results"]


@pytest.mark.parametrize("kind", DEFAULT_KINDS, ids=lambda k: k.name)
def test_a_minimal_event_of_each_configured_kind_validates(kind: EventKind[Any, Any]) -> None:
    """The smallest request `--example` offers decodes strictly and fits the published schema,
    and so does a failure result of the kind."""
    fields = {**new_envelope("some-task"), **example_fields(kind.request)}
    event = msgspec.convert(fields, kind.request)
    wire = msgspec.json.decode(msgspec.json.encode(event))
    _family("requests").validate(wire)
    failure = kind.failure(event, ErrorInfo(type="Refused", message="m"), attempts=1)
    _family("results").validate(msgspec.json.decode(msgspec.json.encode(failure)))


# The product's kind modules present in this tree (the list may name one not yet written).
INSTALLED = [m for m in PRODUCT_KIND_MODULES if importlib.util.find_spec(m) is not None]


@pytest.mark.parametrize("module_name", INSTALLED)
def test_each_product_module_s_own_schema_is_published(module_name: str) -> None:
    """Every definition a kind module's `event_schemas()` declares is in the published file."""
    own = importlib.import_module(module_name).event_schemas()
    published = _published()["$defs"]
    for name, definition in own["$defs"].items():
        assert published.get(name) == definition, name
