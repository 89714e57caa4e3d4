"""A request's `priority` on the wire: optional (normal when absent), one of high, normal and
low, and an event naming any other value is dead-lettered with the field named while the events
around it are served."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from consumer_handlers import SlowEcho
from consumer_support import CODEC, TopicReader, fast_settings, produce, request


def test_a_request_without_a_priority_decodes_as_normal() -> None:
    """An event written before the field existed is a normal-priority request."""
    wire = msgspec.json.decode(CODEC.encode(request("old")))
    del wire["priority"]
    assert CODEC.decode_request(msgspec.json.encode(wire)).priority == "normal"


@pytest.mark.parametrize("priority", ["high", "normal", "low"])
def test_each_priority_survives_the_wire(priority: str) -> None:
    """An event's priority is encoded and decoded unchanged."""
    event = msgspec.structs.replace(request("p"), priority=priority)
    assert CODEC.decode_request(CODEC.encode(event)).priority == priority


async def test_an_unknown_priority_is_dead_lettered_naming_the_field(
    kafka_broker: Any, start_service: Any
) -> None:
    """priority "urgent" goes to the dead-letter topic as invalid, its error naming `priority`;
    the good events published with it still get their results."""
    settings = fast_settings(kafka_broker)
    handler = SlowEcho()
    await start_service(settings, handler)
    good = [request(f"ok {i}") for i in range(3)]
    wire = msgspec.json.decode(CODEC.encode(request("bad")))
    bad = msgspec.json.encode({**wire, "priority": "urgent"})
    servers = kafka_broker.bootstrap_servers
    await produce(servers, settings.topics.requests.name, good, raw=[bad])
    async with (
        TopicReader(servers, settings.topics.dead_letters.name) as dlq,
        TopicReader(servers, settings.topics.results.name) as results,
    ):
        await dlq.until(lambda rd: len(rd.records) >= 1)
        await results.until(lambda rd: len(rd.records) >= len(good))
    (letter,) = [CODEC.decode_dead_letter(rec.value) for rec in dlq.records]
    assert (letter.reason, letter.value) == ("invalid", bad)
    assert any("`$.priority`" in error.message for error in letter.error_chain)
    assert {r.request_id for r in results.results()} == {e.event_id for e in good}
    assert wire["event_id"] not in handler.calls
