"""Transactions mode: each record's outcome is produced in the transaction that commits its offset.

Why: Kafka's own exactly-once (consume-transform-produce) needs no store beside the broker and
has no crash window, where the dedupe mode (`consumers.dedupe_mode`) needs Redis and a look-up on
the results topic. The runtime is the same (fetch, schedule, handle, per-key order, bounds);
only the pipeline's last step differs (`consumers.pipeline`: here it stages a record's messages
for its partition's next transaction instead of publishing them), with the rebalances around
the producers (this module) and the commits (`consumers._transactions`);
`ConsumerService.start` picks them when `exactly_once: transactions`.

Guarantee: for every record of the requests topic, readers with isolation_level=read_committed
see exactly one result (and, for a failure, one dead letter) across crashes, restarts,
rebalances and stalled members ("zombies"), PROVIDED the broker keeps its transaction log
(acks=all, replicated). How:
1. A record's verdict is decided by the one pipeline (decode, handle with retries, dead-letter
   a failure), then STAGED in memory under its offset, and the record is settled.
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
   the next one; a producer that cannot abort is treated as fenced. When the broker refused
   a record of it, the records of the refused batches go into the next one each in a batch of
   its own, and a record refused alone is replaced by its small form (`publisher.fallback`).
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
from collections.abc import Callable
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient

from consumers._rebalance import Rebalancer
from consumers._transactions import Staged, TransactionalCommitter
from consumers.backpressure import PartitionState, RetryAfterHold
from consumers.errors import ClientStateError, TransactionsUnsupported
from consumers.handlers import HandlerRegistry
from consumers.invoker import HandlerInvoker
from consumers.kafka_errors import kafka_errors
from consumers.metrics import ConsumerMetrics
from consumers.publisher import EventPublisher
from consumers.records import Abandoned, ConsumedRecord, Delivery, Hooks
from consumers.retry import RetryPolicy
from consumers.settings import KafkaSettings
from core.redact import Redactor
from schemas import EventCodec

__all__ = [
    "TransactionalCommitter",
    "TransactionalDurability",
    "TransactionalRebalancer",
    "refuse_embedded_broker",
    "transactional_path",
]

_log = structlog.get_logger(__name__)


async def refuse_embedded_broker(bootstrap_servers: str, client_id: str) -> None:
    """Raise TransactionsUnsupported when `bootstrap_servers` is librdkafka's mock cluster."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id=client_id)
    with kafka_errors():
        await admin.start()
        try:
            cluster_id = str((await admin.describe_cluster()).get("cluster_id") or "")
        finally:
            await admin.close()
    # The mock names its clusters so; a real cluster id is a random base64 UUID.
    if cluster_id.startswith("mockCluster"):
        raise TransactionsUnsupported(
            "exactly_once: transactions needs a real Kafka broker; "
            f"{bootstrap_servers} is the embedded broker, whose read_committed readers still "
            "see aborted transactions (use exactly_once: dedupe there)"
        )


class TransactionalDurability:
    """The `pipeline.Durability` of the transactions mode: nothing to look up, and a verdict is
    made durable by staging its messages for the transaction that commits its offset. Nothing
    here waits for the broker, and no dedupe store is asked anything."""

    def __init__(self, committer: TransactionalCommitter) -> None:
        self._committer = committer

    def invoker_for(self, record: ConsumedRecord) -> HandlerInvoker | None:
        part = self._committer.partition(record)
        return None if part is None or part.lost else part.invoker

    async def screen(self, deliveries: list[Delivery], hooks: Hooks) -> list[Delivery]:
        # A record's previous outcome is either committed with its offset (then it is not
        # redelivered) or invisible: there is nothing to look up before handling it again.
        # A fetch's batch may hold several partitions: those no longer ours are abandoned.
        ours: dict[tuple[str, int], bool] = {}
        lost: list[Delivery] = []
        for delivery in deliveries:
            key = (delivery.record.topic, delivery.record.partition)
            owned = ours.get(key)
            if owned is None:
                owned = ours[key] = self.invoker_for(delivery.record) is not None
            if not owned:
                lost.append(delivery)
        if not lost:
            return deliveries
        self._abandon(lost, hooks)
        return [d for d in deliveries if d.outcome is None]

    async def make_durable(
        self, deliveries: list[Delivery], hooks: Hooks
    ) -> list[tuple[Delivery, Exception]]:
        # A group-commit round may hold several partitions' deliveries: each goes to its own.
        by_partition: dict[tuple[str, int], list[Delivery]] = {}
        for delivery in deliveries:
            key = (delivery.record.topic, delivery.record.partition)
            by_partition.setdefault(key, []).append(delivery)
        for group in by_partition.values():
            part = self._committer.partition(group[0].record)
            if part is None or part.lost:
                self._abandon(group, hooks)
                continue
            for delivery in group:
                verdict = delivery.verdict
                assert verdict is not None  # only decided deliveries are made durable
                part.staged[delivery.record.offset] = Staged(list(delivery.unsent), verdict)
                delivery.settle_decided()
            hooks.settled(group)
        if deliveries:
            self._committer.wake()
        return []

    @staticmethod
    def _abandon(deliveries: list[Delivery], hooks: Hooks) -> list[Delivery]:
        # Lost to another owner (or to a failed producer): whoever owns it redoes these.
        for delivery in deliveries:
            delivery.settle(Abandoned())
        hooks.settled(deliveries)
        return []


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
            lookup=None,
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
            *(self._committed(tp) for tp in started), return_exceptions=True
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
                error = ClientStateError("no transactional producer", upstream="none")
                self._txns.lose(state, None, error)
        if opened:
            self._consumer.resume(*opened)

    async def _committed(self, tp: Any) -> int | None:
        with kafka_errors():
            offset: int | None = await self._consumer.committed(tp)
        return offset


def transactional_path(
    consumer: Any,
    partitions: dict[Any, PartitionState],
    *,
    settings: KafkaSettings,
    bootstrap_servers: str,
    codec: EventCodec,
    redactor: Redactor,
    registry: HandlerRegistry,
    hold: RetryAfterHold,
    metrics: ConsumerMetrics,
    on_assigned: Callable[[], None],
    rejoin: Callable[[], None],
) -> tuple[TransactionalDurability, TransactionalCommitter, TransactionalRebalancer]:
    """What `ConsumerService.start` makes durable, commits and rebalances with in this mode."""
    policy = RetryPolicy(settings.retry)

    def invoker_for(publisher: EventPublisher) -> HandlerInvoker:
        # One per partition: its handlers' progress reports go into its transactions.
        return HandlerInvoker(
            settings=settings,
            registry=registry,
            publisher=publisher,
            metrics=metrics,
            policy=policy,
            hold=hold,
        )

    committer = TransactionalCommitter(
        consumer,
        partitions,
        metrics,
        settings=settings,
        bootstrap_servers=bootstrap_servers,
        codec=codec,
        redactor=redactor,
        invoker_for=invoker_for,
        rejoin=rejoin,
    )
    rebalancer = TransactionalRebalancer(
        consumer, partitions, committer=committer, settings=settings, on_assigned=on_assigned
    )
    return TransactionalDurability(committer), committer, rebalancer
