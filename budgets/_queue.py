"""A bounded, fair queue in front of one budget: callers over budget wait instead of failing.

Why: a provider's budget says how fast calls may start; a caller arriving when it is spent
should be served as soon as it allows, in a fair order, unless it cannot be served before its
deadline, in which case it is told at once (so a fallback provider can serve it).

Order: priority classes (high, then normal, then low); within one, users take turns
(round-robin), and each user's own calls are served first in, first out. One pump per queue
takes grants from the store for the caller at the head and hands them over.

Expected wait: (callers ahead + 1) x the service interval (1 / the effective rate, or the
measured interval between grants while the queue is busy), and no less than what the store
said the next grant needs. A caller whose expected wait ends after its deadline, or who
finds the queue at capacity, gets `BudgetExhausted` carrying that wait, without queueing.

Across processes fairness is approximate: each process queues its own callers and draws
from the shared bucket (Redis) for its head caller; the bucket holds the budget exactly, but
the order between two processes' callers is whoever asks first once a grant is possible.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass

import structlog

from budgets._limits import PRIORITIES, BucketParams, Priority
from budgets._store import BudgetStore
from budgets.errors import BudgetError, BudgetExhausted

__all__ = ["BudgetQueue", "Grant"]

# Weight of the newest measured interval between grants in the running estimate.
_EWMA = 0.3


@dataclass(frozen=True, slots=True)
class Grant:
    """Leave to make one call under a budget; hand it back with `Budgets.release`."""

    key: str
    params: BucketParams
    lease: str
    tokens: float
    # Seconds the caller waited in the queue (0.0 when served at once).
    waited_s: float


class _Waiter:
    __slots__ = ("future", "lease", "priority", "tokens", "user")

    def __init__(self, user: str, priority: Priority, tokens: float) -> None:
        self.user = user
        self.priority = priority
        self.tokens = tokens
        self.lease = uuid.uuid4().hex
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class BudgetQueue:
    """The waiters of one budget, in this process."""

    def __init__(
        self,
        key: str,
        params: BucketParams,
        store: BudgetStore,
        *,
        capacity: int,
        poll_s: float,
    ) -> None:
        self.key = key
        self._params = params
        self._store = store
        self._capacity = capacity
        self._poll_s = poll_s
        self._lanes: dict[Priority, OrderedDict[str, deque[_Waiter]]] = {
            p: OrderedDict() for p in PRIORITIES
        }
        self.size = 0
        self._rate = params.rate_per_s
        self._measured: float | None = None
        self._last_grant: float | None = None
        self._wake = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None

    @property
    def params(self) -> BucketParams:
        return self._params

    # --- estimates ----------------------------------------------------------------------------

    def _interval(self) -> float:
        base = 1 / self._rate if self._params.burst < 1e9 else 0.0
        return max(base, self._measured or 0.0)

    def _ahead(self, priority: Priority) -> int:
        ahead = 0
        for p in PRIORITIES:
            ahead += sum(len(q) for q in self._lanes[p].values())
            if p == priority:
                break
        return ahead

    def expected_wait(self, priority: Priority = "normal", hint: float = 0.0) -> float:
        """Seconds until a caller of `priority` arriving now would be served."""
        return max(hint, (self._ahead(priority) + 1) * self._interval())

    def slowed(self, rate: float) -> None:
        """The effective rate changed (a 429 cut it): estimates follow."""
        self._rate = max(rate, 1e-9)

    def wake(self) -> None:
        """A lease ended in this process: the head caller may be served now."""
        self._wake.set()

    # --- acquire ------------------------------------------------------------------------------

    async def acquire(
        self, *, user: str, priority: Priority, tokens: float, deadline: float | None
    ) -> Grant:
        loop = asyncio.get_running_loop()
        started = loop.time()
        hint = 0.0
        if self.size == 0:
            lease = uuid.uuid4().hex
            wait = await self._store.take(self.key, self._params, tokens, lease)
            if wait == 0:
                return Grant(self.key, self._params, lease, tokens, 0.0)
            hint = max(0.0, wait)
        expected = self.expected_wait(priority, hint)
        if self.size >= self._capacity:
            raise BudgetExhausted(self.key, expected, queue_full=True)
        if deadline is not None and started + expected > deadline:
            raise BudgetExhausted(self.key, expected)
        waiter = _Waiter(user, priority, tokens)
        self._lanes[priority].setdefault(user, deque()).append(waiter)
        self.size += 1
        if self._pump is None:
            self._pump = asyncio.create_task(self._run(), name=f"budget-queue-{self.key}")
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.shield(waiter.future)
        except TimeoutError:
            await self._abandon(waiter)
            raise BudgetExhausted(self.key, self.expected_wait(priority)) from None
        except asyncio.CancelledError:
            await self._abandon(waiter)
            raise
        return Grant(self.key, self._params, waiter.lease, tokens, loop.time() - started)

    async def _abandon(self, waiter: _Waiter) -> None:
        """A caller left (deadline, cancellation): out of the queue, and a grant it got in the
        meantime goes back."""
        if not waiter.future.done():
            waiter.future.cancel()
            self._remove(waiter)
        elif waiter.future.exception() is None:
            await self._store.release(self.key, self._params, waiter.lease, waiter.tokens)

    def _remove(self, waiter: _Waiter) -> None:
        lane = self._lanes[waiter.priority]
        queue = lane.get(waiter.user)
        if queue is None or waiter not in queue:
            return
        queue.remove(waiter)
        self.size -= 1
        if not queue:
            del lane[waiter.user]

    def _head(self) -> _Waiter | None:
        for p in PRIORITIES:
            lane = self._lanes[p]
            if lane:
                return next(iter(lane.values()))[0]
        return None

    def _served(self, waiter: _Waiter) -> None:
        lane = self._lanes[waiter.priority]
        queue = lane[waiter.user]
        queue.popleft()
        self.size -= 1
        if queue:
            lane.move_to_end(waiter.user)  # the next user's turn
        else:
            del lane[waiter.user]

    # --- the pump -----------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while (head := self._head()) is not None:
                wait = await self._store.take(self.key, self._params, head.tokens, head.lease)
                if wait == 0:
                    if head.future.done():  # it left while the grant was being taken
                        await self._store.release(self.key, self._params, head.lease, head.tokens)
                        continue
                    self._served(head)
                    head.future.set_result(None)
                    now = loop.time()
                    if self._last_grant is not None:
                        gap = now - self._last_grant
                        old = self._measured
                        self._measured = gap if old is None else old + _EWMA * (gap - old)
                    self._last_grant = now
                    continue
                self._wake.clear()
                pause = self._poll_s if wait < 0 else min(wait, self._poll_s * 4)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._wake.wait()
        except BudgetError as exc:
            structlog.get_logger("budgets").warning(
                "budget_queue_failed", budget=self.key, error=type(exc).__name__
            )
            self._fail_all(exc)
        finally:
            self._pump = None
            self._measured = None
            self._last_grant = None

    def _fail_all(self, error: BaseException) -> None:
        for lane in self._lanes.values():
            for queue in lane.values():
                for waiter in queue:
                    if not waiter.future.done():
                        waiter.future.set_exception(error)
            lane.clear()
        self.size = 0

    async def stop(self) -> None:
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        self._fail_all(BudgetExhausted(self.key, 0.0, queue_full=True))
