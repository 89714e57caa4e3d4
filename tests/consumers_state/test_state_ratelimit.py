"""Specification of the rate limiters: token bucket pacing, AIMD adaptation, timeouts, fallback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest
import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from structlog.testing import capture_logs

from consumers.ratelimit import (
    MemoryRateLimiter,
    RateLimit,
    RateLimiter,
    RateLimiterBackendError,
    RateLimiterNotStarted,
    RateLimiterUnavailable,
    RateLimitTimeout,
    RedisRateLimiter,
    open_rate_limiter,
)
from consumers.ratelimit._redis import _translate

from .conftest import FakeClock

WindowCounter = Callable[[Sequence[float], float], int]
LimiterFactory = Callable[[], Awaitable[RateLimiter]]


@pytest.fixture(params=["redis", "memory"])
async def make_limiter(
    request: pytest.FixtureRequest, redis_url: str, namespace: str
) -> AsyncIterator[LimiterFactory]:
    """Builds started limiters of one backend, all sharing the test's buckets."""
    limiters: list[RateLimiter] = []

    async def make() -> RateLimiter:
        if request.param == "memory" and limiters:
            return limiters[0]  # in-memory buckets are shared only within one limiter
        limiter: RateLimiter = (
            RedisRateLimiter(redis_url, namespace=namespace)
            if request.param == "redis"
            else MemoryRateLimiter()
        )
        await limiter.start()
        limiters.append(limiter)
        return limiter

    yield make
    for limiter in limiters:
        await limiter.stop()


async def _acquire_many(limiter: RateLimiter, key: str, limit: RateLimit, n: int) -> list[float]:
    stamps = []
    for _ in range(n):
        await limiter.acquire(key, limit)
        stamps.append(time.monotonic())
    return stamps


async def test_two_limiters_together_respect_rate_and_burst(
    make_limiter: LimiterFactory, max_in_window: WindowCounter
) -> None:
    """45 tokens at 20/s with burst 5, taken by two limiters at once, take 2 s and never bunch."""
    limit = RateLimit(20, 5)
    first, second = await make_limiter(), await make_limiter()
    started = time.monotonic()
    stamps_a, stamps_b = await asyncio.gather(
        _acquire_many(first, "svc:image", limit, 23), _acquire_many(second, "svc:image", limit, 22)
    )
    stamps = stamps_a + stamps_b
    assert max(stamps) - started >= 1.9
    # One token of slack absorbs the gap between the grant and the client seeing it.
    for window in (0.25, 0.5, 1.0):
        assert max_in_window(stamps, window) <= 20 * window + 5 + 1, window


async def test_burst_is_served_without_waiting(make_limiter: LimiterFactory) -> None:
    """A fresh bucket hands out `burst` tokens at once, then makes the next caller wait."""
    limiter = await make_limiter()
    limit = RateLimit(2, 3)
    waits = [await limiter.acquire("svc:text", limit) for _ in range(3)]
    assert waits == [0.0, 0.0, 0.0]
    assert await limiter.acquire("svc:text", limit) >= 0.3


async def test_keys_have_independent_buckets(make_limiter: LimiterFactory) -> None:
    """Emptying one key's bucket leaves another key's bucket full."""
    limiter = await make_limiter()
    limit = RateLimit(1, 1)
    await limiter.acquire("svc:a", limit)
    assert await limiter.acquire("svc:b", limit, timeout_s=0) == 0.0


async def test_penalize_halves_the_effective_rate(make_limiter: LimiterFactory) -> None:
    """A 429 cuts the effective rate to half of what it was."""
    limiter = await make_limiter()
    limit = RateLimit(20, 5)
    assert await limiter.current_rate("svc:image", limit) == pytest.approx(20)
    await limiter.penalize("svc:image", limit, retry_after_s=30)
    assert await limiter.current_rate("svc:image", limit) == pytest.approx(10)


