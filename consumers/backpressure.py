"""Scheduling state of one assigned partition (backlog, in-flight tasks, commits, pausing),
and the hold that keeps calls to the proxy back while it says to wait.

Why: concurrency is bounded PER PARTITION. Records beyond the bound wait in a small backlog (in
offset order); once a full bound of records waits there the partition is paused so the
fetcher stops pulling more. As work finishes, backlog records start, and the partition resumes
once the backlog is empty, so the next batch is fetched while the current one runs. A task
the proxy answered 429 for holds its calls until the Retry-After (`RetryAfterHold`), and the
same bound then pauses the partitions whose records wait for it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from consumers.key_order import KeySequencer
from consumers.offsets import PartitionOffsets

__all__ = ["PartitionState", "RetryAfterHold"]


class PartitionState:
    def __init__(self, tp: Any, *, bound: int, ordered: bool) -> None:
        self.tp = tp
        self.bound = bound
        self.ordered = ordered
        self.offsets = PartitionOffsets()
        self.backlog: deque[Any] = deque()
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.sequencer = KeySequencer()
        # Batch tasks (consumers._dispatch), and the per-key holds of records in flight.
        self.batches: set[asyncio.Task[None]] = set()
        self.holds: dict[int, tuple[Any, asyncio.Future[None]]] = {}
        self.paused = False
        self.revoked = False
        # Set while revocation or shutdown waits for in-flight work: nothing new may start.
        self.draining = False
        self.next_fetch_offset: int | None = None
        # End offset at assignment: records below it may have been processed by a previous
        # owner whose result marker was lost (see consumers.results_lookup).
        self.redelivery_horizon = 0

    @property
    def in_flight(self) -> int:
        return self.offsets.in_flight

    def has_room(self) -> bool:
        return not self.draining and self.offsets.in_flight < self.bound

    def should_pause(self) -> bool:
        # A full next batch waits behind the running ones: fetch nothing more for now.
        return not self.paused and len(self.backlog) >= self.bound

    def should_resume(self) -> bool:
        # Fetch the next batch while the current one runs, so it is there when room frees.
        return self.paused and not self.backlog

    def maybe_redelivered(self, record: Any) -> bool:
        return bool(record.offset < self.redelivery_horizon)

    def key_of(self, record: Any) -> bytes | None:
        return record.key if self.ordered else None


class RetryAfterHold:
    """Per task: no call to the proxy starts before the time its last 429 named.

    Why: the proxy holds the providers' budgets for every caller (`budgets`) and answers 429
    with a Retry-After computed from its queues only when every provider of a task is
    saturated. Every event of that task then waits here until that time instead of asking
    again; as they wait, each partition's in-flight bound fills and `PartitionState` pauses
    its fetching, so the consumer stops pulling that work until the proxy can take it.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # task -> monotonic time before which no call starts; tasks are configured names.
        self._until: dict[str, float] = {}

    def hold(self, task: str, seconds: float) -> None:
        """The proxy said to wait `seconds` for `task` (extends an earlier hold, never cuts)."""
        until = self._clock() + max(0.0, seconds)
        if until > self._until.get(task, 0.0):
            self._until[task] = until

    def remaining(self, task: str) -> float:
        """Seconds until calls for `task` may start again (0.0: now)."""
        until = self._until.get(task)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left <= 0:
            del self._until[task]
            return 0.0
        return left

    async def wait(self, task: str, *, limit_s: float | None = None) -> float:
        """Sleep until the hold on `task` ends (at most `limit_s`); the seconds slept."""
        slept = 0.0
        while (left := self.remaining(task)) > 0:
            if limit_s is not None:
                left = min(left, limit_s - slept)
                if left <= 0:
                    break
            await asyncio.sleep(left)
            slept += left
        return slept
