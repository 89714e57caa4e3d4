"""Rate-limit parameters, the limiter contract, and the wait loop both backends share.

Why this exists: the model service does not queue requests; a client over its limit gets a
429. Consumers therefore queue themselves: before each provider call they take a token from a
bucket per (provider, task), shared by every consumer process, and when a 429 arrives anyway
they slow down for everyone.

Algorithm (AIMD token bucket), identical in the Redis script and the in-memory limiter:
- tokens refill at the EFFECTIVE rate up to ``burst``; one call takes one token;
- ``penalize`` (a 429 was seen) multiplies the effective rate by ``backoff_factor`` (not
  below ``min_rate_per_s``), empties the bucket, and blocks every acquirer until
  ``now + retry_after_s``; 429s arriving within ``penalty_cooldown_s`` (or the retry-after,
  if longer) of a cut extend the block but do not cut again, because one overload burst
  usually answers many in-flight calls with 429 at once;
- outside a block the effective rate climbs back linearly by ``recovery_per_s`` per second
  until it reaches ``rate_per_s``; nothing refills or recovers while blocked.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from consumers.errors import ConfigurationError
from consumers.ratelimit.errors import RateLimitTimeout

__all__ = ["RateLimit", "RateLimiter", "wait_for_token"]


@dataclass(frozen=True, init=False)
class RateLimit:
    """Nominal limit of one (provider, task) pair and how it adapts to 429s."""

    rate_per_s: float
    burst: int
    min_rate_per_s: float
    recovery_per_s: float
    backoff_factor: float
    penalty_cooldown_s: float

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        min_rate_per_s: float | None = None,
        recovery_per_s: float | None = None,
        *,
        backoff_factor: float = 0.5,
        penalty_cooldown_s: float = 1.0,
    ) -> None:
        """Defaults: floor at a tenth of the nominal rate, recovery of 5 % of nominal per s."""
        floor = rate_per_s / 10 if min_rate_per_s is None else min_rate_per_s
        recovery = rate_per_s * 0.05 if recovery_per_s is None else recovery_per_s
        if rate_per_s <= 0 or burst < 1:
            raise ConfigurationError("rate_per_s must be > 0 and burst >= 1")
        if not 0 < floor <= rate_per_s:
            raise ConfigurationError("min_rate_per_s must be in (0, rate_per_s]")
        if recovery <= 0:
            raise ConfigurationError("recovery_per_s must be > 0")
        if not 0 < backoff_factor < 1 or penalty_cooldown_s < 0:
            raise ConfigurationError("backoff_factor must be in (0, 1) and penalty_cooldown_s >= 0")
        # frozen dataclass: fields are set once here, the only place they are derived.
        object.__setattr__(self, "rate_per_s", float(rate_per_s))
        object.__setattr__(self, "burst", int(burst))
        object.__setattr__(self, "min_rate_per_s", float(floor))
        object.__setattr__(self, "recovery_per_s", float(recovery))
        object.__setattr__(self, "backoff_factor", float(backoff_factor))
        object.__setattr__(self, "penalty_cooldown_s", float(penalty_cooldown_s))


class RateLimiter(Protocol):
    """Token buckets keyed by a caller-chosen string such as ``"openai:image"``.

    No fairness or ordering between waiters is promised: each waiter sleeps until a token
    should be available and then competes again.
    """

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def acquire(self, key: str, limit: RateLimit, *, timeout_s: float | None = None) -> float:
        """Wait for one token; return the seconds waited (0.0 when one was ready).

        Raises RateLimitTimeout as soon as the token provably cannot come before
        ``timeout_s`` elapses (``timeout_s=0`` is a non-blocking try).
        """
        ...

    async def penalize(self, key: str, limit: RateLimit, *, retry_after_s: float | None) -> None:
        """A 429 was seen for ``key``: cut the effective rate and block until retry-after."""
        ...

    async def current_rate(self, key: str, limit: RateLimit) -> float:
        """The effective rate (tokens per second) ``key`` refills at right now."""
        ...


async def wait_for_token(
    take: Callable[[], Awaitable[float]], key: str, timeout_s: float | None
) -> float:
    """Call ``take`` (0.0 = token taken, else seconds until one may be) until it succeeds."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    slept = False
    while True:
        wait = await take()
        now = loop.time()
        if wait <= 0:
            # Exactly 0.0 when no sleep was needed, so callers can count "had to wait".
            return now - started if slept else 0.0
        if timeout_s is not None and now + wait > started + timeout_s:
            raise RateLimitTimeout(key, timeout_s, now - started)
        # Jitter spreads waiters of one key (in every process) that computed the same wait,
        # so they do not all hit Redis in the same millisecond.
        await asyncio.sleep(wait + random.uniform(0, min(0.1 * wait, 0.02)))
        slept = True
