"""Choose the rate-limiter backend at start-up.

Why a factory: Redis is optional infrastructure. Without it each consumer process still
queues its own calls, and the logs say once that limits then apply per process.
"""

from __future__ import annotations

import structlog

from consumers.ratelimit._limit import RateLimiter
from consumers.ratelimit._memory import MemoryRateLimiter
from consumers.ratelimit._redis import RedisRateLimiter
from consumers.ratelimit.errors import RateLimiterError

__all__ = ["open_rate_limiter"]


async def open_rate_limiter(
    url: str | None,
    *,
    namespace: str = "gateway",
    connect_timeout_s: float = 1.0,
) -> RateLimiter:
    """Return a STARTED limiter: Redis at ``url`` if reachable, else an in-memory one.

    The caller owns the returned limiter and must ``await limiter.stop()``.
    """
    if url is not None:
        limiter = RedisRateLimiter(url, namespace=namespace, connect_timeout_s=connect_timeout_s)
        try:
            await limiter.start()
        except RateLimiterError as exc:
            # The URL may carry a password, so it is not logged.
            structlog.get_logger(__name__).warning(
                "ratelimit.redis_unavailable_using_memory",
                error=type(exc.__cause__ or exc).__name__,
                detail="rate limits apply per process until restart with Redis reachable",
            )
        else:
            return limiter
    else:
        structlog.get_logger(__name__).warning(
            "ratelimit.no_redis_configured_using_memory",
            detail="rate limits apply per process",
        )
    memory = MemoryRateLimiter()
    await memory.start()
    return memory
