"""One lane per (topic, partition) of the publisher: its record batches, handed to the producer
one at a time.

Why: aiokafka's `MessageAccumulator.add_batch` makes a batch wait for the partition's earlier
one to drain, and subtracts the total time elapsed since the call began from its timeout at
every wait, so a `send_batch` queued behind ~100 others timed out within a second, whatever
`request_timeout_ms` said. With one `send_batch` outstanding per partition, concurrent
callers' messages instead join the batch that is still open (`consumers.publisher.send_many`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from consumers.errors import NotStarted

__all__ = ["Batch", "Lane"]


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


class Lane:
    """One (topic, partition)'s batches not yet handed to the producer, oldest first (the last
    one open to appends), and the task handing them over; None while there are none."""

    __slots__ = ("open", "task")

    def __init__(self) -> None:
        self.open: deque[Batch] = deque()
        self.task: asyncio.Task[None] | None = None

    async def run(self, topic: str, partition: int, producer: Callable[[], Any]) -> None:
        """Hand the batches to the current producer one at a time, in order. The one waiting
        in `send_batch` for the earlier batch to drain is closed to appends: the next open
        batch collects everything queued meanwhile."""
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
                ack.add_done_callback(batch.resolve)
        finally:
            self.task = None
            for batch in self.open:  # cancelled (loop shutdown)
                batch.acked.cancel()
            self.open.clear()
