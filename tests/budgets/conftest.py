"""Fixtures for the budget tests: the session's Redis, a unique key namespace per test (removed
afterwards), a controllable clock for the in-process store, and a sliding-window counter."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence

import pytest
import redis.asyncio as aioredis
from budget_support import FakeClock

from services import RedisServer


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


def _max_in_window(times: Sequence[float], window_s: float) -> int:
    ordered = sorted(times)
    best, first = 0, 0
    for last, t in enumerate(ordered):
        while t - ordered[first] >= window_s:
            first += 1
        best = max(best, last - first + 1)
    return best


@pytest.fixture
def max_in_window() -> Callable[[Sequence[float], float], int]:
    """Largest number of timestamps inside any half-open window of the given length."""
    return _max_in_window