async def test_penalize_blocks_acquirers_for_retry_after(make_limiter: LimiterFactory) -> None:
    """After a 429 with retry-after 0.5 s no token is granted for at least 0.5 s."""
    limiter = await make_limiter()
    limit = RateLimit(20, 5)
    await limiter.penalize("svc:image", limit, retry_after_s=0.5)
    other = await make_limiter()
    assert await other.acquire("svc:image", limit) >= 0.5


async def test_many_429s_at_once_cut_the_rate_once(make_limiter: LimiterFactory) -> None:
    """429s arriving within the penalty cooldown of a cut do not cut again."""
    limiter = await make_limiter()
    limit = RateLimit(20, 5, penalty_cooldown_s=30)
    for _ in range(5):
        await limiter.penalize("svc:image", limit, retry_after_s=None)
    assert await limiter.current_rate("svc:image", limit) == pytest.approx(10, rel=0.05)


async def test_rate_never_drops_below_the_floor(make_limiter: LimiterFactory) -> None:
    """Repeated cuts stop at min_rate_per_s."""
    limiter = await make_limiter()
    limit = RateLimit(20, 5, min_rate_per_s=3, recovery_per_s=0.001, penalty_cooldown_s=0)
    for _ in range(6):
        await limiter.penalize("svc:image", limit, retry_after_s=None)
    assert await limiter.current_rate("svc:image", limit) == pytest.approx(3, rel=0.01)


