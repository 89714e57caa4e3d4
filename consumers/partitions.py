"""Scheduling state of one assigned partition: backlog, in-flight tasks, commits, pausing.

Why: concurrency is bounded PER PARTITION. Records beyond the bound wait in a small backlog (in
offset order) and the partition is paused so the fetcher stops pulling more; as tasks finish,
backlog records start and the partition resumes once the backlog is empty and in-flight work
fell to half the bound (hysteresis avoids pause/resume flapping).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from consumers.keyed import KeySequencer
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
        self.paused = False
        self.revoked = False
        # Set while revocation or shutdown waits for in-flight work: nothing new may start.
        self.draining = False
        self.next_fetch_offset: int | None = None
        # End offset at assignment: records below it may have been processed by a previous
        # owner whose result marker was lost (see consumers.probe).
        self.redelivery_horizon = 0

    @property
    def in_flight(self) -> int:
        return self.offsets.in_flight

    def has_room(self) -> bool:
        return not self.draining and self.offsets.in_flight < self.bound

    def should_pause(self) -> bool:
        return not self.paused and (self.offsets.in_flight + len(self.backlog)) >= self.bound

    def should_resume(self) -> bool:
        return self.paused and not self.backlog and self.offsets.in_flight <= self.bound // 2

    def maybe_redelivered(self, record: Any) -> bool:
        return bool(record.offset < self.redelivery_horizon)

    def key_of(self, record: Any) -> bytes | None:
        return record.key if self.ordered else None
