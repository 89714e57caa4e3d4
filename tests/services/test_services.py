"""The local-services launchers: each server really starts, answers, and leaves nothing behind,
even when the process that started it is SIGKILLed."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
from confluent_kafka import Consumer, Producer
from services_support import gone, server_of_killed_launcher

from services import KafkaCluster, PostgresServer, RedisServer, ServiceNotRunning
from services.kafka import _cluster_id, kafka_classpath


def test_redis_server_answers_and_stops_without_trace() -> None:
    """A started RedisServer answers on its URL; stop() ends the process and removes its dir."""
    server = RedisServer()
    server.start()
    pid = server._process.pid  # type: ignore[union-attr]
    client = redis.Redis.from_url(server.url)
    assert client.set("k", "v") and client.get("k") == b"v"
    client.close()
    server.stop()
    assert gone(pid)
    with pytest.raises(ServiceNotRunning):
        _ = server.url


def test_postgres_server_runs_queries_and_stops_without_trace() -> None:
    """A started PostgresServer accepts connections and SQL; stop() ends the postmaster."""
    with PostgresServer() as server:
        pid = server._process.pid  # type: ignore[union-attr]
        with psycopg.connect(server.url) as conn:
            conn.execute("CREATE TABLE t (x int)")
            conn.execute("INSERT INTO t VALUES (41)")
            assert conn.execute("SELECT x + 1 FROM t").fetchone() == (42,)
    assert gone(pid)


def test_a_server_dies_with_the_process_that_started_it() -> None:
    """SIGKILL of the launching process (no finaliser runs) still ends its server."""
    assert gone(server_of_killed_launcher("RedisServer"))


def test_the_kafka_classpath_is_cached_and_complete() -> None:
    """The classpath resolved through Maven names the broker jar and only existing files."""
    jars = kafka_classpath().split(":")
    assert any(Path(jar).name == "kafka_2.13-4.1.1.jar" for jar in jars)
    assert all(Path(jar).is_file() for jar in jars)


@pytest.mark.real_broker
def test_records_survive_a_sigkill_and_restart_of_the_node(real_kafka: KafkaCluster) -> None:
    """Records acknowledged with acks=all are there after the node is killed and restarted."""
    topic = f"survive-{uuid.uuid4().hex[:8]}"
    real_kafka.create_topic(topic, 2)
    producer = Producer({"bootstrap.servers": real_kafka.bootstrap_servers, "acks": "all"})
    for n in range(50):
        producer.produce(topic, value=f"v{n}".encode(), key=f"k{n}".encode())
    assert producer.flush(30) == 0
    real_kafka.kill(1)
    real_kafka.restart(1)
    consumer = Consumer(
        {
            "bootstrap.servers": real_kafka.bootstrap_servers,
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    seen: set[bytes] = set()
    deadline = time.monotonic() + 60
    while len(seen) < 50 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            seen.add(message.value())
    consumer.close()
    assert seen == {f"v{n}".encode() for n in range(50)}


@pytest.mark.real_broker
def test_a_three_node_cluster_replicates_and_stops_every_jvm(
    kafka_cluster3: KafkaCluster,
) -> None:
    """New topics on three nodes have three in-sync replicas; stop() ends all three JVMs."""
    topic = f"rep-{uuid.uuid4().hex[:8]}"
    kafka_cluster3.create_topic(topic, 3)
    assert sorted(kafka_cluster3.in_sync_replicas(topic, 0)) == [1, 2, 3]
    pids = [kafka_cluster3._process(n).pid for n in kafka_cluster3.node_ids]
    kafka_cluster3.stop()
    assert all(gone(pid) for pid in pids)
    assert not kafka_cluster3.running


@pytest.mark.real_broker
def test_a_kept_workdir_brings_the_records_back_on_the_next_start(tmp_path: Path) -> None:
    """A cluster stopped and started again on the same workdir still has its records."""
    topic = "kept"
    with KafkaCluster(1, workdir=tmp_path) as first:
        first.create_topic(topic, 1)
        producer = Producer({"bootstrap.servers": first.bootstrap_servers, "acks": "all"})
        producer.produce(topic, value=b"still here")
        assert producer.flush(30) == 0
    with KafkaCluster(1, workdir=tmp_path) as second:
        consumer = Consumer(
            {
                "bootstrap.servers": second.bootstrap_servers,
                "group.id": "kept-reader",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([topic])
        value = None
        deadline = time.monotonic() + 60
        while value is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                value = message.value()
        consumer.close()
    assert value == b"still here"


def test_cluster_ids_never_start_with_a_dash() -> None:
    """The storage tool reads an id starting with "-" as an option, so none is ever drawn."""
    ids = [_cluster_id() for _ in range(2000)]
    assert not [cid for cid in ids if cid.startswith("-")]
    assert all(len(cid) == 22 for cid in ids)
