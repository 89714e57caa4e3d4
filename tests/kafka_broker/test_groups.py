"""Consumer groups against the embedded broker: assignment, exactly-once split, commits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from emulators.kafka import EmbeddedKafka
from kafka_broker.helpers import consumer, drain, produce_values

PARTITIONS = 6
# The mock waits session.timeout.ms - 1 s for members to rejoin after a join or leave in a
# stable group; a short session keeps membership-change tests to a couple of seconds.
FAST_SESSION = {"session_timeout_ms": 3000, "heartbeat_interval_ms": 300}


async def _wait_for_assignments(members: list[AIOKafkaConsumer], within: float = 15.0) -> None:
    """Poll every member until the group's assignment covers all partitions, once each."""

    async def settled() -> None:
        while True:
            owned = [tp for member in members for tp in member.assignment()]
            if all(m.assignment() for m in members) and len(owned) == len(set(owned)) == (
                PARTITIONS
            ):
                return
            await asyncio.gather(*(m.getmany(timeout_ms=50) for m in members))

    await asyncio.wait_for(settled(), within)


async def _collect(members: list[AIOKafkaConsumer], count: int) -> list[bytes]:
    """Values read by any member until ``count`` arrived (fails after 20 s)."""
    seen: list[bytes] = []

    async def poll() -> None:
        while len(seen) < count:
            for batches in await asyncio.gather(*(m.getmany(timeout_ms=100) for m in members)):
                seen.extend(r.value for batch in batches.values() for r in batch)

    await asyncio.wait_for(poll(), 20)
    return seen


@pytest.mark.parametrize("size", [2, 3])
async def test_every_member_gets_partitions_and_records_are_split_exactly_once(
    kafka_broker: EmbeddedKafka,
    kafka_topic: Callable[..., str],
    unique_group: str,
    size: int,
) -> None:
    """All members of a 2- or 3-member group get partitions and each record reaches one."""
    topic = kafka_topic(partitions=PARTITIONS)
    bootstrap = kafka_broker.bootstrap_servers
    members = [consumer(bootstrap, topic, group_id=unique_group) for _ in range(size)]
    await asyncio.gather(*(m.start() for m in members))
    try:
        await _wait_for_assignments(members)
        values = [f"v{i}".encode() for i in range(60)]
        await produce_values(bootstrap, topic, values)
        seen = await _collect(members, len(values))
    finally:
        await asyncio.gather(*(m.stop() for m in members))
    assert sorted(seen) == sorted(values)


async def test_a_leaving_member_hands_its_partitions_to_the_rest(
    kafka_broker: EmbeddedKafka, kafka_topic: Callable[..., str], unique_group: str
) -> None:
    """When one of two members stops, the other is reassigned every partition."""
    topic = kafka_topic(partitions=PARTITIONS)
    members = [
        consumer(kafka_broker.bootstrap_servers, topic, group_id=unique_group, **FAST_SESSION)
        for _ in range(2)
    ]
    await asyncio.gather(*(m.start() for m in members))
    survivor, leaver = members
    try:
        await _wait_for_assignments(members)
        await leaver.stop()
        await _wait_for_assignments([survivor])
    finally:
        await asyncio.gather(*(m.stop() for m in members))
    assert {tp.partition for tp in survivor.assignment()} == set(range(PARTITIONS))


async def test_a_restarted_consumer_resumes_from_its_committed_offset(
    kafka_broker: EmbeddedKafka, kafka_topic: Callable[..., str], unique_group: str
) -> None:
    """After commit and restart, a group member reads only the records after the commit."""
    topic = kafka_topic(partitions=1)
    bootstrap = kafka_broker.bootstrap_servers
    await produce_values(bootstrap, topic, [b"a", b"b", b"c"])
    options = {"group_id": unique_group, "enable_auto_commit": False, **FAST_SESSION}
    first = consumer(bootstrap, topic, **options)
    await first.start()
    try:
        consumed = await drain(first, 3)
        await first.commit()
        committed = await first.committed(TopicPartition(topic, 0))
    finally:
        await first.stop()
    await produce_values(bootstrap, topic, [b"d", b"e"])
    second = consumer(bootstrap, topic, **options)
    await second.start()
    try:
        resumed = await drain(second, 2)
    finally:
        await second.stop()
    assert ([r.value for r in consumed], committed, [r.value for r in resumed]) == (
        [b"a", b"b", b"c"],
        3,
        [b"d", b"e"],
    )


async def test_groups_work_when_partitions_and_coordinator_span_three_brokers(
    unique_group: str,
) -> None:
    """On a 3-broker cluster, a 3-member group is assigned every partition and reads all."""
    with EmbeddedKafka(brokers=3) as kafka:
        kafka.create_topic("spread", PARTITIONS)
        bootstrap = kafka.bootstrap_servers
        members = [consumer(bootstrap, "spread", group_id=unique_group) for _ in range(3)]
        await asyncio.gather(*(m.start() for m in members))
        try:
            await _wait_for_assignments(members)
            await produce_values(bootstrap, "spread", [f"s{i}".encode() for i in range(30)])
            seen = await _collect(members, 30)
        finally:
            await asyncio.gather(*(m.stop() for m in members))
    assert sorted(seen) == sorted(f"s{i}".encode() for i in range(30))
