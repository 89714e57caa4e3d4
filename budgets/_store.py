"""The budget store contract, and the algorithm both stores implement identically.

Why a store: the numbers of a budget (tokens left, the adapted rate, the leases in flight) must
be one state for every process and replica, so they live in Redis (`_redis`, one Lua script,
Redis's clock); without Redis, one process keeps them (`_memory`).

Algorithm, per budget key, identical in the Lua script and the in-memory store:
- request tokens refill at the EFFECTIVE rate up to `burst`; a call takes one;
- TPM tokens refill at tpm/60 per second up to tpm; a call takes its estimate, and `release`
  settles the difference to its usage (the bucket may go below zero by as much as it holds);
- concurrency: a call holds a lease until `release`, or until `lease_ttl_s` passes (its process
  died); expired leases are dropped before each take;
- `penalize` (an upstream 429) multiplies the effective rate by `backoff_factor` (not below
  `min_rate_per_s`), empties the request bucket and blocks every take until
  `now + retry_after_s`; 429s within `penalty_cooldown_s` (or the Retry-After, if longer) of
  a cut extend the block but do not cut again;
- outside a block the effective rate climbs back by `recovery_per_s` per second until it
  reaches the nominal rate (additive increase); nothing refills or recovers while blocked.

`take` answers 0.0 (granted), the seconds until a grant may be possible, or WAIT_FOR_RELEASE
when only the concurrency limit stands in the way (no time can be computed: a lease ends when
its call does).
"""

from __future__ import annotations

from typing import Literal, Protocol

from budgets._limits import BucketParams

__all__ = ["WAIT_FOR_RELEASE", "BudgetStore", "StoreKind"]

WAIT_FOR_RELEASE = -1.0

StoreKind = Literal["redis", "memory"]


class BudgetStore(Protocol):
    """Budget state keyed by a budget's name (`Limit.name`)."""

    @property
    def kind(self) -> StoreKind:
        """Where the state lives: shared by every process ("redis") or this one ("memory")."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def take(self, key: str, params: BucketParams, tokens: float, lease: str) -> float:
        """Take one request, `tokens` TPM tokens and (with a concurrency limit) lease `lease`
        atomically: all or nothing. Returns 0.0, seconds to wait, or WAIT_FOR_RELEASE."""
        ...

    async def release(self, key: str, params: BucketParams, lease: str, refund: float) -> None:
        """End lease `lease` and give back `refund` TPM tokens (negative: take more)."""
        ...

    async def penalize(self, key: str, params: BucketParams, retry_after_s: float | None) -> float:
        """An upstream 429: cut the rate and block until Retry-After; returns the new rate."""
        ...

    async def current_rate(self, key: str, params: BucketParams) -> float:
        """The effective request rate (per second) of `key` right now."""
        ...
