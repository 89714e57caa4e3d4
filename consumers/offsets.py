"""Which offset of a partition may be committed while many of its events are in flight.

Why: events of one partition finish out of order when processed concurrently. Committing offset
N tells Kafka "everything below N is done", so the commit may only advance over the CONTIGUOUS
prefix of completed offsets; an unfinished event below a finished one holds the commit back
(after a crash it is redelivered, and so are the finished ones above it: at-least-once).
"""

from __future__ import annotations

from collections import OrderedDict

from consumers.errors import OffsetOrderError

__all__ = ["PartitionOffsets"]


class PartitionOffsets:
    """Tracks offsets handed out for one partition and the next offset safe to commit."""

    def __init__(self, committed: int | None = None) -> None:
        # Offsets arrive in increasing order within a partition, so insertion order is offset
        # order and the oldest unfinished offset is always at the front.
        self._pending: OrderedDict[int, bool] = OrderedDict()
        self._next: int | None = committed
        self._last_committed: int | None = committed
        self._unfinished = 0

    def __len__(self) -> int:
        """Number of tracked offsets not yet folded into the committable prefix."""
        return len(self._pending)

    @property
    def in_flight(self) -> int:
        """Offsets handed out and not yet completed."""
        return self._unfinished

    def add(self, offset: int) -> None:
        """Record that `offset` was handed to a worker. Offsets must be added in order."""
        if self._pending:
            last = next(reversed(self._pending))
            if offset <= last:
                raise OffsetOrderError(f"offset {offset} added after {last}")
        elif self._next is not None and offset < self._next:
            raise OffsetOrderError(f"offset {offset} is below the committable offset {self._next}")
        self._pending[offset] = False
        self._unfinished += 1

    def complete(self, offset: int) -> None:
        """Mark `offset` finished (result published or dead-lettered)."""
        if offset not in self._pending:
            raise OffsetOrderError(f"offset {offset} was never added")
        if self._pending[offset]:
            return
        self._pending[offset] = True
        self._unfinished -= 1
        while self._pending:
            first, done = next(iter(self._pending.items()))
            if not done:
                break
            del self._pending[first]
            self._next = first + 1

    def committable(self) -> int | None:
        """The offset to commit (next to consume), or None when nothing finished yet."""
        return self._next

    def take_commit(self) -> int | None:
        """The committable offset if it advanced since the last take, else None."""
        if self._next is None or self._next == self._last_committed:
            return None
        return self._next

    def committed(self, offset: int) -> None:
        """Record that `offset` was committed to the broker."""
        self._last_committed = offset
