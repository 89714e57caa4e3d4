"""Produce/consume through the embedded broker with a real aiokafka client over TCP."""

from __future__ import annotations

from emulators.kafka import EmbeddedKafka
from kafka_broker.helpers import consumer, drain, producer


async def test_round_trip_keeps_keys_values_and_headers(
    kafka_broker: EmbeddedKafka, unique_topic: str
) -> None:
    """A produced record comes back with the same key, value and headers."""
    client = producer(kafka_broker.bootstrap_servers)
    await client.start()
    try:
        await client.send_and_wait(
            unique_topic, b"value-1", key=b"key-1", headers=[("event-type", b"created")]
        )
    finally:
        await client.stop()
    reader = consumer(kafka_broker.bootstrap_servers, unique_topic)
    await reader.start()
    try:
        (record,) = await drain(reader, 1)
    finally:
        await reader.stop()
    assert (record.key, record.value, list(record.headers)) == (
        b"key-1",
        b"value-1",
        [("event-type", b"created")],
    )


async def test_idempotent_producer_delivers_each_record_once_in_order(
    kafka_broker: EmbeddedKafka, kafka_topic: object
) -> None:
    """An idempotent producer's records arrive exactly once, in send order, on one partition."""
    assert callable(kafka_topic)
    topic = kafka_topic(partitions=1)
    client = producer(kafka_broker.bootstrap_servers, enable_idempotence=True)
    await client.start()
    try:
        values = [f"event-{i}".encode() for i in range(20)]
        for value in values:
            await client.send_and_wait(topic, value)
    finally:
        await client.stop()
    reader = consumer(kafka_broker.bootstrap_servers, topic)
    await reader.start()
    try:
        records = await drain(reader, len(values))
    finally:
        await reader.stop()
    assert [r.value for r in records] == values


async def test_fire_and_forget_producer_keeps_its_connection_usable(
    kafka_broker: EmbeddedKafka, unique_topic: str
) -> None:
    """Records sent with acks=0 are stored and the producer's later requests still get answers."""
    client = producer(kafka_broker.bootstrap_servers, acks=0)
    await client.start()
    try:
        for i in range(5):
            await client.send_and_wait(unique_topic, f"ff-{i}".encode(), partition=0)
        partitions = await client.partitions_for(unique_topic)
    finally:
        await client.stop()
    reader = consumer(kafka_broker.bootstrap_servers, unique_topic)
    await reader.start()
    try:
        records = await drain(reader, 5)
    finally:
        await reader.stop()
    assert (len(partitions), [r.value for r in records]) == (
        4,
        [f"ff-{i}".encode() for i in range(5)],
    )
