"""Commits of finished offsets, and the lag and in-flight gauges sampled alongside them.

Why a module of its own: committing is where the consumer keeps its at-least-once promise
(per partition, only the contiguous prefix of finished offsets, and only once their results
were acknowledged), and three callers share it: the periodic loop, revocation (before the
partitions go to another owner) and stop(). Apart from fetching and scheduling, it reads on
its own. In transactions mode a subclass (`consumers._transactions`) commits the same prefix
inside a transaction, with the outcomes of the records it covers.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from consumers.backpressure import PartitionState
from consumers.errors import BrokerError
from consumers.kafka_errors import kafka_errors
from consumers.metrics import ConsumerMetrics

__all__ = ["Committer"]

_log = structlog.get_logger(__name__)


class Committer:
    """Commits for one started consumer.

    `partitions` is the service's live assignment, shared rather than copied: the periodic
    loop always sees the partitions assigned at that moment.
    """

    def __init__(
        self,
        consumer: Any,
        partitions: dict[Any, PartitionState],
        metrics: ConsumerMetrics,
        *,
        interval_s: float,
    ) -> None:
        self._consumer = consumer
        self._partitions = partitions
        self._metrics = metrics
        self._interval_s = interval_s
        # The loop, a revocation and stop() may commit at the same time: one at a time.
        self._lock = asyncio.Lock()

    async def run(self) -> None:
        """Commit, then sample the gauges, every round until cancelled."""
        while True:
            await self._next_round()
            await self._round()
            self._update_lag()
            # Sampled here rather than per event: the sum runs over every partition.
            self._metrics.in_flight.set(sum(state.in_flight for state in self._partitions.values()))

    async def _next_round(self) -> None:
        """Wait until the next round is due: every `interval_s` here."""
        await asyncio.sleep(self._interval_s)

    async def _round(self) -> None:
        """One round's commits: every partition's, waited for."""
        await self.commit(list(self._partitions.values()))

    async def stop(self) -> None:
        """Release what committing holds; nothing here (subclasses hold producers)."""

    async def commit(self, states: list[PartitionState]) -> None:
        offsets = {}
        for state in states:
            offset = state.offsets.take_commit()
            if offset is not None:
                offsets[state.tp] = offset
        if not offsets:
            return
        async with self._lock:
            try:
                with kafka_errors():
                    await self._consumer.commit(offsets)
            except BrokerError as exc:
                # Lost the partitions or the coordinator; the events will be redelivered.
                _log.warning("consumer.commit_failed", error=exc.upstream)
                return
        for state in states:
            if state.tp in offsets:
                state.offsets.committed(offsets[state.tp])

    def _update_lag(self) -> None:
        for tp, state in list(self._partitions.items()):
            highwater = self._consumer.highwater(tp)
            position = state.next_fetch_offset
            if highwater is not None and position is not None:
                self._metrics.lag.labels(tp.topic, str(tp.partition)).set(
                    max(0, highwater - position)
                )
