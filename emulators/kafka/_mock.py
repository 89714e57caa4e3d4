"""Typed ctypes binding over librdkafka's mock Kafka cluster.

Why it exists: no real Kafka 0.11+ can be installed on development machines, but the
librdkafka shared library bundled inside the confluent-kafka wheel contains a mock cluster that
speaks the real protocol over TCP. Its C API is exported but has no Python wrapper, so this
module is the only place that knows C-level details (symbol names, argument types, handle
ownership). Every symbol bound here was checked to exist in librdkafka 2.16.0.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import core.librdkafka
from emulators.kafka.errors import LibrdkafkaNotFoundError, MockClusterError

__all__ = ["MockCluster", "find_librdkafka"]

_RD_KAFKA_PRODUCER = 0
_RD_KAFKA_CONF_OK = 0
_ERRSTR_SIZE = 512


def find_librdkafka() -> Path:
    """Locate the librdkafka shared library shipped inside the installed confluent-kafka."""
    path = core.librdkafka.find_librdkafka()
    if path is None:
        raise LibrdkafkaNotFoundError("no librdkafka found: confluent-kafka bundles it")
    return path


def _bind(lib: ctypes.CDLL) -> None:
    """Declare argument and result types; without them ctypes truncates 64-bit pointers."""
    p, i16, i32, sz = ctypes.c_void_p, ctypes.c_int16, ctypes.c_int32, ctypes.c_size_t
    c_int, c_char_p = ctypes.c_int, ctypes.c_char_p
    signatures: dict[str, tuple[list[type], type | None]] = {
        "rd_kafka_conf_new": ([], p),
        "rd_kafka_conf_set": ([p, c_char_p, c_char_p, c_char_p, sz], c_int),
        "rd_kafka_new": ([c_int, p, c_char_p, sz], p),
        "rd_kafka_destroy": ([p], None),
        "rd_kafka_version_str": ([], c_char_p),
        "rd_kafka_mock_cluster_new": ([p, c_int], p),
        "rd_kafka_mock_cluster_destroy": ([p], None),
        "rd_kafka_mock_cluster_bootstraps": ([p], c_char_p),
        "rd_kafka_mock_topic_create": ([p, c_char_p, c_int, c_int], c_int),
        "rd_kafka_mock_topic_delete": ([p, c_char_p], c_int),
        "rd_kafka_mock_push_request_errors_array": ([p, i16, sz, p], None),
        "rd_kafka_mock_clear_request_errors": ([p, i16], None),
        "rd_kafka_mock_broker_set_down": ([p, i32], c_int),
        "rd_kafka_mock_broker_set_up": ([p, i32], c_int),
        "rd_kafka_mock_broker_set_rtt": ([p, i32, c_int], c_int),
        "rd_kafka_mock_broker_set_host_port": ([p, i32, c_char_p, c_int], None),
        "rd_kafka_mock_partition_set_leader": ([p, c_char_p, i32, i32], c_int),
        "rd_kafka_mock_set_apiversion": ([p, i16, i16, i16], c_int),
        "rd_kafka_mock_group_initial_rebalance_delay_ms": ([p, i32], None),
        "rd_kafka_mock_set_controller_id": ([p, i32], None),
        "rd_kafka_mock_start_request_tracking": ([p], None),
        "rd_kafka_mock_stop_request_tracking": ([p], None),
        "rd_kafka_mock_clear_requests": ([p], None),
        "rd_kafka_mock_get_requests": ([p, ctypes.POINTER(sz)], ctypes.POINTER(p)),
        "rd_kafka_mock_request_api_key": ([p], i16),
        "rd_kafka_mock_request_destroy_array": ([ctypes.POINTER(p), sz], None),
    }
    for name, (argtypes, restype) in signatures.items():
        try:
            func = getattr(lib, name)
        except AttributeError as exc:
            raise LibrdkafkaNotFoundError(f"librdkafka lacks the symbol {name}") from exc
        func.argtypes = argtypes
        func.restype = restype


def _check(code: int, what: str) -> None:
    if code != 0:
        raise MockClusterError(f"{what} failed with librdkafka error {code}", code)


class MockCluster:
    """One mock cluster and the librdkafka handle that owns it; ``destroy()`` frees both."""

    def __init__(self, brokers: int, library: Path | None = None) -> None:
        path = library or find_librdkafka()
        try:
            self._lib = ctypes.CDLL(str(path))
        except OSError as exc:
            raise LibrdkafkaNotFoundError(f"cannot load {path}: {exc}") from exc
        _bind(self._lib)
        errstr = ctypes.create_string_buffer(_ERRSTR_SIZE)
        conf = self._lib.rd_kafka_conf_new()
        # The owning handle only hosts the cluster; keep its own logging to errors.
        for key, value in ((b"log_level", b"3"), (b"client.id", b"embedded-kafka")):
            rc = self._lib.rd_kafka_conf_set(conf, key, value, errstr, _ERRSTR_SIZE)
            if rc != _RD_KAFKA_CONF_OK:
                raise MockClusterError(f"rd_kafka_conf_set({key!r}): {errstr.value!r}")
        # rd_kafka_new takes ownership of conf on success.
        self._rk = self._lib.rd_kafka_new(_RD_KAFKA_PRODUCER, conf, errstr, _ERRSTR_SIZE)
        if not self._rk:
            raise MockClusterError(f"rd_kafka_new failed: {errstr.value.decode()}")
        self._mc = self._lib.rd_kafka_mock_cluster_new(self._rk, brokers)
        if not self._mc:
            self._lib.rd_kafka_destroy(self._rk)
            raise MockClusterError("rd_kafka_mock_cluster_new failed")
        self.broker_count = brokers

    @property
    def version(self) -> str:
        return str(self._lib.rd_kafka_version_str().decode())

    def bootstraps(self) -> list[tuple[str, int]]:
        """Mock listener addresses, in broker-id order (broker ids start at 1)."""
        raw = self._lib.rd_kafka_mock_cluster_bootstraps(self._mc).decode()
        out: list[tuple[str, int]] = []
        for item in raw.split(","):
            host, _, port = item.rpartition(":")
            out.append((host, int(port)))
        return out

    def topic_create(self, topic: str, partitions: int, replication: int) -> int:
        """Create a topic; returns the librdkafka error code (0 = created)."""
        return int(
            self._lib.rd_kafka_mock_topic_create(self._mc, topic.encode(), partitions, replication)
        )

    def topic_delete(self, topic: str) -> int:
        """Delete a topic and its data; returns the librdkafka error code (0 = deleted)."""
        return int(self._lib.rd_kafka_mock_topic_delete(self._mc, topic.encode()))

    def push_request_errors(self, api_key: int, errors: list[int]) -> None:
        array = (ctypes.c_int * len(errors))(*errors)
        self._lib.rd_kafka_mock_push_request_errors_array(
            self._mc, api_key, len(errors), ctypes.cast(array, ctypes.c_void_p)
        )

    def clear_request_errors(self, api_key: int) -> None:
        self._lib.rd_kafka_mock_clear_request_errors(self._mc, api_key)

    def broker_set_down(self, broker_id: int) -> None:
        _check(self._lib.rd_kafka_mock_broker_set_down(self._mc, broker_id), "broker_set_down")

    def broker_set_up(self, broker_id: int) -> None:
        _check(self._lib.rd_kafka_mock_broker_set_up(self._mc, broker_id), "broker_set_up")

    def broker_set_rtt(self, broker_id: int, rtt_ms: int) -> None:
        _check(self._lib.rd_kafka_mock_broker_set_rtt(self._mc, broker_id, rtt_ms), "set_rtt")

    def broker_set_advertised(self, broker_id: int, host: str, port: int) -> None:
        """Change the host/port the broker advertises in Metadata and FindCoordinator."""
        self._lib.rd_kafka_mock_broker_set_host_port(self._mc, broker_id, host.encode(), port)

    def partition_set_leader(self, topic: str, partition: int, broker_id: int) -> None:
        _check(
            self._lib.rd_kafka_mock_partition_set_leader(
                self._mc, topic.encode(), partition, broker_id
            ),
            "partition_set_leader",
        )

    def set_apiversion(self, api_key: int, min_version: int, max_version: int) -> None:
        _check(
            self._lib.rd_kafka_mock_set_apiversion(self._mc, api_key, min_version, max_version),
            "set_apiversion",
        )

    def set_group_initial_rebalance_delay(self, delay_ms: int) -> None:
        self._lib.rd_kafka_mock_group_initial_rebalance_delay_ms(self._mc, delay_ms)

    def set_controller(self, broker_id: int) -> None:
        """Broker reported as controller in Metadata; admin clients send CreateTopics there."""
        self._lib.rd_kafka_mock_set_controller_id(self._mc, broker_id)

    def track_requests(self, enabled: bool) -> None:
        """Start (after forgetting earlier ones) or stop recording requests the brokers get."""
        if enabled:
            self._lib.rd_kafka_mock_clear_requests(self._mc)
            self._lib.rd_kafka_mock_start_request_tracking(self._mc)
        else:
            self._lib.rd_kafka_mock_stop_request_tracking(self._mc)

    def tracked_api_keys(self) -> list[int]:
        """ApiKeys of the requests recorded since tracking started, in arrival order."""
        count = ctypes.c_size_t(0)
        requests = self._lib.rd_kafka_mock_get_requests(self._mc, ctypes.byref(count))
        if not requests:
            return []
        try:
            return [
                int(self._lib.rd_kafka_mock_request_api_key(requests[i]))
                for i in range(count.value)
            ]
        finally:
            self._lib.rd_kafka_mock_request_destroy_array(requests, count.value)

    def destroy(self) -> None:
        """Close every mock listener and connection, then free the owning handle."""
        if self._mc:
            self._lib.rd_kafka_mock_cluster_destroy(self._mc)
            self._mc = None
        if self._rk:
            self._lib.rd_kafka_destroy(self._rk)
            self._rk = None
