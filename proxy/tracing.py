"""OpenTelemetry traces of the proxy: the caller's trace continues to the provider.

Why it exists: a Kafka event carries a W3C traceparent; the consumer sends a child of it to the
proxy, and the provider call should sit in the same trace. So each request of a gateway route
gets a server span continuing the incoming `traceparent`, each provider attempt a client span
under it (provider, model, attempt, status), and the upstream request a `traceparent` naming
the attempt span (`outgoing_headers()`, for LiteLLM's `extra_headers` or a direct httpx call).

The tracer provider is this object's own, not OpenTelemetry's global one (several proxies may
share a process); only the current-span context is process-wide, as OpenTelemetry keeps it in
context variables. With `exporter: none` no span is ever created, and `outgoing_headers()`
costs one context look-up.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import orjson
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from proxy.settings import TracingSettings

__all__ = ["JsonlSpanExporter", "Tracing", "outgoing_headers"]

_PROPAGATOR = TraceContextTextMapPropagator()
# How long a finished span may wait for its batch to be written.
_EXPORT_DELAY_MS = 200


def outgoing_headers() -> dict[str, str]:
    """The `traceparent` an upstream request made now should carry (the current span's),
    or nothing when no span is recording."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    flags = int(context.trace_flags)
    return {"traceparent": f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"}


class JsonlSpanExporter(SpanExporter):
    """Appends each finished span to a file as one JSON object a line (ids in hex)."""

    def __init__(self, path: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = Path(path).open("ab")  # noqa: SIM115 - closed in shutdown()
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = b"".join(orjson.dumps(_span_record(span)) + b"\n" for span in spans)
        with self._lock:
            self._file.write(lines)
            self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._file.close()


def _span_record(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{context.trace_id:032x}" if context else None,
        "span_id": f"{context.span_id:016x}" if context else None,
        "parent_span_id": f"{parent.span_id:016x}" if parent is not None else None,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
    }


class Tracing:
    """The proxy's tracer, or nothing at all when tracing is off."""

    def __init__(self, settings: TracingSettings) -> None:
        self._provider: TracerProvider | None = None
        self._tracer: trace.Tracer | None = None
        if settings.exporter == "jsonl" and settings.path:
            provider = TracerProvider(
                resource=Resource.create({"service.name": settings.service_name})
            )
            # Written by the SDK's exporter thread in batches, off the request path; stop()
            # flushes what is left.
            provider.add_span_processor(
                BatchSpanProcessor(
                    JsonlSpanExporter(settings.path), schedule_delay_millis=_EXPORT_DELAY_MS
                )
            )
            self._provider = provider
            self._tracer = provider.get_tracer("proxy")

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    @contextmanager
    def server_span(self, scope: Mapping[str, Any]) -> Iterator[Span | None]:
        """The span of one request, a child of its `traceparent` when it has a valid one."""
        if self._tracer is None:
            yield None
            return
        carrier = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in scope.get("headers", ())
            if key in (b"traceparent", b"tracestate")
        }
        parent = _PROPAGATOR.extract(carrier) if carrier else None
        path = str(scope.get("path", ""))
        with self._tracer.start_as_current_span(
            f"{scope.get('method', 'HTTP')} {path}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": str(scope.get("method")), "url.path": path},
            # Exception messages may quote provider answers; the gateway sets status itself.
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield span

    @contextmanager
    def attempt_span(self, task: str, provider: str, model: str, attempt: int) -> Iterator[Span]:
        """A client span for one provider attempt, current for the block (so the upstream
        request's traceparent names it)."""
        assert self._tracer is not None
        with self._tracer.start_as_current_span(
            f"provider attempt {provider}",
            kind=SpanKind.CLIENT,
            attributes={
                "gateway.task": task,
                "gateway.provider": provider,
                "gateway.model": model,
                "gateway.attempt": attempt,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield span

    @staticmethod
    def finish(span: Span, status: int | None, error_type: str | None) -> None:
        """Record an outcome on a span: the HTTP status, and the error class when it failed."""
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if error_type is not None:
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR))

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()
            self._provider = None
            self._tracer = None
