"""Prometheus metrics of one ConsumerService, on their own registry and HTTP port.

Why a per-instance registry: several services (and tests) may live in one process; a global
registry would mix their numbers and refuse duplicate metric names.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["ConsumerMetrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ConsumerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "consumer_events_consumed", "Records fetched", ["topic"], registry=r
        )
        self.completed = Counter(
            "consumer_events_completed", "Events with a success result", ["task"], registry=r
        )
        self.failed = Counter(
            "consumer_events_failed", "Events with a final failure result", ["task"], registry=r
        )
        self.dead_lettered = Counter(
            "consumer_events_dead_lettered",
            "Records sent to the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.duplicates_skipped = Counter(
            "consumer_results_duplicates_skipped",
            "Redelivered events whose result was already published",
            registry=r,
        )
        self.retries = Counter(
            "consumer_handler_retries", "Handler attempts retried", ["task"], registry=r
        )
        self.produce_retries = Counter(
            "consumer_produce_retries",
            "Produce requests the Kafka client retried by itself",
            registry=r,
        )
        self.in_flight = Gauge("consumer_in_flight", "Events being processed", registry=r)
        self.lag = Gauge(
            "consumer_lag", "Highwater minus position", ["topic", "partition"], registry=r
        )
        self.paused = Gauge("consumer_paused_partitions", "Partitions paused", registry=r)
        self.handler_latency = Histogram(
            "consumer_handler_latency_seconds",
            "Handler call duration",
            ["task"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rate_limit_wait = Histogram(
            "consumer_rate_limit_wait_seconds",
            "Time calls of a task were held back by the proxy's Retry-After",
            ["key"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.group_commit_size = Histogram(
            "consumer_group_commit_size",
            "Deliveries made durable together in one round of a partition's group commit",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
            registry=r,
        )
        self._results: dict[tuple[str, bool], Any] = {}
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def count_result(self, task: str, *, succeeded: bool) -> None:
        """One result made durable (acknowledged, or committed in its transaction)."""
        # Labelled children are looked up once per task, not once per event.
        counter = self._results.get((task, succeeded))
        if counter is None:
            family = self.completed if succeeded else self.failed
            counter = self._results[task, succeeded] = family.labels(task)
        counter.inc()

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Expose /metrics on `port` (0 picks a free one); returns the bound port."""
        server, thread = start_http_server(port, addr=addr, registry=self.registry)
        self._server, self._thread = server, thread
        return int(server.server_address[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
