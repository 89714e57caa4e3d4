"""The runtime survives faults of a real Kafka broker's process: a frozen broker, a killed and
restarted broker, and a killed partition leader in a three-node cluster (acks=all).

Each test produces its stream first, injects the fault once results are flowing, and checks
that every event got exactly one result, waiting for trailing markers rather than sleeping.
Blocking launcher calls run in a worker thread so the in-process consumer keeps its loop;
nodes are spawned on the loop's own thread, which outlives them (see services._process).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from consumer_handlers import SlowEcho
from consumer_support import (
    TopicReader,
    assert_exactly_once,
    await_markers,
    fast_settings,
    produce,
    request,
)

from consumers.settings import ConsumerTuning
from services import KafkaCluster

pytestmark = [pytest.mark.slow, pytest.mark.real_broker]

# Short sessions so the group settles quickly after the broker comes back.
TUNING = ConsumerTuning(fetch_max_wait_ms=50, session_timeout_ms=6000, heartbeat_interval_ms=500)


def _all_answered(events: list[Any]) -> Any:
    wanted = {e.event_id for e in events}
    return lambda rd: wanted <= {r.request_id for r in rd.results()}


async def _survives(
    cluster: KafkaCluster,
    start_service: Any,
    fault: Callable[[Any], Awaitable[None]],
    *,
    timeout_s: float = 120,
) -> None:
    """Streams 300 events through a consumer, runs ``fault(settings)`` once results flow,
    and asserts one result per event."""
    settings = fast_settings(cluster, max_in_flight_per_partition=4, consumer=TUNING)
    await start_service(settings, SlowEcho(20))
    events = [request(f"item {i}") for i in range(300)]
    servers = cluster.bootstrap_servers
    await produce(servers, settings.topics.requests.name, events)
    async with TopicReader(servers, settings.topics.results.name) as reader:
        await reader.until(lambda rd: len(rd.records) >= 30, timeout_s=30)
        await fault(settings)
        await reader.until(_all_answered(events), timeout_s=timeout_s)
        await await_markers(servers, settings, reader)
    assert_exactly_once(reader, events)


async def test_a_broker_frozen_for_ten_seconds_loses_and_duplicates_nothing(
    real_kafka: KafkaCluster, start_service: Any
) -> None:
    """SIGSTOP of the only broker for 10 s mid-stream, then SIGCONT: one result per event."""

    async def freeze(_settings: Any) -> None:
        real_kafka.pause(1)
        try:
            await asyncio.sleep(10.0)
        finally:
            real_kafka.resume(1)

    await _survives(real_kafka, start_service, freeze)


async def test_a_killed_and_restarted_broker_loses_and_duplicates_nothing(
    real_kafka: KafkaCluster, start_service: Any
) -> None:
    """SIGKILL of the only broker mid-stream, restarted on its data: one result per event."""

    async def kill_and_restart(_settings: Any) -> None:
        real_kafka.kill(1)
        await asyncio.sleep(2.0)  # the consumer sees the broker gone, not a quick blip
        real_kafka.start_node(1)
        await asyncio.to_thread(real_kafka.wait_node, 1)

    await _survives(real_kafka, start_service, kill_and_restart)


async def test_killing_the_partition_leader_of_a_three_node_cluster_loses_nothing(
    kafka_cluster3: KafkaCluster, start_service: Any
) -> None:
    """Three nodes, replication 3, min.insync.replicas 2: SIGKILL of the node leading the
    requests' partition 0 mid-stream loses no event and duplicates none."""
    cluster = kafka_cluster3

    async def kill_leader(settings: Any) -> None:
        victim = cluster.leader(settings.topics.requests.name, 0)
        cluster.kill(victim)
        # The controller elects a new leader once the victim's session lapses.
        deadline = asyncio.get_running_loop().time() + 30
        while await asyncio.to_thread(cluster.leader, settings.topics.requests.name, 0) in (
            victim,
            -1,
        ):
            assert asyncio.get_running_loop().time() < deadline, "no new leader elected"
            await asyncio.sleep(0.2)

    await _survives(cluster, start_service, kill_leader)
