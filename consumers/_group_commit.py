"""Group commit of the pipeline's durable step, across the service's partitions.

Why: a handler that outlives its batch's first step ends on its own, and at thousands of
events a second they end one by one, a few per partition at a time. Made durable alone, each
would pay the dedupe store's claim and mark and a `send_batch` of its own, and hundreds of
those would queue on one partition (the store's connection pool ran dry, and the producer
timed batches out behind each other). Instead, deliveries that are ready wait for the next
round, and a round takes everything that waited, whichever partition it came from: rounds, not
deliveries, pay the round trips and the bookkeeping, and under load rounds grow instead of
their number, as a database's group commit does.

Guarantees: a caller returns once the round holding its deliveries is over (each settled or
handed back by the durable step itself, which keeps every guarantee it states, per owner: the
partition whose hooks joined them); at most `rounds_in_flight` rounds run at once, not counting
rounds overdue (running longer than `patience_s`), and never more than `max_rounds`. A caller
cancelled before its round starts leaves it; one cancelled during its round cancels that round
(undone: claims given back) when the round holds only its own partition's deliveries (the
revocation deadline and stop() cancel every task of a partition at once), and otherwise lets
the round finish for the other partitions and returns after it.

Why overdue rounds give up their slot: a round holds its slot until the broker acknowledged
its results and the store took its markers, a few milliseconds on a healthy broker. When the
broker stalls (measured on one-node Kafka at the start of a load: an acknowledgement took
~480 ms), every delivery that became ready meanwhile waited for a slot instead of being handed
to the producer, and the round that took them all afterwards (5,000 deliveries) was itself
slow, so results came out up to a second late. A round overdue lets the next one claim and
hand its results over (they join the producer's open batches). Rounds that end within the
patience (50 ms; a healthy round takes a few) coalesce exactly as before, and `max_rounds`
bounds the rounds a long stall can gather, with their claims held and results unacknowledged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from consumers.records import Delivery

__all__ = ["GroupCommit"]

# The owner of a caller's deliveries (the pipeline passes the partition's hooks): hashable,
# equal for one partition.
K = TypeVar("K")


@dataclass(eq=False, slots=True)
class _Entry(Generic[K]):
    """One caller's deliveries, their owner, and the future the caller awaits."""

    deliveries: list[Delivery]
    owner: K
    done: asyncio.Future[None]


class GroupCommit(Generic[K]):
    """Runs `commit(entries)` in rounds (see the module docstring); each entry is one caller's
    (deliveries, owner)."""

    def __init__(
        self,
        commit: Callable[[list[tuple[list[Delivery], K]]], Awaitable[None]],
        *,
        rounds_in_flight: int = 2,
        patience_s: float = 0.05,
        max_rounds: int = 16,
        on_round: Callable[[int], None] = lambda size: None,
    ) -> None:
        self._commit = commit
        self._rounds_in_flight = rounds_in_flight
        self._patience_s = patience_s
        self._max_rounds = max(max_rounds, rounds_in_flight)
        self._on_round = on_round
        self._queue: list[_Entry[K]] = []
        self._rounds: dict[asyncio.Task[None], list[_Entry[K]]] = {}
        self._overdue: set[asyncio.Task[None]] = set()
        self._starting = False  # a round task is created but has not taken the queue yet

    async def join(self, deliveries: list[Delivery], owner: K) -> None:
        """Make `deliveries` durable in the next round; return once it is over."""
        entry = _Entry(deliveries, owner, asyncio.get_running_loop().create_future())
        self._queue.append(entry)
        self._start()
        try:
            await entry.done
        except asyncio.CancelledError:
            if entry in self._queue:
                self._queue.remove(entry)  # its round never started: abandoned, as its caller
                raise
            running = [task for task, entries in self._rounds.items() if entry in entries]
            for task in running:
                if all(other.owner == owner for other in self._rounds[task]):
                    task.cancel()  # undone (claims given back) before the caller returns
            if running:
                await asyncio.wait(running)
            raise

    def _start(self) -> None:
        running = len(self._rounds)
        if (
            self._queue
            and not self._starting
            and running - len(self._overdue) < self._rounds_in_flight
            and running < self._max_rounds
        ):
            self._starting = True
            # The round takes the queue when it first runs: callers of this loop step join it.
            task = asyncio.create_task(self._round())
            self._rounds[task] = []

    async def _round(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._starting = False
        entries = self._rounds[task] = self._queue
        self._queue = []
        overdue = asyncio.get_running_loop().call_later(self._patience_s, self._overdue_round, task)
        try:
            if entries:
                self._on_round(sum(len(entry.deliveries) for entry in entries))
                await self._commit([(entry.deliveries, entry.owner) for entry in entries])
        except BaseException as exc:
            _resolve(entries, exc)
            raise
        else:
            _resolve(entries, None)
        finally:
            overdue.cancel()
            del self._rounds[task]
            self._overdue.discard(task)
            self._start()

    def _overdue_round(self, task: asyncio.Task[None]) -> None:
        """`task`'s round ran past the patience: its slot goes to the next round."""
        if task in self._rounds:
            self._overdue.add(task)
            self._start()


def _resolve(entries: list[_Entry[K]], error: BaseException | None) -> None:
    """Tell each caller of a round how it ended (cancelled: as cancelled)."""
    for entry in entries:
        if entry.done.done():
            continue  # its caller was cancelled
        if error is None:
            entry.done.set_result(None)
        elif isinstance(error, Exception):
            entry.done.set_exception(error)
        else:
            entry.done.cancel()
