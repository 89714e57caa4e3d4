"""Helpers shared by the runtime tests: settings for fast tests, producing and reading events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from consumers import KafkaSettings
from consumers.settings import ConsumerTuning, RetrySettings, TopicSettings, TopicsSettings
from schemas import (
    ChatMessage,
    CompletionRequested,
    EventCodec,
    ResultEvent,
    build_headers,
)

CODEC = EventCodec()


def fast_settings(
    broker: Any, *, partitions: int = 4, group: str | None = None, **overrides: Any
) -> KafkaSettings:
    """Settings with fresh topics and timings short enough for tests."""
    tag = uuid.uuid4().hex[:8]
    topics = TopicsSettings(
        requests=TopicSettings(name=f"req-{tag}", partitions=partitions),
        results=TopicSettings(name=f"res-{tag}", partitions=partitions),
        status=TopicSettings(name=f"st-{tag}", partitions=2),
        dead_letters=TopicSettings(name=f"dlq-{tag}", partitions=2),
    )
    for topic in topics.all():
        broker.create_topic(topic.name, topic.partitions)
    base: dict[str, Any] = {
        "bootstrap_servers": broker.bootstrap_servers,
        "group_id": group or f"g-{tag}",
        "topics": topics,
        "commit_interval_s": 0.2,
        "drain_timeout_s": 5.0,
        "revoke_timeout_s": 3.0,
        "dedupe_namespace": f"test-dedupe-{tag}",
        "rate_limit_namespace": f"test-rl-{tag}",
        "dedupe_claim_ttl_s": 3.0,
        "retry": RetrySettings(initial_backoff_s=0.01, max_backoff_s=0.05, max_attempts=3),
        "consumer": ConsumerTuning(
            fetch_max_wait_ms=50, session_timeout_ms=6000, heartbeat_interval_ms=500
        ),
    }
    base.update(overrides)
    return msgspec.convert(msgspec.to_builtins(base), KafkaSettings)


def request(text: str, *, subject: str | None = None, task: str = "captioning") -> Any:
    return CompletionRequested(
        event_id=str(uuid.uuid4()),
        subject=subject or str(uuid.uuid4()),
        task=task,
        messages=[ChatMessage(role="user", content=text)],
    )


async def produce(
    bootstrap: str, topic: str, events: Iterable[Any], *, raw: Iterable[bytes] = ()
) -> None:
    """Publish request events (keyed by subject, with CloudEvents headers) and raw values."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = []
        for event in events:
            headers = build_headers(
                event_id=event.event_id, event_type="completion.requested", source="urn:test"
            )
            futures.append(
                await producer.send(
                    topic, CODEC.encode(event), key=event.subject.encode(), headers=headers
                )
            )
        for value in raw:
            futures.append(await producer.send(topic, value, key=b"raw"))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


class TopicReader:
    """Reads a topic from the beginning and keeps every record it saw."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.records: list[Any] = []
        self._consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
        )

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._consumer.stop()

    async def poll(self) -> None:
        batches = await self._consumer.getmany(timeout_ms=100)
        for records in batches.values():
            self.records.extend(records)

    async def until(self, predicate: Any, timeout_s: float = 20.0) -> None:
        """Poll until `predicate(self)` holds, failing after `timeout_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not predicate(self):
            if loop.time() > deadline:
                raise AssertionError(
                    f"condition not met after {timeout_s}s ({len(self.records)} records)"
                )
            await self.poll()

    def results(self) -> list[ResultEvent]:
        return [CODEC.decode_result(record.value) for record in self.records]
