"""Publishing events to the results, status and dead-letter topics.

Why a wrapper: every outgoing record needs the same CloudEvents headers, trace propagation and
key choice, and the producer must be idempotent with acks=all so broker-side retries never
duplicate a result. Delivery is always awaited: the runtime marks an offset complete only after
the broker acknowledged what that event produced. aiokafka's errors leave this module
translated (`consumers.kafka_errors`).

One send path: `send_many` queues messages in their partition's open record batch (one
batch per partition is handed to the producer at a time: `consumers._lanes`), and `deliver`
awaits their acknowledgements and handles refusals; `publish` (one event) is `deliver` of one.
With a `transactional_id` (the transactions mode, `consumers.transactions_mode`) the publisher
publishes through `commit_transaction`: events and consumed offsets, all or none.

Why results are bounded here: a result the broker refuses (over its `message.max.bytes`) would
never settle, and the refusal leaves the idempotent producer unable to write that partition
(see `renew`), so everything behind it would stall. Every message is encoded in `_encode`,
which puts a small failure in place of a successful result larger than `max_result_bytes`,
measured on the bytes actually sent. Should the broker refuse a message anyway (a topic
configured below that), `deliver` renews the producer, sends each refused message alone, and
one refused alone once more is replaced by its `fallback` (a result by its small failure, a
dead letter by its minimal form, `consumers.refusals`): the caller learns why, and the partition
flows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from consumers._lanes import Batch, Handed, Lane
from consumers.errors import (
    BrokerError,
    BrokerTimeout,
    NotStarted,
    OutOfSequence,
    ProducerFencedError,
    ProducerRetired,
)
from consumers.kafka_errors import is_refusal, kafka_errors, translate
from consumers.murmur2 import default_partitioner
from consumers.records import Message
from consumers.refusals import failed_result, fallback
from consumers.settings import KafkaSettings
from core.redact import Redactor
from schemas import Event, EventCodec, Failed, Result, build_headers, event_type_of

__all__ = ["EventPublisher"]

_log = structlog.get_logger(__name__)

# How long a renewed producer's stop may keep its unresolved batches before they fail and are
# sent again on the new producer. A healthy flush takes milliseconds.
_RETIRE_BOUND_S = 5.0
# How long a new producer may take to start (bootstrap and producer id).
_START_BOUND_S = 10.0


class EventPublisher:
    def __init__(
        self,
        settings: KafkaSettings,
        bootstrap_servers: str,
        codec: EventCodec,
        *,
        transactional_id: str | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self._settings = settings
        self._bootstrap = bootstrap_servers
        self._codec = codec
        # Every event leaves through `_encode`: the process's redactor masks any key there.
        self._redactor = redactor if redactor is not None else Redactor()
        self._producer: Any = None
        self._partitioner = default_partitioner()
        self._transactional_id = transactional_id
        self._broken = False
        # Concurrent refusals of one producer renew it once (see `renew`).
        self._renewing = asyncio.Lock()
        self._lanes: dict[tuple[str, int], Lane] = {}
        self._handed = Handed()
        # Renewed producers being retired in the background (see `renew`, `_retire`).
        self._stopping: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._producer is None:
            self._producer = await self._new_producer()

    async def _new_producer(self) -> Any:
        # A transactional producer's start() also fences every earlier producer of its id:
        # the broker aborts (or completes) their open transaction and rejects them from now on.
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=f"{self._settings.client_id}-producer",
            enable_idempotence=True,
            transactional_id=self._transactional_id,
            acks="all",
            linger_ms=2,
            # Same placement as aiokafka's default (the results lookup relies on it), in C.
            partitioner=self._partitioner,
            # Large batches: many concurrent events publish at once, and a full batch makes
            # every further send wait for the in-flight one (one in flight per partition).
            max_batch_size=1_048_576,
            request_timeout_ms=self._settings.consumer.request_timeout_ms,
            retry_backoff_ms=self._retry_backoff_ms(),
            max_request_size=max(1_048_576, self._settings.max_event_bytes * 3),
        )
        # Bounded: aiokafka asks for a producer id again and again until it gets one, and a
        # renewal must not hold every delivery behind it (a healthy start takes milliseconds;
        # a delivery whose renewal timed out is handed back and retried).
        bound = min(_START_BOUND_S, self._settings.consumer.request_timeout_ms / 1000)
        try:
            with kafka_errors():
                await asyncio.wait_for(producer.start(), bound)
        except BaseException as exc:
            # A producer that did not start still holds its client: closed here, not leaked.
            await self._stop(producer)
            if isinstance(exc, TimeoutError):
                raise BrokerTimeout(
                    f"the producer did not start within {bound:.0f} s", upstream="TimeoutError"
                ) from exc
            raise
        return producer

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
            fresh = await self._new_producer()
            old, self._producer = self._producer, fresh
        # In the background: the caller goes on with the new producer at once.
        retiring = asyncio.create_task(self._retire(old))
        self._stopping.add(retiring)
        retiring.add_done_callback(self._stopping.discard)

    async def _retire(self, producer: Any) -> None:
        """Stop a producer that is no longer current, then fail the batches it never resolved
        (`consumers._lanes.Handed`), so no delivery waits on them.

        Why bounded: stopping flushes, and a flush waits for the broker's answer to every batch
        the producer holds, which aiokafka's idempotent producer retries without end. Past
        `_RETIRE_BOUND_S` the producer is given up on: its batches fail (and are sent again on
        the current producer: at worst twice) while its stop goes on.
        """
        stopping = asyncio.create_task(self._stop(producer))
        try:
            await asyncio.wait_for(asyncio.shield(stopping), _RETIRE_BOUND_S)
        except TimeoutError:
            _log.warning("consumer.producer_stop_slow", bound_s=_RETIRE_BOUND_S)
        retired = self._handed.retire(producer)
        if retired:
            _log.warning("consumer.batches_retired", count=retired)
        await stopping

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
            await self._retire(producer)
        if self._stopping:
            await asyncio.gather(*list(self._stopping))

    async def _stop(self, producer: Any) -> None:
        try:
            with kafka_errors():
                await producer.stop()
        except BrokerError as exc:
            # Stopping flushes; what it could not flush was not acknowledged, so its records
            # are settled again by whoever owns them.
            _log.warning("consumer.producer_stop_failed", error=exc.upstream)

    def _current(self) -> Any:
        return self._producer  # None once stopped

    def _started(self) -> Any:
        if self._producer is None:
            raise NotStarted("EventPublisher used before start() or after stop()")
        return self._producer

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
        producer = self._started()
        with kafka_errors():
            return set(await producer.partitions_for(topic))

    async def send_many(
        self, messages: Sequence[Message], *, alone: bool = False
    ) -> list[asyncio.Future[Any]]:
        """Queue messages for their (topic, partition)'s next record batch, or each in a batch
        of its own when `alone`; per message, the future its batch's acknowledgement resolves
        (or the error that kept the batch from being queued fails).

        Why batches: aiokafka's `send()` per record pays its per-record path (metadata wait,
        partitioner lists, accumulator look-up, one future per record), a third of a no-op
        event's cost. Records land where aiokafka's `send()` would put them: same partitioner,
        same list. Why one lane per partition (`consumers._lanes`): concurrent callers'
        messages share the batch that is open, and only one `send_batch` per partition is ever
        outstanding.
        """
        self._started()
        partitions: dict[str, list[int]] = {}
        for topic in {m.topic for m in messages}:
            with kafka_errors():
                partitions[topic] = list(await self._started().partitions_for(topic))
        loop = asyncio.get_running_loop()
        acks: list[asyncio.Future[Any]] = []
        for message in messages:
            ids = partitions[message.topic]
            partition = self._partitioner(message.key, ids, ids)
            sent, value = self._encode(message.event)
            headers = self._headers(sent, message.subject, message.traceparent)
            lane = self._lanes.get((message.topic, partition))
            if lane is None:
                lane = self._lanes[message.topic, partition] = Lane()
            batch = lane.open[-1] if lane.open and not alone else None
            if batch is not None and batch.alone:
                batch = None
            if batch is None or not batch.builder.append(
                timestamp=None, key=message.key, value=value, headers=headers
            ):
                # No open batch, or it is full: an empty batch takes any record (the broker
                # judges its size).
                batch = Batch(self._started().create_batch(), loop.create_future(), alone)
                batch.builder.append(timestamp=None, key=message.key, value=value, headers=headers)
                lane.open.append(batch)
            acks.append(batch.acked)
            if lane.task is None:
                lane.task = asyncio.create_task(
                    lane.run(message.topic, partition, self._current, self._handed)
                )
        return acks

    @staticmethod
    async def acknowledged(acks: Sequence[asyncio.Future[Any]]) -> list[BrokerError | None]:
        """Wait for every queued message's acknowledgement: per message, None or the error."""
        # Messages of one batch share its future: each is awaited once.
        futures = {id(a): a for a in acks}
        outcomes = await asyncio.gather(*futures.values(), return_exceptions=True)
        by_future = dict(zip(futures, outcomes, strict=True))
        found: list[BrokerError | None] = []
        for ack in acks:
            outcome = by_future[id(ack)]
            found.append(_translated(outcome) if isinstance(outcome, BaseException) else None)
        return found

    async def deliver(self, messages: Sequence[Message]) -> list[BrokerError | None]:
        """Send `messages` and wait for the broker; per message, None once acknowledged, or
        the error that kept it out. Refused messages are sent again alone on a new producer,
        and one refused alone is replaced by its `fallback` once (see the module docstring)."""
        producer = self._started()
        outcomes = await self.acknowledged(await self.send_many(messages))
        refused = [i for i, error in enumerate(outcomes) if _needs_new_producer(error)]
        if refused:
            await self.renew(refused_by=producer)
            for i in refused:
                outcomes[i] = await self._deliver_alone(messages[i])
        return outcomes

    async def _deliver_alone(self, message: Message) -> BrokerError | None:
        producer = self._started()
        (error,) = await self.acknowledged(await self.send_many([message]))
        if error is None or not is_refusal(error):
            return error
        replacement = fallback(message.event, error, self._codec)
        if replacement is None:
            return error
        await self.renew(refused_by=producer)
        (error,) = await self.acknowledged(
            await self.send_many([message._replace(event=replacement)])
        )
        return error

    async def publish(
        self,
        topic: str,
        event: Event,
        *,
        key: str | bytes,
        subject: str | None = None,
        traceparent: str | None = None,
    ) -> None:
        """Send one event and wait until the broker acknowledged it; raises its BrokerError."""
        key_bytes = key.encode() if isinstance(key, str) else key
        (error,) = await self.deliver([Message(topic, event, key_bytes, subject, traceparent)])
        if error is not None:
            raise error

    def _encode(self, event: Event) -> tuple[Event, bytes]:
        """The event to send and its bytes: a successful result over `max_result_bytes` is
        replaced by its small failure. The one size check of every path."""
        value = self._redactor.scrub_bytes(self._codec.encode(event))
        limit = self._settings.max_result_bytes
        if not isinstance(event, Result) or isinstance(event, Failed) or len(value) <= limit:
            return event, value
        _log.warning(
            "consumer.result_too_large",
            request_id=event.request_id,
            size=len(value),
            max_result_bytes=limit,
        )
        failed = failed_result(
            self._codec,
            event,
            "result_too_large",
            f"result of {len(value)} bytes exceeds max_result_bytes={limit}",
        )
        return failed, self._codec.encode(failed)

    @property
    def broken(self) -> bool:
        """Whether a transaction failed in a way only a new producer recovers from (fenced by a
        newer producer of the same id, or an abort that could not be made)."""
        return self._broken

    async def commit_transaction(
        self,
        messages: Sequence[Message],
        offsets: Mapping[TopicPartition, int],
        group_id: str,
        *,
        alone: Sequence[Message] = (),
    ) -> list[BrokerError | None]:
        """Publish `messages` (and `alone`, each in a batch of its own) and commit `offsets` of
        `group_id` as one transaction: readers with isolation_level=read_committed see all of
        it or none. Returns, per message of `messages` then `alone`, the error of a message the
        broker refused or took out of order (the transaction is then aborted, nothing of it
        committed, and a new producer needed: `renew`), or all None.

        Any other failure aborts the transaction and raises its BrokerError, with `broken` set
        when the producer cannot be used again (another producer of this id took over).
        """
        producer = self._started()
        if self._transactional_id is None:
            raise NotStarted("commit_transaction needs a transactional publisher")
        acks: list[asyncio.Future[Any]] = []
        try:
            with kafka_errors():
                await producer.begin_transaction()
            acks = [*await self.send_many(messages), *await self.send_many(alone, alone=True)]
            outcomes = await self.acknowledged(acks)
            if any(_needs_new_producer(error) for error in outcomes):
                await self._abort(producer)
                return outcomes
            failure = next((error for error in outcomes if error is not None), None)
            if failure is not None:
                raise failure
            with kafka_errors():
                if offsets:
                    await producer.send_offsets_to_transaction(dict(offsets), group_id)
                # Flushes every queued batch first; fails if any of them failed.
                await producer.commit_transaction()
        except BaseException as exc:
            if isinstance(exc, ProducerFencedError):
                self._broken = True
            elif not self._broken:
                await self._abort(producer)
            raise
        finally:
            _retrieve(acks)
        return [None] * len(acks)

    async def _abort(self, producer: Any) -> None:
        try:
            with kafka_errors():
                await producer.abort_transaction()
        except BrokerError as exc:
            # Only a new producer (the next owner's, after a rebalance) can end this one.
            _log.warning("consumer.transaction_abort_failed", error=exc.upstream)
            self._broken = True


def _needs_new_producer(error: BrokerError | None) -> bool:
    """A refusal, a batch refused as out of order after one, or a batch its renewed producer
    never sent: only a new producer (and the message sent alone) tells whether the message
    itself is refused."""
    return error is not None and (
        is_refusal(error) or isinstance(error, (OutOfSequence, ProducerRetired))
    )


def _translated(error: BaseException) -> BrokerError:
    """A batch's failure as a BrokerError; anything but aiokafka's errors is ours, raised."""
    if isinstance(error, BrokerError):
        return error
    if not isinstance(error, (KafkaError, AssertionError)):
        raise error
    return translate(error)


def _retrieve(acks: list[asyncio.Future[Any]]) -> None:
    """Retrieve each batch future's outcome once it is known: the transaction's outcome already
    says whether they landed, and asyncio would report the unread failures of an aborted one."""
    for future in {id(a): a for a in acks}.values():
        future.add_done_callback(_consume_outcome)


def _consume_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
