"""Finds results already on the results topic for redelivered requests.

Why: the dedupe store cannot close one crash window: a consumer killed after the broker
acknowledged a result but before `mark_published` leaves no published marker, so the event's
redelivery would publish a second result. Kafka transactions would close it, but are not
usable everywhere we run. Instead, a redelivered event that the store does not know as
published is looked up on the results topic itself before it is handled again.

Which events are looked up: only those below the partition's end offset at assignment time
(only they can have been processed by a previous owner). How far back: a result is always
produced after its request, so the scan of the key's results partition stops at records older
than the request's timestamp (minus a clock-skew margin) or after `max_scan_records`. The
scanned range is cached per results partition and never extended forward: a previous owner's
results all predate our first look-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from consumers.errors import BrokerError
from consumers.kafka_errors import kafka_errors
from consumers.murmur2 import default_partitioner

__all__ = ["ResultsLookup"]

_log = structlog.get_logger(__name__)
_CHUNK = 500


@dataclass
class _Scanned:
    low: int  # first offset read
    high: int  # end offset when the scan began (exclusive)
    oldest_ms: int | None = None  # smallest timestamp seen so far
    keys: set[bytes] = field(default_factory=set)
    records: int = 0
    begin: int | None = None  # log start offset, read once


class ResultsLookup:
    """Answers "is there already a result keyed `key` on the results topic?"; raises
    BrokerError when the broker cannot tell."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        client_id: str,
        partitions_of: Callable[[str], Awaitable[set[int]]],
        clock_skew_ms: int = 10_000,
        max_scan_records: int = 200_000,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._client_id = client_id
        self._skew_ms = clock_skew_ms
        self._max_scan = max_scan_records
        self._consumer: Any = None
        self._partitions: list[int] = []
        self._partitions_of = partitions_of
        self._partitioner = default_partitioner()  # the publisher's: same placement
        self._scanned: dict[int, _Scanned] = {}
        self._lock = asyncio.Lock()
        # Keys seen in any partition, and the smallest cutoff for which every partition's
        # scan is known to be complete (None: not every partition scanned yet). Together they
        # answer most look-ups without the lock or hashing the key to its partition.
        self._all_keys: set[bytes] = set()
        self._covered_above: float | None = None

    async def _ensure_started(self) -> Any:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                client_id=f"{self._client_id}-results-lookup",
                group_id=None,
                enable_auto_commit=False,
                fetch_max_wait_ms=50,
            )
            await consumer.start()
            self._partitions = sorted(await self._partitions_of(self._topic))
            consumer.assign([TopicPartition(self._topic, p) for p in self._partitions])
            self._consumer = consumer
        return self._consumer

    async def prepare(self) -> None:
        """Connect and read every partition's offset range now, in one request each.

        Called when partitions are assigned, so the first look-ups do not wait for it.
        """
        async with self._lock:
            await self._prepare()

    async def _prepare(self) -> None:
        with kafka_errors():
            consumer = await self._ensure_started()
            fresh = [p for p in self._partitions if p not in self._scanned]
            if not fresh:
                return
            tps = [TopicPartition(self._topic, p) for p in fresh]
            ends = await consumer.end_offsets(tps)
            begins = await consumer.beginning_offsets(tps)
            for tp in tps:
                if tp.partition not in self._scanned:
                    end = ends[tp]
                    self._scanned[tp.partition] = _Scanned(low=end, high=end, begin=begins[tp])
            self._summarize()

    async def stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            try:
                with kafka_errors():
                    await consumer.stop()
            except BrokerError as exc:
                _log.warning("consumer.results_lookup_stop_failed", error=exc.upstream)
        self.forget()

    def forget(self) -> None:
        """Drop cached scans (after a rebalance: new previous owners, new ranges)."""
        self._scanned.clear()
        self._all_keys.clear()
        self._covered_above = None

    async def contains(self, key: bytes, *, since_ms: int, refresh: bool = False) -> bool:
        """True if a record keyed `key` exists among results produced after `since_ms`.

        `refresh` also reads results appended since the first look-up: needed when this very
        process may have published the result (a publish that failed after reaching the log).
        """
        cutoff_ms = since_ms - self._skew_ms
        if key in self._all_keys:
            return True
        if not refresh and self._covered_above is not None and cutoff_ms > self._covered_above:
            return False
        async with self._lock:
            with kafka_errors():
                found = await self._contains(key, cutoff_ms, refresh)
            self._summarize()
            return found

    def _summarize(self) -> None:
        if not self._partitions or len(self._scanned) < len(self._partitions):
            self._covered_above = None
            return
        bound = float("-inf")
        for scanned in self._scanned.values():
            if self._complete(scanned):
                continue
            if scanned.oldest_ms is None:
                self._covered_above = None
                return
            bound = max(bound, scanned.oldest_ms)
        self._covered_above = bound

    async def _contains(self, key: bytes, cutoff_ms: int, refresh: bool) -> bool:
        consumer = await self._ensure_started()
        if not self._partitions:
            return False
        partition = self._partitioner(key, self._partitions, self._partitions)
        tp = TopicPartition(self._topic, partition)
        scanned = self._scanned.get(partition)
        if scanned is None:
            end = (await consumer.end_offsets([tp]))[tp]
            scanned = self._scanned[partition] = _Scanned(low=end, high=end)
        if key in scanned.keys:
            return True
        if refresh:
            await self._scan_forward(consumer, tp, scanned)
        await self._scan_back(consumer, tp, scanned, cutoff_ms)
        return key in scanned.keys

    async def _scan_forward(self, consumer: Any, tp: Any, scanned: _Scanned) -> None:
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, scanned.high)
        empty_polls = 0
        while scanned.high < end and empty_polls < 3:
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=_CHUNK)
            records = batch.get(tp, [])
            if not records:
                empty_polls += 1
                continue
            for record in records:
                if record.key is not None:
                    scanned.keys.add(record.key)
                    self._all_keys.add(record.key)
            scanned.high = records[-1].offset + 1

    def _complete(self, scanned: _Scanned) -> bool:
        """Scanned back to the log start or to the scan bound: complete for any cutoff."""
        return (
            scanned.begin is not None and scanned.low <= scanned.begin
        ) or scanned.records >= self._max_scan

    def _covered(self, scanned: _Scanned, cutoff_ms: int) -> bool:
        return (scanned.oldest_ms is not None and scanned.oldest_ms < cutoff_ms) or self._complete(
            scanned
        )

    async def _scan_back(self, consumer: Any, tp: Any, scanned: _Scanned, cutoff_ms: int) -> None:
        # Most look-ups after the first are answered from memory, without a broker round trip.
        if self._covered(scanned, cutoff_ms):
            return
        if scanned.begin is None:
            scanned.begin = (await consumer.beginning_offsets([tp]))[tp]
        begin = scanned.begin
        chunk = _CHUNK
        before = scanned.records
        while not self._covered(scanned, cutoff_ms):
            start = max(begin, scanned.low - chunk)
            consumer.seek(tp, start)
            position = start
            empty_polls = 0
            while position < scanned.low and empty_polls < 3:
                batch = await consumer.getmany(tp, timeout_ms=500, max_records=chunk)
                records = batch.get(tp, [])
                if not records:
                    # Nothing readable below `low` (retention, compaction, a slow broker).
                    empty_polls += 1
                    continue
                for record in records:
                    if record.offset >= scanned.low:
                        break
                    if record.key is not None:
                        scanned.keys.add(record.key)
                        self._all_keys.add(record.key)
                    if scanned.oldest_ms is None or record.timestamp < scanned.oldest_ms:
                        scanned.oldest_ms = record.timestamp
                    scanned.records += 1
                position = records[-1].offset + 1
            scanned.low = start
            chunk *= 2
        if scanned.records == before:
            return
        _log.info(
            "consumer.results_scanned",
            partition=tp.partition,
            records=scanned.records,
            low=scanned.low,
            high=scanned.high,
        )
