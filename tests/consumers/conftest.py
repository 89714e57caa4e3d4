"""Fixtures for consumer runtime tests: running services that are always stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from consumer_support import NAMESPACES, REDIS_URL

from consumers import ConsumerService, Handler, KafkaSettings
from services import RedisServer

ServiceFactory = Callable[[KafkaSettings, Handler], Coroutine[Any, Any, ConsumerService]]


@pytest.fixture
async def start_service() -> AsyncIterator[ServiceFactory]:
    """Factory: `await start_service(settings, handler)` returns a started ConsumerService."""
    services: list[ConsumerService] = []

    async def start(settings: KafkaSettings, handler: Handler) -> ConsumerService:
        service = ConsumerService(settings, handler)
        await service.start()
        services.append(service)
        return service

    yield start
    for service in services:
        await service.stop()


@pytest.fixture(scope="session", autouse=True)
def _session_redis(redis_server: RedisServer) -> Iterator[None]:
    """Points fast_settings() at the session's throw-away Redis."""
    REDIS_URL[:] = [redis_server.url]
    yield
    REDIS_URL.clear()


@pytest.fixture(autouse=True)
async def _drop_redis_namespaces() -> AsyncIterator[None]:
    """Deletes the Redis keys of every namespace fast_settings() handed out during the test."""
    first = len(NAMESPACES)
    yield
    created = NAMESPACES[first:]
    del NAMESPACES[first:]
    if not created:
        return
    client = aioredis.Redis.from_url(REDIS_URL[0])
    try:
        for namespace in created:
            keys = [key async for key in client.scan_iter(f"{namespace}:*", count=1000)]
            if keys:
                await client.unlink(*keys)
    finally:
        await client.aclose()
