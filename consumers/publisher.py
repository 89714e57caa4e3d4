"""Publishing events to the results, status and dead-letter topics.

Why a wrapper: every outgoing record needs the same CloudEvents headers, trace propagation and
key choice, and the producer must be idempotent with acks=all so broker-side retries never
duplicate a result. Delivery is always awaited: the runtime marks an offset complete only after
the broker acknowledged what that event produced.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from consumers.partitioner import default_partitioner
from consumers.settings import KafkaSettings
from schemas import Event, EventCodec, build_headers, event_type_of

__all__ = ["EventPublisher"]


class EventPublisher:
    def __init__(self, settings: KafkaSettings, bootstrap_servers: str, codec: EventCodec) -> None:
        self._settings = settings
        self._bootstrap = bootstrap_servers
        self._codec = codec
        self._producer: Any = None

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
            partitioner=default_partitioner(),
            # Large batches: many concurrent events publish at once, and a full batch makes
            # every further send wait for the in-flight one (one in flight per partition).
            max_batch_size=1_048_576,
            request_timeout_ms=self._settings.consumer.request_timeout_ms,
            retry_backoff_ms=self._settings.consumer.retry_backoff_ms,
            max_request_size=max(1_048_576, self._settings.max_event_bytes * 3),
        )
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def partitions_for(self, topic: str) -> set[int]:
        """The partition ids of `topic` (waits for metadata)."""
        if self._producer is None:
            raise RuntimeError("EventPublisher used before start()")
        return set(await self._producer.partitions_for(topic))

    async def send(
        self,
        topic: str,
        event: Event,
        *,
        key: str | bytes | None,
        subject: str | None = None,
        traceparent: str | None = None,
    ) -> Any:
        """Queue one event; returns the future the broker's acknowledgement resolves.

        Batches of events queue all their records first and await the acknowledgements
        together: one trip through the event loop per batch instead of one per record.
        """
        if self._producer is None:
            raise RuntimeError("EventPublisher used before start()")
        headers = build_headers(
            event_id=event.event_id,
            event_type=event_type_of(event),
            source=self._settings.source,
            time=event.occurred_at,
            subject=subject,
            traceparent=traceparent,
        )
        key_bytes = key.encode() if isinstance(key, str) else key
        return await self._producer.send(
            topic, self._codec.encode(event), key=key_bytes, headers=headers
        )

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
        headers = build_headers(
            event_id=event.event_id,
            event_type=event_type_of(event),
            source=self._settings.source,
            time=event.occurred_at,
            subject=subject,
            traceparent=traceparent,
        )
        if extra_headers:
            headers.extend(extra_headers)
        key_bytes = key.encode() if isinstance(key, str) else key
        await self._producer.send_and_wait(
            topic, self._codec.encode(event), key=key_bytes, headers=headers
        )
