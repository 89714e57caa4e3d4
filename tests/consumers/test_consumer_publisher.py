"""Specifications of `EventPublisher.send_many`: batches per partition, placed as send() does."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner

from consumers import KafkaSettings
from consumers._lanes import Batch, Handed
from consumers.errors import ProducerRetired
from consumers.publisher import EventPublisher
from consumers.records import Message
from consumers.settings import TopicSettings, TopicsSettings
from emulators.kafka.broker import EmbeddedKafka
from schemas import CompletionSucceeded, EventCodec, parse_headers

CODEC = EventCodec()


def result(content: str = "ok") -> CompletionSucceeded:
    request_id = str(uuid.uuid4())
    return CompletionSucceeded(
        event_id=f"{request_id}.result",
        request_id=request_id,
        subject=f"s-{request_id[:8]}",
        task="captioning",
        provider="p",
        model="m",
        content=content,
        attempts=1,
    )


@pytest.fixture
async def publisher(
    kafka_broker: EmbeddedKafka, kafka_topic: Callable[..., str]
) -> AsyncIterator[EventPublisher]:
    topics = TopicsSettings(
        requests=TopicSettings(name=kafka_topic(1, "req"), partitions=1),
        results=TopicSettings(name=kafka_topic(1, "res"), partitions=1),
        status=TopicSettings(name=kafka_topic(1, "st"), partitions=1),
        dead_letters=TopicSettings(name=kafka_topic(1, "dlq"), partitions=1),
    )
    settings = KafkaSettings(bootstrap_servers=kafka_broker.bootstrap_servers, topics=topics)
    pub = EventPublisher(settings, kafka_broker.bootstrap_servers, CODEC)
    await pub.start()
    try:
        yield pub
    finally:
        await pub.stop()


async def read_all(servers: str, topic: str, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=servers, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(15):
            while len(records) < count:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def test_records_land_where_aiokafkas_default_partitioner_puts_them(
    publisher: EventPublisher, kafka_broker: EmbeddedKafka, kafka_topic: Callable[..., str]
) -> None:
    """Each record goes to its key's murmur2 partition, with its CloudEvents headers."""
    topic = kafka_topic(5, "many")
    events = [result(f"r{i}") for i in range(60)]
    items = [Message(topic, e, e.request_id.encode(), e.subject) for e in events]
    acks = await publisher.send_many(items)
    assert await publisher.acknowledged(acks) == [None] * len(events)
    # One batch (one future) per partition, not one per record.
    assert len({id(a) for a in acks}) <= 5
    records = await read_all(kafka_broker.bootstrap_servers, topic, len(events))
    partitioner, partitions = DefaultPartitioner(), [0, 1, 2, 3, 4]
    by_key = {r.key: r for r in records}
    assert len(records) == len(events) == len(by_key)
    for event in events:
        record = by_key[event.request_id.encode()]
        assert record.partition == partitioner(record.key, partitions, partitions)
        assert CODEC.decode_result(record.value) == event
        headers = parse_headers(record.headers)
        assert headers is not None
        assert (headers.id, headers.type, headers.subject) == (
            event.event_id,
            "completion.succeeded",
            event.subject,
        )


async def test_more_than_a_batch_holds_is_split_and_keeps_its_order(
    publisher: EventPublisher, kafka_broker: EmbeddedKafka, kafka_topic: Callable[..., str]
) -> None:
    """Records beyond one batch's size go in further batches of the same partition, in order."""
    topic = kafka_topic(1, "big")
    events = [result(f"{i:03d}" + "x" * 300_000) for i in range(6)]  # ~1.8 MB > one batch
    acks = await publisher.send_many([Message(topic, e, e.request_id.encode()) for e in events])
    assert len({id(a) for a in acks}) >= 2
    assert await publisher.acknowledged(acks) == [None] * len(events)
    records = await read_all(kafka_broker.bootstrap_servers, topic, len(events))
    assert [CODEC.decode_result(r.value).event_id for r in records] == [e.event_id for e in events]


async def test_messages_sent_alone_take_a_batch_each(
    publisher: EventPublisher, kafka_broker: EmbeddedKafka, kafka_topic: Callable[..., str]
) -> None:
    """`alone` puts every message in a batch of its own, so a refusal names one record."""
    topic = kafka_topic(1, "alone")
    events = [result(f"r{i}") for i in range(4)]
    acks = await publisher.send_many(
        [Message(topic, e, e.request_id.encode()) for e in events], alone=True
    )
    assert len({id(a) for a in acks}) == len(events)
    assert await publisher.acknowledged(acks) == [None] * len(events)
    records = await read_all(kafka_broker.bootstrap_servers, topic, len(events))
    assert [CODEC.decode_result(r.value).event_id for r in records] == [e.event_id for e in events]


async def test_a_batch_its_renewed_producer_never_sent_is_sent_on_the_new_one(
    publisher: EventPublisher, kafka_broker: EmbeddedKafka, kafka_topic: Callable[..., str]
) -> None:
    """A delivery whose batch the old producer holds unresolved ends once that producer is
    renewed: the batch is failed as retired and sent again on the new producer, once.

    Why: a lane waiting in the old producer's `send_batch` while it was stopped got its batch
    appended to a closed accumulator that no sender drains; the delivery waited forever, and
    every group-commit round behind it (a partition that stopped flowing after a refused dead
    letter). The old producer's `send_batch` is made to answer what such an accumulator gives:
    a future nothing resolves.
    """
    topic = kafka_topic(1, "retired")
    event = result("held")
    old = publisher._current()
    never: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def held(builder: Any, topic: str, partition: int) -> asyncio.Future[Any]:
        return never

    old.send_batch = held
    delivery = asyncio.create_task(publisher.deliver([Message(topic, event, b"k")]))
    await asyncio.sleep(0.5)
    assert not delivery.done()  # held by the old producer
    await publisher.renew()
    # A hang detector only: the delivery ends as soon as the renewal does.
    assert await asyncio.wait_for(delivery, 60) == [None]
    assert publisher._current() is not old
    (record,) = await read_all(kafka_broker.bootstrap_servers, topic, 1)
    assert CODEC.decode_result(record.value).event_id == event.event_id


async def test_a_batch_handed_to_a_retired_producer_fails_at_once() -> None:
    """A lane that hands a batch to a producer after its retirement gets ProducerRetired at
    once, and a batch retired while held fails then; neither waits for an answer."""
    loop = asyncio.get_running_loop()
    producer, handed = _Producer(), Handed()
    held = Batch(None, loop.create_future(), False)
    handed.add(producer, held, loop.create_future())  # an acknowledgement that never comes
    assert not held.acked.done()
    assert handed.retire(producer) == 1
    assert isinstance(held.acked.exception(), ProducerRetired)
    late = Batch(None, loop.create_future(), False)
    handed.add(producer, late, loop.create_future())
    assert isinstance(late.acked.exception(), ProducerRetired)


class _Producer:
    """Stands in for a producer object: `Handed` only tells producers apart."""
