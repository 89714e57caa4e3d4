"""Transactions mode: each record's outcome is produced in the transaction that commits its offset.

Why: Kafka's own exactly-once (consume-transform-produce) needs no store beside the broker and
has no crash window, where the dedupe mode (`consumers.processor`) needs Redis and a look-up on
the results topic. The runtime is the same (fetch, schedule, handle, per-key order, bounds);
this module replaces what settles and rebalances, `consumers._transactions` what commits
(`ConsumerService.start` picks them when `exactly_once: transactions`).

Guarantee: for every record of the requests topic, readers with isolation_level=read_committed
see exactly one result (and, for a failure, one dead letter) across crashes, restarts,
rebalances and stalled members ("zombies"), PROVIDED the broker keeps its transaction log
(acks=all, replicated). How:
1. A record's outcome is decided as in dedupe mode (decode, handle with retries, dead-letter a
   failure), then STAGED in memory under its offset, and the record counts as finished.
2. The staged outcomes below a partition's commit offset (the contiguous prefix of finished
   offsets, `consumers.offsets`) are produced in ONE transaction together with that offset
   (`send_offsets_to_transaction`). Outcomes and offset land together or not at all: a crash
   before the commit redelivers the records and nothing of theirs is visible; after it they are
   not redelivered. An outcome above the prefix waits: sent earlier, a crash would leave it
   visible with its record uncommitted.
3. Each input partition has its own transactional id, `{group_id}.{topic}.{partition}`, so the
   next owner of a partition fences the previous one: starting its producer makes the broker
   finish the previous owner's open transaction (abort it, or complete a commit under way) and
   refuse that owner from then on. Only then is the committed offset read and the consumer
   moved to it. A zombie waking up after its partitions moved fails its next transaction
   (ProducerFenced), publishes nothing, drops that partition's work and rejoins the group.
4. A transaction that fails otherwise is aborted (none of it visible) and its outcomes go into
   the next one; a producer that cannot abort is treated as fenced.
An id per consumer process cannot fence: aiokafka commits offsets in a transaction without the
group generation (TxnOffsetCommit v0, before KIP-447), so only the transactional id tells a
zombie from the owner, and only if every owner of a partition uses the same one.

What it costs, and leaves open:
- a partition's results appear in offset order, one transaction after they are ready (up to
  `transaction_interval_s` plus a few broker round trips); a slow record holds back the results
  behind it on its partition, which wait in memory;
- progress reports go into the partition's next transaction, so they appear while the work
  runs; a record handled again after a crash may report its progress twice;
- a request produced twice upstream (two records) gets two results; dedupe mode catches those
  by event id;
- one producer (and connection) per assigned partition; every rebalance starts them anew;
- the embedded broker (librdkafka's mock) hands aborted transactions to read_committed readers,
  so this mode refuses it (`refuse_embedded_broker`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient

from consumers._rebalance import Rebalancer
from consumers._transactions import Item, Staged, TransactionalCommitter, TxnPartition
from consumers.deadletters import dead_letter_for
from consumers.errors import ConsumerError, EventRejected, NoHandler
from consumers.fastpath import Detour
from consumers.handlers import HandlerRegistry
from consumers.invoker import Handled, HandlerInvoker
from consumers.metrics import ConsumerMetrics
from consumers.partitions import PartitionState
from consumers.processor import _parent_traceparent, decode_record, event_scope, result_for
from consumers.publisher import EventPublisher
from consumers.ratelimit import RateLimiter
from consumers.retry import RetryPolicy
from consumers.settings import KafkaSettings
from core.logging import bind_log_scope, reset_log_scope
from schemas import CompletionFailed, ErrorInfo, EventCodec, RequestEvent, child_traceparent

__all__ = [
    "TransactionalCommitter",
    "TransactionalRebalancer",
    "TransactionalSettler",
    "refuse_embedded_broker",
    "transactional_path",
]

_log = structlog.get_logger(__name__)


async def refuse_embedded_broker(bootstrap_servers: str, client_id: str) -> None:
    """Raise ConsumerError when `bootstrap_servers` is librdkafka's mock cluster."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id=client_id)
    await admin.start()
    try:
        cluster_id = str((await admin.describe_cluster()).get("cluster_id") or "")
    finally:
        await admin.close()
    # The mock names its clusters so; a real cluster id is a random base64 UUID.
    if cluster_id.startswith("mockCluster"):
        raise ConsumerError(
            "exactly_once: transactions needs a real Kafka broker; "
            f"{bootstrap_servers} is the embedded broker, whose read_committed readers still "
            "see aborted transactions (use exactly_once: dedupe there)"
        )


