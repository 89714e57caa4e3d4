"""Fault injection: clients survive injected request errors and broker outages without loss."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator

import pytest

from emulators.kafka import ApiKey, EmbeddedKafka, ErrorCode
from kafka_broker.helpers import consumer, drain, producer


@pytest.fixture
def own_kafka() -> Iterator[EmbeddedKafka]:
    """A private broker, so outages cannot disturb the session-wide one."""
    with EmbeddedKafka() as kafka:
        yield kafka


async def test_producer_retries_through_injected_produce_errors(
    kafka_broker: EmbeddedKafka, kafka_topic: Callable[..., str]
) -> None:
    """Two retriable Produce errors are retried and the record is stored exactly once."""
    topic = kafka_topic(partitions=1)
    client = producer(kafka_broker.bootstrap_servers)
    await client.start()
    try:
        await client.partitions_for(topic)
        with kafka_broker.track_requests() as requests:
            kafka_broker.push_request_errors(
                ApiKey.PRODUCE, [ErrorCode.NOT_LEADER_FOR_PARTITION, ErrorCode.REQUEST_TIMED_OUT]
            )
            await client.send_and_wait(topic, b"survivor")
            produce_requests = requests.count(ApiKey.PRODUCE)
    finally:
        await client.stop()
    reader = consumer(kafka_broker.bootstrap_servers, topic)
    await reader.start()
    try:
        records = await drain(reader, 1)
        extra = await reader.getmany(timeout_ms=200)
    finally:
        await reader.stop()
    assert (produce_requests, [r.value for r in records], extra) == (3, [b"survivor"], {})


async def test_clients_recover_after_a_broker_outage_without_losing_records(
    own_kafka: EmbeddedKafka,
) -> None:
    """Records sent before, during and after a 2 s outage are all consumed once."""
    topic = "outage"
    own_kafka.create_topic(topic, 2)
    bootstrap = own_kafka.bootstrap_servers
    writer = producer(bootstrap, enable_idempotence=True, request_timeout_ms=10000)
    reader = consumer(bootstrap, topic, group_id="outage-group", enable_auto_commit=False)
    await asyncio.gather(writer.start(), reader.start())
    try:
        before = [await writer.send(topic, f"before-{i}".encode()) for i in range(10)]
        await asyncio.gather(*before)
        received = await drain(reader, 10)
        with own_kafka.outage(1):
            during = [await writer.send(topic, f"during-{i}".encode()) for i in range(10)]
            await asyncio.sleep(2)  # the outage's length is the behaviour under test
        after = [await writer.send(topic, f"after-{i}".encode()) for i in range(10)]
        await asyncio.wait_for(asyncio.gather(*during, *after), 20)
        received += await drain(reader, 20, within=30)
    finally:
        await asyncio.gather(writer.stop(), reader.stop())
    values = sorted(r.value.decode() for r in received)
    assert values == sorted(
        f"{phase}-{i}" for phase in ("before", "during", "after") for i in range(10)
    )


async def test_rtt_delays_every_response(
    own_kafka: EmbeddedKafka,
) -> None:
    """With a 300 ms round-trip time set, a produce acknowledgement takes at least 300 ms."""
    own_kafka.create_topic("slow", 1)
    client = producer(own_kafka.bootstrap_servers)
    await client.start()
    try:
        await client.partitions_for("slow")
        own_kafka.set_rtt(1, 300)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await client.send_and_wait("slow", b"x")
        elapsed = loop.time() - began
    finally:
        own_kafka.set_rtt(1, 0)
        await client.stop()
    assert elapsed >= 0.3


def test_a_down_broker_refuses_connections_until_it_is_up(own_kafka: EmbeddedKafka) -> None:
    """During an outage the broker's port refuses TCP connections; afterwards it accepts them."""
    (port,) = own_kafka.ports
    with own_kafka.outage(1), pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
