"""The transactions mode's commits: one transactional producer per assigned input partition,
and the outcomes staged for its next transaction.

Why a module of its own: what `consumers.transactions_mode` promises rests on three rules kept
here: outcomes are produced only in the transaction that commits their offset; a partition has
at most one transaction in flight, which no caller cancels; and a partition whose producer was
fenced (or failed for good) drops its work and waits for the group to reassign it, rather than
starting a new producer that would fence its rightful owner.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import TopicPartition

from consumers._commits import Committer
from consumers.backpressure import PartitionState
from consumers.errors import BrokerError, ProducerFencedError
from consumers.invoker import HandlerInvoker
from consumers.kafka_errors import is_refusal
from consumers.metrics import ConsumerMetrics
from consumers.publisher import EventPublisher
from consumers.records import ConsumedRecord, Message, Verdict
from consumers.refusals import fallback
from consumers.settings import KafkaSettings
from core.redact import Redactor
from schemas import Event, EventCodec

__all__ = ["Staged", "TransactionalCommitter", "TxnPartition"]

_log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Staged:
    """One settled record's messages for its partition's next transaction, and its verdict
    (its result counts once committed). `alone`: a batch of this record's was refused, so
    its messages go in batches of their own, telling which one the broker refuses."""

    messages: list[Message]
    verdict: Verdict
    alone: bool = False


@dataclass(eq=False)
class TxnPartition:
    """An assigned input partition's transactional producer and what waits for it."""

    tp: Any
    publisher: EventPublisher
    invoker: HandlerInvoker | None = None
    staged: dict[int, Staged] = field(default_factory=dict)
    progress: list[Message] = field(default_factory=list)
    # Fenced, or its producer failed for good: its outcomes are dropped until a rebalance.
    lost: bool = False
    closing: bool = False  # revoked: its producer stops once the transaction in flight ends
    txn: asyncio.Task[None] | None = None  # the transaction in flight

    def take(self, below: int | None) -> tuple[list[tuple[int, Staged]], list[Message]]:
        """Remove and return the outcomes staged below offset `below`, and the progress."""
        taken: list[tuple[int, Staged]] = []
        if below is not None:
            taken = [(o, self.staged.pop(o)) for o in sorted(o for o in self.staged if o < below)]
        progress, self.progress = self.progress, []
        return taken, progress

    def restore(self, taken: list[tuple[int, Staged]], progress: list[Message]) -> None:
        """Put back what `take` returned (its transaction was aborted)."""
        if self.lost:
            return
        self.staged.update(taken)
        self.progress[:0] = progress


class _ProgressQueue(EventPublisher):
    """What a partition's handlers report progress through: its next transaction.

    A subclass because `HandlerInvoker` publishes through an EventPublisher; it never starts a
    producer of its own.
    """

    def __init__(self, settings: KafkaSettings, codec: EventCodec, partition: TxnPartition) -> None:
        super().__init__(settings, "", codec)
        self._partition = partition

    async def publish(
        self,
        topic: str,
        event: Event,
        *,
        key: str | bytes,
        subject: str | None = None,
        traceparent: str | None = None,
    ) -> None:
        if not self._partition.lost:
            key_bytes = key.encode() if isinstance(key, str) else key
            self._partition.progress.append(Message(topic, event, key_bytes, subject, traceparent))


