"""Publishing events to the results, status and dead-letter topics.

Why a wrapper: every outgoing record needs the same CloudEvents headers, trace propagation and
key choice, and the producer must be idempotent with acks=all so broker-side retries never
duplicate a result. Delivery is always awaited: the runtime marks an offset complete only after
the broker acknowledged what that event produced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from consumers.partitioner import default_partitioner
from consumers.settings import KafkaSettings
from schemas import Event, EventCodec, build_headers, event_type_of

__all__ = ["EventPublisher", "Outgoing"]

# One event to publish: (event, key, subject, traceparent).
Outgoing = tuple[Event, str, str | None, str | None]


class EventPublisher:
    def __init__(self, settings: KafkaSettings, bootstrap_servers: str, codec: EventCodec) -> None:
        self._settings = settings
        self._bootstrap = bootstrap_servers
        self._codec = codec
        self._producer: Any = None
        self._partitioner = default_partitioner()

    async def start(self) -> None:
        if self._producer is not None:
            return
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=f"{self._settings.client_id}-producer",
            enable_idempotence=True,
            acks="all",
            linger_ms=2,
            # Same placement as aiokafka's default (the results probe relies on it), in C.
            partitioner=self._partitioner,
            # Large batches: many concurrent events publish at once, and a full batch makes
            # every further send wait for the in-flight one (one in flight per partition).
            max_batch_size=1_048_576,
            request_timeout_ms=self._settings.consumer.request_timeout_ms,
            retry_backoff_ms=self._settings.consumer.retry_backoff_ms,
            max_request_size=max(1_048_576, self._settings.max_event_bytes * 3),
        )
        await producer.start()
        self._producer = producer

    async def renew(self) -> None:
        """Swap in a new producer (a new producer id), then stop the old one.

        Why: when the broker refuses a batch for good (e.g. MESSAGE_TOO_LARGE), aiokafka's
        idempotent producer keeps the sequence numbers it gave that batch, and the broker then
        refuses every later batch to that partition as out of order. The new one is started
        before the swap, so no concurrent send finds no producer.
        """
        if self._producer is None:
            return  # stopped (or never started): nothing to renew
        fresh = EventPublisher(self._settings, self._bootstrap, self._codec)
        await fresh.start()
        old, self._producer = self._producer, fresh._producer
        if old is not None:
            await old.stop()

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
            key_bytes = key.encode()
            partition = self._partitioner(key_bytes, partitions, partitions)
            headers = self._headers(event, subject, traceparent)
            value = self._codec.encode(event)
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
        """Send one event and wait until the broker acknowledged it."""
        if self._producer is None:
            raise RuntimeError("EventPublisher used before start()")
        headers = self._headers(event, subject, traceparent)
        if extra_headers:
            headers.extend(extra_headers)
        key_bytes = key.encode() if isinstance(key, str) else key
        await self._producer.send_and_wait(
            topic, self._codec.encode(event), key=key_bytes, headers=headers
        )
