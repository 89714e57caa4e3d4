"""Fixtures for the shared-state building blocks of the consumers: a reachable local Redis, a
unique key namespace per test (removed afterwards) and a controllable clock for the in-memory
backends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from services import RedisServer


class FakeClock:
    """A monotonic clock that only moves when a test advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's throw-away Redis."""
    return redis_server.url


@pytest.fixture
async def namespace(redis_url: str) -> AsyncIterator[str]:
    """A key prefix no other test uses; every key under it is deleted after the test."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{name}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()
