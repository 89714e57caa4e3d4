"""The outermost ASGI layer of the proxy: a ledger, a server span and metrics per request,
latency and cost headers on every answer of a gateway route, and GET /metrics.

Why one layer: the latency an answer reports must be measured from the request's arrival, ahead
of everything else (auth, key routes, body reading), and every gateway route (chat, embeddings,
media) must report it the same way; so this layer opens the request's `RequestLedger`, adds its
headers to the answer's `http.response.start`, and counts the request once it has been answered.
A route takes part by setting the ledger's `task`; LiteLLM's own routes are left untouched.

`AttemptRecorder` is the observer `proxy.resilience` reports each provider attempt and fallback
to: it times the attempt into the ledger, opens the attempt's span, and counts retries,
fallbacks and errors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.trace import Span

from core.redact import Redactor
from proxy.accounting import COST_HEADER, RequestLedger, current_ledger, open_ledger
from proxy.asgi import ASGIApp, Message, Receive, Scope, Send
from proxy.metrics import ProxyMetrics
from proxy.routing import Deployment
from proxy.tracing import Tracing
from proxy.upstream import translate

__all__ = ["AttemptRecorder", "ObservedApp"]

_METRICS_PATHS = frozenset({"/metrics", "/metrics/"})
_COST = COST_HEADER.encode()


class AttemptRecorder:
    """What `proxy.resilience` reports to: each attempt (timed, traced, counted) and each move
    to a fallback. It never changes the outcome."""

    def __init__(
        self, metrics: ProxyMetrics | None, tracing: Tracing | None, redactor: Redactor
    ) -> None:
        self._metrics = metrics
        self._tracing = tracing if tracing is not None and tracing.enabled else None
        self._redactor = redactor

    @contextmanager
    def attempt(
        self, task: str, deployment: Deployment, number: int, *, retry: bool
    ) -> Iterator[None]:
        ledger = current_ledger()
        if ledger is not None:
            if ledger.task is None:
                # Media routes are accounted from their first attempt on.
                ledger.task = task
            ledger.attempts += 1
            ledger.retries += retry
            ledger.provider, ledger.model = deployment.provider, deployment.model
        span_scope = (
            self._tracing.attempt_span(task, deployment.provider, deployment.model, number)
            if self._tracing is not None
            else None
        )
        span = span_scope.__enter__() if span_scope is not None else None
        error_type: str | None = None
        status: int | None = 200
        started = time.perf_counter()
        try:
            yield
        except asyncio.CancelledError:
            status = None
            raise
        except BaseException as exc:
            error = translate(exc, deployment.provider, self._redactor)
            error_type, status = type(error).__name__, error.status_code
            raise
        finally:
            if ledger is not None:
                ledger.upstream_s += time.perf_counter() - started
            if self._metrics is not None:
                self._metrics.observe_attempt(
                    task, deployment.provider, deployment.model, retry=retry, error_type=error_type
                )
            if span_scope is not None and span is not None:
                Tracing.finish(span, status, error_type)
                span_scope.__exit__(None, None, None)

    def fallback(self, task: str, left: Deployment, deployment: Deployment) -> None:
        del deployment  # the next attempt reports who serves now
        ledger = current_ledger()
        if ledger is not None:
            ledger.fallbacks += 1
        if self._metrics is not None:
            self._metrics.observe_fallback(task, left.provider, left.model)


class ObservedApp:
    """Wraps the whole proxy app: /metrics, then per request a ledger and a server span."""

    def __init__(self, inner: ASGIApp, *, metrics: ProxyMetrics, tracing: Tracing) -> None:
        self._inner = inner
        self._metrics = metrics
        self._tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._inner(scope, receive, send)
            return
        if scope["path"] in _METRICS_PATHS and scope["method"] == "GET":
            await self._metrics.serve(scope, send)
            return
        ledger = RequestLedger()
        status = 0

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start" and ledger.task is not None:
                status = int(message["status"])
                headers = list(message.get("headers") or ())
                # A route that sends its own cost (a stored job's) keeps it.
                own_cost = any(name == _COST for name, _ in headers)
                added = ledger.headers()
                if own_cost:
                    added = [h for h in added if h[0] != _COST]
                message = {**message, "headers": headers + added}
            await send(message)

        with open_ledger(ledger), self._tracing.server_span(scope) as span:
            try:
                await self._inner(scope, receive, answer)
            finally:
                if ledger.task is not None:
                    self._metrics.observe_request(ledger, status, ledger.total_s())
                    if span is not None:
                        _annotate(span, ledger, status)


def _annotate(span: Span, ledger: RequestLedger, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    span.set_attribute("gateway.task", ledger.task or "")
    span.set_attribute("gateway.provider", ledger.provider or "")
    span.set_attribute("gateway.model", ledger.model or "")
    span.set_attribute("gateway.attempts", ledger.attempts)
    if ledger.cost_usd is not None:
        span.set_attribute("gateway.cost_usd", ledger.cost_usd)
    Tracing.finish(span, None, ledger.error_type if status >= 400 else None)
