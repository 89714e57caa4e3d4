"""Hands fetched records to the pipeline, per partition: batches, per-key order, bounds, retries.

Why a module of its own: the fetch loop (`consumers.service`) only appends records to their
partition's backlog; everything between that and a settled outcome that is about scheduling
lives here. The records of one fetch that fit their partitions' in-flight bounds go to the
pipeline as one batch task, across partitions; a record whose key has earlier work pending
waits for it in a task of its own (per-key order) and then runs as a batch of one; a record
the pipeline detaches (its handler still runs) or hands back (a step failed) continues in a
task of its own, tracked per offset so revocation and stop() wait for it
(`consumers._rebalance.finish`). A settled record's offset is complete: commits advance over
it (`consumers.offsets`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import structlog

from consumers.backpressure import PartitionState
from consumers.errors import BrokerError, ClaimHeldElsewhere, ConsumerError
from consumers.kafka_errors import kafka_errors
from consumers.pipeline import Pipeline
from consumers.records import ConsumedRecord, Delivery
from consumers.retry import RetryPolicy
from consumers.settings import RetrySettings

__all__ = ["Dispatcher"]

_log = structlog.get_logger(__name__)

# How long a record whose step failed (the broker refusing our results for longer than the
# producer's own retries, the store down) waits before it runs again; it never gives up, since
# an unsettled record would hold its partition's commits back forever.
_INFRA_RETRY = RetrySettings(initial_backoff_s=0.5, max_backoff_s=10.0, max_attempts=1)


class _PartitionHooks:
    """The pipeline's `records.Hooks` for one partition's deliveries.

    Equal when they serve the same partition state, whichever batch or task made them: a
    group-commit round (`consumers._group_commit`) reports each partition's settled deliveries
    once, telling partitions apart by their hooks.
    """

    def __init__(self, dispatcher: Dispatcher, state: PartitionState) -> None:
        self._dispatcher = dispatcher
        self._state = state

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _PartitionHooks) and other._state is self._state

    def __hash__(self) -> int:
        return id(self._state)

    def settled(self, deliveries: Sequence[Delivery]) -> None:
        self._dispatcher.finished(self._state, [d.record for d in deliveries])

    def detach(self, delivery: Delivery, task: asyncio.Task[Any]) -> None:
        self._dispatcher.track(self._state, delivery, task)

    def failed(self, delivery: Delivery, error: Exception) -> None:
        delivery.failures += 1
        self._dispatcher.spawn(self._state, delivery, self._dispatcher.retry(self, delivery, error))


class Dispatcher:
    """Schedules one started consumer's partitions onto the pipeline."""

    def __init__(
        self,
        consumer: Any,
        pipeline: Pipeline,
        *,
        running: Callable[[], bool],
        on_paused: Callable[[], None],
    ) -> None:
        self._consumer = consumer
        self._pipeline = pipeline
        self._running = running
        self._on_paused = on_paused
        self._infra_policy = RetryPolicy(_INFRA_RETRY)

    def schedule(self, state: PartitionState) -> None:
        """Start what the partition's bound lets start: one batch, plus waiters for busy keys."""
        self.schedule_many([state])

    def schedule_many(self, states: Sequence[PartitionState]) -> None:
        """`schedule` for several partitions (one fetch's): their batches run as one task."""
        entries: list[tuple[PartitionState, _PartitionHooks, list[Delivery]]] = []
        for state in states:
            taken = self._take(state)
            if taken is not None:
                entries.append((state, *taken))
            self._pause_if_full(state)
        if not entries:
            return
        task = asyncio.create_task(self._run_batch(entries))
        for state, _, _ in entries:
            state.batches.add(task)
        task.add_done_callback(lambda done: _discard(entries, done))

    def _take(self, state: PartitionState) -> tuple[_PartitionHooks, list[Delivery]] | None:
        """The partition's next batch (its hooks and deliveries), None when none starts now."""
        if not state.backlog:
            return None  # the common case after a batch ends: nothing fetched meanwhile
        # While a batch runs, wait for half the bound to free up rather than starting a
        # trickle of tiny batches: every batch pays the same few round trips.
        if state.batches and state.bound - state.in_flight < max(1, state.bound // 2):
            return None
        hooks = _PartitionHooks(self, state)
        batch: list[Delivery] = []
        while state.backlog and state.has_room() and not state.revoked:
            record = state.backlog.popleft()
            state.offsets.add(record.offset)
            delivery = Delivery(record, maybe_redelivered=state.maybe_redelivered(record))
            key = state.key_of(record)
            if key is not None:
                previous, held = state.sequencer.hold(key)
                state.holds[record.offset] = (key, held)
                if previous is not None:
                    self.spawn(state, delivery, self._after(previous, hooks, delivery))
                    continue
            batch.append(delivery)
        return (hooks, batch) if batch else None

    def _pause_if_full(self, state: PartitionState) -> None:
        if state.should_pause():
            self._consumer.pause(state.tp)
            state.paused = True
            self._on_paused()

    async def _run_batch(
        self, entries: list[tuple[PartitionState, _PartitionHooks, list[Delivery]]]
    ) -> None:
        try:
            await self._pipeline.run_many([(batch, hooks) for _, hooks, batch in entries])
        except asyncio.CancelledError:
            # Cancelled with a revoked (or stopping) partition: a live partition's records in
            # this shared batch are handed back rather than left unsettled.
            if len(entries) > 1:
                _hand_back(entries)
            raise
        finally:
            _discard(entries, asyncio.current_task())
        # Scheduling waited for this batch while it ran (see _take).
        for state, _, _ in entries:
            self.finished(state, [])

    def spawn(
        self, state: PartitionState, delivery: Delivery, work: Coroutine[Any, Any, None]
    ) -> None:
        """Run `work` for `delivery` in a task of its own, tracked under its offset."""
        offset = delivery.record.offset
        state.tasks[offset] = asyncio.create_task(self._own(state, offset, work))

    def track(self, state: PartitionState, delivery: Delivery, task: asyncio.Task[Any]) -> None:
        """Track `task`, already running, for `delivery`, as `spawn` does its own tasks.

        A done callback rather than a task awaiting it: one task per slow event, not two.
        """
        offset = delivery.record.offset
        state.tasks[offset] = task
        task.add_done_callback(lambda done: self._untrack(state, offset, done))

    def _untrack(self, state: PartitionState, offset: int, task: asyncio.Task[Any]) -> None:
        # A retry may have taken the offset over: only the current task's entry goes.
        if state.tasks.get(offset) is task:
            del state.tasks[offset]
            self._release(state, offset)

    async def _own(
        self, state: PartitionState, offset: int, work: Coroutine[Any, Any, None]
    ) -> None:
        try:
            await work
        finally:
            work.close()  # a no-op once it ran; never started when cancelled while queued
            current = asyncio.current_task()
            if current is not None:
                self._untrack(state, offset, current)

    async def _after(
        self, previous: asyncio.Future[None], hooks: _PartitionHooks, delivery: Delivery
    ) -> None:
        # asyncio.wait does not cancel `previous` if we are cancelled while waiting.
        await asyncio.wait([previous])
        await self._pipeline.run([delivery], hooks)

    async def retry(self, hooks: _PartitionHooks, delivery: Delivery, error: Exception) -> None:
        """Log why `delivery`'s step failed, wait, and run it again (its verdict kept)."""
        scope = {"offset": delivery.record.offset, "failures": delivery.failures}
        if isinstance(error, ClaimHeldElsewhere):
            _log.info("consumer.claim_held_elsewhere", **scope)
        elif isinstance(error, ConsumerError):
            upstream = error.upstream if isinstance(error, BrokerError) else None
            _log.warning(
                "consumer.step_failed", error=type(error).__name__, upstream=upstream, **scope
            )
        else:
            _log.error("consumer.step_failed", error=type(error).__name__, exc_info=error, **scope)
        await asyncio.sleep(self._infra_policy.backoff(delivery.failures))
        await self._pipeline.run([delivery], hooks)

    def _release(self, state: PartitionState, offset: int) -> None:
        held = state.holds.pop(offset, None)
        if held is not None:
            state.sequencer.release(*held)

    def finished(self, state: PartitionState, records: Sequence[ConsumedRecord]) -> None:
        """`records` are settled: free their keys and slots, schedule more, maybe resume."""
        for record in records:
            self._release(state, record.offset)
        if state.revoked:
            return
        for record in records:
            state.offsets.complete(record.offset)
        self.schedule(state)
        if state.should_resume() and self._running():
            try:
                with kafka_errors():
                    if state.tp in self._consumer.assignment():
                        self._consumer.resume(state.tp)
            except BrokerError as exc:
                # Revoked meanwhile: the rebalance listener owns the partition's state now.
                _log.warning("consumer.resume_failed", error=exc.upstream)
            state.paused = False
            self._on_paused()


def _discard(
    entries: list[tuple[PartitionState, _PartitionHooks, list[Delivery]]], task: Any
) -> None:
    for state, _, _ in entries:
        state.batches.discard(task)


def _hand_back(entries: list[tuple[PartitionState, _PartitionHooks, list[Delivery]]]) -> None:
    """Hand back the deliveries of live partitions that a cancelled batch leaves unsettled (not
    settled, and not continued by a task of their own: detached or handed back already)."""
    for state, hooks, batch in entries:
        if state.draining or state.revoked:
            continue  # its own cancellation: abandoned, redelivered to its next owner
        for delivery in batch:
            if delivery.outcome is None and delivery.record.offset not in state.tasks:
                hooks.failed(delivery, ConsumerError("cancelled with another partition's batch"))
