"""Client helpers shared by the embedded-broker tests: quick timings, bounded consumption."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

# Short fetch waits and sessions keep group tests to seconds against the mock broker.
CONSUMER_TIMINGS: dict[str, Any] = {
    "fetch_max_wait_ms": 50,
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 500,
    "auto_offset_reset": "earliest",
}


def consumer(bootstrap: str, *topics: str, **options: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, **{**CONSUMER_TIMINGS, **options})


def producer(bootstrap: str, **options: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, retry_backoff_ms=50, **options)


async def produce_values(bootstrap: str, topic: str, values: list[bytes]) -> None:
    client = producer(bootstrap)
    await client.start()
    try:
        for value in values:
            await client.send_and_wait(topic, value)
    finally:
        await client.stop()


async def drain(client: AIOKafkaConsumer, count: int, within: float = 20.0) -> list[Any]:
    """Records from ``client`` until ``count`` arrived; fails after ``within`` seconds."""
    records: list[Any] = []

    async def collect() -> None:
        while len(records) < count:
            for batch in (await client.getmany(timeout_ms=200)).values():
                records.extend(batch)

    await asyncio.wait_for(collect(), within)
    return records
