"""Produce/consume through the embedded broker with a real aiokafka client over TCP."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from emulators.kafka import EmbeddedKafka


async def _consume(consumer: AIOKafkaConsumer, count: int) -> list[object]:
    records: list[object] = []
    while len(records) < count:
        batch = await consumer.getmany(timeout_ms=1000)
        for messages in batch.values():
            records.extend(messages)
    return records


async def test_round_trip_keeps_keys_values_and_headers(
    kafka_broker: EmbeddedKafka, unique_topic: str
) -> None:
    """A produced record comes back with the same key, value and headers."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(
            unique_topic, b"value-1", key=b"key-1", headers=[("event-type", b"created")]
        )
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        unique_topic,
        bootstrap_servers=kafka_broker.bootstrap_servers,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    try:
        (record,) = await _consume(consumer, 1)
    finally:
        await consumer.stop()
    assert (record.key, record.value, list(record.headers)) == (
        b"key-1",
        b"value-1",
        [("event-type", b"created")],
    )
