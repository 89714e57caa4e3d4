"""Publishing events to the results, status and dead-letter topics.

Why a wrapper: every outgoing record needs the same CloudEvents headers, trace propagation and
key choice, and the producer must be idempotent with acks=all so broker-side retries never
duplicate a result. Delivery is always awaited: the runtime marks an offset complete only after
the broker acknowledged what that event produced.

With a `transactional_id` (the transactions mode, `consumers.transactional`) the publisher
only publishes through `commit_transaction`: events and consumed offsets, all or none.

Why results are bounded here: a result the broker refuses (over its `message.max.bytes`) would
never settle, and the refusal leaves the idempotent producer unable to write that partition
(see `renew`), so everything behind it would stall. Every path that publishes a result (the
per-event `publish`, the batch `send_many`, the transactions through it) encodes it in
`_encode`, which puts a small CompletionFailed in place of a CompletionSucceeded larger than
`max_result_bytes`: measured on the bytes actually sent, and with no second encoding. Should the
broker refuse a result anyway (a topic configured below that), `publish` renews the producer
and sends the small failure instead, so the caller learns why and the partition flows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from consumers.deadletters import is_refusal
from consumers.partitioner import default_partitioner
from consumers.settings import KafkaSettings
from schemas import (
    CompletionFailed,
    CompletionSucceeded,
    ErrorInfo,
    Event,
    EventCodec,
    build_headers,
    event_type_of,
)

__all__ = ["EventPublisher", "Outgoing"]

_log = structlog.get_logger(__name__)

# One event to publish: (event, key, subject, traceparent).
Outgoing = tuple[Event, str | bytes, str | None, str | None]


class EventPublisher:
    def __init__(
        self,
        settings: KafkaSettings,
        bootstrap_servers: str,
        codec: EventCodec,
        *,
        transactional_id: str | None = None,
    ) -> None:
        self._settings = settings
        self._bootstrap = bootstrap_servers
        self._codec = codec
        self._producer: Any = None
        self._partitioner = default_partitioner()
        self._transactional_id = transactional_id
        self._abort_failed = False
        # Concurrent refusals of one producer renew it once (see `renew`).
        self._renewing = asyncio.Lock()

    async def start(self) -> None:
        if self._producer is not None:
            return
        # A transactional producer's start() also fences every earlier producer of its id:
        # the broker aborts (or completes) their open transaction and rejects them from now on.
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=f"{self._settings.client_id}-producer",
            enable_idempotence=True,
            transactional_id=self._transactional_id,
            acks="all",
            linger_ms=2,
            # Same placement as aiokafka's default (the results probe relies on it), in C.
            partitioner=self._partitioner,
            # Large batches: many concurrent events publish at once, and a full batch makes
            # every further send wait for the in-flight one (one in flight per partition).
            max_batch_size=1_048_576,
            request_timeout_ms=self._settings.consumer.request_timeout_ms,
            retry_backoff_ms=self._retry_backoff_ms(),
            max_request_size=max(1_048_576, self._settings.max_event_bytes * 3),
        )
        await producer.start()
        self._producer = producer

    async def renew(self, refused_by: Any = None) -> None:
        """Swap in a new producer (a new producer id), then stop the old one.

        Why: when the broker refuses a batch for good (e.g. MESSAGE_TOO_LARGE), aiokafka's
        idempotent producer keeps the sequence numbers it gave that batch, and the broker then
        refuses every later batch to that partition as out of order. The new one is started
        before the swap, so no concurrent send finds no producer. `refused_by`: the producer a
        refusal came from; when another caller already replaced it, nothing is renewed.
        """
        async with self._renewing:
            if self._producer is None:
                return  # stopped (or never started): nothing to renew
            if refused_by is not None and self._producer is not refused_by:
                return
            fresh = EventPublisher(self._settings, self._bootstrap, self._codec)
            await fresh.start()
            old, self._producer = self._producer, fresh._producer
        if old is not None:
            await old.stop()

    def _retry_backoff_ms(self) -> int:
        backoff = self._settings.consumer.retry_backoff_ms
        if self._transactional_id is None:
            return backoff
        # Kafka 4 brokers check each transactional produce with the transaction coordinator
        # (KIP-890, transaction.partition.verification.enable) and answer aiokafka's produce
        # version NOT_ENOUGH_REPLICAS when the check does not pass at once (in about one
        # transaction in six, measured on 4.1.1): retried after 20 ms rather than 100.
        return min(backoff, 20)

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    def _headers(
        self, event: Event, subject: str | None, traceparent: str | None
    ) -> list[tuple[str, bytes]]:
        return build_headers(
            event_id=event.event_id,
            event_type=event_type_of(event),
            source=self._settings.source,
            time=event.occurred_at,
            subject=subject,
            traceparent=traceparent,
        )

    async def partitions_for(self, topic: str) -> set[int]:
        """The partition ids of `topic` (waits for metadata)."""
        if self._producer is None:
            raise RuntimeError("EventPublisher used before start()")
        return set(await self._producer.partitions_for(topic))

    async def send_many(self, topic: str, items: Sequence[Outgoing]) -> list[Any]:
        """Queue events as one record batch per partition; per item, the future its batch's
        acknowledgement resolves, or the exception that kept it from being queued.

        Why: aiokafka's `send()` per record pays its per-record path (metadata wait, partitioner
        lists, accumulator look-up, one future per record), a third of a no-op event's cost.
        Records land where aiokafka's `send()` would put them: same partitioner, same list.
        """
        producer = self._producer
        if producer is None:
            raise RuntimeError("EventPublisher used before start()")
        partitions = list(await producer.partitions_for(topic))
        batches: list[tuple[int, Any, list[int]]] = []
        open_batch: dict[int, tuple[int, Any, list[int]]] = {}
        for i, (event, key, subject, traceparent) in enumerate(items):
            key_bytes = key.encode() if isinstance(key, str) else key
            partition = self._partitioner(key_bytes, partitions, partitions)
            sent, value = self._encode(event)
            headers = self._headers(sent, subject, traceparent)
            entry = open_batch.get(partition)
            if entry is None or not entry[1].append(
                timestamp=None, key=key_bytes, value=value, headers=headers
            ):
                # No batch yet, or it is full: an empty batch takes any record (the broker
                # judges its size).
                entry = open_batch[partition] = (partition, producer.create_batch(), [])
                batches.append(entry)
                entry[1].append(timestamp=None, key=key_bytes, value=value, headers=headers)
            entry[2].append(i)
        outcomes: list[Any] = [None] * len(items)
        queued = await asyncio.gather(
            *(
                producer.send_batch(batch, topic, partition=partition)
                for partition, batch, _ in batches
            ),
            return_exceptions=True,
        )
        for (_, _, members), ack in zip(batches, queued, strict=True):
            for i in members:
                outcomes[i] = ack
        return outcomes

    async def publish(
        self,
        topic: str,
        event: Event,
        *,
        key: str | bytes | None,
        subject: str | None = None,
        traceparent: str | None = None,
        extra_headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Send one event and wait until the broker acknowledged it.

        A result the broker refuses for good is replaced by its small CompletionFailed (see
        `_resend_refused`); any other event's refusal propagates.
        """
        producer = self._producer
        if producer is None:
            raise RuntimeError("EventPublisher used before start()")
        key_bytes = key.encode() if isinstance(key, str) else key

        async def send(sent: Event, value: bytes) -> None:
            headers = self._headers(sent, subject, traceparent)
            if extra_headers:
                headers.extend(extra_headers)
            # The current producer: `_resend_refused` may have renewed it.
            await self._producer.send_and_wait(topic, value, key=key_bytes, headers=headers)

        sent, value = self._encode(event)
        try:
            await send(sent, value)
        except KafkaError as exc:
            if not (isinstance(sent, CompletionSucceeded) and is_refusal(exc)):
                raise
            await self._resend_refused(producer, exc, sent, value, send)

    def _encode(self, event: Event) -> tuple[Event, bytes]:
        """The event to send and its bytes: a CompletionSucceeded over `max_result_bytes` is
        replaced by its small CompletionFailed. The one size check of every result path."""
        value = self._codec.encode(event)
        limit = self._settings.max_result_bytes
        if not isinstance(event, CompletionSucceeded) or len(value) <= limit:
            return event, value
        _log.warning(
            "consumer.result_too_large",
            request_id=event.request_id,
            size=len(value),
            max_result_bytes=limit,
        )
        failed = _failed_result(
            event,
            "result_too_large",
            f"result of {len(value)} bytes exceeds max_result_bytes={limit}",
        )
        return failed, self._codec.encode(failed)

    async def _resend_refused(
        self,
        producer: Any,
        refusal: KafkaError,
        result: CompletionSucceeded,
        value: bytes,
        send: Callable[[Event, bytes], Awaitable[None]],
    ) -> None:
        """After the broker refused `result` for good: renew the producer, then send the result
        again unless the refusal was about its size, and its small CompletionFailed if it is
        refused (again). A refusal of the failure itself propagates: the topic is unusable."""
        if not isinstance(refusal, MessageSizeTooLargeError):
            # Maybe not about this record: after an earlier refusal to its partition (a batch
            # of the fast path, say) the old producer refuses every later batch there as out of
            # order, so the result gets one more try on a new producer.
            await self.renew(refused_by=producer)
            producer = self._producer
            try:
                await send(result, value)
                return
            except KafkaError as exc:
                if not is_refusal(exc):
                    raise
                refusal = exc
        _log.warning(
            "consumer.result_refused",
            request_id=result.request_id,
            size=len(value),
            error=type(refusal).__name__,
        )
        await self.renew(refused_by=producer)
        too_large = isinstance(refusal, MessageSizeTooLargeError)
        failed = _failed_result(
            result,
            "result_too_large" if too_large else "result_refused",
            f"result of {len(value)} bytes refused by the broker: {type(refusal).__name__}",
        )
        await send(failed, self._codec.encode(failed))

    @property
    def broken(self) -> bool:
        """Whether a transaction failed in a way only a new producer recovers from (fenced by a
        newer producer of the same id, or another fatal error)."""
        producer = self._producer
        # aiokafka exposes this state only on its transaction manager; its own
        # TransactionContext reads it the same way.
        return self._abort_failed or (
            producer is not None and bool(producer._txn_manager.is_fatal_error())
        )

    async def commit_transaction(
        self,
        items: Sequence[tuple[str, Outgoing]],
        offsets: Mapping[TopicPartition, int],
        group_id: str,
    ) -> None:
        """Publish `items` ((topic, event) pairs) and commit `offsets` of `group_id` as one
        transaction: readers with isolation_level=read_committed see all of it or none.

        A failure aborts the transaction and raises: a KafkaError, with `broken` set when the
        producer cannot be used again (aiokafka's ProducerFenced: another producer of this
        transactional id took over).
        """
        producer = self._producer
        if producer is None or self._transactional_id is None:
            raise RuntimeError("commit_transaction needs a started transactional publisher")
        by_topic: dict[str, list[Outgoing]] = {}
        for topic, item in items:
            by_topic.setdefault(topic, []).append(item)
        await producer.begin_transaction()
        acks: list[Any] = []
        try:
            for topic, group in by_topic.items():
                acks.extend(await self.send_many(topic, group))
            refused = next((a for a in acks if isinstance(a, BaseException)), None)
            if refused is not None:
                raise refused
            if offsets:
                await producer.send_offsets_to_transaction(dict(offsets), group_id)
            # Flushes every queued batch first; fails if any of them failed.
            await producer.commit_transaction()
        except BaseException:
            if not self.broken:
                try:
                    await producer.abort_transaction()
                # aiokafka asserts its state transitions: an abort it cannot make is either.
                except (KafkaError, AssertionError):
                    self._abort_failed = True
            raise
        finally:
            _retrieve(acks)


def _failed_result(result: CompletionSucceeded, code: str, message: str) -> CompletionFailed:
    """The small failure published in place of `result`: same ids, so the caller matches it to
    its request; not retriable, since the same answer would be refused again."""
    return CompletionFailed(
        event_id=result.event_id,
        request_id=result.request_id,
        subject=result.subject,
        task=result.task,
        occurred_at=result.occurred_at,
        error=ErrorInfo(type=code, message=message[:500], retriable=False),
        attempts=result.attempts,
    )


def _retrieve(acks: list[Any]) -> None:
    """Retrieve each batch future's outcome once it is known: the transaction's outcome already
    says whether they landed, and asyncio would report the unread failures of an aborted one."""
    for future in {id(a): a for a in acks if isinstance(a, asyncio.Future)}.values():
        future.add_done_callback(_consume_outcome)


def _consume_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
