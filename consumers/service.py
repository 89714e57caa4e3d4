"""ConsumerService: consumes request events and runs them through handlers, many at a time.

Why this shape: one fetch loop appends records to their partition's backlog
(`backpressure.PartitionState`), the dispatcher (`consumers._dispatch`) hands what fits the
bound to the one pipeline (`consumers.pipeline`) as a batch, and one commit loop
(`consumers._commits`) commits, per partition, only the contiguous prefix of settled offsets.
Auto-commit is off: an offset is committed only after the event's result (or dead letter) was
made durable. Rebalances are handled in `consumers._rebalance`; this module keeps the
lifecycle and the fetch loop.

Guarantees: at-least-once handling; results published at most once per request id through the
dedupe store (`consumers.dedupe_mode`, with its one crash window), or, with `exactly_once:
transactions`, exactly once per record through Kafka transactions (`consumers.transactions_mode`:
its durable step, committer and rebalancer replace the dedupe mode's, chosen once in start());
per-key order when `ordering_per_key` is on; at most `max_in_flight_per_partition` events
running per partition.
On revocation and on stop(), in-flight work gets a deadline to finish, then is abandoned
(its offsets stay uncommitted, so it is redelivered), and completed offsets are committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer

from consumers._commits import Committer
from consumers._dispatch import Dispatcher
from consumers._rebalance import Rebalancer, finish
from consumers.backpressure import PartitionState, RetryAfterHold
from consumers.dedupe import CoalescingDedupeStore, DedupeStore, open_dedupe_store
from consumers.dedupe_mode import DedupeDurability
from consumers.errors import BrokerError, ConfigurationError
from consumers.handlers import Handler, HandlerRegistry
from consumers.invoker import HandlerInvoker
from consumers.kafka_errors import ProduceRetryFilter, kafka_errors
from consumers.metrics import ConsumerMetrics
from consumers.pipeline import Durability, Pipeline
from consumers.publisher import EventPublisher
from consumers.results_lookup import ResultsLookup
from consumers.retry import RetryPolicy
from consumers.settings import KafkaSettings
from consumers.transactions_mode import refuse_embedded_broker, transactional_path
from core.redact import Redactor

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
        redactor: Redactor | None = None,
    ) -> None:
        """`redactor`: the process's; every event this service publishes is scrubbed by it
        (a fresh one, knowing no secret yet, when None)."""
        servers = bootstrap_servers or settings.bootstrap_servers
        if servers is None:
            raise ConfigurationError("bootstrap_servers is required (settings or argument)")
        self.settings = settings
        self.bootstrap_servers = servers
        self.registry = (
            handlers if isinstance(handlers, HandlerRegistry) else HandlerRegistry({"*": handlers})
        )
        self.metrics = ConsumerMetrics()
        self.metrics_port: int | None = None
        self._dedupe = dedupe
        self._owns_dedupe = dedupe is None
        # Calls held back while the proxy says to wait (its 429's Retry-After), per task.
        self._hold = RetryAfterHold()
        # The requests decoder accepts every kind a registered handler declares.
        self._codec = self.registry.codec()
        self._redactor = redactor if redactor is not None else Redactor()
        self._publisher = EventPublisher(settings, servers, self._codec, redactor=self._redactor)
        self._consumer: Any = None
        # Hands records to the pipeline, whose durable step is the exactly-once mode's; made by
        # start() with the consumer.
        self._dispatcher: Dispatcher | None = None
        # Commits and rebalances (consumers._commits, consumers._rebalance), made by start()
        # with the consumer; both share `_partitions`, the live assignment.
        self._committer: Committer | None = None
        self._rebalancer: Rebalancer | None = None
        self._lookup: ResultsLookup | None = ResultsLookup(
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
        self._retry_filter = ProduceRetryFilter(self.metrics.produce_retries)

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
        if s.rate_limits:
            # Parsed for old configs' sake and ignored: a second budget here would limit the
            # same traffic twice, differently.
            _log.warning(
                "consumer.rate_limits_ignored",
                detail="gateway_settings.kafka.rate_limits is deprecated and ignored: the "
                "proxy holds every provider's budget (gateway_settings.budgets)",
            )
        await self.registry.start()
        c = s.consumer
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=s.client_id,
            group_id=s.group_id,
            enable_auto_commit=False,
            auto_offset_reset=c.auto_offset_reset,
            fetch_max_wait_ms=c.fetch_max_wait_ms,
            fetch_min_bytes=c.fetch_min_bytes,
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
        durability = self._start_transactional() if transactional else await self._start_dedupe()
        pipeline = Pipeline(
            settings=s, codec=self._codec, metrics=self.metrics, durability=durability
        )
        self._dispatcher = Dispatcher(
            self._consumer,
            pipeline,
            running=lambda: self._started,
            on_paused=self._update_paused,
        )
        assert self._rebalancer is not None and self._committer is not None
        self._consumer.subscribe([s.topics.requests.name], listener=self._rebalancer)
        logging.getLogger("aiokafka.producer.sender").addFilter(self._retry_filter)
        with kafka_errors():
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

    async def _start_dedupe(self) -> Durability:
        """The dedupe mode's durable step: publisher, results lookup, dedupe store."""
        s = self.settings
        assert self._dedupe is not None
        await self._publisher.start()
        # Fetch the output topics' metadata now, so the first results do not wait for it.
        for topic in (s.topics.results, s.topics.status, s.topics.dead_letters):
            try:
                await self._publisher.partitions_for(topic.name)
            except BrokerError as exc:
                _log.warning("consumer.metadata_failed", topic=topic.name, error=exc.upstream)
        invoker = HandlerInvoker(
            settings=s,
            registry=self.registry,
            publisher=self._publisher,
            metrics=self.metrics,
            policy=RetryPolicy(s.retry),
            hold=self._hold,
        )
        self._committer = committer = Committer(
            self._consumer, self._partitions, self.metrics, interval_s=s.commit_interval_s
        )
        self._rebalancer = Rebalancer(
            self._consumer,
            self._partitions,
            committer=committer,
            settings=s,
            lookup=self._lookup,
            on_assigned=self._update_paused,
        )
        return DedupeDurability(
            settings=s,
            publisher=self._publisher,
            store=CoalescingDedupeStore(self._dedupe),
            lookup=self._lookup,
            metrics=self.metrics,
            invoker=invoker,
        )

    def _start_transactional(self) -> Durability:
        """The transactions mode's durable step; no dedupe store, no results lookup."""
        self._lookup = None
        durability, self._committer, self._rebalancer = transactional_path(
            self._consumer,
            self._partitions,
            settings=self.settings,
            bootstrap_servers=self.bootstrap_servers,
            codec=self._codec,
            redactor=self._redactor,
            registry=self.registry,
            hold=self._hold,
            metrics=self.metrics,
            on_assigned=self._update_paused,
            rejoin=self._rejoin,
        )
        return durability

    def _rejoin(self) -> None:
        """Ask the group for a rebalance, through aiokafka's public API: subscribing again.

        Deferred: it may be asked from inside a rebalance listener, which must return first.
        """
        asyncio.get_running_loop().call_soon(self._resubscribe)

    def _resubscribe(self) -> None:
        if not self._started or self._rebalancer is None:
            return
        try:
            with kafka_errors():
                self._consumer.subscribe(
                    [self.settings.topics.requests.name], listener=self._rebalancer
                )
        except BrokerError as exc:
            _log.error("consumer.rejoin_failed", error=exc.upstream)

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
        try:
            with kafka_errors():
                await self._consumer.stop()
        except BrokerError as exc:
            # Leaving the group failed; the broker evicts us after the session timeout.
            _log.warning("consumer.leave_failed", error=exc.upstream)
        logging.getLogger("aiokafka.producer.sender").removeFilter(self._retry_filter)
        await self._committer.stop()
        await self._publisher.stop()
        if self._lookup is not None:
            await self._lookup.stop()
        await self.registry.stop()
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
        assert self._dispatcher is not None  # made by start() before this loop starts
        wait_ms = self.settings.consumer.fetch_max_wait_ms
        while True:
            try:
                with kafka_errors():
                    batches = await self._consumer.getmany(
                        timeout_ms=wait_ms, max_records=self.settings.consumer.max_poll_records
                    )
            except BrokerError as exc:
                _log.warning("consumer.fetch_failed", error=exc.upstream)
                await asyncio.sleep(0.5)
                continue
            fetched: list[PartitionState] = []
            for tp, records in batches.items():
                state = self._partitions.get(tp)
                if state is None or state.revoked or state.draining:
                    self._refetch_later(tp, records)
                    continue
                self.metrics.consumed.labels(tp.topic).inc(len(records))
                state.backlog.extend(records)
                state.next_fetch_offset = records[-1].offset + 1
                fetched.append(state)
            # One batch for the whole fetch: at a few records per partition, a batch per
            # partition paid its task and round trips per record.
            self._dispatcher.schedule_many(fetched)

    def _refetch_later(self, tp: Any, records: list[Any]) -> None:
        """Drops records of a partition that has no live state, and rewinds its position.

        A fetch can complete between aiokafka assigning a partition and the rebalance listener
        creating its state (the listener awaits end offsets), or while a revocation drains it.
        The fetch already advanced the position past these records, so without the seek a
        partition that stays ours would skip them and later commits would pass over them.
        """
        try:
            with kafka_errors():
                if tp in self._consumer.assignment():
                    self._consumer.seek(tp, records[0].offset)
        except BrokerError as exc:
            # Revoked meanwhile: its next owner starts from the committed offset anyway.
            _log.warning("consumer.rewind_failed", error=exc.upstream)

    def _update_paused(self) -> None:
        self.metrics.paused.set(sum(1 for st in self._partitions.values() if st.paused))
