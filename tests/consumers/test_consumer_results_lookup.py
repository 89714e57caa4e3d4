"""Specifications of the results lookup that closes the publish-then-crash window."""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer

from consumers.results_lookup import ResultsLookup


async def _lookup_with(kafka_broker: Any, keys: list[bytes]) -> tuple[ResultsLookup, str]:
    topic = f"lookup-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, 3)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    await producer.start()
    try:
        for key in keys:
            await producer.send_and_wait(topic, b"{}", key=key)

        async def partitions_of(name: str) -> set[int]:
            return set(await producer.partitions_for(name))

        known = await partitions_of(topic)
    finally:
        await producer.stop()

    async def cached(_name: str) -> set[int]:
        return known

    lookup = ResultsLookup(
        bootstrap_servers=kafka_broker.bootstrap_servers,
        topic=topic,
        client_id="t",
        partitions_of=cached,
    )
    return lookup, topic


async def test_finds_results_already_published(kafka_broker: Any) -> None:
    """A key published before the look-up is found; an absent key is not."""
    keys = [f"req-{n}".encode() for n in range(50)]
    lookup, _topic = await _lookup_with(kafka_broker, keys)
    try:
        since = int(time.time() * 1000) - 60_000
        assert await lookup.contains(b"req-7", since_ms=since)
        assert await lookup.contains(b"req-49", since_ms=since)
        assert not await lookup.contains(b"req-missing", since_ms=since)
    finally:
        await lookup.stop()


async def test_refresh_sees_results_published_after_the_first_look_up(kafka_broker: Any) -> None:
    """A result appended after the first scan is found only when a refresh is asked for."""
    lookup, topic = await _lookup_with(kafka_broker, [b"req-old"])
    since = int(time.time() * 1000) - 60_000
    try:
        assert not await lookup.contains(b"req-late", since_ms=since)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"{}", key=b"req-late")
        finally:
            await producer.stop()
        assert not await lookup.contains(b"req-late", since_ms=since)
        assert await lookup.contains(b"req-late", since_ms=since, refresh=True)
    finally:
        await lookup.stop()
