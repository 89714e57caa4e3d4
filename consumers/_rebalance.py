"""Rebalances: revoked partitions finish within a deadline and commit; assigned ones get state.

Why a module of its own: what the consumer does while aiokafka is in the middle of a
rebalance decides the delivery guarantees across owners. A revoked partition's in-flight work
gets `revoke_timeout_s` to finish, what finished is committed, and the rest is abandoned
(uncommitted, so the next owner gets it again). An assigned partition starts with a
redelivery horizon (its end offset), below which records may already have been handled by a
previous owner and are looked up on the results topic (`consumers.results_lookup`). stop() drains
through the same `finish()`, with `drain_timeout_s`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog
from aiokafka import ConsumerRebalanceListener

from consumers._commits import Committer
from consumers.backpressure import PartitionState
from consumers.errors import BrokerError
from consumers.kafka_errors import kafka_errors
from consumers.results_lookup import ResultsLookup
from consumers.settings import KafkaSettings

__all__ = ["Rebalancer", "finish"]

_log = structlog.get_logger(__name__)


async def finish(states: list[PartitionState], deadline_s: float) -> None:
    """Let in-flight tasks finish within `deadline_s`, then cancel (abandon) the rest."""
    for state in states:
        state.draining = True
        state.backlog.clear()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    # Batch tasks may hand records to new tasks while we wait: collect until none is left.
    while tasks := [task for state in states for task in (*state.tasks.values(), *state.batches)]:
        _done, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()))
        for task in pending:
            task.cancel()
        if pending:
            _log.warning("consumer.abandoned_in_flight", count=len(pending))
            await asyncio.wait(pending)


class Rebalancer(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped base class
    """The listener of one started consumer.

    `partitions` is the service's live assignment, shared rather than copied: it is updated
    here and read by the fetch and commit loops. `on_assigned` runs after the assignment
    changed (the service refreshes its paused-partitions gauge).
    """

    def __init__(
        self,
        consumer: Any,
        partitions: dict[Any, PartitionState],
        *,
        committer: Committer,
        settings: KafkaSettings,
        lookup: ResultsLookup | None,
        on_assigned: Callable[[], None],
    ) -> None:
        self._consumer = consumer
        self._partitions = partitions
        self._committer = committer
        self._settings = settings
        self._lookup = lookup
        self._on_assigned = on_assigned
        # Preparing the results lookup after an assignment; stop() cancels it.
        self.prepare_task: asyncio.Task[None] | None = None

    async def on_partitions_revoked(self, revoked: Any) -> None:
        revoked = list(revoked)
        states = [self._partitions[tp] for tp in revoked if tp in self._partitions]
        if not states:
            return
        await finish(states, self._settings.revoke_timeout_s)
        await self._committer.commit(states)
        for state in states:
            state.revoked = True
            self._partitions.pop(state.tp, None)
        _log.info("consumer.partitions_revoked", partitions=[tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: Any) -> None:
        assigned = list(assigned)
        if self._lookup is not None:
            self._lookup.forget()
        fresh = [tp for tp in assigned if tp not in self._partitions]
        try:
            with kafka_errors():
                ends = await self._consumer.end_offsets(fresh) if fresh else {}
        except BrokerError as exc:
            # Unknown ends: treat everything as possibly redelivered (only costs look-ups).
            _log.warning("consumer.end_offsets_failed", error=exc.upstream)
            ends = {tp: 2**62 for tp in fresh}
        for tp in fresh:
            state = PartitionState(
                tp,
                bound=self._settings.max_in_flight_per_partition,
                ordered=self._settings.ordering_per_key,
            )
            state.redelivery_horizon = ends.get(tp, 0)
            self._partitions[tp] = state
        self._on_assigned()
        if self._lookup is not None and fresh:
            # In the background: the rebalance must not wait for it; look-ups take its lock.
            self.prepare_task = asyncio.create_task(self._prepare_lookup(self._lookup))
        _log.info(
            "consumer.partitions_assigned", partitions=sorted(tp.partition for tp in assigned)
        )

    async def _prepare_lookup(self, lookup: ResultsLookup) -> None:
        try:
            await lookup.prepare()
        except BrokerError as exc:
            _log.warning("consumer.results_lookup_prepare_failed", error=exc.upstream)
