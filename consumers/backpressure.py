"""Scheduling state of one assigned partition: backlog, in-flight tasks, commits, pausing.

Why: concurrency is bounded PER PARTITION. Records beyond the bound wait in a small backlog (in
offset order); once a full bound of records waits there the partition is paused so the
fetcher stops pulling more. As work finishes, backlog records start, and the partition resumes
once the backlog is empty, so the next batch is fetched while the current one runs.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from consumers.key_order import KeySequencer
from consumers.offsets import PartitionOffsets

__all__ = ["PartitionState"]


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
