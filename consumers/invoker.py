"""Running a handler for one event: attempts, retries with backoff, holding back after a 429.

Why a module of its own: what happens between "this event needs its handler" and "here is its
outcome" (the retry decision per error, waiting out the proxy's Retry-After, progress reports)
is independent of how records are decoded, deduplicated and published (`consumers.pipeline`),
which calls it once per event of any kind.

No budget is kept here: the proxy holds every provider's budget for all callers (`budgets`),
queueing calls over it and answering 429 with a Retry-After only when a task's providers are
all saturated. Such a 429 holds every call of that task (`RetryAfterHold`) until then, and the
event is sent again.

Two limits bound the retries besides the settings: no call starts after the event's deadline,
nor a retry whose wait would end after it; and a handler may declare `max_deliveries`, the most
calls it wants per event (the proxy handler does: the proxy retries and falls back itself, so
each of its calls may cost a whole chain of provider calls). A plain 429 (one call, refused at
once) does not count against it: the rate-limited budget and the proxy's Retry-After pace those.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import msgspec
import structlog

from consumers.backpressure import RetryAfterHold
from consumers.deadletters import error_chain
from consumers.errors import (
    AllProvidersRateLimited,
    DeadlineExceeded,
    NoHandler,
    ProviderRateLimited,
)
from consumers.handlers import Handler, HandlerContext, HandlerRegistry
from consumers.kinds import EventKind
from consumers.metrics import ConsumerMetrics
from consumers.publisher import EventPublisher
from consumers.retry import RetryPolicy, is_retriable
from consumers.settings import KafkaSettings
from core.http import seconds_until
from schemas import ErrorInfo, JobProgress, Request, child_traceparent

__all__ = ["Handled", "HandlerInvoker"]

_log = structlog.get_logger(__name__)

# (the handler's payload or the final error, attempts made, error chain newest first).
Handled = tuple[msgspec.Struct | BaseException, int, list[ErrorInfo]]


class HandlerInvoker:
    def __init__(
        self,
        *,
        settings: KafkaSettings,
        registry: HandlerRegistry,
        publisher: EventPublisher,
        metrics: ConsumerMetrics,
        policy: RetryPolicy,
        hold: RetryAfterHold | None = None,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._publisher = publisher
        self._metrics = metrics
        self._policy = policy
        # Shared by every invoker of a service, so one 429 holds the task for all partitions.
        self._hold = hold if hold is not None else RetryAfterHold()
        self._latency: dict[str, Any] = {}

    def kind_of(self, event: Request) -> EventKind[Any, Any]:
        """The kind of a decoded request (what its result looks like)."""
        return self._registry.kind_of(event)

    async def handle(self, event: Request, traceparent: str) -> Handled:
        """The event's outcome after every attempt the retry policy allows; never raises
        (except cancellation): a failure is returned, for the caller to dead-letter."""
        try:
            handler = self._registry.resolve(event)
        except NoHandler as exc:
            return exc, 0, error_chain(exc)
        attempts = 0
        rate_limited = 0
        deliveries = 0
        budget = getattr(handler, "max_deliveries", None)
        max_deliveries = budget if isinstance(budget, int) else None
        errors: list[ErrorInfo] = []
        while True:
            left = None if event.deadline is None else seconds_until(event.deadline)
            if left is not None and left <= 0:
                expired = DeadlineExceeded("the event's deadline passed: no further call")
                return expired, max(deliveries, attempts), (error_chain(expired) + errors)[:16]
            try:
                return (
                    await self._attempt(handler, event, attempts + 1, traceparent),
                    attempts + 1,
                    [],
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure: BaseException = exc
            # A plain 429 (one call, or none: the proxy's budgets refused it at once) has a
            # budget of its own; any other failed delivery may have cost a whole chain of calls.
            if not isinstance(failure, ProviderRateLimited) or isinstance(
                failure, AllProvidersRateLimited
            ):
                deliveries += 1
            decision = self._policy.decide(
                failure,
                attempts=attempts + 1,
                rate_limited=rate_limited,
                deliveries_left=None if max_deliveries is None else max_deliveries - deliveries,
                time_left_s=None if event.deadline is None else seconds_until(event.deadline),
            )
            if decision.rate_limited:
                rate_limited += 1
                if decision.retry:
                    # Every call of the task waits it out, not only this event's.
                    self._hold.hold(event.task, decision.delay_s)
            else:
                attempts += 1
            errors = error_chain(failure) + errors
            _log.warning(
                "consumer.handler_failed",
                error=type(failure).__name__,
                retriable=is_retriable(failure),
                attempt=attempts,
                delivery=deliveries,
                retry=decision.retry,
            )
            if not decision.retry:
                return failure, max(1, attempts), errors[:16]
            self._metrics.retries.labels(event.task).inc()
            if not decision.rate_limited:
                await asyncio.sleep(decision.delay_s)

    def _latency_for(self, task: str) -> Any:
        # The labelled child is looked up once per task, not once per event.
        found = self._latency.get(task)
        if found is None:
            found = self._latency[task] = self._metrics.handler_latency.labels(task)
        return found

    async def _attempt(
        self, handler: Handler, event: Request, attempt: int, traceparent: str
    ) -> msgspec.Struct:
        left = None if event.deadline is None else seconds_until(event.deadline)
        # Checked before awaiting: no hold is the steady state, and it then costs no coroutine.
        if self._hold.remaining(event.task) > 0 and (
            waited := await self._hold.wait(event.task, limit_s=left)
        ):
            self._metrics.rate_limit_wait.labels(event.task).observe(waited)

        async def report(
            stage: str,
            progress: float,
            message: str,
            /,
            *,
            queue_position: int | None = None,
            logs: Sequence[str] = (),
        ) -> None:
            status = JobProgress(
                event_id=f"{event.event_id}.progress.{time.time_ns()}",
                request_id=event.event_id,
                subject=event.subject,
                task=event.task,
                stage=stage,
                progress=progress,
                message=message,
                queue_position=queue_position,
                logs=list(logs),
            )
            await self._publisher.publish(
                self._settings.topics.status.name,
                status,
                key=event.subject,
                subject=event.subject,
                traceparent=child_traceparent(traceparent),
            )

        ctx = HandlerContext(attempt=attempt, traceparent=traceparent, report=report)
        started = time.monotonic()
        try:
            answer: msgspec.Struct = await handler.handle(event, ctx)
            return answer
        finally:
            self._latency_for(event.task).observe(time.monotonic() - started)
