"""ConsumerService: consumes request events and runs them through handlers, many at a time.

Why this shape: one fetch loop hands records to per-partition schedulers (`PartitionState`),
the records that fit run as one batch task (`fastpath.BatchSettler`) which hands slow or
failing ones to tasks of their own (`EventProcessor`), and one commit loop
(`consumers._commits`) commits, per partition, only the contiguous prefix of finished offsets.
Auto-commit is off: an offset is committed only after the event's result (or dead letter) was
acknowledged by the broker. Rebalances are handled in `consumers._rebalance`; this module keeps
the lifecycle and the fetch-and-schedule path.

Guarantees: at-least-once handling; results published at most once per request id through the
dedupe store (see `consumers.processor` for the one crash window), or, with `exactly_once:
transactions`, exactly once per record through Kafka transactions (`consumers.transactional`:
its settler, committer and rebalancer replace the dedupe mode's, chosen once in start());
per-key order when `ordering_per_key` is on; at most `max_in_flight_per_partition` events
running per partition.
On revocation and on stop(), in-flight work gets a deadline to finish, then is abandoned
(its offsets stay uncommitted, so it is redelivered), and completed offsets are committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Coroutine
from types import TracebackType
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from consumers._commits import Committer
from consumers._rebalance import Rebalancer, finish
from consumers.batched import BatchingDedupeStore
from consumers.dedupe import DedupeStore, open_dedupe_store
from consumers.fastpath import BatchSettler, Settler
from consumers.handlers import Handler, HandlerRegistry
from consumers.metrics import ConsumerMetrics
from consumers.partitions import PartitionState
from consumers.probe import ResultsProbe
from consumers.processor import EventProcessor
from consumers.publisher import EventPublisher
from consumers.ratelimit import RateLimiter, open_rate_limiter
from consumers.retry import RetryPolicy
from consumers.settings import KafkaSettings, RetrySettings
from consumers.transactional import refuse_embedded_broker, transactional_path
from schemas import EventCodec

__all__ = ["ConsumerService"]

_log = structlog.get_logger(__name__)


class ConsumerService:
    """Lifecycle: `await start()` ... `await stop()`, or `async with ConsumerService(...)`."""

    def __init__(
        self,
        settings: KafkaSettings,
        handlers: HandlerRegistry | Handler,
        *,
        bootstrap_servers: str | None = None,
        dedupe: DedupeStore | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        servers = bootstrap_servers or settings.bootstrap_servers
        if servers is None:
            raise ValueError("bootstrap_servers is required (settings or argument)")
        self.settings = settings
        self.bootstrap_servers = servers
        self.registry = (
            handlers if isinstance(handlers, HandlerRegistry) else HandlerRegistry({"*": handlers})
        )
        self.metrics = ConsumerMetrics()
        self.metrics_port: int | None = None
        self._dedupe = dedupe
        self._owns_dedupe = dedupe is None
        self._limiter = limiter
        self._owns_limiter = limiter is None
        self._codec = EventCodec()
        self._publisher = EventPublisher(settings, servers, self._codec)
        self._consumer: Any = None
        # The exactly-once mode's settle path: BatchSettler over an EventProcessor (dedupe) or
        # TransactionalSettler; made by start().
        self._settler: Settler | None = None
        # Commits and rebalances (consumers._commits, consumers._rebalance), made by start()
        # with the consumer; both share `_partitions`, the live assignment.
        self._committer: Committer | None = None
        self._rebalancer: Rebalancer | None = None
        self._probe: ResultsProbe | None = ResultsProbe(
            bootstrap_servers=servers,
            topic=settings.topics.results.name,
            client_id=settings.client_id,
            partitions_of=self._publisher.partitions_for,
        )
        self._partitions: dict[Any, PartitionState] = {}
        self._fetch_task: asyncio.Task[None] | None = None
        self._commit_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._started = False
        self._infra_policy = RetryPolicy(
            RetrySettings(initial_backoff_s=0.5, max_backoff_s=10.0, max_attempts=1)
        )

    async def __aenter__(self) -> ConsumerService:
        await self.start()
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._started:
            return
        s = self.settings
        transactional = s.exactly_once == "transactions"
        if transactional:
            # Fail here, not with a first duplicate: the mock cannot hide aborted transactions.
            await refuse_embedded_broker(self.bootstrap_servers, s.client_id)
        # Stores handed in are started here too (start() is idempotent) but stopped by
        # their owner; stores opened here are owned and stopped by this service.
        elif self._dedupe is None:
            self._dedupe = await open_dedupe_store(
                s.dedupe_redis_url, namespace=s.dedupe_namespace, claim_ttl_s=s.dedupe_claim_ttl_s
            )
        else:
            await self._dedupe.start()
        if self._limiter is None:
            self._limiter = await open_rate_limiter(
                s.rate_limit_redis_url, namespace=s.rate_limit_namespace
            )
        else:
            await self._limiter.start()
        for handler in self.registry.unique():
            await handler.start()
        c = s.consumer
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=s.client_id,
            group_id=s.group_id,
            enable_auto_commit=False,
            auto_offset_reset=c.auto_offset_reset,
            fetch_max_wait_ms=c.fetch_max_wait_ms,
            session_timeout_ms=c.session_timeout_ms,
            heartbeat_interval_ms=c.heartbeat_interval_ms,
            max_poll_interval_ms=c.max_poll_interval_ms,
            request_timeout_ms=c.request_timeout_ms,
            retry_backoff_ms=c.retry_backoff_ms,
            max_partition_fetch_bytes=max(1_048_576, s.max_event_bytes * 2),
            # Transactions mode also reads its input committed-only, so it can sit behind
            # another transactional stage; with plain producers upstream both read alike.
            isolation_level="read_committed" if transactional else "read_uncommitted",
        )
        if transactional:
            self._start_transactional()
        else:
            await self._start_dedupe()
        assert self._rebalancer is not None and self._committer is not None
        self._consumer.subscribe([s.topics.requests.name], listener=self._rebalancer)
        await self._consumer.start()
        if s.metrics_port is not None:
            self.metrics_port = self.metrics.serve(s.metrics_port)
        self._started = True
        self._fetch_task = asyncio.create_task(self._fetch_loop(), name="consumer-fetch")
        self._commit_task = asyncio.create_task(self._committer.run(), name="consumer-commit")
        _log.info(
            "consumer.started",
            group_id=s.group_id,
            topic=s.topics.requests.name,
            exactly_once=s.exactly_once,
        )

    async def _start_dedupe(self) -> None:
        """The dedupe mode's settle path: publisher, results probe, dedupe store."""
        s = self.settings
        assert self._dedupe is not None and self._limiter is not None
        await self._publisher.start()
        # Fetch the output topics' metadata now, so the first results do not wait for it.
        for topic in (s.topics.results, s.topics.status, s.topics.dead_letters):
            with contextlib.suppress(KafkaError):
                await self._publisher.partitions_for(topic.name)
        processor = EventProcessor(
            settings=s,
            codec=self._codec,
            registry=self.registry,
            publisher=self._publisher,
            dedupe=BatchingDedupeStore(self._dedupe),
            limiter=self._limiter,
            metrics=self.metrics,
            policy=RetryPolicy(s.retry),
            probe=self._probe,
        )
        self._settler = BatchSettler(processor)
        self._committer = committer = Committer(
            self._consumer, self._partitions, self.metrics, interval_s=s.commit_interval_s
        )
        self._rebalancer = Rebalancer(
            self._consumer,
            self._partitions,
            committer=committer,
            settings=s,
            probe=self._probe,
            on_assigned=self._update_paused,
        )

    def _start_transactional(self) -> None:
        """The transactions mode's settle path; no dedupe store, no results probe."""
        assert self._limiter is not None
        self._probe = None
        self._settler, self._committer, self._rebalancer = transactional_path(
            self._consumer,
            self._partitions,
            settings=self.settings,
            bootstrap_servers=self.bootstrap_servers,
            codec=self._codec,
            registry=self.registry,
            limiter=self._limiter,
            metrics=self.metrics,
            on_assigned=self._update_paused,
        )

    async def stop(self) -> None:
        """Drain in-flight work within `drain_timeout_s`, commit what finished, then leave."""
        if not self._started:
            return
        # Both are made by start() before it sets `_started`.
        assert self._committer is not None and self._rebalancer is not None
        self._started = False
        self._stopping.set()
        for task in (self._fetch_task, self._commit_task, self._rebalancer.prepare_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await finish(list(self._partitions.values()), self.settings.drain_timeout_s)
        await self._committer.commit(list(self._partitions.values()))
        self._partitions.clear()
        with contextlib.suppress(KafkaError):
            await self._consumer.stop()
        await self._committer.stop()
        await self._publisher.stop()
        if self._probe is not None:
            await self._probe.stop()
        for handler in self.registry.unique():
            await handler.stop()
        if self._owns_limiter and self._limiter is not None:
            await self._limiter.stop()
        if self._owns_dedupe and self._dedupe is not None:
            await self._dedupe.stop()
        self.metrics.close()
        _log.info("consumer.stopped")

    async def wait_stopped(self) -> None:
        await self._stopping.wait()

    def assignment(self) -> set[Any]:
        return set(self._partitions)

    @property
    def in_flight(self) -> int:
        return sum(state.in_flight for state in self._partitions.values())

    # ------------------------------------------------------------------ fetching

    async def _fetch_loop(self) -> None:
        wait_ms = self.settings.consumer.fetch_max_wait_ms
        while True:
            try:
                batches = await self._consumer.getmany(
                    timeout_ms=wait_ms, max_records=self.settings.consumer.max_poll_records
                )
            except KafkaError as exc:
                _log.warning("consumer.fetch_failed", error=type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            for tp, records in batches.items():
                state = self._partitions.get(tp)
                if state is None or state.revoked or state.draining:
                    self._refetch_later(tp, records)
                    continue
                self.metrics.consumed.labels(tp.topic).inc(len(records))
                state.backlog.extend(records)
                state.next_fetch_offset = records[-1].offset + 1
                self._schedule(state)

    def _refetch_later(self, tp: Any, records: list[Any]) -> None:
        """Drops records of a partition that has no live state, and rewinds its position.

        A fetch can complete between aiokafka assigning a partition and the rebalance listener
        creating its state (the listener awaits end offsets), or while a revocation drains it.
        The fetch already advanced the position past these records, so without the seek a
        partition that stays ours would skip them and later commits would pass over them.
        """
        if tp in self._consumer.assignment():
            self._consumer.seek(tp, records[0].offset)

    def _schedule(self, state: PartitionState) -> None:
        # Records go out as one batch task; a record whose key has earlier work still
        # pending waits for it in a task of its own (per-key order).
        batch: list[tuple[Any, bool]] = []
        # While a batch runs, wait for half the bound to free up rather than starting a
        # trickle of tiny batches: every batch pays the same few round trips.
        if state.batches and state.bound - state.in_flight < max(1, state.bound // 2):
            return self._pause_if_full(state)
        while state.backlog and state.has_room() and not state.revoked:
            record = state.backlog.popleft()
            state.offsets.add(record.offset)
            key = state.key_of(record)
            if key is not None:
                previous, held = state.sequencer.hold(key)
                state.holds[record.offset] = (key, held)
                if previous is not None:
                    self._detour(state, record, None, 0, previous)
                    continue
            batch.append((record, state.maybe_redelivered(record)))
        if batch:
            task = asyncio.create_task(self._run_batch(state, batch))
            state.batches.add(task)
            task.add_done_callback(state.batches.discard)
        self._pause_if_full(state)

    def _pause_if_full(self, state: PartitionState) -> None:
        if state.should_pause():
            self._consumer.pause(state.tp)
            state.paused = True
            self._update_paused()

    async def _run_batch(self, state: PartitionState, batch: list[tuple[Any, bool]]) -> None:
        assert self._settler is not None
        try:
            await self._settler.settle(
                batch,
                finished=lambda records: self._finished(state, records),
                detour=lambda record, work, failures: self._detour(state, record, work, failures),
            )
        finally:
            state.batches.discard(asyncio.current_task())
        # Scheduling waited for this batch while it ran (see _schedule).
        self._finished(state, [])

    def _detour(
        self,
        state: PartitionState,
        record: Any,
        work: Awaitable[None] | None,
        failures: int,
        after: asyncio.Future[None] | None = None,
    ) -> None:
        """Settle `record` in a task of its own (a slow handler, a failure, a busy key)."""
        task = asyncio.create_task(self._run(state, record, work, failures, after))
        state.tasks[record.offset] = task

    async def _run(
        self,
        state: PartitionState,
        record: Any,
        work: Awaitable[None] | None,
        failures: int,
        after: asyncio.Future[None] | None,
    ) -> None:
        assert self._settler is not None
        settler = self._settler
        try:
            if after is not None:
                # asyncio.wait does not cancel `after` if we are cancelled while waiting.
                await asyncio.wait([after])
            if work is not None:
                pending, work = work, None
                try:
                    await pending
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failures += 1
                    await self._back_off(record, exc, failures)
                else:
                    failures = -1
            if failures >= 0:
                await self._settle(settler, record, state.maybe_redelivered(record), failures)
        finally:
            if isinstance(work, Coroutine):
                work.close()  # never started (cancelled while waiting for its key)
            state.tasks.pop(record.offset, None)
            self._release(state, record)
        self._finished(state, [record])

    def _release(self, state: PartitionState, record: Any) -> None:
        held = state.holds.pop(record.offset, None)
        if held is not None:
            state.sequencer.release(*held)

    def _finished(self, state: PartitionState, records: list[Any]) -> None:
        for record in records:
            self._release(state, record)
        if state.revoked:
            return
        for record in records:
            state.offsets.complete(record.offset)
        self._schedule(state)
        if state.should_resume() and self._started:
            with contextlib.suppress(KafkaError, KeyError, AssertionError):
                if state.tp in self._consumer.assignment():
                    self._consumer.resume(state.tp)
            state.paused = False
            self._update_paused()

    async def _settle(
        self, settler: Settler, record: Any, redelivered: bool, failures: int = 0
    ) -> None:
        """Process `record` until its outcome is published.

        `process()` settles every event-level failure itself; what escapes is infrastructure
        (the broker rejecting our results for longer than the producer's own retries). The
        record is then processed again after a backoff rather than left unfinished, which
        would hold its partition's commits back forever; the dedupe store makes the repeat safe.
        """
        while True:
            try:
                await settler.process(record, maybe_redelivered=redelivered, retry=failures > 0)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                await self._back_off(record, exc, failures)

    async def _back_off(self, record: Any, error: Exception, failures: int) -> None:
        """Log an infrastructure failure of `record`'s settling and wait before the next try."""
        _log.error(
            "consumer.process_failed",
            offset=record.offset,
            error=type(error).__name__,
            exc_info=error,
        )
        await asyncio.sleep(self._infra_policy.backoff(failures))

    def _update_paused(self) -> None:
        self.metrics.paused.set(sum(1 for st in self._partitions.values() if st.paused))