class TransactionalCommitter(Committer):
    """Owns the assigned partitions' transactional producers and commits their staged outcomes.

    A round starts when something was staged or a transaction ended (`wake()`), at most every
    `transaction_interval_s` and at least every `commit_interval_s`. It begins a transaction for
    each partition that has something to commit and none under way, without waiting for it: a
    partition's slow transaction delays only that partition's next one. Transactions run in
    tasks that callers wait for with a deadline and never cancel: one left behind finishes, or
    is aborted by the next owner's producer.
    """

    def __init__(
        self,
        consumer: Any,
        partitions: dict[Any, PartitionState],
        metrics: ConsumerMetrics,
        *,
        settings: KafkaSettings,
        bootstrap_servers: str,
        codec: EventCodec,
        redactor: Redactor,
        invoker_for: Callable[[EventPublisher], HandlerInvoker],
        rejoin: Callable[[], None],
    ) -> None:
        super().__init__(consumer, partitions, metrics, interval_s=settings.commit_interval_s)
        self._settings = settings
        self._servers = bootstrap_servers
        self._codec = codec
        self._redactor = redactor
        self._invoker_for = invoker_for
        self._rejoin = rejoin
        self._outputs: dict[Any, TxnPartition] = {}
        self._wake = asyncio.Event()
        self._last_round = 0.0

    def partition(self, record: ConsumedRecord) -> TxnPartition | None:
        return self._outputs.get(TopicPartition(record.topic, record.partition))

    def wake(self) -> None:
        self._wake.set()

    async def _round(self) -> None:
        for state in list(self._partitions.values()):
            self._begin(state)

    async def _next_round(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self._last_round + self._settings.transaction_interval_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        with contextlib.suppress(TimeoutError):  # no wake-up: the periodic round is due
            await asyncio.wait_for(self._wake.wait(), self._interval_s)
        self._wake.clear()
        self._last_round = loop.time()

    # ------------------------------------------------------------------ producers

    async def open(self, tps: list[Any]) -> list[Any]:
        """Start (fence with) a producer per partition; returns the partitions now open."""
        s = self._settings

        async def start(tp: Any) -> TxnPartition:
            # The same id for every owner of the partition: the next one fences the last.
            txn_id = f"{s.group_id}.{tp.topic}.{tp.partition}"
            publisher = EventPublisher(
                s, self._servers, self._codec, transactional_id=txn_id, redactor=self._redactor
            )
            await publisher.start()
            part = TxnPartition(tp, publisher)
            part.invoker = self._invoker_for(_ProgressQueue(s, self._codec, part))
            return part

        fresh = [tp for tp in tps if tp not in self._outputs]
        started = await asyncio.gather(*(start(tp) for tp in fresh), return_exceptions=True)
        for tp, part in zip(fresh, started, strict=True):
            if isinstance(part, BaseException):
                _log.error(
                    "consumer.transactional_producer_failed",
                    partition=tp.partition,
                    error=type(part).__name__,
                )
            else:
                self._outputs[tp] = part
        return [tp for tp in tps if tp in self._outputs]

    async def close(self, tps: list[Any]) -> None:
        """Let each partition's transaction in flight end (within `revoke_timeout_s`), then stop
        its producer."""
        parts = [part for tp in tps if (part := self._outputs.pop(tp, None)) is not None]
        for part in parts:
            part.closing = True
        pending = [part.txn for part in parts if part.txn is not None and not part.txn.done()]
        if pending:
            await asyncio.wait(pending, timeout=self._settings.revoke_timeout_s)
        for part in parts:
            await part.publisher.stop()

    async def stop(self) -> None:
        await self.close(list(self._outputs))

    def lose(self, state: PartitionState, part: TxnPartition | None, error: Exception) -> None:
        """Stop working on `state`'s partition until the group reassigns it: its staged work is
        dropped (uncommitted, so whoever owns the partition does it again)."""
        if part is not None:
            part.lost = True
            part.staged.clear()
            part.progress.clear()
        state.draining = True
        state.backlog.clear()
        fenced = isinstance(error, ProducerFencedError)
        _log.error(
            "consumer.producer_fenced" if fenced else "consumer.transactions_failed",
            partition=state.tp.partition,
            error=getattr(error, "upstream", type(error).__name__),
            exc_info=None if isinstance(error, BrokerError) else error,
        )
        # The partition comes back (or goes to its real owner) through a rebalance. A zombie
        # learns of one from its next heartbeat anyway; a member fenced for another reason (a
        # transaction past its timeout) asks for one.
        self._rejoin()

    # ------------------------------------------------------------------ commits

    async def commit(self, states: list[PartitionState]) -> None:
        """Commit what `states` finished and wait for it (revocation and stop()), each
        partition within `revoke_timeout_s`."""
        await asyncio.gather(*(self._commit_partition(state) for state in states))

    async def _commit_partition(self, state: PartitionState) -> None:
        deadline = self._settings.revoke_timeout_s
        part = self._outputs.get(state.tp)
        if part is not None and part.txn is not None and not part.txn.done():
            # One transaction at a time per producer: the one under way ends first.
            await asyncio.wait([part.txn], timeout=deadline)
        txn = self._begin(state)
        if txn is not None:
            await asyncio.wait([txn], timeout=deadline)

    def _begin(self, state: PartitionState) -> asyncio.Task[None] | None:
        """Begin the transaction of what `state` finished, unless one is under way or there is
        nothing to commit; returns it."""
        part = self._outputs.get(state.tp)
        if part is None or part.lost or (part.txn is not None and not part.txn.done()):
            return None
        offset = state.offsets.take_commit()
        taken, progress = part.take(offset)
        if offset is None and not taken and not progress:
            return None
        part.txn = txn = asyncio.create_task(self._transact(state, part, offset, taken, progress))
        # What was staged meanwhile goes into the next one: the next round may begin it now.
        txn.add_done_callback(lambda _: self._wake.set())
        return txn

    async def _transact(
        self,
        state: PartitionState,
        part: TxnPartition,
        offset: int | None,
        taken: list[tuple[int, Staged]],
        progress: list[Message],
    ) -> None:
        together = [m for _, staged in taken if not staged.alone for m in staged.messages]
        together.extend(progress)
        alone = [m for _, staged in taken if staged.alone for m in staged.messages]
        offsets = {} if offset is None else {state.tp: offset}
        try:
            refused = await part.publisher.commit_transaction(
                together, offsets, self._settings.group_id, alone=alone
            )
        except Exception as exc:
            if part.closing:
                # Revoked, and outlived its deadline: the next owner redoes what it held.
                _log.warning("consumer.transaction_abandoned", partition=state.tp.partition)
                return
            if isinstance(exc, BrokerError) and not part.publisher.broken:
                # Aborted, so none of it is visible: the same outcomes go into the next one.
                _log.warning(
                    "consumer.transaction_aborted",
                    partition=state.tp.partition,
                    error=exc.upstream,
                )
                part.restore(taken, progress)
                return
            self.lose(state, part, exc)
            await part.publisher.stop()
            return
        if any(error is not None for error in refused):
            await self._after_refusal(
                part, taken, progress, sent=[*together, *alone], refused=refused
            )
            return
        if offset is not None:
            state.offsets.committed(offset)
        for _, staged in taken:
            result = staged.verdict.result
            if result is not None:
                self._metrics.count_result(result.task, succeeded=staged.verdict.succeeded)

    async def _after_refusal(
        self,
        part: TxnPartition,
        taken: list[tuple[int, Staged]],
        progress: list[Message],
        *,
        sent: list[Message],
        refused: list[BrokerError | None],
    ) -> None:
        """The broker refused records of an (aborted) transaction: the staged records of the
        refused batches are sent alone next time, and a record refused alone is replaced by its
        small form. Progress reports refused are dropped: they are reports, not outcomes."""
        # Only a refusal is about the message; a batch taken out of order after it is not.
        errors = {id(m): e for m, e in zip(sent, refused, strict=True) if e and is_refusal(e)}
        for _, staged in taken:
            if not any(id(m) in errors for m in staged.messages):
                continue
            if not staged.alone:
                staged.alone = True
                continue
            staged.messages = [self._replaced(m, errors.get(id(m))) for m in staged.messages]
        kept = [m for m in progress if id(m) not in errors]
        if len(kept) < len(progress):
            _log.warning("consumer.progress_refused", count=len(progress) - len(kept))
        # A refusal leaves the idempotent producer unable to write that partition again (see
        # `EventPublisher.renew`); the new producer of the same id fences the old one.
        await part.publisher.renew()
        part.restore(taken, kept)

    def _replaced(self, message: Message, refusal: BrokerError | None) -> Message:
        if refusal is None:
            return message
        replacement = fallback(message.event, refusal, self._codec)
        if replacement is None:
            # Even the smallest form is refused: the topic itself is unusable. The partition
            # waits (its next transactions try again) rather than lose an outcome.
            _log.error(
                "consumer.output_topic_unusable", topic=message.topic, error=refusal.upstream
            )
            return message
        return message._replace(event=replacement)
