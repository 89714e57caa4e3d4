"""pytest fixtures that start real services for a test session (loaded by tests/conftest.py).

Why session scope for Redis, PostgreSQL and the single Kafka node: each costs from 0.1 s
(Redis) to ~6 s (Kafka) to start, and tests isolate themselves by unique key prefixes, table,
topic and group names instead. Each is started only when a test first asks for it, and stopped
when the session ends, failed or not. The three-node cluster is per test: its tests kill and
restart nodes, so no other test may see it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from services.kafka import KafkaCluster
from services.postgres import PostgresServer
from services.redis import RedisServer
from services.s3 import S3Server

__all__ = [
    "kafka_cluster3",
    "postgres_server",
    "real_kafka",
    "redis_server",
    "s3_bucket",
    "s3_server",
]


def _heap_mb() -> int:
    # Three nodes beside a JVM-free suite fit at 384 MiB each; a developer may shrink them.
    return int(os.environ.get("GATEWAY_TEST_KAFKA_HEAP_MB", "384"))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A throw-away redis-server for the whole session."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's throw-away Redis."""
    return redis_server.url


@pytest.fixture
async def namespace(redis_url: str) -> AsyncIterator[str]:
    """A Redis key prefix no other test uses; every key under it is deleted after the test."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{name}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A throw-away S3-compatible server (versitygw over a temporary directory) for the
    whole session; its random credentials are on the object."""
    with S3Server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A bucket of the session's S3 server that no other test uses."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(name)
    return name


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throw-away PostgreSQL for the whole session."""
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def real_kafka() -> Iterator[KafkaCluster]:
    """A single-node Apache Kafka (KRaft) shared by the session."""
    with KafkaCluster(1, heap_mb=_heap_mb()) as cluster:
        yield cluster


@pytest.fixture
def kafka_cluster3() -> Iterator[KafkaCluster]:
    """A fresh three-node cluster (replication 3, min.insync.replicas 2) for one test."""
    with KafkaCluster(3, heap_mb=_heap_mb()) as cluster:
        yield cluster