async def test_redis_rate_recovers_to_nominal_over_time(redis_url: str, namespace: str) -> None:
    """After a cut the shared effective rate climbs back, never above nominal."""
    limit = RateLimit(20, 5, recovery_per_s=20)
    async with RedisRateLimiter(redis_url, namespace=namespace) as limiter:
        await limiter.penalize("svc:image", limit, retry_after_s=None)
        seen = [await limiter.current_rate("svc:image", limit)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3.0
        while seen[-1] < 20:
            assert loop.time() < deadline, f"rate did not recover: {seen[-5:]}"
            await asyncio.sleep(0.05)
            seen.append(await limiter.current_rate("svc:image", limit))
    assert seen[0] < 11
    assert any(11 < rate < 20 for rate in seen)
    assert seen == sorted(seen)
    assert seen[-1] == pytest.approx(20)


async def test_memory_rate_recovers_linearly(fake_clock: FakeClock) -> None:
    """In memory the rate climbs by recovery_per_s per second after a cut, capped at nominal."""
    limit = RateLimit(20, 5, recovery_per_s=4)
    async with MemoryRateLimiter(clock=fake_clock) as limiter:
        await limiter.penalize("svc:image", limit, retry_after_s=2)
        fake_clock.advance(2)  # nothing recovers while blocked
        assert await limiter.current_rate("svc:image", limit) == pytest.approx(10)
        fake_clock.advance(1)
        assert await limiter.current_rate("svc:image", limit) == pytest.approx(14)
        fake_clock.advance(10)
        assert await limiter.current_rate("svc:image", limit) == pytest.approx(20)


async def test_timeout_raises_a_retriable_error_without_waiting_it_out(
    make_limiter: LimiterFactory,
) -> None:
    """When no token can come before the deadline, acquire raises RateLimitTimeout at once."""
    limiter = await make_limiter()
    limit = RateLimit(0.01, 1, min_rate_per_s=0.01)  # the next token is 100 s away
    await limiter.acquire("svc:video", limit)
    started = time.monotonic()
    with pytest.raises(RateLimitTimeout) as caught:
        await limiter.acquire("svc:video", limit, timeout_s=30)
    # Waiting the timeout out would take 30 s; refusing at once takes milliseconds.
    assert time.monotonic() - started < 15
    assert caught.value.retriable is True
    assert caught.value.key == "svc:video"


async def test_redis_bucket_key_expires_when_idle(redis_url: str, namespace: str) -> None:
    """A bucket's hash expires once an idle bucket would be full and recovered anyway."""
    limit = RateLimit(10, 5, min_rate_per_s=5, recovery_per_s=1)
    async with RedisRateLimiter(redis_url, namespace=namespace) as limiter:
        await limiter.acquire("svc:image", limit)
    client = aioredis.Redis.from_url(redis_url)
    try:
        ttl_ms = await client.pttl(f"{namespace}:ratelimit:svc:image")
    finally:
        await client.aclose()
    # (10 - 5) / 1 s to recover + 5 / 5 s to refill + 1 s margin = 7 s.
    assert 6_500 < ttl_ms <= 7_000


async def test_memory_limiter_logs_that_limits_are_per_process() -> None:
    """Starting an in-memory limiter says its limits apply per process."""
    with capture_logs() as logs:
        async with MemoryRateLimiter():
            pass
    assert [e["event"] for e in logs] == ["ratelimit.memory_limiter_started"]


async def test_open_falls_back_to_memory_when_redis_is_unreachable() -> None:
    """An unreachable Redis yields a started memory limiter and a warning."""
    with capture_logs() as logs:
        limiter = await open_rate_limiter("redis://127.0.0.1:1/0")
    try:
        assert isinstance(limiter, MemoryRateLimiter)
        assert await limiter.acquire("svc:image", RateLimit(1, 1)) == 0.0
    finally:
        await limiter.stop()
    warnings = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert warnings == ["ratelimit.redis_unavailable_using_memory"]


async def test_open_uses_redis_when_reachable(redis_url: str, namespace: str) -> None:
    """A reachable Redis yields a started Redis limiter."""
    limiter = await open_rate_limiter(redis_url, namespace=namespace)
    try:
        assert isinstance(limiter, RedisRateLimiter)
        assert await limiter.acquire("svc:image", RateLimit(1, 1)) == 0.0
    finally:
        await limiter.stop()


async def test_use_before_start_is_an_error(redis_url: str) -> None:
    """Calling a limiter outside its lifecycle raises RateLimiterNotStarted."""
    with pytest.raises(RateLimiterNotStarted):
        await RedisRateLimiter(redis_url).acquire("svc:image", RateLimit(1, 1))
    with pytest.raises(RateLimiterNotStarted):
        await MemoryRateLimiter().acquire("svc:image", RateLimit(1, 1))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate_per_s": 0, "burst": 1},
        {"rate_per_s": 1, "burst": 0},
        {"rate_per_s": 1, "burst": 1, "min_rate_per_s": 2},
        {"rate_per_s": 1, "burst": 1, "recovery_per_s": 0},
        {"rate_per_s": 1, "burst": 1, "backoff_factor": 1},
    ],
)
def test_invalid_limits_are_rejected(kwargs: dict[str, float]) -> None:
    """A limit that could stall or never adapt is refused when it is built."""
    with pytest.raises(ValueError):
        RateLimit(**kwargs)


def test_limit_defaults_derive_from_the_nominal_rate() -> None:
    """Floor defaults to a tenth of the rate and recovery to 5 % of it per second."""
    limit = RateLimit(40, 4)
    assert (limit.min_rate_per_s, limit.recovery_per_s) == (4.0, 2.0)


@pytest.mark.parametrize(
    ("upstream", "expected", "retriable"),
    [
        (redis_errors.ConnectionError("refused"), RateLimiterUnavailable, True),
        (redis_errors.TimeoutError("slow"), RateLimiterUnavailable, True),
        (redis_errors.NoScriptError("gone"), RateLimiterBackendError, False),
        (redis_errors.ResponseError("WRONGTYPE"), RateLimiterBackendError, False),
        (redis_errors.RedisError("other"), RateLimiterBackendError, False),
    ],
)
def test_every_redis_error_maps_to_a_limiter_error(
    upstream: Exception, expected: type[Exception], retriable: bool
) -> None:
    """Redis client errors surface only as this package's errors, with retriable set."""
    with pytest.raises(expected) as caught, _translate():
        raise upstream
    assert caught.value.retriable is retriable
    assert caught.value.__cause__ is upstream