class TransactionalSettler:
    """The runtime's settle path in transactions mode (the `fastpath.Settler` interface).

    Handling is the dedupe mode's (one task per handler, the batch settled in one step when its
    handlers finish in their first one, the rest on the per-record path), but an outcome is
    staged for the partition's next transaction instead of published: nothing here waits for
    the broker, and no dedupe store is asked anything.
    """

    def __init__(
        self,
        *,
        settings: KafkaSettings,
        codec: EventCodec,
        committer: TransactionalCommitter,
        metrics: ConsumerMetrics,
    ) -> None:
        self._settings = settings
        self._codec = codec
        self._committer = committer
        self._metrics = metrics

    async def settle(
        self,
        records: list[tuple[Any, bool]],
        *,
        finished: Callable[[list[Any]], None],
        detour: Detour,
    ) -> None:
        if not records:
            return
        part = self._committer.partition(records[0][0])
        if part is None or part.lost:
            # Lost to another owner (or to a failed producer): whoever owns it redoes these.
            finished([record for record, _ in records])
            return
        settled: list[Any] = []
        decoded: list[tuple[Any, RequestEvent, str]] = []
        for record, _ in records:
            traceparent = child_traceparent(_parent_traceparent(record.headers))
            try:
                event = decode_record(record, self._codec, self._settings.max_event_bytes)
            except EventRejected as exc:
                self._reject(part, record, exc, traceparent)
                settled.append(record)
                continue
            decoded.append((record, event, traceparent))
        started = time.monotonic()
        tasks = [self._start(part, record, event, tp) for record, event, tp in decoded]
        try:
            await asyncio.sleep(0)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        for (record, event, traceparent), task in zip(decoded, tasks, strict=True):
            if not task.done():
                detour(
                    record, self._finish(part, record, event, traceparent, task, started=started), 0
                )
            elif task.cancelled() or task.exception() is not None:
                detour(record, None, 1)
            else:
                self._stage(
                    part, record, event, traceparent, handled=task.result(), started=started
                )
                settled.append(record)
        if settled:
            finished(settled)
            self._committer.wake()

    async def process(
        self, record: Any, *, maybe_redelivered: bool = False, retry: bool = False
    ) -> None:
        # A record's previous outcome is either committed with its offset (then it is not
        # redelivered) or invisible: there is nothing to look up before handling it again.
        part = self._committer.partition(record)
        if part is None or part.lost or part.invoker is None:
            return
        traceparent = child_traceparent(_parent_traceparent(record.headers))
        try:
            event = decode_record(record, self._codec, self._settings.max_event_bytes)
        except EventRejected as exc:
            self._reject(part, record, exc, traceparent)
            self._committer.wake()
            return
        token = bind_log_scope(event_scope(record, event))
        try:
            started = time.monotonic()
            handled = await part.invoker.handle(event, traceparent)
            self._stage(part, record, event, traceparent, handled=handled, started=started)
        finally:
            reset_log_scope(token)

    def _start(
        self, part: TxnPartition, record: Any, event: RequestEvent, traceparent: str
    ) -> asyncio.Task[Handled]:
        assert part.invoker is not None  # set by TransactionalCommitter.open
        token = bind_log_scope(event_scope(record, event))
        try:
            # The task copies the context bound above.
            return asyncio.create_task(part.invoker.handle(event, traceparent))
        finally:
            reset_log_scope(token)

    async def _finish(
        self,
        part: TxnPartition,
        record: Any,
        event: RequestEvent,
        traceparent: str,
        task: asyncio.Task[Handled],
        *,
        started: float,
    ) -> None:
        try:
            # wait() keeps `task` alive if we are cancelled; then it is cancelled explicitly.
            await asyncio.wait([task])
        except BaseException:
            task.cancel()
            raise
        self._stage(part, record, event, traceparent, handled=task.result(), started=started)
        self._committer.wake()

    def _stage(
        self,
        part: TxnPartition,
        record: Any,
        event: RequestEvent,
        traceparent: str,
        *,
        handled: Handled,
        started: float,
    ) -> None:
        result = result_for(event, handled, started)
        items: list[Item] = []
        if isinstance(result, CompletionFailed):
            outcome, attempts, errors = handled
            reason = "no_handler" if isinstance(outcome, NoHandler) else "handler_failed"
            items.extend(self._letter(record, reason, errors, attempts, traceparent))
        topic = self._settings.topics.results.name
        items.append((topic, (result, event.event_id, event.subject, traceparent)))
        if not part.lost:
            part.staged[record.offset] = Staged(items, event.task, result)

    def _reject(
        self, part: TxnPartition, record: Any, error: EventRejected, traceparent: str
    ) -> None:
        token = bind_log_scope(
            {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        )
        try:
            info = ErrorInfo(type=type(error).__name__, message=str(error)[:500], retriable=False)
            items = self._letter(record, error.reason, [info], 0, traceparent)
        finally:
            reset_log_scope(token)
        if not part.lost:
            part.staged[record.offset] = Staged(items, "", None)

    def _letter(
        self, record: Any, reason: str, errors: list[ErrorInfo], attempts: int, traceparent: str
    ) -> list[Item]:
        self._metrics.dead_lettered.labels(reason).inc()
        _log.warning("consumer.dead_lettered", reason=reason)
        if not self._settings.dead_letters_enabled:
            return []
        letter, key = dead_letter_for(record, reason, errors, attempts=attempts)
        return [(self._settings.topics.dead_letters.name, (letter, key, None, traceparent))]


class TransactionalRebalancer(Rebalancer):
    """Rebalances in transactions mode: the base behaviour, with producers around it.

    Revoked partitions finish and commit as in dedupe mode (their last transaction), then
    their producers stop. Assigned partitions are paused until their producer fenced the
    previous owner and the consumer was moved to the offset committed after that; a record
    fetched from an earlier position is never handed out.
    """

    def __init__(
        self,
        consumer: Any,
        partitions: dict[Any, PartitionState],
        *,
        committer: TransactionalCommitter,
        settings: KafkaSettings,
        on_assigned: Callable[[], None],
    ) -> None:
        super().__init__(
            consumer,
            partitions,
            committer=committer,
            settings=settings,
            probe=None,
            on_assigned=on_assigned,
        )
        self._txns = committer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        revoked = list(revoked)
        await super().on_partitions_revoked(revoked)
        await self._txns.close(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        assigned = list(assigned)
        fresh = [tp for tp in assigned if tp not in self._partitions]
        if fresh:
            self._consumer.pause(*fresh)
        started = await self._txns.open(fresh)
        # Read after the fencing above, so every transaction that could still commit has.
        committed = await asyncio.gather(
            *(self._consumer.committed(tp) for tp in started), return_exceptions=True
        )
        opened = []
        for tp, offset in zip(started, committed, strict=True):
            if isinstance(offset, BaseException):
                _log.error("consumer.committed_offset_failed", error=type(offset).__name__)
                continue
            if offset is not None:
                self._consumer.seek(tp, offset)
            opened.append(tp)
        await super().on_partitions_assigned(assigned)
        for tp in fresh:
            state = self._partitions.get(tp)
            if state is not None and tp not in opened:
                self._txns.lose(state, None, ConsumerError("no transactional producer"))
        if opened:
            self._consumer.resume(*opened)


def transactional_path(
    consumer: Any,
    partitions: dict[Any, PartitionState],
    *,
    settings: KafkaSettings,
    bootstrap_servers: str,
    codec: EventCodec,
    registry: HandlerRegistry,
    limiter: RateLimiter,
    metrics: ConsumerMetrics,
    on_assigned: Callable[[], None],
) -> tuple[TransactionalSettler, TransactionalCommitter, TransactionalRebalancer]:
    """What `ConsumerService.start` settles, commits and rebalances with in this mode."""
    policy = RetryPolicy(settings.retry)

    def invoker_for(publisher: EventPublisher) -> HandlerInvoker:
        # One per partition: its handlers' progress reports go into its transactions.
        return HandlerInvoker(
            settings=settings,
            registry=registry,
            publisher=publisher,
            limiter=limiter,
            metrics=metrics,
            policy=policy,
        )

    committer = TransactionalCommitter(
        consumer,
        partitions,
        metrics,
        settings=settings,
        bootstrap_servers=bootstrap_servers,
        codec=codec,
        invoker_for=invoker_for,
    )
    settler = TransactionalSettler(
        settings=settings, codec=codec, committer=committer, metrics=metrics
    )
    rebalancer = TransactionalRebalancer(
        consumer, partitions, committer=committer, settings=settings, on_assigned=on_assigned
    )
    return settler, committer, rebalancer
