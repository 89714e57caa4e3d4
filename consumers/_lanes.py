"""One lane per (topic, partition) of the publisher: its record batches, handed to the producer
one at a time.

Why: aiokafka's `MessageAccumulator.add_batch` makes a batch wait for the partition's earlier
one to drain, and subtracts the total time elapsed since the call began from its timeout at
every wait, so a `send_batch` queued behind ~100 others timed out within a second, whatever
`request_timeout_ms` said. With one `send_batch` outstanding per partition, concurrent
callers' messages instead join the batch that is still open (`consumers.publisher.send_many`).

Why `Handed`: aiokafka resolves a batch only while its producer runs. A lane that was waiting
in `send_batch` when its producer was stopped (`EventPublisher.renew`) gets its batch appended
to a closed accumulator that no sender drains, and the batch's future is never resolved: the
delivery awaiting it, and every group-commit round behind it, waited forever. `Handed` knows
which producer holds which unacknowledged batch, and fails those of a retired producer with
`ProducerRetired`, which the publisher sends again on the new producer.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from consumers.errors import NotStarted, ProducerRetired

__all__ = ["Batch", "Handed", "Lane"]


class Batch:
    """A record batch of a lane: open to appends until its lane hands it to the producer
    (never, when `alone`), and the future its acknowledgement resolves."""

    __slots__ = ("acked", "alone", "builder")

    def __init__(self, builder: Any, acked: asyncio.Future[Any], alone: bool) -> None:
        self.builder = builder
        self.acked = acked
        self.alone = alone

    def resolve(self, ack: asyncio.Future[Any]) -> None:
        """Copy the producer's outcome of the batch (`ack`) to `acked`."""
        if self.acked.done():
            return
        if ack.cancelled():
            self.acked.cancel()
        elif (error := ack.exception()) is not None:
            self.acked.set_exception(error)
        else:
            self.acked.set_result(ack.result())

    def fail(self, error: Exception) -> None:
        if not self.acked.done():
            self.acked.set_exception(error)


class Handed:
    """The batches each producer was handed and has not resolved yet, and the producers that
    were retired (a batch handed to one of those fails at once)."""

    __slots__ = ("_pending", "_retired")

    def __init__(self) -> None:
        self._pending: dict[int, set[Batch]] = {}
        # Weak: a retired producer is forgotten once nothing else holds it, so its id cannot
        # be mistaken for a later producer's.
        self._retired: weakref.WeakSet[Any] = weakref.WeakSet()

    def add(self, producer: Any, batch: Batch, ack: asyncio.Future[Any]) -> None:
        """`producer` took `batch` (its acknowledgement `ack`)."""
        if producer in self._retired:
            batch.fail(_retired_error())
            return
        pending = self._pending.setdefault(id(producer), set())
        pending.add(batch)

        def resolved(done: asyncio.Future[Any]) -> None:
            pending.discard(batch)
            batch.resolve(done)

        ack.add_done_callback(resolved)

    def retire(self, producer: Any) -> int:
        """`producer` was stopped (or given up on): fail every batch it still holds, and any
        handed to it later; how many it held.

        Why they are safe to send again: a stopped producer's sender finished every request it
        had in flight before it stopped, so a batch still unresolved was never sent.
        """
        self._retired.add(producer)
        pending = self._pending.pop(id(producer), set())
        for batch in pending:
            batch.fail(_retired_error())
        return len(pending)


def _retired_error() -> ProducerRetired:
    return ProducerRetired(
        "the producer holding this batch was renewed before acknowledging it",
        upstream="ProducerRetired",
    )


class Lane:
    """One (topic, partition)'s batches not yet handed to the producer, oldest first (the last
    one open to appends), and the task handing them over; None while there are none."""

    __slots__ = ("open", "task")

    def __init__(self) -> None:
        self.open: deque[Batch] = deque()
        self.task: asyncio.Task[None] | None = None

    async def run(
        self, topic: str, partition: int, producer: Callable[[], Any], handed: Handed
    ) -> None:
        """Hand the batches to the current producer one at a time, in order. The one waiting
        in `send_batch` for the earlier batch to drain is closed to appends: the next open
        batch collects everything queued meanwhile. Each handed batch is recorded in
        `handed` with the producer that took it."""
        try:
            while self.open:
                batch = self.open.popleft()
                current = producer()
                if current is None:
                    batch.fail(NotStarted("EventPublisher stopped before sending"))
                    continue
                try:
                    ack = await current.send_batch(batch.builder, topic, partition=partition)
                except Exception as exc:
                    batch.fail(exc)
                    continue
                handed.add(current, batch, ack)
        finally:
            self.task = None
            for batch in self.open:  # cancelled (loop shutdown)
                batch.acked.cancel()
            self.open.clear()
