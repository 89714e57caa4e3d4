"""The budgets of every upstream provider, as callers use them: acquire, release, penalize.

Why one object: the proxy's retry module asks it once per attempt, with the deployment's
provider, model and task and the caller's user, priority, token estimate and deadline; it
finds the limit that applies, queues the caller in that limit's queue, and settles afterwards
(lease ended, TPM tokens reconciled with the answer's usage, a 429 cutting the rate).
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from budgets._limits import Limit, Priority, match_limit
from budgets._memory import MemoryStore
from budgets._queue import BudgetQueue, Grant
from budgets._redis import RedisStore
from budgets._store import BudgetStore, StoreKind
from budgets.errors import BudgetError

__all__ = ["Budgets", "open_budgets"]


class Budgets:
    """Every configured limit, its queue (in this process) and its state (in `store`)."""

    def __init__(
        self,
        limits: Sequence[Limit],
        store: BudgetStore,
        *,
        queue_capacity: int = 1000,
        lease_ttl_s: float = 120.0,
        poll_s: float = 0.25,
    ) -> None:
        self._limits = tuple(limits)
        self._store = store
        self._capacity = queue_capacity
        self._lease_ttl_s = lease_ttl_s
        self._poll_s = poll_s
        self._queues: dict[str, BudgetQueue] = {}
        # (provider, model, task) -> limit, looked up once per combination.
        self._matched: dict[tuple[str, str, str], Limit | None] = {}

    @property
    def store_kind(self) -> StoreKind:
        return self._store.kind

    @property
    def limits(self) -> tuple[Limit, ...]:
        return self._limits

    async def start(self) -> None:
        await self._store.start()

    async def stop(self) -> None:
        for queue in self._queues.values():
            await queue.stop()
        self._queues.clear()
        await self._store.stop()

    def limit_for(self, provider: str, model: str, task: str) -> Limit | None:
        found = (provider, model, task)
        if found not in self._matched:
            self._matched[found] = match_limit(self._limits, provider, model, task)
        return self._matched[found]

    def _queue(self, limit: Limit) -> BudgetQueue:
        queue = self._queues.get(limit.name)
        if queue is None:
            queue = self._queues[limit.name] = BudgetQueue(
                limit.name,
                limit.params(self._lease_ttl_s),
                self._store,
                capacity=self._capacity,
                poll_s=self._poll_s,
            )
        return queue

    async def acquire(
        self,
        provider: str,
        model: str,
        task: str,
        *,
        user: str,
        priority: Priority = "normal",
        tokens: int = 0,
        deadline: float | None = None,
    ) -> Grant | None:
        """A grant for one call (None: no limit applies), waiting in the queue while the
        budget is spent; `deadline` is on the running loop's clock. Raises BudgetExhausted
        at once when the expected wait ends after `deadline` or the queue is full."""
        limit = self.limit_for(provider, model, task)
        if limit is None:
            return None
        queue = self._queue(limit)
        demand = queue.params.clamp_tokens(tokens)
        return await queue.acquire(user=user, priority=priority, tokens=demand, deadline=deadline)

    async def release(self, grant: Grant | None, *, tokens_used: int | None = None) -> None:
        """The call is over: its lease ends, and its TPM estimate is settled with its usage."""
        if grant is None:
            return
        if grant.params.concurrency == 0 and grant.params.tokens_per_s <= 0:
            return  # a request-rate budget holds nothing to give back: no store round trip
        refund = 0.0
        if tokens_used is not None and grant.params.tokens_per_s > 0:
            refund = grant.tokens - float(tokens_used)
        try:
            await self._store.release(grant.key, grant.params, grant.lease, refund)
        except BudgetError as exc:
            # The lease expires by itself; the TPM difference is lost, which only errs by
            # one call's estimate.
            structlog.get_logger("budgets").warning(
                "budget_release_failed", budget=grant.key, error=type(exc).__name__
            )
        queue = self._queues.get(grant.key)
        if queue is not None:
            queue.wake()

    async def penalize(
        self, provider: str, model: str, task: str, *, retry_after_s: float | None
    ) -> float | None:
        """An upstream 429: the budget's rate is cut (see `_store`); returns the new rate per
        second (None: no limit applies)."""
        limit = self.limit_for(provider, model, task)
        if limit is None:
            return None
        queue = self._queue(limit)
        rate = await self._store.penalize(limit.name, queue.params, retry_after_s)
        queue.slowed(rate)
        return rate

    async def current_rate(self, provider: str, model: str, task: str) -> float | None:
        """The effective request rate (per second) of the budget a call would use."""
        limit = self.limit_for(provider, model, task)
        if limit is None:
            return None
        return await self._store.current_rate(limit.name, self._queue(limit).params)

    def queued(self, provider: str, model: str, task: str) -> int:
        """Callers of this process waiting for the budget a call would use."""
        limit = self.limit_for(provider, model, task)
        queue = self._queues.get(limit.name) if limit is not None else None
        return queue.size if queue is not None else 0

    def expected_wait(
        self, provider: str, model: str, task: str, priority: Priority = "normal"
    ) -> float:
        """Seconds a caller arriving now would wait in this process's queue (0.0: none)."""
        limit = self.limit_for(provider, model, task)
        queue = self._queues.get(limit.name) if limit is not None else None
        return queue.expected_wait(priority) if queue is not None and queue.size else 0.0


async def open_budgets(
    limits: Sequence[Limit],
    *,
    redis_url: str | None,
    namespace: str = "gateway",
    queue_capacity: int = 1000,
    lease_ttl_s: float = 120.0,
    connect_timeout_s: float = 1.0,
    processes: int = 1,
) -> Budgets:
    """STARTED budgets over Redis at `redis_url` when reachable, else in this process only.

    `processes`: how many processes serve with the same limits (`gateway up --workers N`);
    without Redis each holds 1/N of every limit, so together they stay within it.
    The caller owns them and must `await budgets.stop()`.
    """
    store: BudgetStore
    if redis_url is not None:
        redis = RedisStore(redis_url, namespace=namespace, connect_timeout_s=connect_timeout_s)
        try:
            await redis.start()
        except BudgetError as exc:
            # The URL may carry a password, so it is not logged.
            structlog.get_logger("budgets").warning(
                "budgets.redis_unavailable_using_memory",
                error=type(exc.__cause__ or exc).__name__,
                detail="budgets apply per process until restart with Redis reachable",
            )
            store = MemoryStore()
        else:
            store = redis
    else:
        store = MemoryStore()
    if isinstance(store, MemoryStore):
        limits = [limit.share(processes) for limit in limits]
    budgets = Budgets(limits, store, queue_capacity=queue_capacity, lease_ttl_s=lease_ttl_s)
    await budgets.start()
    return budgets
