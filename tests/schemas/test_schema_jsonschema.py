"""The JSON Schema generated from the event Structs (the published file is checked by
tests/gateway/test_gateway_send_schema.py, where every kind is known)."""

from __future__ import annotations

import json

import jsonschema_rs
import msgspec

from schemas import Failed, Request, Result
from schemas.jsonschema import generate


class _PingRequested(Request, frozen=True, kw_only=True, tag="ping.requested"):
    target: str


class _PingSucceeded(Result, frozen=True, kw_only=True, tag="ping.succeeded"):
    rtt_ms: float


class _PingFailed(Failed, frozen=True, kw_only=True, tag="ping.failed"):
    pass


def test_schema_covers_every_topic_family() -> None:
    """Each topic family is described and every built-in event type appears with its tag."""
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


def test_further_kinds_join_their_families() -> None:
    """Request and result Structs passed in become members of the requests and results unions."""
    schema = generate(requests=[_PingRequested], results=[_PingSucceeded, _PingFailed])
    requests = {**schema["properties"]["requests"], "$defs": schema["$defs"]}
    event = _PingRequested(event_id="e1", subject="s", task="ping", target="host")
    jsonschema_rs.validator_for(requests).validate(msgspec.to_builtins(event))
    mapping = schema["properties"]["results"]["discriminator"]["mapping"]
    assert {"ping.succeeded", "ping.failed", "completion.succeeded"} <= set(mapping)
    assert not jsonschema_rs.validator_for(requests).is_valid({"type": "ping.requested"})
