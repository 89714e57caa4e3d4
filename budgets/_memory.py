"""In-process budget store for when Redis is absent.

Why it exists: a proxy without Redis must still hold its providers' budgets and back off on
429s. It runs the same algorithm as the Redis script (see `_store`), but each process has its
own state, so N processes may together send N times the configured rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from budgets._limits import BucketParams
from budgets._store import WAIT_FOR_RELEASE, StoreKind
from budgets.errors import BudgetNotStarted

__all__ = ["MemoryStore"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    ts: float
    rate: float
    tpm_tokens: float
    blocked: float = 0.0
    hold: float = 0.0
    # lease id -> expiry
    leases: dict[str, float] = field(default_factory=dict)


class MemoryStore:
    """`BudgetStore` whose state lives in this process only."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # Keyed by configured limits, so this stays small.
        self._buckets: dict[str, _Bucket] = {}
        self._started = False

    @property
    def kind(self) -> StoreKind:
        return "memory"

    async def start(self) -> None:
        self._started = True

    async def stop(self) -> None:
        self._started = False

    def _refilled(self, key: str, p: BucketParams, now: float) -> _Bucket:
        """The bucket of `key` brought up to `now` (mirrors the Redis script)."""
        if not self._started:
            raise BudgetNotStarted("MemoryStore used before start() or after stop()")
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(p.burst, now, p.rate_per_s, p.token_capacity)
        b.rate = min(p.rate_per_s, max(p.min_rate_per_s, b.rate))
        b.tokens = min(p.burst, b.tokens)
        start = max(b.ts, b.blocked)
        if now > start:
            elapsed = now - start
            b.tokens = min(p.burst, b.tokens + elapsed * b.rate)
            b.rate = min(p.rate_per_s, b.rate + elapsed * p.recovery_per_s)
            b.tpm_tokens = min(p.token_capacity, b.tpm_tokens + (now - b.ts) * p.tokens_per_s)
            b.ts = now
        return b

    async def take(self, key: str, params: BucketParams, tokens: float, lease: str) -> float:
        now = self._clock()
        b = self._refilled(key, params, now)
        wait = 0.0
        if now < b.blocked:
            wait = (b.blocked - now) + max(0.0, 1 - b.tokens) / b.rate
        elif b.tokens < 1:
            wait = (1 - b.tokens) / b.rate
        if params.tokens_per_s > 0 and b.tpm_tokens < tokens:
            wait = max(wait, (tokens - b.tpm_tokens) / params.tokens_per_s)
        if wait > 0:
            return wait
        if params.concurrency > 0:
            b.leases = {k: t for k, t in b.leases.items() if t > now}
            if len(b.leases) >= params.concurrency:
                return WAIT_FOR_RELEASE
            b.leases[lease] = now + params.lease_ttl_s
        b.tokens -= 1
        b.tpm_tokens -= tokens if params.tokens_per_s > 0 else 0.0
        return 0.0

    async def release(self, key: str, params: BucketParams, lease: str, refund: float) -> None:
        b = self._refilled(key, params, self._clock())
        b.leases.pop(lease, None)
        if params.tokens_per_s > 0:
            low = -params.token_capacity
            b.tpm_tokens = max(low, min(params.token_capacity, b.tpm_tokens + refund))

    async def penalize(self, key: str, params: BucketParams, retry_after_s: float | None) -> float:
        now = self._clock()
        b = self._refilled(key, params, now)
        retry_after = max(0.0, retry_after_s or 0.0)
        if now >= b.hold:
            b.rate = max(params.min_rate_per_s, b.rate * params.backoff_factor)
            b.hold = now + max(retry_after, params.penalty_cooldown_s)
        b.tokens = 0.0
        b.blocked = max(b.blocked, now + retry_after)
        return b.rate

    async def current_rate(self, key: str, params: BucketParams) -> float:
        return self._refilled(key, params, self._clock()).rate
