"""Prometheus metrics of the proxy, on a registry of their own, served at GET /metrics.

Why its own registry: LiteLLM registers its own metrics on prometheus_client's global registry
(its prometheus callback, under some settings, with its own /metrics), and tests run several
proxies in one process; a private registry neither collides with it nor mixes their numbers.
With `PROMETHEUS_MULTIPROC_DIR` set (several worker processes on one port), values live in that
directory's files and a scrape aggregates every process through the multiprocess collector.

Series (labels kept to what a dashboard groups by):
- gateway_requests_total{task, provider, model, status_class}
- gateway_errors_total{task, provider, error_type}: failed attempts and error answers, by the
  error class's name
- gateway_retries_total / gateway_fallbacks_total{task, provider, model}
- gateway_request_latency_seconds / gateway_upstream_latency_seconds{task, provider, model}:
  buckets dense between 0.5 s and 10 s, where the providers' P95s lie (5-8 s in the seed)
- gateway_tokens_total{task, provider, model, kind=prompt|completion}, gateway_cost_usd_total
- gateway_budget_queue_depth{provider}, gateway_budget_queue_wait_seconds{provider}
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector

from proxy.accounting import RequestLedger
from proxy.settings import MetricsSettings

if TYPE_CHECKING:
    # proxy.asgi imports LiteLLM (seconds); a worker's metrics need none of it.
    from proxy.asgi import Send

__all__ = ["LATENCY_BUCKETS", "ProxyMetrics"]

LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0,
    7.0, 8.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0,
)  # fmt: skip
_NONE = "none"


def _status_class(status: int) -> str:
    return f"{status // 100}xx" if status else "none"


class _Series:
    """The children of one (task, provider, model), looked up once."""

    __slots__ = ("completion", "cost", "latency", "prompt", "requests", "upstream")

    def __init__(self, metrics: ProxyMetrics, labels: tuple[str, str, str]) -> None:
        self.requests: dict[int, Any] = {}
        self.latency = metrics.latency.labels(*labels)
        self.upstream = metrics.upstream.labels(*labels)
        self.prompt = metrics.tokens.labels(*labels, "prompt")
        self.completion = metrics.tokens.labels(*labels, "completion")
        self.cost = metrics.cost.labels(*labels)


class ProxyMetrics:
    """The proxy's series, and the /metrics answer. Labelled children are cached per label
    tuple, so a request costs a few dict look-ups and increments."""

    def __init__(self, settings: MetricsSettings, *, master_key: str) -> None:
        if settings.multiprocess_dir is not None and not values.ValueClass._multiprocess:
            # prometheus_client picks its value storage when it is imported: a worker whose
            # variable came later would count into memory that no scrape reads.
            raise RuntimeError(
                "PROMETHEUS_MULTIPROC_DIR must be set before prometheus_client is imported"
            )
        self._settings = settings
        self._expected = f"Bearer {master_key}".encode()
        self.registry = CollectorRegistry()
        r = self.registry
        by_model = ["task", "provider", "model"]
        self.requests = Counter(
            "gateway_requests", "Answers of the gateway's routes", [*by_model, "status_class"],
            registry=r,
        )  # fmt: skip
        self.errors = Counter(
            "gateway_errors", "Failed attempts and error answers",
            ["task", "provider", "error_type"], registry=r,
        )  # fmt: skip
        self.retries = Counter("gateway_retries", "Provider attempts retried", by_model, registry=r)
        self.fallbacks = Counter(
            "gateway_fallbacks", "Moves to a task's next provider (provider: the one left)",
            by_model, registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "gateway_request_latency_seconds", "From arrival to the answer's end", by_model,
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.upstream = Histogram(
            "gateway_upstream_latency_seconds", "Time inside provider calls, all attempts",
            by_model, buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.tokens = Counter("gateway_tokens", "Tokens billed", [*by_model, "kind"], registry=r)
        self.cost = Counter("gateway_cost_usd", "Cost of answers in USD", by_model, registry=r)
        self.queue_depth = Gauge(
            "gateway_budget_queue_depth", "Callers waiting for a provider's budget", ["provider"],
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.queue_wait = Histogram(
            "gateway_budget_queue_wait_seconds", "Time callers waited for a provider's budget",
            ["provider"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self._children: dict[tuple[Any, ...], Any] = {}
        self._by_model: dict[tuple[str, str, str], _Series] = {}

    def _child(self, family: Any, *labels: str) -> Any:
        key = (id(family), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*labels)
        return child

    # --- what the request path reports ------------------------------------------------------

    def _series(self, labels: tuple[str, str, str]) -> _Series:
        series = self._by_model.get(labels)
        if series is None:
            series = self._by_model[labels] = _Series(self, labels)
        return series

    def observe_request(self, ledger: RequestLedger, status: int, total_s: float) -> None:
        """One answered request of a gateway route (its ledger has a task)."""
        labels = (ledger.task or _NONE, ledger.provider or _NONE, ledger.model or _NONE)
        series = self._series(labels)
        requests = series.requests.get(status // 100)
        if requests is None:
            requests = series.requests[status // 100] = self.requests.labels(
                *labels, _status_class(status)
            )
        requests.inc()
        series.latency.observe(total_s)
        if ledger.attempts:
            series.upstream.observe(ledger.upstream_s)
        if ledger.prompt_tokens:
            series.prompt.inc(ledger.prompt_tokens)
        if ledger.completion_tokens:
            series.completion.inc(ledger.completion_tokens)
        if ledger.cost_usd:
            series.cost.inc(ledger.cost_usd)
        if status >= 400 and ledger.error_type is not None:
            self._child(self.errors, labels[0], labels[1], ledger.error_type).inc()

    def observe_attempt(
        self, task: str, provider: str, model: str, *, retry: bool, error_type: str | None
    ) -> None:
        if retry:
            self._child(self.retries, task, provider, model).inc()
        if error_type is not None:
            self._child(self.errors, task, provider, error_type).inc()

    def observe_fallback(self, task: str, provider: str, model: str) -> None:
        self._child(self.fallbacks, task, provider, model).inc()

    def observe_queue(self, provider: str, *, depth: int, waited_s: float | None = None) -> None:
        """The budget queue of `provider` now holds `depth` callers; `waited_s`: a caller left
        it after waiting that long (served, moved to a fallback or given up)."""
        self._child(self.queue_depth, provider).set(depth)
        if waited_s is not None:
            self._child(self.queue_wait, provider).observe(waited_s)

    # --- the endpoint ------------------------------------------------------------------------

    def authorized(self, headers: Any) -> bool:
        if self._settings.auth == "none":
            return True
        for name, value in headers:
            if name == b"authorization":
                return hmac.compare_digest(value, self._expected)
        return False

    def exposition(self) -> bytes:
        directory = self._settings.multiprocess_dir
        if directory is None:
            return bytes(generate_latest(self.registry))
        registry = CollectorRegistry()
        # prometheus_client leaves this constructor unannotated.
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))

    async def serve(self, scope: Any, send: Send) -> None:
        """Answer GET /metrics: the exposition, or a 401 without the master key."""
        if not self.authorized(scope.get("headers", ())):
            # OpenAI's error shape, as on every other route.
            status, body = (
                401,
                (
                    b'{"error": {"message": "metrics need the master key", '
                    b'"type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}'
                ),
            )
            content_type = b"application/json"
            extra = [(b"www-authenticate", b"Bearer")]
        else:
            status, body, content_type, extra = 200, self.exposition(), None, []
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type or CONTENT_TYPE_LATEST.encode()),
                    (b"content-length", str(len(body)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
