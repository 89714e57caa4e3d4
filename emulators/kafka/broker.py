"""The embedded Kafka broker: librdkafka's mock cluster behind a protocol-fixing TCP front.

Why it exists: development machines and CI cannot run a real Kafka, yet the consumers must be
tested over real sockets with a real client (aiokafka). ``EmbeddedKafka`` starts a mock cluster
in-process, puts one front listener before each mock broker (see ``_front``), and exposes the
fault-injection knobs tests need (request errors, broker outages, latency).

Lifecycle is explicit: ``start()`` / ``stop()`` or ``with EmbeddedKafka() as kafka:``. Data
lives in memory only; each partition keeps roughly the last 5 MiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from types import TracebackType

import structlog

from emulators.kafka import _wire
from emulators.kafka._front import Front, FrontSettings
from emulators.kafka._mock import MockCluster
from emulators.kafka.errors import BrokerNotRunningError, MockClusterError
from emulators.kafka.protocol import ApiKey, ErrorCode

__all__ = ["EmbeddedKafka", "RequestLog"]

_log = structlog.get_logger()
_HOST = "127.0.0.1"
# After the last follower's SyncGroup is written, how long the leader's waits so the mock's
# poll loop reads the followers first; 20 ms is ample on a loaded 2-core machine.
_SYNC_GROUP_SETTLE_S = 0.02


class RequestLog:
    """Requests recorded by ``EmbeddedKafka.track_requests()``, read while the block runs."""

    def __init__(self, mock: MockCluster) -> None:
        self._mock = mock

    def count(self, api_key: int) -> int:
        """How many requests of ``api_key`` reached a mock broker so far."""
        return self._mock.tracked_api_keys().count(api_key)


class EmbeddedKafka:
    """An in-process Kafka cluster reachable at ``bootstrap_servers`` once started.

    ``group_initial_rebalance_delay_ms`` (300 by default, Kafka's is 3000) lets members that
    start together join one generation; ``sync_group_max_hold_ms`` bounds the SyncGroup hold
    described in ``_front``.

    ``port`` is the first front port (broker ``n`` listens on ``port + n - 1``); 0 picks free
    ports. ``default_partitions`` applies to auto-created topics and to CreateTopics requests
    that ask for the broker default (-1).
    """

    def __init__(
        self,
        brokers: int = 1,
        port: int = 0,
        default_partitions: int = 4,
        *,
        group_initial_rebalance_delay_ms: int = 300,
        sync_group_max_hold_ms: int = 3000,
    ) -> None:
        if brokers < 1:
            raise ValueError("brokers must be at least 1")
        self.brokers = brokers
        self.port = port
        self.default_partitions = default_partitions
        self._rebalance_delay_ms = group_initial_rebalance_delay_ms
        self._sync_max_hold_s = sync_group_max_hold_ms / 1000
        self._mock: MockCluster | None = None
        self._front: Front | None = None
        self._ports: list[int] = []
        # The front calls admin callbacks from its own thread while tests call in from theirs.
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Create the mock cluster and open one front listener per broker."""
        if self._mock is not None:
            return
        mock = MockCluster(self.brokers)
        self._mock = mock
        try:
            mock.set_group_initial_rebalance_delay(self._rebalance_delay_ms)
            mock.set_controller(1)
            mock.set_apiversion(ApiKey.SYNC_GROUP, 0, _wire.SYNC_GROUP_MAX_VERSION)
            mock.set_apiversion(ApiKey.METADATA, 0, _wire.METADATA_MAX_VERSION)
            front = Front(
                FrontSettings(
                    host=_HOST,
                    sync_group_max_hold=self._sync_max_hold_s,
                    sync_group_settle=_SYNC_GROUP_SETTLE_S,
                    create_topic=self._create_from_request,
                    delete_topic=self._delete_from_request,
                    auto_create_topic=self._auto_create,
                )
            )
            self._front = front
            wanted = [self.port + i if self.port else 0 for i in range(self.brokers)]
            self._ports = front.start(list(zip(wanted, mock.bootstraps(), strict=True)))
            for broker_id, port in enumerate(self._ports, start=1):
                mock.broker_set_advertised(broker_id, _HOST, port)
        except BaseException:
            self.stop()
            raise
        _log.info(
            "embedded_kafka_started",
            bootstrap_servers=self.bootstrap_servers,
            brokers=self.brokers,
            librdkafka=mock.version,
        )

    def stop(self) -> None:
        """Close the front (joining its thread), then destroy the mock cluster."""
        front, mock = self._front, self._mock
        self._front = self._mock = None
        self._ports = []
        if front is not None:
            front.stop()
        if mock is not None:
            mock.destroy()
            _log.info("embedded_kafka_stopped")

    def __enter__(self) -> EmbeddedKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._mock is not None

    @property
    def bootstrap_servers(self) -> str:
        """Comma-separated front addresses, e.g. ``127.0.0.1:9092``."""
        self._require()
        return ",".join(f"{_HOST}:{port}" for port in self._ports)

    @property
    def ports(self) -> list[int]:
        """Front port of each broker, in broker-id order."""
        self._require()
        return list(self._ports)

    def _require(self) -> MockCluster:
        if self._mock is None:
            raise BrokerNotRunningError("the embedded Kafka broker is not started")
        return self._mock

    # -- topics ------------------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int | None = None, replication: int = 1) -> None:
        """Create ``name``; raises ``MockClusterError`` if it exists or the counts are invalid."""
        code, message = self._create(name, partitions or self.default_partitions, replication)
        if code:
            raise MockClusterError(f"cannot create topic {name!r}: {message}", code)

    def delete_topic(self, name: str) -> None:
        """Delete ``name`` and its data; raises ``MockClusterError`` if it does not exist."""
        code = self._delete_from_request(name)
        if code:
            raise MockClusterError(f"cannot delete topic {name!r}", code)

    def _create(self, name: str, partitions: int, replication: int) -> tuple[int, str | None]:
        if not name:
            return ErrorCode.INVALID_REQUEST, "empty topic name"
        if partitions < 1:
            return ErrorCode.INVALID_PARTITIONS, "partitions must be at least 1"
        if not 1 <= replication <= self.brokers:
            return ErrorCode.INVALID_REPLICATION_FACTOR, f"replication must be 1..{self.brokers}"
        with self._lock:
            code = self._require().topic_create(name, partitions, replication)
        if code == ErrorCode.TOPIC_ALREADY_EXISTS:
            return code, f"topic {name!r} already exists"
        if code:
            return code, "the mock cluster refused the topic"
        return 0, None

    def _create_from_request(self, spec: _wire.TopicSpec) -> tuple[int, str | None]:
        partitions = self.default_partitions if spec.partitions == -1 else spec.partitions
        replication = 1 if spec.replication == -1 else spec.replication
        return self._create(spec.name, partitions, replication)

    def _auto_create(self, name: str) -> None:
        # An existing topic answers TOPIC_ALREADY_EXISTS, which is exactly "nothing to do".
        self._create(name, self.default_partitions, 1)

    def _delete_from_request(self, name: str) -> int:
        with self._lock:
            return self._require().topic_delete(name)

    # -- fault injection ---------------------------------------------------------------------

    def push_request_errors(self, api_key: int, errors: list[int]) -> None:
        """Fail the next ``len(errors)`` requests of ``api_key``, one error code each, in order.

        ``ErrorCode.TRANSPORT`` makes the broker drop the connection instead of answering.
        """
        self._require().push_request_errors(api_key, errors)

    def clear_request_errors(self, api_key: int) -> None:
        """Forget errors pushed for ``api_key`` that have not fired yet."""
        self._require().clear_request_errors(api_key)

    def broker_down(self, broker_id: int) -> None:
        """Drop the broker's connections and refuse new ones (leadership does not move).

        ``-1`` takes every broker down.
        """
        self._require().broker_set_down(broker_id)
        self._set_accepting(broker_id, accepting=False)

    def broker_up(self, broker_id: int) -> None:
        """Let the broker (``-1``: every broker) accept connections again."""
        self._set_accepting(broker_id, accepting=True)
        self._require().broker_set_up(broker_id)

    def _set_accepting(self, broker_id: int, accepting: bool) -> None:
        ids = range(1, self.brokers + 1) if broker_id == -1 else [broker_id]
        if self._front is not None:
            for each in ids:
                self._front.set_accepting(each - 1, accepting)

    def set_rtt(self, broker_id: int, rtt_ms: int) -> None:
        """Delay every response of the broker by ``rtt_ms`` (-1 as broker id: all brokers)."""
        self._require().broker_set_rtt(broker_id, rtt_ms)

    def set_partition_leader(self, topic: str, partition: int, broker_id: int) -> None:
        """Move a partition's leadership (-1 leaves it leaderless)."""
        self._require().partition_set_leader(topic, partition, broker_id)

    @contextlib.contextmanager
    def track_requests(self) -> Iterator[RequestLog]:
        """Record the requests the mock brokers receive inside the block.

        Recording is off outside the block so a long-running broker does not grow without
        bound. Requests the front answers itself (CreateTopics, DeleteTopics) are not seen.
        """
        mock = self._require()
        mock.track_requests(enabled=True)
        try:
            yield RequestLog(mock)
        finally:
            if self._mock is mock:
                mock.track_requests(enabled=False)

    @contextlib.contextmanager
    def outage(self, broker_id: int) -> Iterator[None]:
        """Keep ``broker_id`` down for the duration of the ``with`` block."""
        self.broker_down(broker_id)
        try:
            yield
        finally:
            if self.running:
                self.broker_up(broker_id)

    async def outage_for(self, broker_id: int, seconds: float) -> None:
        """Take ``broker_id`` down for ``seconds`` without blocking the caller's event loop."""
        with self.outage(broker_id):
            # The outage's length is the behaviour under test, not a synchronisation wait.
            await asyncio.sleep(seconds)
