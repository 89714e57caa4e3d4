"""Lifecycle and topology of EmbeddedKafka: explicit start/stop, one front per broker."""

from __future__ import annotations

import socket
import threading

import pytest
from aiokafka import TopicPartition

from emulators.kafka import BrokerNotRunningError, EmbeddedKafka
from kafka_broker.helpers import producer


def test_bootstrap_servers_needs_a_started_broker() -> None:
    """Asking an unstarted broker for its address raises BrokerNotRunningError."""
    with pytest.raises(BrokerNotRunningError):
        _ = EmbeddedKafka().bootstrap_servers


def test_stop_closes_listeners_and_joins_the_front_thread() -> None:
    """After stop() the front port refuses connections and no thread started by it is left."""
    before = set(threading.enumerate())
    kafka = EmbeddedKafka()
    kafka.start()
    (port,) = kafka.ports
    kafka.stop()
    leftover = set(threading.enumerate()) - before
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    assert leftover == set()


async def test_every_broker_is_reached_through_its_own_front() -> None:
    """With 3 brokers, Metadata advertises the fronts and each broker's partition takes writes."""
    with EmbeddedKafka(brokers=3) as kafka:
        kafka.create_topic("spread", 3)
        client = producer(kafka.bootstrap_servers.split(",")[0])
        await client.start()
        try:
            partitions = await client.partitions_for("spread")
            for partition in partitions:
                await client.send_and_wait("spread", b"x", partition=partition)
            cluster = client.client.cluster
            advertised = {broker.port for broker in cluster.brokers()}
            leaders = {
                cluster.leader_for_partition(TopicPartition("spread", p)) for p in partitions
            }
        finally:
            await client.stop()
        assert (advertised, leaders) == (set(kafka.ports), {1, 2, 3})


async def test_auto_created_topics_get_the_default_partition_count() -> None:
    """A topic first named in a Metadata request is created with default_partitions."""
    with EmbeddedKafka(default_partitions=2) as kafka:
        client = producer(kafka.bootstrap_servers)
        await client.start()
        try:
            partitions = await client.partitions_for("auto-created")
        finally:
            await client.stop()
    assert partitions == {0, 1}
