"""In-process rate limiter for when Redis is absent.

Why it exists: a consumer without Redis must still queue its own calls and back off on 429s.
It runs the same algorithm as the Redis script (see ``_limit``), but every process has its
own buckets, so N processes may together send N times the configured rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from consumers.ratelimit._limit import RateLimit, wait_for_token
from consumers.ratelimit.errors import RateLimiterNotStarted

__all__ = ["MemoryRateLimiter"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    ts: float
    rate: float
    blocked: float = 0.0
    hold: float = 0.0


class MemoryRateLimiter:
    """``RateLimiter`` whose buckets live in this process only."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # Keys are (provider, task) pairs chosen by configuration, so this stays small.
        self._buckets: dict[str, _Bucket] = {}
        self._started = False

    async def __aenter__(self) -> MemoryRateLimiter:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if not self._started:
            structlog.get_logger(__name__).info(
                "ratelimit.memory_limiter_started", detail="limits apply per process"
            )
        self._started = True

    async def stop(self) -> None:
        self._started = False

    def _refilled(self, key: str, limit: RateLimit, now: float) -> _Bucket:
        """The bucket of ``key`` brought up to ``now`` (mirrors the Redis script)."""
        if not self._started:
            raise RateLimiterNotStarted("MemoryRateLimiter used before start() or after stop()")
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(limit.burst, now, limit.rate_per_s)
        bucket.rate = min(limit.rate_per_s, max(limit.min_rate_per_s, bucket.rate))
        bucket.tokens = min(limit.burst, bucket.tokens)
        start = max(bucket.ts, bucket.blocked)
        if now > start:
            elapsed = now - start
            bucket.tokens = min(limit.burst, bucket.tokens + elapsed * bucket.rate)
            bucket.rate = min(limit.rate_per_s, bucket.rate + elapsed * limit.recovery_per_s)
            bucket.ts = now
        return bucket

    def _take(self, key: str, limit: RateLimit) -> float:
        now = self._clock()
        bucket = self._refilled(key, limit, now)
        if now < bucket.blocked:
            return (bucket.blocked - now) + (1 - bucket.tokens) / bucket.rate
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / bucket.rate

    async def acquire(self, key: str, limit: RateLimit, *, timeout_s: float | None = None) -> float:
        async def take() -> float:
            return self._take(key, limit)

        return await wait_for_token(take, key, timeout_s)

    async def penalize(self, key: str, limit: RateLimit, *, retry_after_s: float | None) -> None:
        now = self._clock()
        bucket = self._refilled(key, limit, now)
        retry_after = max(0.0, retry_after_s or 0.0)
        if now >= bucket.hold:
            bucket.rate = max(limit.min_rate_per_s, bucket.rate * limit.backoff_factor)
            bucket.hold = now + max(retry_after, limit.penalty_cooldown_s)
        bucket.tokens = 0.0
        bucket.blocked = max(bucket.blocked, now + retry_after)

    async def current_rate(self, key: str, limit: RateLimit) -> float:
        # Same answer as the Redis script's 'peek': the rate after recovery up to now; the
        # refreshed bucket is kept, which changes nothing observable.
        return self._refilled(key, limit, self._clock()).rate
