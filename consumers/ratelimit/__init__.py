"""Client-side request queue: adaptive (AIMD) token buckets per (provider, task).

The model service does not queue requests, so consumers do: ``acquire`` before each provider
call, ``penalize`` when a 429 comes back. ``open_rate_limiter`` picks Redis (buckets shared
by all consumer processes) or an in-memory limiter (per process).
"""

from consumers.ratelimit._factory import open_rate_limiter
from consumers.ratelimit._limit import RateLimit, RateLimiter
from consumers.ratelimit._memory import MemoryRateLimiter
from consumers.ratelimit._redis import RedisRateLimiter
from consumers.ratelimit.errors import (
    RateLimiterBackendError,
    RateLimiterError,
    RateLimiterNotStarted,
    RateLimiterUnavailable,
    RateLimitTimeout,
)

__all__ = [
    "MemoryRateLimiter",
    "RateLimit",
    "RateLimitTimeout",
    "RateLimiter",
    "RateLimiterBackendError",
    "RateLimiterError",
    "RateLimiterNotStarted",
    "RateLimiterUnavailable",
    "RedisRateLimiter",
    "open_rate_limiter",
]
